// Command lbgpt is the client of lbgptd, the lbgpt daemon: a terminal
// interface (plain "lbgpt" on a terminal, or "lbgpt tui") and one-shot
// commands (ask, batch, status, demo) over the daemon's Unix socket.
package main

import (
	"github.com/lbgpt/lbgpt/rpc"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes, documented in the help text.
const (
	exitOK          = 0
	exitFailed      = 1   // the daemon answered with an error; batch: a request failed
	exitUsage       = 2   // bad command line or input
	exitUnreachable = 3   // no daemon could be reached or started
	exitInterrupted = 130 // Ctrl-C (SIGINT) or SIGTERM stopped it, as a shell reports
)

// exitError carries an exit code for main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// interrupted is the error of a command that Ctrl-C or SIGTERM stopped.
func interrupted() error {
	return &exitError{code: exitInterrupted, err: errors.New("interrupted")}
}

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// env is what a command may touch of the outside world, so tests can
// capture it.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintln(stderr, "lbgpt:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

const help = `lbgpt talks to lbgptd, the daemon that balances OpenAI-style requests over
many API accounts, retries, and fails over.

Usage:
  lbgpt                           on a terminal: the TUI (chat beside the live backend panel)
  lbgpt tui [flags]               the TUI
  lbgpt ask [flags] [PROMPT...]   ask one question (prompt from the arguments, or stdin)
  lbgpt batch [flags] [FILE]      answer a JSONL file of chat requests; JSONL results in order
  lbgpt status [--json]           the daemon and its backends: state, limits, latency
  lbgpt demo                      start a private daemon on SIMULATED backends and show it working
                                  (on a terminal: in the TUI, with a sample batch running)
  lbgpt token                     the bearer token of lbgptd's OpenAI-compatible HTTP endpoint
  lbgpt stop                      stop lbgptd (after its requests finish); the next command starts
                                  a new one with this shell's environment
  lbgpt cache COMMAND             the answer caches: stats, purge, forget ID, compact
  lbgpt spend [--by X] [--since D]  what answers cost and the cache saved, by backend,
                                  model or namespace, today (default), this month...
  lbgpt help                      this text
  lbgpt version                   lbgpt's version (also --version)

Every command that talks to the daemon (all but token and help) takes
--socket PATH (default $LBGPT_SOCKET, else
$XDG_RUNTIME_DIR/lbgpt/lbgptd.sock, else /tmp/lbgpt-$UID/lbgptd.sock).
When no daemon is running, the TUI, ask, batch, status, spend and cache start one in the background
(lbgptd, found next to lbgpt or on $PATH) unless --no-autostart is given.

Exit codes: 0 done, 1 the daemon answered with an error (batch: a request
failed; every other line is still written), 2 bad usage or input, 3 no daemon
could be reached or started, 130 interrupted (Ctrl-C).

Run "lbgpt COMMAND --help" for a command's flags. Flags may come before or
after the other arguments ("--" ends them); --socket and --no-autostart also
before the command.
`

func run(ctx context.Context, args []string, e env) error {
	args = commandFirst(args)
	if len(args) == 0 {
		if isTerminal(e.stdin) && isTerminal(e.stdout) {
			return runTUI(ctx, nil, e)
		}
		fmt.Fprint(e.stdout, help)
		return nil
	}
	switch args[0] {
	case "tui":
		return runTUI(ctx, args[1:], e)
	case "ask":
		return runAsk(ctx, args[1:], e)
	case "batch":
		return runBatch(ctx, args[1:], e)
	case "status":
		return runStatus(ctx, args[1:], e)
	case "demo":
		return runDemo(ctx, args[1:], e)
	case "cache":
		return runCache(ctx, args[1:], e)
	case "spend":
		return runSpend(ctx, args[1:], e)
	case "token":
		return runToken(ctx, args[1:], e)
	case "stop":
		return runStop(ctx, args[1:], e)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, help)
		return nil
	case "version", "-version", "--version":
		fmt.Fprintf(e.stdout, "lbgpt %s (protocol %d)\n", rpc.Release, rpc.Version)
		return nil
	}
	return usageErr("unknown command %q (see lbgpt help)", args[0])
}

// commandFirst moves the flags every command takes (--socket PATH,
// --no-autostart), when they come before the command, after it:
// "lbgpt --socket S ask hi" is "lbgpt ask --socket S hi".
func commandFirst(args []string) []string {
	var lead []string
	i := 0
	for i < len(args) {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if !strings.HasPrefix(args[i], "-") {
			break
		}
		switch {
		case name == "socket" && !hasValue && i+1 < len(args):
			lead = append(lead, args[i], args[i+1])
			i += 2
			continue
		case name == "socket" || name == "no-autostart":
			lead = append(lead, args[i])
			i++
			continue
		}
		break
	}
	if len(lead) == 0 || i == len(args) {
		return args
	}
	out := append([]string{args[i]}, lead...)
	return append(out, args[i+1:]...)
}

// newFlagSet is a command's flag set; --help prints its usage on stdout
// (errors go to stderr, through exitCode).
func newFlagSet(name, usage string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet("lbgpt "+name, flag.ContinueOnError)
	fs.SetOutput(e.stdout)
	fs.Usage = func() {
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n == 0 {
			usage = withoutFlags(usage)
		}
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// withoutFlags is a usage text without its closing "Flags:" heading, for
// where no flag list follows.
func withoutFlags(usage string) string {
	return strings.TrimRight(strings.TrimSuffix(strings.TrimRight(usage, "\n"), "Flags:"), "\n") + "\n"
}

// parseFlags parses args, turning a flag error into a usage error. Flags
// may come after the other arguments (lbgpt ask "hi" --namespace n), up to
// a "--" after which everything is an argument.
func parseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package prints a bad flag's error and the whole usage; the
	// error alone, once, with where to look, says more.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := fs.Parse(interspersed(fs, args))
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return &exitError{code: exitUsage, err: fmt.Errorf("%w (see %s --help)", err, fs.Name())}
	}
	return nil
}

// seconds is a duration flag that takes seconds ("30", "0.5") as well as a
// Go duration ("1m30s"), as X-Lbgpt-Timeout and the protocol do.
type seconds time.Duration

func (d *seconds) String() string { return time.Duration(*d).String() }

func (d *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || f > 1e9 {
			return errors.New("want a duration from 0")
		}
		*d = seconds(f * float64(time.Second))
		return nil
	}
	t, err := time.ParseDuration(v)
	if err != nil {
		return errors.New(`want seconds (30) or a duration ("1m30s")`)
	}
	*d = seconds(t)
	return nil
}

// durationFlag defines a seconds flag.
func durationFlag(fs *flag.FlagSet, name string, usage string) *time.Duration {
	var d seconds
	fs.Var(&d, name, usage)
	return (*time.Duration)(&d)
}

// interspersed moves the flags of args (with their values) in front of the
// other arguments, then a "--", so that flag.Parse reads them all.
func interspersed(fs *flag.FlagSet, args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // flag.Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), rest...)
}
