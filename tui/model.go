package tui

import (
	"context"
	"errors"
	"fmt"
	"github.com/lbgpt/lbgpt/client"
	"iter"
	"os"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textarea"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/lbgpt/lbgpt/rpc"
)

// overlay is what covers the conversation pane, if anything.
type overlay int

const (
	overlayNone overlay = iota
	overlayHelp
	overlayModels
)

// Reconnection backoff after the daemon went away.
const (
	retryFirst = 250 * time.Millisecond
	retryMax   = 5 * time.Second
)

// Model is the TUI's one root model: it owns every piece of state. Create
// it with New.
type Model struct {
	// base bounds every command's I/O: the TUI's lifetime (Run cancels it).
	base      context.Context
	daemon    Daemon
	autostart func(context.Context) error
	clock     func() time.Time
	getenv    func(string) string
	noColor   bool

	styles Styles
	keys   keyMap
	width  int
	height int
	now    time.Time

	// The daemon, as the watch shows it.
	watcher   Watcher
	status    *rpc.StatusResult
	connected bool          // the last watch message was a snapshot
	down      error         // why the watch broke; nil while it works
	retryIn   time.Duration // the current backoff
	retryAt   time.Time     // when the next attempt starts

	// The conversation.
	turns  []turn
	stream *chatStream // the answer being streamed; nil when none
	vp     viewport.Model
	follow bool // keep the conversation scrolled to the newest line

	// The prompt box and its history.
	input   textarea.Model
	history []string
	histPos int    // index in history while browsing; len(history) when not
	draft   string // what the box held before browsing

	// Controls for the next prompts.
	model    string
	noCache  bool
	semantic string // "" (daemon default), rpc.SemanticUserOnly, rpc.SemanticAll or rpc.SemanticOff

	overlay overlay
	pick    int // the highlighted row of the model picker

	batch *batchStream // a batch started from the TUI; nil when none
	// pendingBatch is started once the TUI runs (lbgpt demo).
	pendingBatch []any
	batchName    string

	notice string // one line for the status bar, replaced by the next
}

// turn is one exchange of the conversation, or a note of the TUI's own.
type turn struct {
	prompt  string
	answer  string
	note    string // a line of the TUI's own (batch finished, …); no prompt then
	meta    *rpc.Meta
	tokens  usage
	elapsed time.Duration
	err     error
	pending bool // still streaming
	model   string
}

// New returns the TUI's model. ctx bounds the commands' I/O.
func New(ctx context.Context, opts Options) *Model {
	clock := opts.Now
	if clock == nil {
		clock = time.Now
	}
	model := opts.Model
	if model == "" {
		model = "gpt-4o-mini"
	}
	m := &Model{
		base:         ctx,
		daemon:       opts.Daemon,
		autostart:    opts.Autostart,
		clock:        clock,
		getenv:       opts.Getenv,
		noColor:      opts.NoColor,
		styles:       NewStyles(true, opts.NoColor),
		keys:         newKeyMap(),
		now:          clock(),
		vp:           viewport.New(),
		follow:       true,
		model:        model,
		pendingBatch: opts.Batch,
		batchName:    opts.BatchName,
	}
	if m.getenv == nil {
		m.getenv = os.Getenv
	}
	m.input = newInput(m.styles)
	m.vp.KeyMap = viewport.KeyMap{} // the root model routes keys itself
	m.vp.MouseWheelEnabled = false
	m.resize(80, 24)
	return m
}

func newInput(st Styles) textarea.Model {
	ta := textarea.New()
	ta.Prompt = "› "
	ta.Placeholder = "Ask anything — enter sends, alt+enter adds a line, ? for help"
	ta.ShowLineNumbers = false
	ta.DynamicHeight = true
	ta.MinHeight = 1
	ta.MaxHeight = 5
	ta.MaxContentHeight = 10_000
	ta.SetVirtualCursor(false)
	km := textarea.DefaultKeyMap()
	km.InsertNewline = key.NewBinding(key.WithKeys("alt+enter", "ctrl+j", "shift+enter"))
	km.LineNext = key.NewBinding(key.WithKeys("down"))
	km.LinePrevious = key.NewBinding(key.WithKeys("up"))
	km.TransposeCharacterBackward = key.NewBinding() // ctrl+t toggles the cache
	km.SelectAll = key.NewBinding()
	km.CharacterBackward = key.NewBinding(key.WithKeys("left", "ctrl+b"))
	ta.KeyMap = km
	setInputStyles(&ta, st)
	ta.Focus()
	return ta
}

func setInputStyles(ta *textarea.Model, st Styles) {
	s := textarea.DefaultStyles(true)
	for _, state := range []*textarea.StyleState{&s.Focused, &s.Blurred} {
		state.Base = lipgloss.NewStyle()
		state.Text = st.Text
		state.CursorLine = st.Text
		state.Placeholder = st.Faint
		state.Prompt = st.User
		state.EndOfBuffer = st.Faint
	}
	ta.SetStyles(s)
}

// Init starts the watch, the clock and, for the demo, the sample batch.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{watchCmd(m.base, m.daemon, m.autostart), tick(), tea.RequestBackgroundColor}
	if len(m.pendingBatch) > 0 {
		cmds = append(cmds, m.startBatch(m.batchName, "", m.pendingBatch))
		m.pendingBatch = nil
	}
	return tea.Batch(cmds...)
}

// Update handles one message. It never does I/O: that is the commands' job.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
	case tea.BackgroundColorMsg:
		m.styles = NewStyles(msg.IsDark(), m.noColor)
		setInputStyles(&m.input, m.styles)
		m.refresh()
	case tickMsg:
		m.now = m.clock()
		m.refresh()
		return m, tick()
	case statusMsg:
		m.watcher, m.status, m.connected, m.down, m.retryIn = msg.w, msg.st, true, nil, 0
		m.layout() // the panel's height may have changed
		return m, nextStatus(m.base, msg.w)
	case downMsg:
		return m, m.lost(msg.err)
	case retryMsg:
		return m, watchCmd(m.base, m.daemon, nil)
	case chunkMsg:
		if msg.s != m.stream {
			return m, msg.s.step() // a stream left behind: drain it to its end
		}
		m.turns[len(m.turns)-1].answer += msg.text
		m.refresh()
		return m, msg.s.step()
	case answerMsg:
		if msg.s == m.stream {
			m.finishAnswer(msg)
		}
	case batchLoadedMsg:
		if msg.err != nil {
			m.note(fmt.Sprintf("batch %s: %v", msg.name, msg.err), true)
			return m, nil
		}
		return m, m.startBatch(msg.name, msg.out, msg.reqs)
	case batchStepMsg:
		return m, msg.b.step()
	case batchDoneMsg:
		m.finishBatch(msg)
	case tea.PasteMsg:
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		m.layout()
		return m, cmd
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// lost records that the daemon went away and schedules the next attempt.
func (m *Model) lost(err error) tea.Cmd {
	m.watcher, m.connected, m.down = nil, false, err
	m.retryIn = min(max(2*m.retryIn, retryFirst), retryMax)
	m.retryAt = m.clock().Add(m.retryIn)
	m.layout()
	return tea.Tick(m.retryIn, func(time.Time) tea.Msg { return retryMsg{} })
}

// key handles one key press.
func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() != m.keys.Quit.Keys()[0] && m.notice != "" {
		m.notice = ""
	}
	switch m.overlay {
	case overlayHelp:
		if key.Matches(k, m.keys.Quit) || key.Matches(k, m.keys.Cancel) || key.Matches(k, m.keys.Help) || k.String() == "?" || k.String() == "q" {
			m.overlay = overlayNone
		}
		return nil
	case overlayModels:
		return m.pickKey(k)
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		return m.quitKey()
	case key.Matches(k, m.keys.Cancel):
		m.cancelStream()
	case key.Matches(k, m.keys.Send):
		return m.send()
	case key.Matches(k, m.keys.Help), k.String() == "?" && m.input.Value() == "":
		m.overlay = overlayHelp
	case key.Matches(k, m.keys.Model):
		m.openPicker()
	case key.Matches(k, m.keys.Cache):
		m.noCache = !m.noCache
	case key.Matches(k, m.keys.Semantic):
		m.semantic = nextSemantic(m.semantic)
	case key.Matches(k, m.keys.NewChat):
		m.newChat()
	case key.Matches(k, m.keys.Copy):
		return m.copyLast()
	case key.Matches(k, m.keys.ScrollUp):
		m.vp.PageUp()
		m.follow = m.vp.AtBottom()
	case key.Matches(k, m.keys.ScrollDown):
		m.vp.PageDown()
		m.follow = m.vp.AtBottom()
	case key.Matches(k, m.keys.Top):
		m.vp.GotoTop()
		m.follow = m.vp.AtBottom()
	case key.Matches(k, m.keys.Bottom):
		m.vp.GotoBottom()
		m.follow = true
	case key.Matches(k, m.keys.HistPrev) && (m.input.Value() == "" || m.input.Line() == 0):
		m.historyMove(-1)
	case key.Matches(k, m.keys.HistNext) && m.histPos < len(m.history) && m.input.Line() == m.input.LineCount()-1:
		m.historyMove(+1)
	default:
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(k)
		m.layout()
		return cmd
	}
	m.layout()
	return nil
}

// quitKey: text in the box is cleared first (and kept in the history),
// then a stream is stopped, and only then does the TUI quit.
func (m *Model) quitKey() tea.Cmd {
	switch {
	case strings.TrimSpace(m.input.Value()) != "":
		m.remember(m.input.Value())
		m.input.Reset()
		m.notice = "prompt cleared (up brings it back) — ctrl+c again quits"
		m.layout()
	case m.stream != nil:
		m.cancelStream()
	default:
		return tea.Quit
	}
	return nil
}

// send sends the prompt in the box with the conversation before it, or
// runs a /command.
func (m *Model) send() tea.Cmd {
	text := strings.TrimSpace(m.input.Value())
	if text == "" {
		return nil
	}
	if strings.HasPrefix(text, "/") {
		m.remember(text)
		m.input.Reset()
		m.layout()
		return m.command(text)
	}
	if m.stream != nil {
		m.notice = "an answer is still streaming — esc stops it"
		return nil
	}
	m.remember(text)
	m.input.Reset()
	req := map[string]any{"model": m.model, "messages": m.messages(text)}
	opts := rpc.Options{NoCache: m.noCache, Semantic: m.semantic}
	ctx, cancel := context.WithCancel(m.base)
	var events iter.Seq2[client.Event, error]
	var nr *client.NotRunningError
	restart := m.autostart != nil && errors.As(m.down, &nr)
	if !restart {
		events = m.daemon.ChatStream(ctx, req, opts)
	} else {
		// The daemon went away (lbgpt stop, say) and this TUI may start
		// one: a prompt sent is the user asking for it, as the next lbgpt
		// command would start it. The stream starts once it runs.
		events = func(yield func(client.Event, error) bool) {
			m.autostart(ctx)
			m.daemon.ChatStream(ctx, req, opts)(yield)
		}
	}
	m.stream = &chatStream{pull: newPull(events, cancel), started: m.clock()}
	m.turns = append(m.turns, turn{prompt: text, pending: true, model: m.model})
	m.follow = true
	m.layout()
	if restart {
		// Watch again now: the panel shows the new daemon as it comes.
		return tea.Batch(m.stream.step(), watchCmd(m.base, m.daemon, nil))
	}
	return m.stream.step()
}

// messages is the conversation so far as OpenAI messages, then prompt.
func (m *Model) messages(prompt string) []map[string]string {
	var msgs []map[string]string
	for _, t := range m.turns {
		if t.prompt == "" || t.err != nil || t.pending {
			continue
		}
		msgs = append(msgs, map[string]string{"role": "user", "content": t.prompt},
			map[string]string{"role": "assistant", "content": t.answer})
	}
	return append(msgs, map[string]string{"role": "user", "content": prompt})
}

// command runs a /command typed in the box.
func (m *Model) command(text string) tea.Cmd {
	name, arg, _ := strings.Cut(text, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/new":
		m.newChat()
	case "/help":
		m.overlay = overlayHelp
	case "/model":
		if arg == "" {
			m.openPicker()
			return nil
		}
		m.model = arg
	case "/batch":
		if arg == "" {
			m.notice = "usage: /batch FILE.jsonl (one chat request per line)"
			return nil
		}
		if m.batch != nil {
			m.notice = "a batch is already running"
			return nil
		}
		return loadBatch(arg)
	default:
		m.notice = fmt.Sprintf("unknown command %s — try /model NAME, /batch FILE, /new, /help", name)
	}
	return nil
}

func (m *Model) startBatch(name, out string, reqs []any) tea.Cmd {
	if m.batch != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(m.base)
	m.batch = &batchStream{pull: newPull(m.daemon.Batch(ctx, reqs, rpc.Options{NoCache: m.noCache, Semantic: m.semantic}, 0), cancel), name: name, out: out}
	m.note(fmt.Sprintf("batch %s: %d requests started", name, len(reqs)), false)
	return m.batch.step()
}

func (m *Model) finishBatch(msg batchDoneMsg) {
	if msg.b != m.batch {
		return
	}
	m.batch = nil
	s := msg.summary
	line := fmt.Sprintf("batch %s: %d ok, %d failed, %d cache hits, %d coalesced, %d retries in %s",
		msg.b.name, s.OK, s.Failed, s.CacheHits, s.Coalesced, s.Retries, (time.Duration(s.ElapsedMS) * time.Millisecond).Round(100*time.Millisecond))
	if msg.err == nil && msg.b.out != "" {
		line += " — answers in " + msg.b.out
	}
	if msg.err != nil {
		line = fmt.Sprintf("batch %s: %v", msg.b.name, msg.err)
	}
	m.note(line, msg.err != nil)
}

// note adds a line of the TUI's own to the conversation.
func (m *Model) note(text string, failed bool) {
	t := turn{note: text}
	if failed {
		t.err = fmt.Errorf("%s", text)
	}
	m.turns = append(m.turns, t)
	m.refresh()
}

func (m *Model) finishAnswer(msg answerMsg) {
	t := &m.turns[len(m.turns)-1]
	t.pending = false
	t.elapsed = m.clock().Sub(msg.s.started)
	if msg.err != nil {
		t.err = msg.err
	} else {
		if msg.text != "" {
			t.answer = msg.text
		}
		t.meta, t.tokens = &msg.meta, msg.tokens
	}
	m.stream = nil
	m.refresh()
}

// cancelStream stops the answer being streamed; what arrived stays.
func (m *Model) cancelStream() {
	if m.stream == nil {
		return
	}
	m.stream.cancel()
	t := &m.turns[len(m.turns)-1]
	t.pending = false
	t.err = fmt.Errorf("stopped")
	t.elapsed = m.clock().Sub(m.stream.started)
	m.stream = nil // its commands drain it (chunkMsg for a stream left behind)
	m.refresh()
}

func (m *Model) newChat() {
	m.cancelStream()
	m.turns = nil
	m.follow = true
	m.notice = "new conversation"
	m.refresh()
}

// copyLast copies the last answer to the clipboard with OSC 52.
func (m *Model) copyLast() tea.Cmd {
	for i := len(m.turns) - 1; i >= 0; i-- {
		if t := m.turns[i]; t.prompt != "" && t.answer != "" {
			m.notice = fmt.Sprintf("copied the last answer (%d characters)", len([]rune(t.answer)))
			return tea.SetClipboard(t.answer)
		}
	}
	m.notice = "no answer to copy yet"
	return nil
}

// remember adds a prompt to the history (not twice in a row).
func (m *Model) remember(text string) {
	if n := len(m.history); n == 0 || m.history[n-1] != text {
		m.history = append(m.history, text)
	}
	m.histPos, m.draft = len(m.history), ""
}

// historyMove shows the previous (-1) or next (+1) prompt of the history.
func (m *Model) historyMove(d int) {
	pos := m.histPos + d
	if pos < 0 || pos > len(m.history) {
		return
	}
	if m.histPos == len(m.history) {
		m.draft = m.input.Value()
	}
	m.histPos = pos
	if pos == len(m.history) {
		m.input.SetValue(m.draft)
	} else {
		m.input.SetValue(m.history[pos])
	}
}

func nextSemantic(s string) string {
	switch s {
	case "":
		return rpc.SemanticUserOnly
	case rpc.SemanticUserOnly:
		return rpc.SemanticAll
	case rpc.SemanticAll:
		return rpc.SemanticOff
	}
	return ""
}

// models is what the picker offers: every model a backend lists, and the
// usual ones when some backend serves any model.
func (m *Model) models() []string {
	set := map[string]bool{m.model: true}
	anyModel := m.status == nil || len(m.status.Backends) == 0
	if m.status != nil {
		for _, b := range m.status.Backends {
			if len(b.Models) == 0 {
				anyModel = true
			}
			for _, name := range b.Models {
				set[name] = true
			}
		}
	}
	if anyModel {
		for _, name := range []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"} {
			set[name] = true
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func (m *Model) openPicker() {
	m.overlay = overlayModels
	m.pick = max(slices.Index(m.models(), m.model), 0)
}

func (m *Model) pickKey(k tea.KeyPressMsg) tea.Cmd {
	models := m.models()
	switch k.String() {
	case "up", "k":
		m.pick = max(m.pick-1, 0)
	case "down", "j":
		m.pick = min(m.pick+1, len(models)-1)
	case "enter":
		m.model = models[m.pick]
		m.overlay = overlayNone
		m.notice = "model: " + m.model
	case "esc", "ctrl+c", "q":
		m.overlay = overlayNone
	}
	return nil
}

// shutdown ends what the TUI still runs; Run calls it once the program
// ended.
func (m *Model) shutdown() {
	if m.watcher != nil {
		m.watcher.Close()
	}
	if m.stream != nil {
		m.stream.cancel()
	}
	if m.batch != nil {
		m.batch.cancel()
	}
}

// resize lays the screen out for a new terminal size.
func (m *Model) resize(w, h int) {
	m.width, m.height = w, h
	m.layout()
}

// layout sizes the input and the conversation pane for the current state
// and re-renders the conversation.
func (m *Model) layout() {
	m.input.SetWidth(max(m.width, 4))
	l := m.plan()
	m.vp.SetWidth(l.convWidth)
	m.vp.SetHeight(l.convHeight)
	m.refresh()
}

// refresh re-renders the conversation into the viewport.
func (m *Model) refresh() {
	conv := conversationView{turns: m.turns, styles: &m.styles, now: m.now, simulated: m.status != nil && m.status.Simulated}
	if m.stream != nil {
		conv.streamingFor = m.clock().Sub(m.stream.started)
	}
	m.vp.SetContent(conv.Render(m.vp.Width()))
	if m.follow {
		m.vp.GotoBottom()
	}
}

// View draws the screen.
func (m *Model) View() tea.View {
	l := m.plan()
	if m.overlay != overlayNone { // an overlay takes the panel's rows too
		l = layoutPlan{convWidth: m.width, convHeight: max(m.height-m.input.Height()-2, 1)}
	}
	var rows []string
	pv := m.panel()
	if l.panel == panelFull && !l.side {
		rows = append(rows, pv.Render(m.width, panelFull))
	} else if l.panel == panelCompact {
		rows = append(rows, pv.Render(m.width, panelCompact))
	}
	if l.panel != panelNone && !l.side {
		rows = append(rows, m.styles.Rule.Render(strings.Repeat("─", m.width)))
	}
	conv := m.vp.View()
	switch m.overlay {
	case overlayHelp:
		conv = placeIn(l.convWidth, l.convHeight, helpView{keys: m.keys, styles: &m.styles}.Render(l.convWidth))
	case overlayModels:
		conv = placeIn(l.convWidth, l.convHeight, pickerView{models: m.models(), pick: m.pick, current: m.model, styles: &m.styles}.Render(l.convWidth))
	}
	conv = fit(conv, l.convWidth, l.convHeight, l.side)
	if l.side {
		panel := fit(pv.Render(l.panelWidth, panelSide), l.panelWidth, l.convHeight, false)
		sep := strings.TrimSuffix(strings.Repeat(m.styles.Rule.Render("│")+"\n", l.convHeight), "\n")
		conv = lipgloss.JoinHorizontal(lipgloss.Top, conv, sep, panel)
	}
	rows = append(rows, conv)
	inputTop := lipgloss.Height(strings.Join(rows, "\n"))
	rows = append(rows, m.styles.Rule.Render(strings.Repeat("─", m.width)), m.input.View(), m.statusLine())
	v := tea.NewView(fit(strings.Join(rows, "\n"), m.width, m.height, false))
	v.AltScreen = true
	v.WindowTitle = "lbgpt"
	if c := m.input.Cursor(); c != nil && m.overlay == overlayNone {
		c.Y += inputTop + 1
		if c.Y < m.height {
			v.Cursor = c
		}
	}
	return v
}

func (m *Model) panel() panelView {
	pv := panelView{st: m.status, down: m.down, connected: m.connected, retryAt: m.retryAt, now: m.now, styles: &m.styles, canStart: m.autostart != nil}
	if m.status != nil {
		pv.envDiff = m.status.Env.Differs(m.getenv)
	}
	return pv
}

// statusLine is the bottom line: the settings for the next prompt, a notice.
func (m *Model) statusLine() string {
	st := &m.styles
	cache := "cache on"
	if m.noCache {
		cache = "cache off"
	}
	sem := "semantic " + m.semantic
	if m.semantic == "" {
		sem = "semantic default"
	}
	parts := []string{st.Bold.Render(m.model), cache, sem}
	if m.batch != nil {
		parts = append(parts, "batch "+m.batch.name+" running")
	}
	left := strings.Join(parts, st.Faint.Render(" · "))
	if m.notice != "" { // until the next key
		left = st.Notice.Render(m.notice)
	}
	right := st.Key.Render("?") + st.Faint.Render(" help")
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return ansi.Truncate(left, m.width, "…")
	}
	return left + strings.Repeat(" ", gap) + right
}

// placeIn centres s in a w×h area.
func placeIn(w, h int, s string) string {
	return lipgloss.Place(w, h, lipgloss.Center, lipgloss.Center, s)
}

// fit cuts or pads s to exactly h lines of at most w cells; pad fills
// every line to w cells.
func fit(s string, w, h int, pad bool) string {
	lines := strings.Split(s, "\n")
	if len(lines) > h {
		lines = lines[:h]
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	for i, l := range lines {
		switch lw := lipgloss.Width(l); {
		case lw > w:
			lines[i] = ansi.Truncate(l, w, "")
		case pad && lw < w:
			lines[i] = l + strings.Repeat(" ", w-lw)
		}
	}
	return strings.Join(lines, "\n")
}

// panelMode is how much of the panel the screen has room for.
type panelMode int

const (
	panelNone    panelMode = iota
	panelCompact           // one line
	panelFull
	panelSide // full, beside the conversation: long lines wrap
)

// Layout limits.
const (
	minConvLines = 8   // below this the panel shrinks before the conversation does
	sideMinWidth = 120 // from this width the panel stands beside the conversation
)

// layoutPlan is where things go on the screen.
type layoutPlan struct {
	panel      panelMode
	side       bool // the panel beside the conversation, not above it
	panelWidth int
	convWidth  int
	convHeight int
}

// plan lays the screen out: the input and the status line at the bottom;
// the panel above the conversation (or beside it on a wide terminal); when
// rows run short the panel collapses to one line, then disappears, before
// the conversation loses its minimum.
func (m *Model) plan() layoutPlan {
	avail := max(m.height-m.input.Height()-2, 1) // a rule above the input, the status line below
	if m.width >= sideMinWidth {
		// 60 of 120 columns (the panel sheds its least needed columns),
		// up to every column and a sparkline in 110.
		pw := min(max(m.width/2, 60), 110)
		return layoutPlan{panel: panelFull, side: true, panelWidth: pw, convWidth: m.width - pw - 1, convHeight: avail}
	}
	pv := m.panel()
	l := layoutPlan{convWidth: m.width}
	switch full := lipgloss.Height(pv.Render(m.width, panelFull)) + 1; {
	case avail-full >= minConvLines:
		l.panel, l.convHeight = panelFull, avail-full
	case avail-2 >= 3:
		l.panel, l.convHeight = panelCompact, avail-2
	default:
		l.convHeight = avail
	}
	return l
}
