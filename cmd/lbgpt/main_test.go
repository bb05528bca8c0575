package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = exitCode(run(context.Background(), args, e), &errb)
	return out.String(), errb.String(), code
}

func TestUsage(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	tests := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no arguments prints help", "", nil, 0, "Usage:", ""},
		{"help", "", []string{"help"}, 0, "Exit codes", ""},
		{"unknown command", "", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"ask --help", "", []string{"ask", "--help"}, 0, "", "Usage: lbgpt ask"},
		{"ask with no prompt", "", []string{"ask", "--socket", socket}, 2, "", "empty prompt on stdin"},
		{"ask with a bad flag", "", []string{"ask", "--nope", "x"}, 2, "", "flag provided but not defined: -nope"},
		{"ask --stream bad", "", []string{"ask", "--stream", "maybe", "x"}, 2, "", "--stream must be auto, always or never"},
		{"ask --temperature out of range", "", []string{"ask", "--temperature", "3", "x"}, 2, "", "--temperature must be between 0 and 2"},
		{"ask --temperature not a number", "", []string{"ask", "--temperature", "hot", "x"}, 2, "", "want a number"},
		{"ask without a daemon", "", []string{"ask", "--socket", socket, "--no-autostart", "x"}, 3, "", "lbgptd is not running"},
		{"status takes no arguments", "", []string{"status", "extra"}, 2, "", "status takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runCmd(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) {
				t.Errorf("stdout %q lacks %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.stderr)
			}
		})
	}
}

func TestReadPrompt(t *testing.T) {
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"a", "b"}, "ignored", "a b"},
		{[]string{"-"}, "  from stdin\n", "from stdin"},
		{nil, "multi\nline\n", "multi\nline"},
	}
	for _, tt := range tests {
		got, err := readPrompt(tt.args, strings.NewReader(tt.stdin))
		if err != nil || got != tt.want {
			t.Errorf("readPrompt(%q, %q) = %q, %v; want %q", tt.args, tt.stdin, got, err, tt.want)
		}
	}
}
