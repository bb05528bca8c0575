package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOverheadRuns checks the harness end to end on a tiny workload: every
// promised key is printed as JSON on the last line. The figures themselves
// are for `make bench`, not for a unit test.
func TestOverheadRuns(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-json", "-scenario", "overhead", "-n", "40", "-throughput-n", "64", "-throughput-c", "8", "-rounds", "2"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var figures map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &figures); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	for _, key := range []string{"direct_p50_us", "direct_p99_us", "daemon_p50_us", "daemon_p99_us", "added_p50_us", "throughput_ratio"} {
		if _, ok := figures[key]; !ok {
			t.Errorf("missing %s in %v", key, figures)
		}
	}
	if p50, _ := figures["daemon_p50_us"].(float64); p50 <= 0 {
		t.Errorf("implausible figures %v", figures)
	}
}

func TestUnknownScenario(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-scenario", "nope"}, &out, &out); err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) {
		t.Errorf("err = %v", err)
	}
}

// TestCacheRuns checks the cache scenario end to end on a tiny workload.
func TestCacheRuns(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "lbgptd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lbgpt/lbgpt/cmd/lbgptd").CombinedOutput(); err != nil {
		t.Fatalf("build lbgptd: %v\n%s", err, out)
	}
	figures := runFigures(t, "-scenario", "cache", "-n", "50", "-keys", "10", "-batch", "200",
		"-semantic-sizes", "300", "-lookups", "20", "-lbgptd", bin)
	if figures["semantic_hits_300"] != "10/10" {
		t.Errorf("semantic hits %v, want all 10 rewordings", figures["semantic_hits_300"])
	}
	for _, key := range []string{"exact_hit_p50_us", "exact_hit_p99_us", "batch_hits_per_s", "semantic_p50_ms_300", "ready_ms_300", "rss_mb_300", "rss_file_mb_300"} {
		if v, _ := figures[key].(float64); v <= 0 {
			t.Errorf("%s = %v in %v", key, figures[key], figures)
		}
	}
}
