package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/client"
)

// daemonFlags are the flags every command that talks to the daemon takes.
type daemonFlags struct {
	socket      string
	config      string
	noAutostart bool
}

func (d *daemonFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&d.socket, "socket", "", "lbgptd's Unix socket (default $LBGPT_SOCKET, else $XDG_RUNTIME_DIR/lbgpt/lbgptd.sock)")
	fs.StringVar(&d.config, "config", "", "config file for a daemon started by this command (default lbgptd's)")
	fs.BoolVar(&d.noAutostart, "no-autostart", false, "do not start lbgptd when it is not running")
}

// connect returns a client of a running daemon, starting one in the
// background (as gpg-agent and tmux do) when none answers.
func (d *daemonFlags) connect(ctx context.Context, e env) (*client.Client, error) {
	c := &client.Client{Socket: d.socket}
	err := c.Ping(ctx)
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, client.ErrDaemonNotRunning) {
		return nil, &exitError{code: exitUnreachable, err: err}
	}
	if d.noAutostart || e.getenv("LBGPT_NO_AUTOSTART") != "" {
		return nil, &exitError{code: exitUnreachable, err: err}
	}
	args := []string{"--socket", c.SocketPath()}
	if d.config != "" {
		args = append(args, "--config", d.config)
	}
	logPath := filepath.Join(filepath.Dir(c.SocketPath()), "lbgptd.log")
	pid, err := startDaemon(ctx, c, args, logPath, true)
	if err != nil {
		return nil, &exitError{code: exitUnreachable, err: err}
	}
	fmt.Fprintf(e.stderr, "lbgpt: started lbgptd in the background (pid %d, log %s)\n", pid, logPath)
	return c, nil
}

// findDaemon locates the lbgptd binary: next to this executable, else on PATH.
func findDaemon() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "lbgptd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("lbgptd")
	if err != nil {
		return "", errors.New("lbgptd is not next to lbgpt nor on $PATH: build it with `make build` or install it with `make install`")
	}
	return p, nil
}

// startDaemon runs lbgptd with args, its output going to logPath, and waits
// until c can reach it. detach puts it in its own session so that it
// outlives this command. If the daemon exits first, the error carries the
// end of its log (why it could not start).
func startDaemon(ctx context.Context, c *client.Client, args []string, logPath string, detach bool) (int, error) {
	bin, err := findDaemon()
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return 0, fmt.Errorf("start lbgptd: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("start lbgptd: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start lbgptd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("lbgptd exited before serving (%v):\n%s", err, tail(logPath, 2048))
		case <-deadline.C:
			cmd.Process.Kill()
			return 0, fmt.Errorf("lbgptd did not answer within 10s; its log %s says:\n%s", logPath, tail(logPath, 2048))
		case <-ctx.Done():
			cmd.Process.Kill()
			return 0, ctx.Err()
		case <-tick.C:
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			err := c.Ping(pctx)
			cancel()
			if err == nil {
				return cmd.Process.Pid, nil
			}
		}
	}
}

// tail returns the last n bytes of a file, trimmed.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}
