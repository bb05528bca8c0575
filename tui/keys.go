package tui

import "charm.land/bubbles/v2/key"

// keyMap is every key the TUI answers to; the help overlay lists them all,
// in this order.
type keyMap struct {
	Send, Newline, HistPrev, HistNext key.Binding
	ScrollUp, ScrollDown, Top, Bottom key.Binding
	Model, Cache, Semantic, NewChat   key.Binding
	Copy, Cancel, Help, Quit          key.Binding
}

func newKeyMap() keyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return keyMap{
		Send:       b("enter", "send the prompt (with the whole conversation)", "enter"),
		Newline:    b("alt+enter / ctrl+j", "new line in the prompt", "alt+enter", "ctrl+j", "shift+enter"),
		HistPrev:   b("up / down", "earlier / later prompts (box empty or at its edge)", "up"),
		HistNext:   b("", "", "down"),
		ScrollUp:   b("pgup / pgdown", "scroll the conversation", "pgup"),
		ScrollDown: b("", "", "pgdown"),
		Top:        b("ctrl+home / ctrl+end", "top / bottom of the conversation (bottom follows)", "ctrl+home"),
		Bottom:     b("", "", "ctrl+end"),
		Model:      b("ctrl+o", "pick the model from those the pool serves", "ctrl+o"),
		Cache:      b("ctrl+t", "cache on/off for the next prompts (off: no_cache)", "ctrl+t"),
		Semantic:   b("ctrl+s", "semantic cache: daemon default → user_only → all → off", "ctrl+s"),
		NewChat:    b("ctrl+n", "new conversation", "ctrl+n"),
		Copy:       b("ctrl+y", "copy the last answer (OSC 52)", "ctrl+y"),
		Cancel:     b("esc", "stop the answer being streamed; close this overlay", "esc"),
		Help:       b("? / f1", "this help (? on an empty box)", "f1"),
		Quit:       b("ctrl+c", "clear box (up restores it) / stop answer / quit", "ctrl+c"),
	}
}

// all lists the bindings, in the help overlay's order; those without help
// text are named by the binding before them.
func (k keyMap) all() []key.Binding {
	return []key.Binding{k.Send, k.Newline, k.HistPrev, k.HistNext, k.ScrollUp, k.ScrollDown, k.Top, k.Bottom,
		k.Model, k.Cache, k.Semantic, k.NewChat, k.Copy, k.Cancel, k.Help, k.Quit}
}
