package tui

import (
	"bytes"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/lbgpt/lbgpt/rpc"
)

// Golden screens: the program runs under teatest at a fixed size, with the
// fixed clock and no colours; the final screen, as plain text, must match
// testdata/TestGolden/NAME.golden (go test ./tui -run TestGolden -update
// rewrites them).
func TestGolden(t *testing.T) {
	idle := demoStatus()
	idle.Batches = nil
	idle.Backends[1].State, idle.Backends[1].CooldownUntil, idle.Backends[1].RemainingRPM = rpc.StateOK, time.Time{}, 800
	answered := &fakeDaemon{
		answer: []string{"A daemon owns the pool, ", "so every client shares ", "one **rate-limit** budget:\n\n```sh\nlbgpt ask \"hi\"\n```"},
		meta:   rpc.Meta{Backend: "sim-openai", Attempts: 2, Cache: rpc.CacheMiss},
	}
	tests := []struct {
		name  string
		w, h  int
		f     *fakeDaemon
		msgs  []tea.Msg
		typed string // sent with enter
		wait  string // output to wait for before the final screen
	}{
		{name: "idle", w: 80, h: 24, f: &fakeDaemon{}, msgs: []tea.Msg{statusMsg{st: idle}}},
		{name: "streaming", w: 80, h: 24, f: &fakeDaemon{answer: []string{"Each backend has its own ", "RPM and TPM limits"}, hold: true},
			msgs: []tea.Msg{statusMsg{st: idle}}, typed: "Why a daemon?", wait: "TPM limits"},
		{name: "cooling", w: 80, h: 24, f: answered, msgs: []tea.Msg{statusMsg{st: demoStatus()}}, typed: "Why a daemon?", wait: "2 attempts"},
		{name: "down", w: 80, h: 24, f: &fakeDaemon{}, msgs: []tea.Msg{downMsg{errDown}}},
		{name: "small", w: 50, h: 12, f: answered, msgs: []tea.Msg{statusMsg{st: demoStatus()}}, typed: "Why a daemon?", wait: "2 attempts"},
		{name: "wide", w: 170, h: 20, f: answered, msgs: []tea.Msg{statusMsg{st: demoStatus()}}, typed: "Why a daemon?", wait: "2 attempts"},
		{name: "side120x40", w: 120, h: 40, f: answered, msgs: []tea.Msg{statusMsg{st: demoStatus()}}, typed: "Why a daemon?", wait: "2 attempts"},
		{name: "side200x50", w: 200, h: 50, f: answered, msgs: []tea.Msg{statusMsg{st: demoStatus()}}, typed: "Why a daemon?", wait: "2 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(t.Context(), Options{Daemon: tt.f, Now: func() time.Time { return t0 }, NoColor: true})
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(tt.w, tt.h),
				teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.NoTTY)))
			for _, msg := range tt.msgs {
				if s, ok := msg.(statusMsg); ok {
					s.w = blockingWatcher{t.Context()}
					msg = s
				}
				tm.Send(msg)
			}
			if tt.typed != "" {
				tm.Type(tt.typed)
				tm.Send(tea.KeyPressMsg{Code: tea.KeyEnter})
			}
			if tt.wait != "" {
				teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(tt.wait)) },
					teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
			}
			tm.Quit()
			fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*Model)
			golden.RequireEqual(t, []byte(ansi.Strip(fm.View().Content)+"\n"))
		})
	}
}
