package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The committed model is the one the fit gives on the committed data: the
// fit is deterministic and model.go was not edited by hand.
func TestModelIsFitted(t *testing.T) {
	if raceEnabled {
		t.Skip("the fit is slow under the race detector; make test runs this test without it")
	}
	out := filepath.Join(t.TempDir(), "model.go")
	if err := run("../../../testdata/semantic", out, 0.95, 0.01); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../model.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("cache/verify/model.go is not what the fit gives; run: go run ./cache/verify/fit -o cache/verify/model.go\ngot:\n%s", got)
	}
}
