package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// runFigures runs lbgpt-bench with args and returns the JSON figures of its
// last line.
func runFigures(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), append([]string{"-json"}, args...), &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var figures map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &figures); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	t.Logf("report:\n%s", stdout.String())
	return figures
}

func checkKeys(t *testing.T, figures map[string]any, keys ...string) {
	t.Helper()
	for _, key := range keys {
		if _, ok := figures[key]; !ok {
			t.Errorf("missing %s in %v", key, figures)
		}
	}
}

// TestGoodputRuns checks the goodput scenario end to end on a tiny
// workload whose token demand is about the limits' burst: every promised key
// is there and lbgptd answers every item. The figures are for the full run.
func TestGoodputRuns(t *testing.T) {
	figures := runFigures(t, "-scenario", "goodput", "-n", "60",
		"-rpm", "30,20,15", "-tpm", "2400,1800,1200", "-prompt-max", "100", "-answer-max", "32",
		"-ttft", "1ms", "-per-token", "0", "-baseline-wait-scale", "0.01", "-timeout", "60s")
	checkKeys(t, figures, "goodput_ratio", "upstream_429", "baseline_goodput_ratio", "baseline_upstream_429",
		"share", "bound_s", "elapsed_s", "baseline_elapsed_s")
	if figures["completed"] != float64(60) || figures["timed_out"] != false {
		t.Errorf("lbgptd did not answer every item: %v", figures)
	}
	share, _ := figures["share"].(map[string]any)
	if len(share) != 3 {
		t.Errorf("share %v, want one entry per backend", figures["share"])
	}
}

func TestLowerBound(t *testing.T) {
	tests := []struct {
		name     string
		d        demand
		rpm, tpm []int
		want     float64
		binding  string
	}{
		{"fits in the burst", demand{requests: 10, tokens: 100}, []int{60}, []int{1000}, 0, "tokens"},
		{"tokens bind", demand{requests: 10, tokens: 2400}, []int{60, 60}, []int{600, 600}, 60, "tokens"},
		{"requests bind", demand{requests: 180, tokens: 10}, []int{30, 30}, []int{1000, 1000}, 120, "requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, binding := lowerBound(tt.d, tt.rpm, tt.tpm)
			if got != tt.want || binding != tt.binding {
				t.Errorf("lowerBound = %v, %s; want %v, %s", got, binding, tt.want, tt.binding)
			}
		})
	}
}

func TestWorkload(t *testing.T) {
	sz := sizes{promptMin: 20, promptMax: 600, answerMin: 16, answerMax: 256}
	items := makeWorkload(200, 1, sz)
	bodies := map[string]bool{}
	for i, it := range items {
		if bodies[string(it.body)] {
			t.Fatalf("item %d repeats an earlier request", i)
		}
		bodies[string(it.body)] = true
		if it.maxTokens < sz.answerMin || it.maxTokens > sz.answerMax {
			t.Errorf("item %d: max_tokens %d out of range", i, it.maxTokens)
		}
		// The filler is one token a word, so sizes land near the range.
		if it.prompt < sz.promptMin-5 || it.prompt > sz.promptMax+30 {
			t.Errorf("item %d: %d prompt tokens, want about %d–%d", i, it.prompt, sz.promptMin, sz.promptMax)
		}
	}
	if !answers(`Simulated answer to "item-000042 run-1 please answer…".`, "item-000042") ||
		answers(`Simulated answer to "item-000042 run-1 please answer…".`, "item-000004") {
		t.Error("answers does not tell items apart")
	}
}
