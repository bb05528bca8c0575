package tui

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

func newTest(t *testing.T, f *fakeDaemon, w, h int) *Model {
	t.Helper()
	m := New(t.Context(), Options{Daemon: f, Now: func() time.Time { return t0 }, NoColor: true})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// keyNames are the keys the tests press.
var keyNames = map[string]tea.KeyPressMsg{
	"enter":     {Code: tea.KeyEnter},
	"alt+enter": {Code: tea.KeyEnter, Mod: tea.ModAlt},
	"ctrl+j":    {Code: 'j', Mod: tea.ModCtrl},
	"esc":       {Code: tea.KeyEscape},
	"up":        {Code: tea.KeyUp},
	"down":      {Code: tea.KeyDown},
	"ctrl+c":    {Code: 'c', Mod: tea.ModCtrl},
	"ctrl+n":    {Code: 'n', Mod: tea.ModCtrl},
	"ctrl+o":    {Code: 'o', Mod: tea.ModCtrl},
	"ctrl+s":    {Code: 's', Mod: tea.ModCtrl},
	"ctrl+t":    {Code: 't', Mod: tea.ModCtrl},
	"ctrl+y":    {Code: 'y', Mod: tea.ModCtrl},
	"?":         {Code: '?', Text: "?"},
}

// press presses one named key and returns the command Update gave back.
func press(t *testing.T, m *Model, name string) tea.Cmd {
	t.Helper()
	k, ok := keyNames[name]
	if !ok {
		t.Fatalf("no key %q", name)
	}
	_, cmd := m.Update(k)
	return cmd
}

func typeText(m *Model, s string) {
	for _, r := range s {
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

// drain runs a chain of commands as Bubble Tea would, one at a time,
// feeding each message back to Update, until a command returns nothing.
func drain(m *Model, cmd tea.Cmd) {
	for cmd != nil {
		msg := cmd()
		if msg == nil {
			return
		}
		_, cmd = m.Update(msg)
	}
}

func screen(m *Model) string { return ansi.Strip(m.View().Content) }

func TestSendStreamsAnswerAndKeepsTheConversation(t *testing.T) {
	f := &fakeDaemon{answer: []string{"Hel", "lo ", "there"}, meta: rpc.Meta{Backend: "sim-azure", Attempts: 1, Cache: rpc.CacheMiss}}
	m := newTest(t, f, 80, 24)
	typeText(m, "first question")
	cmd := press(t, m, "enter")
	if m.stream == nil || len(m.turns) != 1 || !m.turns[0].pending || m.input.Value() != "" {
		t.Fatalf("after enter: stream %v, turns %+v, input %q", m.stream, m.turns, m.input.Value())
	}
	// One command per chunk: the first returns the first chunk only.
	msg := cmd()
	if c, ok := msg.(chunkMsg); !ok || c.text != "Hel" {
		t.Fatalf("first command gave %#v, want the first chunk", msg)
	}
	_, cmd = m.Update(msg)
	if m.turns[0].answer != "Hel" || !strings.Contains(screen(m), "… streaming") {
		t.Errorf("after one chunk: answer %q\n%s", m.turns[0].answer, screen(m))
	}
	drain(m, cmd)
	if m.stream != nil || m.turns[0].answer != "Hello there" || m.turns[0].meta == nil {
		t.Fatalf("after the stream: %+v", m.turns[0])
	}
	if s := screen(m); !strings.Contains(s, "sim-azure · cache miss · 1 attempt · 0s · 7+3 tokens") {
		t.Errorf("no meta line under the answer:\n%s", s)
	}

	// The second prompt goes with the first exchange, and the toggles.
	press(t, m, "ctrl+t")
	press(t, m, "ctrl+s")
	typeText(m, "second")
	drain(m, press(t, m, "enter"))
	reqs, opts := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	want := []map[string]string{
		{"role": "user", "content": "first question"},
		{"role": "assistant", "content": "Hello there"},
		{"role": "user", "content": "second"},
	}
	if diff := cmp.Diff(want, reqs[1]["messages"]); diff != "" {
		t.Errorf("second request's messages (-want +got):\n%s", diff)
	}
	if opts[0] != (rpc.Options{}) || opts[1] != (rpc.Options{NoCache: true, Semantic: rpc.SemanticUserOnly}) {
		t.Errorf("options %+v", opts)
	}

	// A new conversation starts empty.
	press(t, m, "ctrl+n")
	typeText(m, "third")
	drain(m, press(t, m, "enter"))
	reqs, _ = f.requests()
	if n := len(reqs[2]["messages"].([]map[string]string)); n != 1 {
		t.Errorf("after ctrl+n the request carries %d messages, want 1", n)
	}
}

func TestFailedRequestShowsTheDaemonsError(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	typeText(m, "q")
	cmd := press(t, m, "enter")
	m.Update(answerMsg{s: m.stream, err: &rpc.Error{Code: rpc.CodeNotFound, Message: "no backend serves model nope"}})
	_ = cmd
	if s := screen(m); !strings.Contains(s, "✗ no backend serves model nope") {
		t.Errorf("error not shown inline:\n%s", s)
	}
	if m.stream != nil {
		t.Error("stream still set after its error")
	}
}

func TestNewlineKeysDoNotSend(t *testing.T) {
	f := &fakeDaemon{}
	m := newTest(t, f, 80, 24)
	typeText(m, "a")
	press(t, m, "alt+enter")
	typeText(m, "b")
	press(t, m, "ctrl+j")
	typeText(m, "c")
	if got := m.input.Value(); got != "a\nb\nc" {
		t.Errorf("input %q", got)
	}
	if reqs, _ := f.requests(); len(reqs) != 0 || m.stream != nil {
		t.Error("a newline key sent the prompt")
	}
}

func TestCtrlCNeverLosesAPrompt(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	typeText(m, "half-typed")
	if cmd := press(t, m, "ctrl+c"); cmd != nil {
		t.Fatal("ctrl+c with text in the box returned a command (quit?)")
	}
	if m.input.Value() != "" || !strings.Contains(screen(m), "ctrl+c again quits") {
		t.Errorf("box %q after ctrl+c\n%s", m.input.Value(), screen(m))
	}
	press(t, m, "up")
	if m.input.Value() != "half-typed" {
		t.Errorf("up after ctrl+c gave %q, want the cleared prompt", m.input.Value())
	}
	press(t, m, "ctrl+c")
	cmd := press(t, m, "ctrl+c")
	if cmd == nil {
		t.Fatal("ctrl+c on an empty box did not quit")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("ctrl+c on an empty box: not a quit")
	}
}

func TestCtrlCAndEscStopAStream(t *testing.T) {
	for _, k := range []string{"ctrl+c", "esc"} {
		t.Run(k, func(t *testing.T) {
			f := &fakeDaemon{answer: []string{"partial"}, hold: true}
			m := newTest(t, f, 80, 24)
			typeText(m, "long one")
			cmd := press(t, m, "enter")
			_, cmd = m.Update(cmd()) // the first chunk; cmd now waits on the held stream
			if c := press(t, m, k); c != nil {
				t.Fatalf("%s during a stream returned a command (quit?)", k)
			}
			if m.stream != nil || m.turns[0].answer != "partial" || m.turns[0].err == nil {
				t.Fatalf("after %s: %+v", k, m.turns[0])
			}
			drain(m, cmd) // the stream left behind ends with the cancel
			if m.turns[0].err.Error() != "stopped" || m.turns[0].answer != "partial" {
				t.Errorf("the canceled stream changed the turn: %+v", m.turns[0])
			}
		})
	}
}

func TestHistory(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	for _, p := range []string{"one", "two"} {
		typeText(m, p)
		drain(m, press(t, m, "enter"))
	}
	typeText(m, "draft")
	steps := []struct{ key, want string }{
		{"up", "two"}, {"up", "one"}, {"up", "one"}, {"down", "two"}, {"down", "draft"},
	}
	for _, s := range steps {
		press(t, m, s.key)
		if got := m.input.Value(); got != s.want {
			t.Fatalf("after %s: %q, want %q", s.key, got, s.want)
		}
	}
}

func TestHelpOverlayListsEveryKey(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	press(t, m, "?")
	if m.overlay != overlayHelp {
		t.Fatal("? on an empty box did not open the help")
	}
	s := screen(m)
	for _, b := range m.keys.all() {
		if h := b.Help().Key; h != "" && !strings.Contains(s, h) {
			t.Errorf("help lacks %q:\n%s", h, s)
		}
	}
	if !strings.Contains(s, "╰") && !strings.Contains(s, "└") {
		t.Errorf("the help box does not fit at 80×24:\n%s", s)
	}
	press(t, m, "esc")
	typeText(m, "why?")
	if m.overlay != overlayNone || m.input.Value() != "why?" {
		t.Errorf("? in a prompt: overlay %v, input %q", m.overlay, m.input.Value())
	}
}

func TestModelPicker(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	st := demoStatus()
	st.Backends[0].Models = []string{"gpt-4o", "o3-mini"}
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	press(t, m, "ctrl+o")
	if m.overlay != overlayModels || !strings.Contains(screen(m), "o3-mini") {
		t.Fatalf("picker:\n%s", screen(m))
	}
	for range 10 {
		press(t, m, "down")
	}
	press(t, m, "enter")
	if m.model != "o3-mini" || m.overlay != overlayNone {
		t.Errorf("model %q overlay %v", m.model, m.overlay)
	}
}

func TestDaemonDownThenBack(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	_, cmd := m.Update(downMsg{errDown})
	if cmd == nil {
		t.Fatal("no retry scheduled")
	}
	s := screen(m)
	for _, want := range []string{"lbgptd is not running", "systemctl --user start lbgptd.socket", "retrying in 250ms"} {
		if !strings.Contains(strings.Join(strings.Fields(s), " "), want) {
			t.Errorf("down screen lacks %q:\n%s", want, s)
		}
	}
	m.Update(downMsg{errDown})
	m.Update(downMsg{errDown})
	if m.retryIn != 1*time.Second {
		t.Errorf("backoff %s after three failures, want 1s", m.retryIn)
	}
	_, cmd = m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: demoStatus()})
	if m.down != nil || m.retryIn != 0 || cmd == nil {
		t.Errorf("after a snapshot: down %v, backoff %s, re-armed %v", m.down, m.retryIn, cmd != nil)
	}
	if s := screen(m); !strings.Contains(s, "sim-azure") || strings.Contains(s, "not running") {
		t.Errorf("panel after the daemon came back:\n%s", s)
	}
}

func TestPanel(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: demoStatus()})
	s := screen(m)
	for _, want := range []string{
		"cooling 12s", "cache: off", "retries 4", "queue 2", "daemon p50 410µs p99 1.8ms",
		"batch b1", "240/600 40%", "24.0/s", "ETA 15s", "2 failed", "by backend: sim-azure 150 sim-local 30 sim-openai 60",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("panel lacks %q:\n%s", want, s)
		}
	}
	st := demoStatus()
	st.Cache = &rpc.CacheStats{Hits: rpc.CacheHits{Exact: 5, Semantic: 2, Coalesced: 1}, Misses: 12, HitRate: 0.4}
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	if s := screen(m); !strings.Contains(s, "queue 2 │ retries 4 │ 429s 4 │ cache 40%: 5 exact 2 semantic 1 coalesced") {
		t.Errorf("cache totals:\n%s", s)
	}
	// A rejected reload, and a cache file set aside, are said on screen.
	st.ReloadError = `lbgpt.toml:14: unknown key "limit_rmp"`
	st.Cache.Quarantined = "the cache file did not open: it was set aside"
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	s = screen(m)
	for _, want := range []string{"reload rejected", `"limit_rmp"`, "set aside"} {
		if !strings.Contains(s, want) {
			t.Errorf("panel lacks %q:\n%s", want, s)
		}
	}
	// So is a setting that waits for the next start.
	st.ReloadError, st.RestartPending, st.Cache.Quarantined = "", []string{"[shared]"}, ""
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	if s := screen(m); !strings.Contains(s, "applies when lbgptd restarts: [shared]") {
		t.Errorf("panel lacks the setting waiting for a restart:\n%s", s)
	}
	st.RestartPending = nil
	// Spend today, and a budget nearly spent (the panel beside the chat).
	st.Spend = &rpc.SpendStatus{Today: rpc.SpendTotals{CostUSD: 4.12, SavedUSD: 1.3},
		Budgets: []rpc.Budget{{Namespace: "research", Period: "day", LimitUSD: 5, SpentUSD: 4.5, Warn: true}}}
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 40})
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	s = strings.Join(strings.Fields(screen(m)), " ")
	for _, want := range []string{"spend today $4.12, saved $1.30", "budget namespace research per day nearly spent: $4.50 of $5.00"} {
		if !strings.Contains(s, want) {
			t.Errorf("panel lacks %q:\n%s", want, screen(m))
		}
	}
	st.Spend = nil
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	// A saturated backend says why it takes nothing now.
	for reason, want := range map[string]string{"tpm": "tpm full", "rpm": "rpm full", "4/4 in flight": "4/4 busy"} {
		st.Backends[0].State, st.Backends[0].Reason = rpc.StateSaturated, reason
		m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
		if s := screen(m); !strings.Contains(s, want) {
			t.Errorf("a backend saturated by %q: no %q on screen:\n%s", reason, want, s)
		}
	}
	// A team, and its Redis gone.
	st.ReloadError, st.Cache.Quarantined = "", ""
	st.Team = &rpc.TeamStatus{Redis: "unix:///run/redis.sock", Hosts: 3, Scopes: []rpc.ScopeStatus{{Name: "s", Hosts: 3}}, DegradedSince: time.Now().Add(-time.Minute)}
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	s = screen(m)
	for _, want := range []string{"team of 3", "shared limits degraded since", "unix:///run/redis.sock"} {
		if !strings.Contains(s, want) {
			t.Errorf("panel lacks %q:\n%s", want, s)
		}
	}
}

// Every size gives exactly the terminal's rows, none wider than it; the
// panel collapses before the conversation shrinks below its minimum.
func TestSizes(t *testing.T) {
	tests := []struct {
		w, h  int
		panel string // a line of the full panel, the compact one, or neither
	}{
		{160, 40, "full"}, {80, 24, "full"}, {80, 16, "compact"}, {60, 9, "compact"}, {40, 6, "none"}, {20, 4, "none"},
	}
	for _, tt := range tests {
		m := newTest(t, &fakeDaemon{answer: []string{"an answer"}}, tt.w, tt.h)
		m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: demoStatus()})
		typeText(m, "question")
		drain(m, press(t, m, "enter"))
		s := m.View().Content
		lines := strings.Split(s, "\n")
		if len(lines) != tt.h {
			t.Errorf("%d×%d: %d lines", tt.w, tt.h, len(lines))
		}
		for i, l := range lines {
			if w := lipgloss.Width(l); w > tt.w {
				t.Errorf("%d×%d: line %d is %d wide", tt.w, tt.h, i, w)
			}
		}
		plain := ansi.Strip(s)
		full, compact := strings.Contains(plain, "rpm left"), strings.Contains(plain, "sim-openai ok · sim-azure")
		got := map[bool]map[bool]string{true: {false: "full"}, false: {true: "compact", false: "none"}}[full][compact]
		if got != tt.panel {
			t.Errorf("%d×%d: panel %s, want %s\n%s", tt.w, tt.h, got, tt.panel, plain)
		}
		if tt.h >= 6 && !strings.Contains(plain, "an answer") {
			t.Errorf("%d×%d: the conversation is gone\n%s", tt.w, tt.h, plain)
		}
	}
}

var colour = regexp.MustCompile(`\x1b\[[0-9;]*(38|48);`)

func TestNoColorHasNoColours(t *testing.T) {
	for _, noColor := range []bool{true, false} {
		m := New(t.Context(), Options{Daemon: &fakeDaemon{}, Now: func() time.Time { return t0 }, NoColor: noColor})
		m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
		m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: demoStatus()})
		if got := colour.MatchString(m.View().Content); got == noColor {
			t.Errorf("NoColor %v: colour escapes present: %v", noColor, got)
		}
	}
}

func TestCopyLastAnswer(t *testing.T) {
	m := newTest(t, &fakeDaemon{answer: []string{"copy me"}}, 80, 24)
	if cmd := press(t, m, "ctrl+y"); cmd != nil {
		t.Error("copy with no answer returned a command")
	}
	typeText(m, "q")
	drain(m, press(t, m, "enter"))
	cmd := press(t, m, "ctrl+y")
	if cmd == nil || !strings.Contains(screen(m), "copied the last answer") {
		t.Fatal("no clipboard command")
	}
	if got := cmd(); got != tea.SetClipboard("copy me")() {
		t.Errorf("clipboard message %#v", got)
	}
}

func TestBatchFromAFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	os.WriteFile(path, []byte(`{"model":"m","messages":[{"role":"user","content":"a"}]}`+"\n\n"+`{"model":"m","messages":[{"role":"user","content":"b"}]}`+"\n"), 0o600)
	m := newTest(t, &fakeDaemon{meta: rpc.Meta{Backend: "x"}}, 100, 30)
	typeText(m, "/batch "+path)
	drain(m, press(t, m, "enter"))
	s := strings.Join(strings.Fields(screen(m)), " ")
	if !strings.Contains(s, "batch in.jsonl: 2 ok, 0 failed") {
		t.Errorf("no batch summary:\n%s", screen(m))
	}
	out, err := os.ReadFile(filepath.Join(dir, "in.answers.jsonl"))
	if err != nil || strings.Count(string(out), "\n") != 2 || !strings.HasPrefix(string(out), `{"index":0,`) {
		t.Errorf("answers file %q, %v", out, err)
	}
	typeText(m, "/batch "+filepath.Join(dir, "missing.jsonl"))
	drain(m, press(t, m, "enter"))
	if !strings.Contains(screen(m), "missing.jsonl") {
		t.Errorf("a missing file is not reported:\n%s", screen(m))
	}
}

func TestMarkdown(t *testing.T) {
	st := NewStyles(true, true)
	got := ansi.Strip(renderMarkdown("# Title\nSome `code` and **bold**.\n- item one\n```go\nfunc main() {}\n```", 40, &st))
	want := "Title\nSome code and bold.\n• item one\n  go\n  func main() {}                        "
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// A small terminal collapses the panel to one line; when the daemon is not
// running, that line still says how to start it.
func TestCompactPanelSaysHowToStart(t *testing.T) {
	st := NewStyles(true, true)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	p := panelView{
		down:    &client.NotRunningError{Socket: "/very/long/path/to/a/socket/that/would/push/the/advice/off/the/line/lbgptd.sock"},
		retryAt: now.Add(2 * time.Second),
		now:     now,
		styles:  &st,
	}
	got := p.Render(60, panelCompact)
	if !strings.Contains(got, "not running: run `lbgptd`") || !strings.Contains(got, "retrying in 2s") {
		t.Errorf("compact panel = %q, want how to start lbgptd and when it retries", got)
	}
	if w := lipgloss.Width(got); w > 60 {
		t.Errorf("compact panel is %d wide, want at most 60", w)
	}
}

// The line under an answer: a cache hit made no call, so it names no
// backend and counts no attempts; a hit on another host's answer says
// whose.
func TestMetaLine(t *testing.T) {
	for _, c := range []struct {
		m    rpc.Meta
		want string
	}{
		{rpc.Meta{Backend: "sim-openai", Cache: rpc.CacheMiss, Attempts: 2}, "sim-openai · cache miss · 2 attempts · 12ms"},
		{rpc.Meta{Backend: "sim-openai", Cache: rpc.CacheMiss, Attempts: 1}, "sim-openai · cache miss · 1 attempt · 12ms"},
		{rpc.Meta{Cache: rpc.CacheExact}, "cache exact · 12ms"},
		{rpc.Meta{Cache: rpc.CacheSemantic, Similarity: 0.93, CacheHost: "build-3:812"}, "cache semantic 0.93 from build-3:812 · 12ms"},
	} {
		if got := metaLine(c.m, 12*time.Millisecond, usage{}); got != c.want {
			t.Errorf("metaLine(%+v) = %q, want %q", c.m, got, c.want)
		}
	}
}

// When lbgptd goes away, the panel does not keep its last rows ("ok"
// beside a backend of a daemon that is gone).
func TestPanelDropsStaleRows(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 80, 24)
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: demoStatus()})
	if s := screen(m); !strings.Contains(s, "sim-openai ok") {
		t.Fatalf("no backend row while the daemon answers:\n%s", s)
	}
	m.Update(downMsg{errDown})
	s := screen(m)
	if strings.Contains(s, "sim-openai ok") || !strings.Contains(s, "no figures while lbgptd does not answer") {
		t.Errorf("the panel of a daemon that went away:\n%s", s)
	}
}

// A daemon started with another key than this shell has: the panel says
// so, and what to run.
func TestPanelSaysTheDaemonHasAnotherEnvironment(t *testing.T) {
	m := newTest(t, &fakeDaemon{}, 120, 40)
	m.getenv = func(k string) string {
		if k == "OPENAI_API_KEY" {
			return "sk-fixed"
		}
		return ""
	}
	st := demoStatus()
	st.Env = &rpc.EnvStamps{Salt: "s", Vars: map[string]string{"OPENAI_API_KEY": rpc.EnvStamp("s", "OPENAI_API_KEY", "sk-wrong")}}
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	s := strings.Join(strings.Fields(screen(m)), " ")
	if !strings.Contains(s, "lbgptd was started with another OPENAI_API_KEY") || !strings.Contains(s, "lbgpt stop") {
		t.Errorf("no word of the other environment:\n%s", screen(m))
	}
	st.Env.Vars["OPENAI_API_KEY"] = rpc.EnvStamp("s", "OPENAI_API_KEY", "sk-fixed")
	m.Update(statusMsg{w: blockingWatcher{t.Context()}, st: st})
	if strings.Contains(screen(m), "started with another") {
		t.Errorf("a warning with the same key:\n%s", screen(m))
	}
}

// The daemon's uptime moves on with the clock between snapshots: a watch
// sends one only when something changes.
func TestUptimeMovesOn(t *testing.T) {
	st := demoStatus()
	st.StartedAt = t0.Add(-4 * time.Second)
	p := panelView{st: st, now: t0.Add(10 * time.Second), styles: &Styles{}}
	if got := p.uptime(); got != 14*time.Second {
		t.Errorf("uptime %v ten seconds after a snapshot 4 s into the run, want 14s", got)
	}
}

// A TUI that may start lbgptd starts it again when a prompt is sent after
// the daemon went away (lbgpt stop), as the next lbgpt command would, and
// says so while it is down.
func TestPromptStartsTheDaemonAgain(t *testing.T) {
	f := &fakeDaemon{answer: []string{"hi"}}
	var started atomic.Int32
	m := New(t.Context(), Options{Daemon: f, Now: func() time.Time { return t0 }, NoColor: true,
		Autostart: func(context.Context) error { started.Add(1); return nil }})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m.Update(downMsg{errDown})
	if s := screen(m); !strings.Contains(s, "a prompt sent here starts it again") {
		t.Errorf("the down panel does not say a prompt starts it:\n%s", s)
	}
	m.input.SetValue("hello")
	if m.send() == nil {
		t.Fatal("nothing sent")
	}
	m.stream.step()() // the first event: after the start
	if started.Load() != 1 || len(f.reqs) != 1 {
		t.Errorf("autostart called %d times, %d requests sent; want 1 and 1", started.Load(), len(f.reqs))
	}
}
