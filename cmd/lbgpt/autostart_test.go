package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/client"
)

// TestWaitServingAfterOurDaemonExited: the daemon this command started
// exits at once, as one that lost the socket to a sibling's does.
func TestWaitServingAfterOurDaemonExited(t *testing.T) {
	tests := []struct {
		name    string
		sibling bool   // another daemon serves the socket
		wantErr string // "" for success
	}{
		{"a sibling's daemon serves", true, ""},
		{"nobody serves", false, "lbgptd exited before serving (exit status 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := filepath.Join(t.TempDir(), "none.sock")
			if tt.sibling {
				socket = newFake(t, nil).socket
			}
			exited := make(chan error, 1)
			exited <- errors.New("exit status 1") // before anything was pinged
			pid, err := waitServing(t.Context(), &client.Client{Socket: socket}, exited, 10*time.Second, 50*time.Millisecond)
			if tt.wantErr == "" {
				if err != nil || pid != fakePID {
					t.Errorf("pid %d, err %v; want the sibling's pid %d", pid, err, fakePID)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestStartDaemonLoserKeepsTheLog starts a "daemon" that exits at once
// saying another is serving (one does: the fake) and checks that the log
// the winner writes to is appended to, not truncated.
func TestStartDaemonLoserKeepsTheLog(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbgptd")
	script := "#!/bin/sh\necho \"lbgptd: listen on $2: another lbgptd is already serving this socket\" >&2\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "lbgptd.log")
	const winnerLine = "level=INFO msg=serving (the winner)\n"
	if err := os.WriteFile(logPath, []byte(winnerLine), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFake(t, nil)
	c := &client.Client{Socket: f.socket}
	defer c.Close()
	pid, ours, err := startDaemon(t.Context(), c, bin, []string{"--socket", f.socket}, logPath, false)
	if err != nil || ours || pid != fakePID {
		t.Errorf("pid %d, ours %v, err %v; want the winner's pid %d", pid, ours, err, fakePID)
	}
	// The script's line may still be on its way to the log when the
	// winner answered; the winner's line must be there in any case.
	b, err := os.ReadFile(logPath)
	if err != nil || !strings.HasPrefix(string(b), winnerLine) {
		t.Errorf("log %q, %v; want it to start with the winner's line", b, err)
	}
}

func TestStartDaemonReportsItsOwnOutput(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "lbgptd")
	script := "#!/bin/sh\necho 'lbgptd: no backends: set OPENAI_API_KEY' >&2\nexit 2\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "lbgptd.log")
	if err := os.WriteFile(logPath, []byte("an earlier run's line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &client.Client{Socket: filepath.Join(dir, "none.sock")}
	_, _, err := startDaemon(t.Context(), c, bin, nil, logPath, false)
	want := "lbgptd exited before serving (exit status 2); its log " + logPath + " says:\nlbgptd: no backends: set OPENAI_API_KEY"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
