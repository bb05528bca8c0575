package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmuxSession runs a command in a private tmux server (its own socket
// directory, no user config) on a width×height terminal.
type tmuxSession struct {
	t   *testing.T
	env []string
}

func newTmux(t *testing.T, env []string, width, height int, command string) *tmuxSession {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed for the TUI end-to-end test (.ci/run installs it): ", err)
	}
	dir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := &tmuxSession{t: t, env: append(env, "TMUX_TMPDIR="+dir, "TERM=xterm-256color")}
	s.run("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), command)
	t.Cleanup(func() {
		c := exec.Command("tmux", "kill-server")
		c.Env = s.env
		c.Run()
	})
	return s
}

func (s *tmuxSession) run(args ...string) (string, error) {
	c := exec.Command("tmux", args...)
	c.Env = s.env
	out, err := c.CombinedOutput()
	return string(out), err
}

// keys sends tmux key names (Enter, C-c) or, with literal, text.
func (s *tmuxSession) keys(literal bool, keys ...string) {
	s.t.Helper()
	args := []string{"send-keys", "-t", "tui"}
	if literal {
		args = append(args, "-l")
	}
	if out, err := s.run(append(args, keys...)...); err != nil {
		s.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

// waitScreen polls the pane until cond holds, up to a deadline, and
// returns the screen.
func (s *tmuxSession) waitScreen(what string, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var screen string
	for time.Now().Before(deadline) {
		out, err := s.run("capture-pane", "-p", "-t", "tui")
		if err == nil {
			screen = out
			if cond(screen) {
				return screen
			}
		}
		time.Sleep(50 * time.Millisecond) // polling a real terminal
	}
	s.t.Fatalf("waiting for %s; the screen is:\n%s", what, screen)
	return ""
}

// The real lbgpt, run with no arguments on a terminal (tmux), opens the
// TUI on a real lbgptd over the simulator: the backend rows appear, a
// prompt typed and sent is answered in place with its meta line, and
// ctrl+c on the empty box quits.
func TestTUIInTmux(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	socket := filepath.Join(t.TempDir(), "d.sock")
	background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)

	tenv := append(env, "LBGPT_SOCKET="+socket, "LBGPT_NO_AUTOSTART=1")
	s := newTmux(t, tenv, 100, 30, filepath.Join(bin, "lbgpt"))
	s.waitScreen("the backend row", func(sc string) bool {
		return strings.Contains(sc, "rpm left") && rowOf(sc, "sim ") != "" && strings.Contains(rowOf(sc, "sim "), "ok")
	})

	s.keys(true, "What is lbgpt?")
	s.keys(false, "Enter")
	screen := s.waitScreen("the answer and its meta line", func(sc string) bool {
		return strings.Contains(sc, "sim · cache miss · 1 attempt")
	})
	if n := strings.Count(screen, "What is lbgpt?"); n < 2 { // the prompt, and the simulator's answer quoting it
		t.Errorf("the answer is not on the screen:\n%s", screen)
	}
	if !strings.Contains(rowOf(screen, "sim "), "ok") {
		t.Errorf("no backend row after the answer:\n%s", screen)
	}

	// A half-typed prompt survives one ctrl+c; the second quits.
	s.keys(true, "half typed")
	s.keys(false, "C-c")
	s.waitScreen("the cleared box", func(sc string) bool { return strings.Contains(sc, "ctrl+c again quits") })
	s.keys(false, "C-c")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.run("has-session", "-t", "tui"); err != nil {
			break // lbgpt exited, and its session with it
		}
		if time.Now().After(deadline) {
			out, _ := s.run("capture-pane", "-p", "-t", "tui")
			t.Fatalf("lbgpt still running after ctrl+c on an empty box:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rowOf is the first line of screen that starts with prefix.
func rowOf(screen, prefix string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// The TUI at 120×40, as issue reports asked: the panel stands beside the
// conversation; a backend that takes nothing now says why ("1/1 busy",
// its max_concurrent); a rejected reload is said on screen.
func TestTUIInTmuxBesideReasonsReload(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig+"ttft = \"3s\"\n")
	cfg := writeConfig(t, simURL)
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("max_concurrent = 1\n")
	f.Close()
	socket := filepath.Join(t.TempDir(), "d.sock")
	daemon, _, _ := background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)

	tenv := append(env, "LBGPT_SOCKET="+socket, "LBGPT_NO_AUTOSTART=1")
	s := newTmux(t, tenv, 120, 40, filepath.Join(bin, "lbgpt"))
	s.waitScreen("the panel beside the conversation", func(sc string) bool {
		return strings.Contains(sc, "│sim ") && rowOf(sc, "sim ") == ""
	})
	s.keys(true, "Why a daemon?")
	s.keys(false, "Enter")
	s.waitScreen("the busy backend's reason", func(sc string) bool { return strings.Contains(sc, "1/1 busy") })

	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, "limit_rmp = 5\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	daemon.Process.Signal(syscall.SIGHUP)
	s.waitScreen("the rejected reload", func(sc string) bool {
		return strings.Contains(sc, "reload rejected") && strings.Contains(sc, "limit_rmp")
	})
}
