package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSemanticQuality runs the semantic-quality scenario on the committed
// labelled set and holds the semantic cache to its targets: precision ≥ 0.98
// with recall ≥ 0.5 at the default threshold, on each half of the set.
func TestSemanticQuality(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-json", "-scenario", "semantic-quality", "-pairs", "../../testdata/semantic-pairs.jsonl"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var f struct {
		Pairs            int
		Precision        float64
		Recall           float64
		DevPrecision     float64        `json:"dev_precision"`
		DevRecall        float64        `json:"dev_recall"`
		HeldoutPrecision float64        `json:"heldout_precision"`
		HeldoutRecall    float64        `json:"heldout_recall"`
		FalseHits        map[string]int `json:"false_hits"`
		Curve            []struct{ Threshold, Precision, Recall float64 }
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		t.Fatalf("last line is not JSON: %q", lines[len(lines)-1])
	}
	if f.Pairs < 300 || len(f.Curve) == 0 {
		t.Fatalf("implausible figures: %+v", f)
	}
	for _, c := range []struct {
		name              string
		precision, recall float64
	}{{"all", f.Precision, f.Recall}, {"dev", f.DevPrecision, f.DevRecall}, {"held-out", f.HeldoutPrecision, f.HeldoutRecall}} {
		if c.precision < 0.98 || c.recall < 0.5 {
			t.Errorf("%s: precision %.3f recall %.3f, want ≥ 0.98 and ≥ 0.5 (false hits %v)", c.name, c.precision, c.recall, f.FalseHits)
		}
	}
}

func TestSemanticPairsChecked(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bad.jsonl":   "{\"a\": \"x\"\n",
		"empty.jsonl": "",
		"clash.jsonl": `{"a": "one", "b": "two", "same": false, "kind": "k"}` + "\n" + `{"a": "two", "b": "three", "same": false, "kind": "k"}` + "\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readPairs(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
