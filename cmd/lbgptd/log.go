package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// newLogger builds lbgptd's logger on stderr: text or JSON at level. Under
// journald (stderr is the stream $JOURNAL_STREAM names) lines carry no
// timestamp, which the journal adds, and start with the record's sd-daemon
// priority ("<6>" for info), so that `journalctl -p warning` works.
func newLogger(stderr io.Writer, format string, level slog.Level, getenv func(string) string) (*slog.Logger, error) {
	journal := underJournal(stderr, getenv("JOURNAL_STREAM"))
	opts := &slog.HandlerOptions{Level: level}
	if journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	out := stderr
	var pw *prioWriter
	if journal {
		pw = &prioWriter{w: stderr}
		out = pw
	}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(out, opts)
	case "json":
		h = slog.NewJSONHandler(out, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
	if journal {
		h = &journalHandler{inner: h, pw: pw}
	}
	return slog.New(h), nil
}

// underJournal reports whether stderr is the journal stream named by
// $JOURNAL_STREAM ("DEVICE:INODE").
func underJournal(stderr io.Writer, stream string) bool {
	f, ok := stderr.(*os.File)
	if !ok || stream == "" {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(stream, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalHandler prefixes each record with its sd-daemon priority.
type journalHandler struct {
	inner slog.Handler
	pw    *prioWriter // shared by the handlers derived from one another
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prio = priority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

// prioWriter writes "<prio>" before each record (slog's handlers write a
// record in one Write call).
type prioWriter struct {
	mu   sync.Mutex // held by journalHandler.Handle around prio and the write
	prio int
	w    io.Writer
}

func (p *prioWriter) Write(b []byte) (int, error) {
	line := append(fmt.Appendf(nil, "<%d>", p.prio), b...)
	if _, err := p.w.Write(line); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priority maps a level to syslog's: debug 7, info 6, warning 4, error 3.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}
