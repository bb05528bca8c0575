package tui

import (
	"strings"

	"charm.land/lipgloss/v2"
)

// helpView lists every key, and the /commands.
type helpView struct {
	keys   keyMap
	styles *Styles
}

func (h helpView) Render(width int) string {
	st := h.styles
	var rows [][2]string
	for _, b := range h.keys.all() {
		if b.Help().Key == "" {
			continue
		}
		rows = append(rows, [2]string{b.Help().Key, b.Help().Desc})
	}
	rows = append(rows,
		[2]string{"/model NAME", "ask NAME from now on"},
		[2]string{"/batch FILE", "batch a JSONL file; answers go to FILE.answers.jsonl"},
		[2]string{"/new", "new conversation"})
	kw := 0
	for _, r := range rows {
		kw = max(kw, lipgloss.Width(r[0]))
	}
	inner := max(width-4, 10) // the overlay's border and padding
	var lines []string
	lines = append(lines, st.Title.Render("lbgpt keys")+st.Faint.Render(" — esc, ? or q closes"))
	for _, r := range rows {
		desc := wrap(r[1], max(inner-kw-2, 4))
		desc = strings.ReplaceAll(desc, "\n", "\n"+strings.Repeat(" ", kw+2))
		lines = append(lines, st.Key.Render(pad(r[0], kw, false))+"  "+desc)
	}
	return st.Overlay.Render(strings.Join(lines, "\n"))
}

// pickerView is the model picker.
type pickerView struct {
	models  []string
	pick    int
	current string
	styles  *Styles
}

func (p pickerView) Render(width int) string {
	st := p.styles
	lines := []string{st.Title.Render("model") + st.Faint.Render(" — up/down, enter picks, esc closes")}
	for i, m := range p.models {
		mark := "  "
		if m == p.current {
			mark = "• "
		}
		line := mark + m
		if i == p.pick {
			line = st.Selected.Render(line)
		}
		lines = append(lines, line)
	}
	lines = append(lines, st.Faint.Render(wrap("any other: /model NAME", max(width-4, 10))))
	return st.Overlay.Render(strings.Join(lines, "\n"))
}
