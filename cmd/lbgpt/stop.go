package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/client"
)

const stopUsage = `Usage: lbgpt stop [flags]

Stops the lbgptd this command talks to: it refuses new requests, lets those
in flight finish ([daemon] drain_timeout, 30 s) and exits. The next command
that needs a daemon starts a new one (unless --no-autostart), with this
shell's environment and the config file as it is now: the way to take up a
new OPENAI_API_KEY, or any change the running daemon does not reload.
A daemon run by systemd is restarted with systemctl instead:
systemctl --user restart lbgptd

Flags:
`

// stopWait bounds the wait for the daemon to exit: its drain and then some.
const stopWait = 60 * time.Second

func runStop(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("stop", stopUsage, e)
	socket := fs.String("socket", "", socketHelp)
	fs.Bool("no-autostart", false, "accepted for symmetry with the other commands: stop never starts lbgptd")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("stop takes no arguments")
	}
	c := &client.Client{Socket: *socket}
	defer c.Close()
	st, err := c.Status(ctx)
	if nr, ok := errors.AsType[*client.NotRunningError](err); ok {
		fmt.Fprintf(e.stderr, "lbgpt stop: no lbgptd is running on %s\n", nr.Socket)
		return nil
	}
	if err != nil {
		return askError(err)
	}
	p, err := os.FindProcess(st.PID)
	if err == nil {
		err = p.Signal(syscall.SIGTERM)
	}
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("stop lbgptd (pid %d): %w", st.PID, err)}
	}
	c.Close()
	deadline := time.Now().Add(stopWait)
	for alive(p) {
		if time.Now().After(deadline) {
			return &exitError{code: exitFailed, err: fmt.Errorf("lbgptd (pid %d) is still running %s after SIGTERM", st.PID, stopWait)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintf(e.stderr, "lbgpt stop: lbgptd (pid %d) stopped; the next command starts a new one with this shell's environment\n", st.PID)
	return nil
}

// alive reports whether p still runs: it exists, and is not a zombie that
// has exited and waits for its parent.
func alive(p *os.Process) bool {
	if p.Signal(syscall.Signal(0)) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
	if err != nil {
		return true
	}
	// "pid (comm) state …": the state follows the last ')'.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
