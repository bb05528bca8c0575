package tui

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/lbgpt/lbgpt/rpc"
)

// conversationView renders the turns: each prompt, its answer rendered as
// light markdown (fenced code blocks, headings, bullets, `code`, **bold**)
// and under it one quiet line saying how lbgpt answered.
type conversationView struct {
	turns        []turn
	styles       *Styles
	now          time.Time
	simulated    bool
	streamingFor time.Duration // how long the last answer has been streaming
}

func (v conversationView) Render(width int) string {
	st := v.styles
	width = max(width, 8)
	if len(v.turns) == 0 {
		lines := []string{
			st.Faint.Render("No conversation yet. Type a prompt below; enter sends it, alt+enter (or ctrl+j) adds a line."),
			st.Faint.Render("Each prompt goes with the conversation before it. ? lists every key."),
		}
		if v.simulated {
			lines = append(lines, "", st.Warn.Render("The backends are SIMULATED (lbgpt demo): answers are placeholder text."))
		}
		return wrap(strings.Join(lines, "\n"), width)
	}
	var out []string
	for i, t := range v.turns {
		if i > 0 {
			out = append(out, "")
		}
		if t.prompt == "" {
			s := st.Faint
			if t.err != nil {
				s = st.Error
			}
			out = append(out, s.Render(wrap("• "+t.note, width)))
			continue
		}
		out = append(out, st.User.Render("you")+" "+st.Faint.Render("→ "+t.model))
		out = append(out, st.Text.Render(wrap(t.prompt, width)))
		out = append(out, st.Assistant.Render("lbgpt"))
		if t.answer != "" {
			out = append(out, renderMarkdown(t.answer, width, st))
		}
		switch {
		case t.pending:
			out = append(out, st.Faint.Render(fmt.Sprintf("… streaming %s", v.streamingFor.Round(100*time.Millisecond))))
		case t.err != nil:
			out = append(out, st.Error.Render(wrap("✗ "+t.err.Error(), width)))
		case t.meta != nil:
			out = append(out, st.Faint.Render(wrap(metaLine(*t.meta, t.elapsed, t.tokens), width)))
		}
	}
	return strings.Join(out, "\n")
}

// metaLine is the quiet line under an answer: backend, cache outcome,
// attempts, latency, tokens.
func metaLine(m rpc.Meta, elapsed time.Duration, u usage) string {
	cache := "cache " + m.Cache
	if m.Cache == rpc.CacheSemantic {
		cache += fmt.Sprintf(" %.2f", m.Similarity)
	}
	if m.CacheHost != "" {
		cache += " from " + m.CacheHost
	}
	var parts []string
	if m.Backend != "" {
		parts = append(parts, m.Backend)
	}
	parts = append(parts, cache)
	switch {
	case m.Attempts == 1:
		parts = append(parts, "1 attempt")
	case m.Attempts > 1:
		parts = append(parts, fmt.Sprintf("%d attempts", m.Attempts))
	} // a cache hit made none: not worth saying
	parts = append(parts, roundDur(elapsed))
	if u.prompt+u.completion > 0 {
		parts = append(parts, fmt.Sprintf("%d+%d tokens", u.prompt, u.completion))
	}
	if m.Warning != "" {
		parts = append(parts, "⚠ "+m.Warning)
	}
	return strings.Join(parts, " · ")
}

// roundDur is d in the units a person reads: 840ms, 1.2s, 1m5s.
func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

var (
	inlineCode = regexp.MustCompile("`([^`]+)`")
	boldText   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	heading    = regexp.MustCompile(`^#{1,6}\s+`)
	bullet     = regexp.MustCompile(`^(\s*)[-*+]\s+`)
)

// renderMarkdown renders the markdown most answers use; anything else is
// plain text, wrapped to width.
func renderMarkdown(text string, width int, st *Styles) string {
	var out []string
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			if lang := strings.TrimPrefix(strings.TrimSpace(line), "```"); inCode && lang != "" {
				out = append(out, st.Faint.Render("  "+lang))
			}
			continue
		}
		if inCode {
			for _, l := range strings.Split(ansi.Hardwrap(strings.ReplaceAll(line, "\t", "    "), max(width-2, 1), true), "\n") {
				pad := max(width-2-lipgloss.Width(l), 0)
				out = append(out, "  "+st.Code.Render(l+strings.Repeat(" ", pad)))
			}
			continue
		}
		switch {
		case heading.MatchString(line):
			out = append(out, st.Heading.Render(wrap(heading.ReplaceAllString(line, ""), width)))
		case bullet.MatchString(line):
			m := bullet.FindStringSubmatch(line)
			indent := len(m[1]) + 2
			body := wrap(inline(line[len(m[0]):], st), max(width-indent, 1))
			body = strings.ReplaceAll(body, "\n", "\n"+strings.Repeat(" ", indent))
			out = append(out, m[1]+"• "+body)
		default:
			out = append(out, wrap(inline(line, st), width))
		}
	}
	return strings.Join(out, "\n")
}

// inline styles `code` and **bold** within a line.
func inline(s string, st *Styles) string {
	s = inlineCode.ReplaceAllStringFunc(s, func(m string) string { return st.Inline.Render(m[1 : len(m)-1]) })
	return boldText.ReplaceAllStringFunc(s, func(m string) string { return st.Bold.Render(m[2 : len(m)-2]) })
}

// wrap word-wraps s to width cells, breaking words longer than a line.
func wrap(s string, width int) string {
	return ansi.Wrap(s, max(width, 1), "")
}
