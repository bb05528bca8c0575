package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary be a peer of relayFloor, which starts its
// own executable as one.
func TestMain(m *testing.M) {
	if spec := os.Getenv(peerEnv); spec != "" {
		if err := peer(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestOverheadRuns checks the harness end to end on a tiny workload, with
// lbgptd and the simulator as processes (the default): every promised key
// is printed as JSON on the last line. The figures themselves are for
// `make bench`, not for a unit test.
func TestOverheadRuns(t *testing.T) {
	bin := buildCommands(t, "lbgptd", "lbgpt-sim")
	figures := runFigures(t, "-scenario", "overhead", "-n", "40", "-throughput-n", "64", "-throughput-c", "8", "-rounds", "2",
		"-lbgptd", filepath.Join(bin, "lbgptd"), "-lbgpt-sim", filepath.Join(bin, "lbgpt-sim"))
	checkKeys(t, figures, "direct_p50_us", "direct_p99_us", "daemon_p50_us", "daemon_p99_us", "added_p50_us", "throughput_ratio",
		"status_p50_us", "exact_hit_p50_us", "tokenize_p50_us", "allocs_per_request", "daemon_own_p50_us", "daemon_upstream_p50_us",
		"floor_direct_p50_us", "floor_relayed_p50_us", "floor_added_p50_us")
	if p50, _ := figures["daemon_p50_us"].(float64); p50 <= 0 {
		t.Errorf("implausible figures %v", figures)
	}
	// The echo peer spins echoWork on every line: no round trip to it,
	// direct or relayed, is shorter.
	for _, k := range []string{"floor_direct_p50_us", "floor_relayed_p50_us"} {
		if us, _ := figures[k].(float64); us < float64(echoWork.Microseconds()) {
			t.Errorf("%s = %v µs, under the echo peer's %v of work: the round trips did not reach it", k, us, echoWork)
		}
	}
	if figures["in_process"] != false {
		t.Errorf("in_process = %v, want false by default", figures["in_process"])
	}
}

// buildCommands builds the named commands of cmd/ into a temporary
// directory, which it returns.
func buildCommands(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		if out, err := exec.Command("go", "build", "-o", dir, "github.com/lbgpt/lbgpt/cmd/"+name).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

func TestUnknownScenario(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-scenario", "nope"}, &out, &out); err == nil || !strings.Contains(err.Error(), `unknown scenario "nope"`) {
		t.Errorf("err = %v", err)
	}
}

// TestCacheRuns checks the cache scenario end to end on a tiny workload.
func TestCacheRuns(t *testing.T) {
	bin := filepath.Join(buildCommands(t, "lbgptd"), "lbgptd")
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
