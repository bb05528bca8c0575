package tui

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

// panelView renders the daemon's live state from the watch: a title, the
// daemon totals, one row per backend and one per running batch — or, when
// the daemon is away, why and when the TUI tries again.
type panelView struct {
	st        *rpc.StatusResult
	down      error
	connected bool
	retryAt   time.Time
	now       time.Time
	styles    *Styles
	envDiff   []string // variables this shell sets otherwise than lbgptd started with
	canStart  bool     // a prompt sent starts lbgptd (the TUI may autostart it)
}

func (p panelView) Render(width int, mode panelMode) string {
	if mode == panelCompact {
		return ansi.Truncate(p.compact(), width, "…")
	}
	var lines []string
	if p.down != nil || p.st == nil {
		lines = append(lines, p.downLines(width)...)
	}
	if p.st != nil && p.down != nil {
		// The last figures would be stale: a backend "ok" of a daemon
		// that is gone. Say so rather than show them.
		lines = append(lines, p.styles.Faint.Render(fmt.Sprintf("%d backends, %d batches: no figures while lbgptd does not answer", len(p.st.Backends), len(p.st.Batches))))
	}
	if p.st != nil && p.down == nil {
		// Beside the conversation there are rows to spare: the title and
		// totals wrap. Above it they keep to a line each, the parts that
		// matter most first.
		lay := func(parts []string, sep string) []string {
			sep = p.styles.Faint.Render(sep)
			if mode == panelSide {
				return flow(parts, sep, width)
			}
			return []string{strings.Join(parts, sep)}
		}
		lines = append(lines, lay(p.title(), " · ")...)
		lines = append(lines, p.warnings(width)...)
		lines = append(lines, lay(p.totals(), " │ ")...)
		lines = append(lines, p.backendRows(width)...)
		for _, b := range p.st.Batches {
			lines = append(lines, strings.Split(p.batchRow(b, width), "\n")...)
		}
	}
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, width, "…")
	}
	return strings.Join(lines, "\n")
}

// downLines say that the daemon is not reachable and when the TUI retries.
func (p panelView) downLines(width int) []string {
	st := p.styles
	if p.down == nil {
		return []string{st.Faint.Render("connecting to lbgptd…")}
	}
	lines := strings.Split(st.Error.Render(wrap(p.downMessage(p.down.Error()), width)), "\n")
	var nr *client.NotRunningError
	if p.canStart && errors.As(p.down, &nr) {
		lines = append(lines, st.Faint.Render("a prompt sent here starts it again"))
	}
	return lines
}

// downMessage is msg, why the daemon is away, with when the TUI retries.
func (p panelView) downMessage(msg string) string {
	msg = "✗ " + msg
	if wait := p.retryAt.Sub(p.now); wait > 0 {
		msg += " — retrying in " + roundDur(wait)
	} else {
		msg += " — retrying"
	}
	return msg
}

// uptime is the daemon's, moving on with the panel's clock between the
// snapshots (a watch sends one only when something changes).
func (p panelView) uptime() time.Duration {
	if s := p.st.StartedAt; !s.IsZero() && p.now.After(s) {
		return p.now.Sub(s).Truncate(time.Second)
	}
	return time.Duration(p.st.UptimeS) * time.Second
}

// flow lays parts out joined by sep, on as many lines of width as they
// need: a narrow panel wraps between parts rather than cutting the last
// ones (the queue, a batch's ETA) off.
func flow(parts []string, sep string, width int) []string {
	var lines []string
	line := ""
	for _, part := range parts {
		switch {
		case line == "":
			line = part
		case lipgloss.Width(line)+lipgloss.Width(sep)+lipgloss.Width(part) <= width:
			line += sep + part
		default:
			lines = append(lines, line)
			line = part
		}
	}
	return append(lines, line)
}

// title is the panel's first line, in parts: the daemon, the team, the
// pool.
func (p panelView) title() []string {
	st := p.styles
	parts := []string{st.Title.Render("lbgptd " + p.st.Version)}
	if p.st.Simulated {
		parts = append(parts, st.Warn.Render("SIMULATED backends"))
	}
	if t := p.st.Team; t != nil {
		parts = append(parts, fmt.Sprintf("team of %d", max(t.Hosts, 1)))
	}
	parts = append(parts, fmt.Sprintf("%d backends", len(p.st.Backends)), "strategy "+p.st.Strategy,
		"up "+p.uptime().String())
	return parts
}

// warnings say what needs the user: a rejected reload (the old
// configuration stays), a cache file set aside as damaged. Wrapped, not
// cut: they are the lines worth reading whole.
func (p panelView) warnings(width int) []string {
	st := p.styles
	var out []string
	if e := p.st.ReloadError; e != "" {
		out = append(out, strings.Split(st.Error.Render(wrap("✗ reload rejected, the previous configuration stays: "+e, width)), "\n")...)
	}
	if r := p.st.RestartPending; len(r) > 0 {
		out = append(out, strings.Split(st.Warn.Render(wrap("! changed, applies when lbgptd restarts: "+strings.Join(r, "; "), width)), "\n")...)
	}
	if c := p.st.Cache; c != nil && c.Quarantined != "" {
		out = append(out, strings.Split(st.Warn.Render(wrap("! "+c.Quarantined, width)), "\n")...)
	}
	if len(p.envDiff) > 0 {
		out = append(out, strings.Split(st.Warn.Render(wrap("! "+rpc.EnvAdvice(p.envDiff), width)), "\n")...)
	}
	if e := p.st.SpendError; e != "" {
		out = append(out, strings.Split(st.Warn.Render(wrap("! spend not kept: "+e, width)), "\n")...)
	}
	if sp := p.st.Spend; sp != nil {
		for _, b := range sp.Budgets {
			if b.Warn {
				name := "overall"
				if b.Namespace != "" {
					name = "namespace " + b.Namespace
				}
				msg := fmt.Sprintf("! budget %s per %s nearly spent: %v of %v", name, b.Period, spend.USD(b.SpentUSD), spend.USD(b.LimitUSD))
				out = append(out, strings.Split(st.Warn.Render(wrap(msg, width)), "\n")...)
			}
		}
	}
	if t := p.st.Team; t != nil && !t.DegradedSince.IsZero() {
		msg := fmt.Sprintf("! shared limits degraded since %s: redis %s does not answer; spending this host's safe share",
			t.DegradedSince.Local().Format(time.TimeOnly), t.Redis)
		out = append(out, strings.Split(st.Warn.Render(wrap(msg, width)), "\n")...)
	}
	return out
}

// totals: cache hits by kind and hit rate, retries, queue, daemon overhead.
func (p panelView) totals() []string {
	cache := "cache: off"
	if c := p.st.Cache; c != nil {
		cache = fmt.Sprintf("cache %.0f%%: %d exact %d semantic %d coalesced",
			100*c.HitRate, c.Hits.Exact, c.Hits.Semantic, c.Hits.Coalesced)
	}
	var retries, c429 int64
	for _, b := range p.st.Backends {
		retries += b.Retries
		c429 += b.Status429
	}
	parts := []string{fmt.Sprintf("queue %d", p.st.Queue), fmt.Sprintf("retries %d", retries), fmt.Sprintf("429s %d", c429),
		cache, fmt.Sprintf("daemon p50 %s p99 %s", micros(p.st.DaemonP50US), micros(p.st.DaemonP99US))}
	if sp := p.st.Spend; sp != nil {
		parts = append(parts, fmt.Sprintf("spend today %v, saved %v", spend.USD(sp.Today.CostUSD), spend.USD(sp.Today.SavedUSD)))
	}
	return parts
}

// micros writes a time in microseconds to three significant digits or so.
func micros(us int64) string {
	d := time.Duration(us) * time.Microsecond
	switch {
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	}
	return d.String()
}

// compact is the whole panel in one line, for short terminals.
func (p panelView) compact() string {
	st := p.styles
	if p.st == nil || p.down != nil {
		var nr *client.NotRunningError
		if errors.As(p.down, &nr) { // one line: what to do, not where it looked
			if p.canStart {
				return st.Error.Render(p.downMessage("lbgptd is not running: a prompt sent starts it"))
			}
			return st.Error.Render(p.downMessage("lbgptd is not running: run `lbgptd`"))
		}
		return p.downLines(math.MaxInt32)[0]
	}
	var parts []string
	for _, b := range p.st.Backends {
		parts = append(parts, b.Name+" "+p.state(b))
	}
	if n := len(p.st.Batches); n > 0 {
		b := p.st.Batches[0]
		parts = append(parts, fmt.Sprintf("batch %d/%d", b.Done, b.Total))
	}
	parts = append(parts, fmt.Sprintf("queue %d", p.st.Queue))
	return strings.Join(parts, st.Faint.Render(" · "))
}

// state is a backend's state as a short styled word, with the countdown of
// a cooldown or a rest.
func (p panelView) state(b rpc.BackendStatus) string {
	st := p.styles
	left := ""
	if d := b.CooldownUntil.Sub(p.now); !b.CooldownUntil.IsZero() && d > 0 {
		left = " " + d.Round(time.Second).String()
	}
	switch b.State {
	case rpc.StateOK:
		return st.StateOK.Render("ok")
	case rpc.StateSaturated:
		// Why it takes nothing now, in the column's 11 cells.
		switch r := b.Reason; {
		case r == "rpm" || r == "tpm":
			return st.StateSaturated.Render(r + " full")
		case strings.HasSuffix(r, " in flight"):
			return st.StateSaturated.Render(strings.TrimSuffix(r, " in flight") + " busy")
		}
		return st.StateSaturated.Render("saturated")
	case rpc.StateCooling:
		return st.StateCooling.Render("cooling" + left)
	case rpc.StateDown:
		return st.StateDown.Render("down" + left)
	case rpc.StateDeadKey:
		return st.StateDeadKey.Render("dead key")
	}
	return b.State
}

// A column of the backend table: its header, width, and when it is shed on
// a narrow terminal (higher drops first; 0 never).
type column struct {
	head  string
	width int
	shed  int
	right bool
	cell  func(b rpc.BackendStatus) string
}

const barWidth = 8

func (p panelView) columns(nameWidth int, maxTraffic int) []column {
	return []column{
		{"backend", nameWidth, 0, false, func(b rpc.BackendStatus) string { return b.Name }},
		{"state", 11, 0, false, p.state},
		{"rpm left", barWidth + 6, 2, false, func(b rpc.BackendStatus) string { return p.headroom(b.RemainingRPM, b.LimitRPM) }},
		{"tpm left", barWidth + 6, 3, false, func(b rpc.BackendStatus) string { return p.headroom(b.RemainingTPM, b.LimitTPM) }},
		{"fl", 3, 1, true, func(b rpc.BackendStatus) string { return fmt.Sprint(b.InFlight) }},
		{"p50", 6, 4, true, func(b rpc.BackendStatus) string { return latency(b.LatencyP50MS) }},
		{"429", 4, 5, true, func(b rpc.BackendStatus) string { return fmt.Sprint(b.Status429) }},
		{"retry", 5, 5, true, func(b rpc.BackendStatus) string { return fmt.Sprint(b.Retries) }},
		{"last 60s", 0, 6, false, func(b rpc.BackendStatus) string { return sparkline(b.Traffic, maxTraffic) }},
	}
}

// backendRows is the table of backends: a header and a row each. Columns
// are shed, least useful first, until the table fits width; the
// sparkline takes what is left.
func (p panelView) backendRows(width int) []string {
	if len(p.st.Backends) == 0 {
		return nil
	}
	nameWidth, maxTraffic := 7, 1
	for _, b := range p.st.Backends {
		nameWidth = max(nameWidth, lipgloss.Width(b.Name))
		for _, n := range b.Traffic {
			maxTraffic = max(maxTraffic, n)
		}
	}
	nameWidth = min(nameWidth, 16)
	cols := p.columns(nameWidth, maxTraffic)
	used := func() int {
		n := -1
		for _, c := range cols {
			n += c.width + 1
		}
		return n
	}
	const minSpark = 10 // narrower than this, the sparkline is not worth showing
	for shed := 6; shed > 0; shed-- {
		need := 0
		if cols[len(cols)-1].head == "last 60s" {
			need = minSpark
		}
		if used()+need <= width {
			break
		}
		cols = slices.DeleteFunc(cols, func(c column) bool { return c.shed == shed })
	}
	if last := &cols[len(cols)-1]; last.head == "last 60s" {
		last.width = min(width-used(), 60)
	}
	row := func(cell func(c column) string) string {
		var cells []string
		for _, c := range cols {
			cells = append(cells, pad(cell(c), c.width, c.right))
		}
		return strings.TrimRight(strings.Join(cells, " "), " ")
	}
	lines := []string{p.styles.Faint.Render(row(func(c column) string { return c.head }))}
	for _, b := range p.st.Backends {
		lines = append(lines, row(func(c column) string {
			if c.head == "last 60s" {
				return p.styles.Spark.Render(lastN(sparkline(b.Traffic, maxTraffic), c.width))
			}
			return c.cell(b)
		}))
	}
	return lines
}

// headroom is a bar of what is left of a limit and the number left.
func (p panelView) headroom(remaining, limit int64) string {
	st := p.styles
	if limit <= 0 || remaining < 0 {
		return st.Faint.Render(pad("no limit", barWidth+5, false))
	}
	full := int(math.Round(float64(barWidth) * float64(min(remaining, limit)) / float64(limit)))
	return st.BarFull.Render(strings.Repeat("█", full)) + st.BarEmpty.Render(strings.Repeat("░", barWidth-full)) +
		" " + pad(short(remaining), 5, true)
}

// batchRow is one running batch: progress bar, counts, rate, ETA, and its
// spread over the backends.
// When the spread does not fit on the line, it takes a second one.
func (p panelView) batchRow(b rpc.BatchStatus, width int) string {
	st := p.styles
	frac := 0.0
	if b.Total > 0 {
		frac = float64(b.Done) / float64(b.Total)
	}
	bw := 16
	full := int(math.Round(float64(bw) * frac))
	bar := st.BarFull.Render(strings.Repeat("█", full)) + st.BarEmpty.Render(strings.Repeat("░", bw-full))
	parts := []string{fmt.Sprintf("%s %s %d/%d %.0f%%", st.Bold.Render("batch "+b.ID), bar, b.Done, b.Total, 100*frac),
		fmt.Sprintf("%.1f/s", b.RatePerS)}
	if b.ETAS > 0 {
		parts = append(parts, "ETA "+(time.Duration(b.ETAS)*time.Second).String())
	}
	if b.Failed > 0 {
		parts = append(parts, st.Error.Render(fmt.Sprintf("%d failed", b.Failed)))
	}
	if b.CacheHits > 0 {
		parts = append(parts, fmt.Sprintf("%d cached", b.CacheHits))
	}
	names := make([]string, 0, len(b.Backends))
	for n := range b.Backends {
		names = append(names, n)
	}
	slices.Sort(names)
	var spread []string
	for _, n := range names {
		spread = append(spread, fmt.Sprintf("%s %d", n, b.Backends[n]))
	}
	line := strings.Join(flow(parts, st.Faint.Render(" · "), width-2), "\n  ")
	if len(spread) == 0 {
		return line
	}
	by := st.Faint.Render(strings.Join(spread, " "))
	if !strings.Contains(line, "\n") && lipgloss.Width(line)+3+lipgloss.Width(by) <= width {
		return line + st.Faint.Render(" · ") + by
	}
	return line + "\n" + st.Faint.Render("  by backend: ") + by
}

var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws counts scaled to maxN; a second with none is a space.
func sparkline(counts []int, maxN int) string {
	var b strings.Builder
	for _, n := range counts {
		if n <= 0 {
			b.WriteRune(' ')
			continue
		}
		i := min((n*len(sparks)-1)/max(maxN, 1), len(sparks)-1)
		b.WriteRune(sparks[i])
	}
	return b.String()
}

// lastN keeps the last n runes of s.
func lastN(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[len(r)-n:])
}

// short writes a count in at most five cells: 950, 12.5k, 118k, 2.4M.
func short(n int64) string {
	switch {
	case n < 10_000:
		return fmt.Sprint(n)
	case n < 100_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	case n < 1_000_000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprintf("%.1fM", float64(n)/1e6)
}

func latency(ms float64) string {
	switch {
	case ms <= 0:
		return "-"
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fs", ms/1000)
}

// pad fits s into w cells, padded on the left (right) or the right.
func pad(s string, w int, right bool) string {
	if lipgloss.Width(s) > w {
		s = ansi.Truncate(s, w, "…")
	}
	gap := strings.Repeat(" ", max(w-lipgloss.Width(s), 0))
	if right {
		return gap + s
	}
	return s + gap
}
