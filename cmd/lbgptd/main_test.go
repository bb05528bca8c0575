package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunUsage(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name  string
		args  []string
		usage bool // exit 2
		msg   string
	}{
		{"unknown flag", []string{"--frob"}, true, "flag provided but not defined"},
		{"stray argument", []string{"serve"}, true, `unexpected argument "serve"`},
		{"bad log level", []string{"--log-level", "loud"}, true, `--log-level "loud"`},
		{"demo with config", []string{"--demo", "--config", "x.toml"}, true, "--demo and --config exclude each other"},
		{"missing config file", []string{"--config", filepath.Join(t.TempDir(), "nope.toml")}, true, "nope.toml"},
		{"no keys", []string{"--socket", filepath.Join(t.TempDir(), "s")}, true, "OPENAI_API_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CONFIG_HOME", t.TempDir())
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tt.args, noEnv, nil, &stdout, &stderr)
			if got := errors.As(err, new(usageError)); got != tt.usage {
				t.Errorf("err = %v, usage error %v, want %v", err, got, tt.usage)
			}
			if !strings.Contains(stderr.String()+errString(err), tt.msg) {
				t.Errorf("output %q, err %v: lacks %q", stderr.String(), err, tt.msg)
			}
		})
	}
}

// TestHelp: --help is the usage on stdout, for a pager or grep.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, nil, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(stdout.String(), "Usage: lbgptd") || !strings.Contains(stdout.String(), "-demo") || stderr.Len() > 0 {
		t.Errorf("err %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, func(string) string { return "" }, nil, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "lbgptd ") {
		t.Errorf("version output %q", stdout.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
