package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Under journald (stderr is $JOURNAL_STREAM) lines carry their priority
// and no timestamp; elsewhere they are plain slog lines.
func TestJournalLogging(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	stream := fmt.Sprintf("%d:%d", st.Dev, st.Ino)
	for _, format := range []string{"text", "json"} {
		f.Truncate(0)
		f.Seek(0, 0)
		log, err := newLogger(f, format, slog.LevelDebug, func(k string) string {
			if k == "JOURNAL_STREAM" {
				return stream
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		log.Debug("d")
		log.With("k", "v").Info("i")
		log.WithGroup("g").Warn("w", "x", 1)
		log.Error("e")
		out, _ := os.ReadFile(f.Name())
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		want := []string{"<7>", "<6>", "<4>", "<3>"}
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines:\n%s", format, len(lines), out)
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, want[i]) || strings.Contains(l, "time") {
				t.Errorf("%s line %d = %q, want prefix %s and no time", format, i, l, want[i])
			}
		}
	}
	// Not the journal: timestamps, no prefix.
	var buf bytes.Buffer
	log, _ := newLogger(&buf, "text", slog.LevelInfo, func(k string) string { return stream })
	log.Info("i")
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Errorf("plain stderr: %q", buf.String())
	}
	if _, err := newLogger(&buf, "xml", slog.LevelInfo, func(string) string { return "" }); err == nil {
		t.Error("--log-format xml accepted")
	}
}

func TestDirectories(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	sd := env(map[string]string{"CONFIGURATION_DIRECTORY": "/etc/lbgpt:/etc/other", "RUNTIME_DIRECTORY": "/run/user/1000/lbgpt"})
	if got := defaultConfigPath(sd); got != "/etc/lbgpt/lbgpt.toml" {
		t.Errorf("config under systemd: %s", got)
	}
	if got := socketPath("", "", sd); got != "/run/user/1000/lbgpt/lbgptd.sock" {
		t.Errorf("socket under systemd: %s", got)
	}
	if got := socketPath("", "/srv/l.sock", sd); got != "/srv/l.sock" {
		t.Errorf("configured socket: %s", got)
	}
	if got := socketPath("/x.sock", "/srv/l.sock", sd); got != "/x.sock" {
		t.Errorf("--socket: %s", got)
	}
	t.Setenv("XDG_CONFIG_HOME", "/home/u/.config")
	if got := defaultConfigPath(env(nil)); got != "/home/u/.config/lbgpt/lbgpt.toml" {
		t.Errorf("config outside systemd: %s", got)
	}
}
