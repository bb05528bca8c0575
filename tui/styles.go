package tui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Styles holds every colour and text attribute the TUI uses; no other code
// picks a colour. NewStyles builds the set for a dark or light background,
// or without colour at all (NO_COLOR), where meaning is carried by text,
// bold and reverse video alone.
type Styles struct {
	Title     lipgloss.Style // the panel's first line
	Faint     lipgloss.Style // secondary text: meta lines, column headers
	Rule      lipgloss.Style // separators
	User      lipgloss.Style // the "you" label
	Assistant lipgloss.Style // the assistant label
	Text      lipgloss.Style // answer text
	Code      lipgloss.Style // fenced code blocks
	Inline    lipgloss.Style // `inline code`
	Heading   lipgloss.Style // markdown headings
	Bold      lipgloss.Style // **bold**
	Error     lipgloss.Style // failed requests, daemon down
	Warn      lipgloss.Style // warnings, simulated marker
	Notice    lipgloss.Style // one-off notices in the status bar
	Key       lipgloss.Style // key names in help and hints
	Overlay   lipgloss.Style // the help overlay and the model picker
	Selected  lipgloss.Style // the picked row of the model picker

	BarFull  lipgloss.Style // the remaining part of a headroom bar
	BarEmpty lipgloss.Style // the used part of a headroom bar
	Spark    lipgloss.Style // traffic sparklines

	StateOK        lipgloss.Style
	StateSaturated lipgloss.Style
	StateCooling   lipgloss.Style
	StateDown      lipgloss.Style
	StateDeadKey   lipgloss.Style
}

// NewStyles returns the styles for a dark (or light) background; noColor
// drops every colour.
func NewStyles(dark, noColor bool) Styles {
	s := lipgloss.NewStyle
	if noColor {
		plain := s()
		return Styles{
			Title: s().Bold(true), Faint: plain, Rule: plain, User: s().Bold(true), Assistant: s().Bold(true),
			Text: plain, Code: plain, Inline: plain, Heading: s().Bold(true).Underline(true), Bold: s().Bold(true),
			Error: s().Bold(true), Warn: s().Bold(true), Notice: s().Bold(true), Key: s().Bold(true),
			Overlay: s().Border(lipgloss.NormalBorder()).Padding(0, 1), Selected: s().Reverse(true),
			BarFull: plain, BarEmpty: plain, Spark: plain,
			StateOK: plain, StateSaturated: s().Bold(true), StateCooling: s().Bold(true),
			StateDown: s().Bold(true).Reverse(true), StateDeadKey: s().Bold(true).Reverse(true),
		}
	}
	ld := lipgloss.LightDark(dark)
	c := func(light, dark string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(dark)) }
	var (
		faint  = c("#6b6b6b", "#8a8a8a")
		accent = c("#0059b3", "#6cb6ff")
		green  = c("#1a7f37", "#57d163")
		yellow = c("#9a6700", "#e3b341")
		red    = c("#cf222e", "#ff7b72")
		purple = c("#8250df", "#d2a8ff")
		codeBg = c("#eeeeee", "#262626")
		border = c("#afafaf", "#4e4e4e")
	)
	return Styles{
		Title:     s().Bold(true).Foreground(accent),
		Faint:     s().Foreground(faint),
		Rule:      s().Foreground(border),
		User:      s().Bold(true).Foreground(accent),
		Assistant: s().Bold(true).Foreground(purple),
		Text:      s(),
		Code:      s().Background(codeBg),
		Inline:    s().Foreground(purple),
		Heading:   s().Bold(true).Foreground(accent),
		Bold:      s().Bold(true),
		Error:     s().Foreground(red),
		Warn:      s().Foreground(yellow),
		Notice:    s().Foreground(yellow),
		Key:       s().Bold(true).Foreground(accent),
		Overlay:   s().Border(lipgloss.RoundedBorder()).BorderForeground(border).Padding(0, 1),
		Selected:  s().Reverse(true),
		BarFull:   s().Foreground(green),
		BarEmpty:  s().Foreground(border),
		Spark:     s().Foreground(accent),

		StateOK:        s().Foreground(green),
		StateSaturated: s().Foreground(yellow),
		StateCooling:   s().Foreground(yellow).Bold(true),
		StateDown:      s().Foreground(red).Bold(true),
		StateDeadKey:   s().Foreground(red).Bold(true),
	}
}
