package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/rpc"
)

func TestToken(t *testing.T) {
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	var stdout, stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: os.Getenv}

	err := run(t.Context(), []string{"token"}, e)
	if err == nil || !strings.Contains(err.Error(), "[http] listen") || exitCode(err, &stderr) != exitFailed {
		t.Errorf("without a token file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, rpc.TokenFile), []byte("lbgpt-secret-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"token"}, e); err != nil || stdout.String() != "lbgpt-secret-token-value\n" {
		t.Errorf("token = %q, %v", stdout.String(), err)
	}
	stdout.Reset()
	other := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(other, []byte("another-token-of-some-length"), 0o600)
	if err := run(t.Context(), []string{"token", "--file", other}, e); err != nil || stdout.String() != "another-token-of-some-length\n" {
		t.Errorf("token --file = %q, %v", stdout.String(), err)
	}
	if err := run(t.Context(), []string{"token", "extra"}, e); exitCode(err, &stderr) != exitUsage {
		t.Errorf("token extra: %v", err)
	}
}
