package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/syncbuf"
)

// lbgptdProc is an lbgptd process the bench started, in its own directory
// (its state directory, config and socket).
type lbgptdProc struct {
	cmd    *exec.Cmd
	socket string
	log    syncbuf.Buffer // its stderr
	exited chan struct{}  // closed once cmd.Wait returned
}

// startProc writes cfg to dir/lbgpt.toml, starts bin on it with dir as its
// state directory and args after the config and socket flags, and returns
// once a status call is answered, with the time that took from the start.
func startProc(ctx context.Context, bin, dir, cfg string, args ...string) (*lbgptdProc, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, err
	}
	cfgPath := filepath.Join(dir, "lbgpt.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, 0, err
	}
	p := &lbgptdProc{socket: filepath.Join(dir, "d.sock"), exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--config", cfgPath, "--socket", p.socket}, args...)...)
	p.cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+dir)
	p.cmd.Stderr = &p.log
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, 0, err
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	c := &client.Client{Socket: p.socket}
	defer c.Close()
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.Status(sctx)
		cancel()
		if err == nil {
			return p, time.Since(start), nil
		}
		select {
		case <-p.exited:
			return nil, 0, fmt.Errorf("lbgptd exited: %s", strings.TrimSpace(p.log.String()))
		case <-ctx.Done():
			p.stop()
			return nil, 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > time.Minute {
			p.stop()
			return nil, 0, fmt.Errorf("lbgptd not serving after a minute: %v", err)
		}
	}
}

// stop interrupts the process, waits for it (killing it after 15 s) and
// returns its log.
func (p *lbgptdProc) stop() string {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	return p.log.String()
}
