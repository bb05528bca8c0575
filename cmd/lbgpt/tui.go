package main

import (
	"context"
	"io"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/tui"
)

const tuiUsage = `Usage: lbgpt tui [flags]

Opens the terminal interface (also what plain "lbgpt" does on a terminal):
a multi-turn chat whose answers stream in, beside a live panel of lbgptd's
backends (state, RPM/TPM headroom, in flight, latency, 429s, retries, the
last minute of traffic), its cache hits and the batches it runs. Press ? in
it for every key. When no daemon is running one is started in the
background unless --no-autostart is given; while the daemon is away the
TUI says so and reconnects when it is back.

Flags:
`

func runTUI(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("tui", tuiUsage, e)
	var df daemonFlags
	model := fs.String("model", "gpt-4o-mini", "model to ask first (ctrl+o picks another)")
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("tui takes no arguments")
	}
	if !isTerminal(e.stdin) || !isTerminal(e.stdout) {
		return usageErr("the TUI needs a terminal on stdin and stdout (for scripts: lbgpt ask, lbgpt batch)")
	}
	c := &client.Client{Socket: df.socket}
	defer c.Close()
	return tui.Run(ctx, tui.Options{
		Daemon:    tui.Client(c),
		Model:     *model,
		Autostart: tuiAutostart(&df, c, e),
		NoColor:   e.getenv("NO_COLOR") != "",
		Getenv:    e.getenv,
	}, e.stdin, e.stdout)
}

// tuiAutostart is the CLI's autostart for the TUI: whatever it would print
// would tear the screen, so it prints nothing; the TUI's panel tells.
func tuiAutostart(df *daemonFlags, c *client.Client, e env) func(context.Context) error {
	quiet := e
	quiet.stderr = io.Discard
	return func(ctx context.Context) error { return df.reach(ctx, c, quiet) }
}
