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

// socketHelp is the --socket flag's help: the whole default chain, as
// rpc.DefaultSocketPath resolves it.
const socketHelp = "lbgptd's Unix socket (default $LBGPT_SOCKET, else $XDG_RUNTIME_DIR/lbgpt/lbgptd.sock, else /tmp/lbgpt-$UID/lbgptd.sock)"

// How long a command waits for a daemon it started.
const (
	// daemonWait bounds the wait for the daemon to answer.
	daemonWait = 10 * time.Second
	// exitGrace is how long, after the daemon we started exited, the
	// socket may stay without a listener before its exit is reported.
	exitGrace = time.Second
)

func (d *daemonFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&d.socket, "socket", "", socketHelp)
	fs.StringVar(&d.config, "config", "", "config file for a daemon started by this command (default lbgptd's)")
	fs.BoolVar(&d.noAutostart, "no-autostart", false, "do not start lbgptd when it is not running")
}

// connect returns a client of a running daemon, starting one in the
// background (as gpg-agent and tmux do) when none answers.
func (d *daemonFlags) connect(ctx context.Context, e env) (*client.Client, error) {
	c := &client.Client{Socket: d.socket}
	if err := d.reach(ctx, c, e); err != nil {
		return nil, err
	}
	return c, nil
}

// reach makes sure a daemon answers on c's socket, starting one in the
// background when none does. Its errors carry exit codes.
func (d *daemonFlags) reach(ctx context.Context, c *client.Client, e env) error {
	err := c.Ping(ctx)
	if err == nil {
		return nil
	}
	if !errors.Is(err, client.ErrDaemonNotRunning) {
		return &exitError{code: exitUnreachable, err: err}
	}
	if d.noAutostart || e.getenv("LBGPT_NO_AUTOSTART") != "" {
		return &exitError{code: exitUnreachable, err: err}
	}
	bin, err := findDaemon()
	if err != nil {
		return &exitError{code: exitUnreachable, err: err}
	}
	args := []string{"--socket", c.SocketPath()}
	if d.config != "" {
		args = append(args, "--config", d.config)
	}
	logPath := filepath.Join(filepath.Dir(c.SocketPath()), "lbgptd.log")
	pid, ours, err := startDaemon(ctx, c, bin, args, logPath, true)
	if err != nil {
		return &exitError{code: exitUnreachable, err: err}
	}
	if ours {
		fmt.Fprintf(e.stderr, "lbgpt: started lbgptd in the background (pid %d, log %s)\n", pid, logPath)
	}
	return nil
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

// startDaemon runs the lbgptd binary bin with args, its output appended to
// logPath, and waits until c can reach a daemon. detach puts it in its own
// session so that it outlives this command; env is added to the
// environment it inherits.
//
// Commands started at the same moment (four `lbgpt ask` in a script) each
// start a daemon; one wins the socket and the others exit. So the daemon
// that answers may not be ours: pid is the one that answers, and ours says
// whether it is the one started here. The log is shared and only ever
// appended to, so a loser never wipes the winner's log. If no daemon
// answers, the error carries what ours wrote to the log (why it could not
// start).
func startDaemon(ctx context.Context, c *client.Client, bin string, args []string, logPath string, detach bool, env ...string) (pid int, ours bool, err error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return 0, false, fmt.Errorf("start lbgptd: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, false, fmt.Errorf("start lbgptd: %w", err)
	}
	defer logf.Close()
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, false, fmt.Errorf("start lbgptd: %w", err)
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("start lbgptd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	pid, err = waitServing(ctx, c, exited, daemonWait, exitGrace)
	if err != nil {
		cmd.Process.Kill() // a no-op once it exited
		if ctx.Err() != nil {
			return 0, false, err
		}
		return 0, false, fmt.Errorf("%w; its log %s says:\n%s", err, logPath, tailFrom(logPath, logStart, 2048))
	}
	if pid != cmd.Process.Pid {
		// Ours serves nobody: it is about to exit, or it lost the socket
		// file to the one that answered. SIGKILL, not a clean stop, which
		// would unlink the socket path, now the other daemon's.
		cmd.Process.Kill()
		return pid, false, nil
	}
	return pid, true, nil
}

// waitServing waits up to wait for a daemon to answer on c's socket and
// returns its pid. exited delivers the exit of the daemon this command
// started. When that one exits first, most often it lost the socket to a
// daemon started at the same moment by another command, so the socket is
// pinged on: up to the end of wait while something listens there, and for
// grace after the exit while nothing does (a daemon that lost the race
// exits only once the winner listens; one that could not start at all
// leaves nobody listening, and waiting longer would only delay its error).
func waitServing(ctx context.Context, c *client.Client, exited <-chan error, wait, grace time.Duration) (int, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var exitErr error // set once ours exited
	var exitedAt time.Time
	var lastErr error // of the last ping
	lastTry := func() string {
		if lastErr == nil {
			return ""
		}
		return fmt.Sprintf(" (last try: %v)", lastErr)
	}
	for {
		select {
		case err := <-exited:
			exited = nil // receive once
			exitErr, exitedAt = err, time.Now()
			if exitErr == nil {
				exitErr = errors.New("exit status 0")
			}
		case <-deadline.C:
			if exitErr != nil {
				return 0, fmt.Errorf("lbgptd exited before serving (%v) and no other lbgptd answered on %s within %s%s", exitErr, c.SocketPath(), wait, lastTry())
			}
			return 0, fmt.Errorf("lbgptd did not answer on %s within %s%s", c.SocketPath(), wait, lastTry())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.Status(pctx)
		cancel()
		lastErr = err
		switch {
		case err == nil:
			return st.PID, nil
		case exitErr != nil && errors.Is(err, client.ErrDaemonNotRunning) && time.Since(exitedAt) >= grace:
			return 0, fmt.Errorf("lbgptd exited before serving (%v)", exitErr)
		}
	}
}

// tailFrom returns at most the last n bytes of a file from offset start on,
// trimmed.
func tailFrom(path string, start, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-n > start {
		start = fi.Size() - n
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}
