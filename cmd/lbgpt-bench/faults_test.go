package main

import "testing"

// TestFaultsRuns checks the faults scenario end to end on a tiny workload
// (limits loose enough that only the faults slow it down): every promised
// key is there, every item is answered, in order, and nothing is answered
// upstream twice.
func TestFaultsRuns(t *testing.T) {
	figures := runFigures(t, "-scenario", "faults", "-n", "60",
		"-rpm", "600,400,300", "-tpm", "60000,40000,30000", "-c-real-rpm", "10",
		"-prompt-max", "100", "-answer-max", "32", "-ttft", "1ms", "-per-token", "0", "-timeout", "90s")
	checkKeys(t, figures, "completed_ratio", "order_ok", "duplicate_upstream_answers", "p50_ms", "p99_ms", "attempts_histogram")
	if figures["completed_ratio"] != float64(1) || figures["order_ok"] != true || figures["duplicate_upstream_answers"] != float64(0) {
		t.Errorf("figures %v", figures)
	}
}
