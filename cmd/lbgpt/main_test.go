package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/lbgpt/lbgpt/rpc"
	"io"
	"os"
	"path/filepath"
	"slices"
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

// TestNoEmptyFlagsHeading: a usage with no flags to list ends without a
// "Flags:" heading.
func TestNoEmptyFlagsHeading(t *testing.T) {
	stdout, _, code := runCmd(t, "", "demo", "--help")
	if code != 0 || !strings.HasPrefix(stdout, "Usage: lbgpt demo") || strings.Contains(stdout, "Flags:") {
		t.Errorf("lbgpt demo --help: exit %d\n%s", code, stdout)
	}
	_, stderr, code := runCmd(t, "", "cache")
	if code != exitUsage || !strings.Contains(stderr, "Usage: lbgpt cache") || strings.Contains(stderr, "Flags:") {
		t.Errorf("lbgpt cache: exit %d\n%s", code, stderr)
	}
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
		{"ask --help", "", []string{"ask", "--help"}, 0, "Usage: lbgpt ask", ""},
		{"ask with no prompt", "", []string{"ask", "--socket", socket}, 2, "", "empty prompt on stdin"},
		{"ask with a bad flag", "", []string{"ask", "--nope", "x"}, 2, "", "flag provided but not defined: -nope"},
		{"ask --stream bad", "", []string{"ask", "--stream", "maybe", "x"}, 2, "", "--stream must be auto, always or never"},
		{"ask --temperature out of range", "", []string{"ask", "--temperature", "3", "x"}, 2, "", "--temperature must be between 0 and 2"},
		{"ask --temperature not a number", "", []string{"ask", "--temperature", "hot", "x"}, 2, "", "want a number"},
		{"ask without a daemon", "", []string{"ask", "--socket", socket, "--no-autostart", "x"}, 3, "", "lbgptd is not running"},
		{"ask --timeout in plain seconds", "", []string{"ask", "--timeout", "30", "--socket", socket, "--no-autostart", "x"}, 3, "", "lbgptd is not running"},
		{"ask --timeout bad, said once", "", []string{"ask", "--timeout", "soon", "x"}, 2, "", `invalid value "soon" for flag -timeout: want seconds (30) or a duration ("1m30s") (see lbgpt ask --help)`},
		{"status takes no arguments", "", []string{"status", "extra"}, 2, "", "status takes no arguments"},
		{"--version", "", []string{"--version"}, 0, "lbgpt " + rpc.Release + " (protocol 1)", ""},
		{"version", "", []string{"version"}, 0, "lbgpt " + rpc.Release, ""},
		{"--socket before the command", "", []string{"--socket", socket, "ask", "--no-autostart", "x"}, 3, "", "nothing listens on " + socket},
		{"--socket= and --no-autostart before the command", "", []string{"--socket=" + socket, "--no-autostart", "status"}, 3, "", "nothing listens on " + socket},
		{"an empty prompt in the arguments", "", []string{"ask", "--socket", socket, "--no-autostart", ""}, 2, "", "empty prompt"},
		{"a blank prompt in the arguments", "", []string{"ask", "--socket", socket, "--no-autostart", " ", "  "}, 2, "", "empty prompt"},
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

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		ns    string
		json  bool
		wantA []string
	}{
		{"flags first", []string{"--namespace", "zz", "hello", "there"}, "zz", false, []string{"hello", "there"}},
		{"flags after", []string{"hello there", "--namespace", "zz", "--json"}, "zz", true, []string{"hello there"}},
		{"flag=value between", []string{"hello", "--namespace=zz", "there"}, "zz", false, []string{"hello", "there"}},
		{"dash dash", []string{"hello", "--", "--namespace", "zz"}, "", false, []string{"hello", "--namespace", "zz"}},
		{"stdin dash", []string{"-", "--json"}, "", true, []string{"-"}},
		{"value that looks like a flag", []string{"--namespace", "-x", "hi"}, "-x", false, []string{"hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			ns := fs.String("namespace", "", "")
			js := fs.Bool("json", false, "")
			if err := parseFlags(fs, tt.args); err != nil {
				t.Fatal(err)
			}
			if *ns != tt.ns || *js != tt.json || !slices.Equal(fs.Args(), tt.wantA) {
				t.Errorf("namespace %q json %v args %q; want %q %v %q", *ns, *js, fs.Args(), tt.ns, tt.json, tt.wantA)
			}
		})
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ee *exitError
	if err := parseFlags(fs, []string{"hi", "--nope"}); !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("unknown flag after an argument: %v, want a usage error", err)
	}
}

func TestDevNullIsNoTerminal(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("/dev/null counts as a terminal")
	}
}

func TestInterruptedExits130(t *testing.T) {
	var errb bytes.Buffer
	if code := exitCode(askError(fmt.Errorf("chat: %w", context.Canceled)), &errb); code != 130 || !strings.Contains(errb.String(), "interrupted") {
		t.Errorf("a canceled request exits %d with %q; want 130, interrupted", code, errb.String())
	}
}

// A bad --since or --by of lbgpt spend is bad usage (exit 2), said before
// any daemon is asked.
func TestSpendBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--since", "week"}, {"--since", "-5h"}, {"--by", "models"}} {
		_, stderr, code := runCtx(t.Context(), "", append([]string{"spend", "--socket", "/nonexistent/lbgptd.sock", "--no-autostart"}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, strings.TrimPrefix(args[0], "--")) {
			t.Errorf("spend %v: exit %d, %q", args, code, stderr)
		}
	}
}
