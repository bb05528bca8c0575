package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

const statusUsage = `Usage: lbgpt status [flags]

Shows the daemon (version, uptime, config, balancing strategy, requests
queued for headroom, the time requests spend in the daemon itself) and one
line per backend:

  STATE     ok; saturated and why (N/N in flight: max_concurrent; rpm or
            tpm: no room under that limit now; requests wait); cooling and
            how long still (after a 429); down (failing, resting);
            dead_key (the key was refused, re-probed)
  RPM, TPM  requests and tokens over the last minute / the limit (- unknown).
            The limits refill continuously (limit/60 a second), as OpenAI's
            do, so a busy minute can count more than the limit without going
            over it at any moment; --json's remaining_* is the headroom now.
  FLIGHT    calls in flight now
  429, RETRIES, ERRORS   upstream 429s, retried calls, failed calls (429s included)
  P50       median latency of the last successful calls

Then each backend's type and models. --json prints everything, including
the remaining headroom (what each limit could take now), p95 latency and the last minute's traffic.

Flags:
`

func runStatus(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("status", statusUsage, e)
	var df daemonFlags
	jsonOut := fs.Bool("json", false, "print the status as JSON")
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("status takes no arguments")
	}
	c, err := df.connect(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return askError(err)
	}
	if *jsonOut {
		return printJSON(e.stdout, st)
	}
	printStatus(e.stdout, st, "")
	if diff := st.Env.Differs(e.getenv); len(diff) > 0 {
		fmt.Fprintln(e.stderr, "lbgpt: warning:", rpc.EnvAdvice(diff))
	}
	return nil
}

// printStatus writes st as a table, every line starting with prefix. With
// three backends of short names it fits 100 columns.
func printStatus(w io.Writer, st *rpc.StatusResult, prefix string) {
	cfg := st.Config
	if cfg == "" {
		cfg = "(from the environment)"
	}
	if st.Simulated {
		cfg = "(built-in demo)"
		fmt.Fprintln(w, prefix+"SIMULATED backends: this daemon runs on lbgpt's built-in simulator, not a real API.")
	}
	fmt.Fprintf(w, "%slbgptd %s  pid %d  up %s  config %s\n", prefix, st.Version, st.PID,
		(time.Duration(st.UptimeS * float64(time.Second))).Round(time.Second), cfg)
	strategy := st.Strategy
	if strategy == "" {
		strategy = "-"
	}
	if st.ReloadError != "" {
		fmt.Fprintf(w, "%sRELOAD REJECTED %s ago: %s\n%s  the previous configuration stays in force; fix the file and reload again\n",
			prefix, snapshotTime(st).Sub(st.ReloadedAt).Round(time.Second), st.ReloadError, prefix)
	}
	if len(st.RestartPending) > 0 {
		fmt.Fprintf(w, "%sAT THE NEXT START: %s changed since lbgptd started\n%s  it keeps the values it started with until it restarts (lbgpt stop, or systemctl restart)\n",
			prefix, strings.Join(st.RestartPending, "; "), prefix)
	}
	fmt.Fprintf(w, "%sstrategy %s  queue %d  daemon overhead p50 %s  p99 %s\n", prefix, strategy, st.Queue,
		micros(st.DaemonP50US), micros(st.DaemonP99US))
	if c := st.Cache; c != nil && c.Quarantined != "" {
		fmt.Fprintf(w, "%sCACHE FILE DAMAGED: %s\n", prefix, c.Quarantined)
	}
	if c := st.Cache; c != nil {
		fmt.Fprintf(w, "%scache %s (%d semantic), %s  hits %d exact %d semantic %d coalesced  misses %d  hit rate %.0f %%\n",
			prefix, plural(int(c.Entries), "entry", "entries"), c.SemanticEntries, bytesText(c.Bytes), c.Hits.Exact, c.Hits.Semantic, c.Hits.Coalesced, c.Misses, 100*c.HitRate)
	}
	printTeam(w, st, prefix)
	if st.SpendError != "" {
		fmt.Fprintf(w, "%sSPEND NOT KEPT: the ledger did not open: %s\n%s  requests under a [budget] limit are refused; see docs/spend.md, \"When the ledger does not open\"\n", prefix, st.SpendError, prefix)
	}
	printSpend(w, st.Spend, prefix)
	fmt.Fprintln(w)

	now := snapshotTime(st)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, prefix+"BACKEND\tSTATE\tRPM\tTPM\tFLIGHT\tREQUESTS\t429\tRETRIES\tERRORS\tP50")
	for _, b := range st.Backends {
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", prefix, b.Name, backendState(b, now),
			usedOf(b.UsedRPM, b.LimitRPM), usedOf(b.UsedTPM, b.LimitTPM), b.InFlight, b.Requests,
			b.Status429, b.Retries, b.Errors, millis(b.LatencyP50MS))
	}
	tw.Flush()

	if len(st.Backends) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, prefix+"BACKEND\tTYPE\tMODELS")
	for _, b := range st.Backends {
		models := strings.Join(b.Models, ",")
		if models == "" {
			models = "any"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\n", prefix, b.Name, b.Type, models)
	}
	tw.Flush()
}

// printSpend writes what answers cost and the cache saved, today and this
// month, and the budgets.
func printSpend(w io.Writer, sp *rpc.SpendStatus, prefix string) {
	if sp == nil {
		return
	}
	host := ""
	if sp.Team {
		host = " on this host"
	}
	unpriced := ""
	if n := sp.Today.Unpriced; n > 0 {
		unpriced = fmt.Sprintf(" (and %s today of a model without a price)", plural(int(n), "answer", "answers"))
	}
	fmt.Fprintf(w, "%sspend%s today %v paid, %v saved by the cache; this month %v paid, %v saved%s (lbgpt spend)\n", prefix, host,
		spend.USD(sp.Today.CostUSD), spend.USD(sp.Today.SavedUSD), spend.USD(sp.Month.CostUSD), spend.USD(sp.Month.SavedUSD), unpriced)
	team := sp.Team && !sp.TeamAsOf.IsZero()
	switch {
	case team:
		fmt.Fprintf(w, "%sspend of the team (%s) today %v paid, %v saved; this month %v paid, %v saved\n", prefix, plural(max(sp.TeamHosts, 1), "host", "hosts"),
			spend.USD(sp.TeamToday.CostUSD), spend.USD(sp.TeamToday.SavedUSD), spend.USD(sp.TeamMonth.CostUSD), spend.USD(sp.TeamMonth.SavedUSD))
	case sp.Team:
		fmt.Fprintf(w, "%sspend of the team unknown: redis has not answered since lbgptd started; the budgets below are this host's\n", prefix)
	}
	if team && !sp.TeamDegradedSince.IsZero() {
		fmt.Fprintf(w, "%sTEAM BUDGETS DEGRADED since %s: redis does not answer; this host admits at most its safe share of what was left at %s\n", prefix,
			sp.TeamDegradedSince.Local().Format(time.TimeOnly), sp.TeamAsOf.Local().Format(time.TimeOnly))
	}
	for _, b := range sp.Budgets {
		name := "overall"
		if b.Namespace != "" {
			name = fmt.Sprintf("namespace %q", b.Namespace)
		}
		if team {
			name = "team " + name
		}
		line := fmt.Sprintf("%sbudget %s per %s: %v of %v spent", prefix, name, b.Period, spend.USD(b.SpentUSD), spend.USD(b.LimitUSD))
		if b.ReservedUSD > 0 {
			line += fmt.Sprintf(", %v held by requests in flight", spend.USD(b.ReservedUSD))
		}
		if b.Warn {
			line += "  NEARLY SPENT"
		}
		fmt.Fprintln(w, line)
	}
}

// printTeam writes the team's lines: the shared Redis and each scope.
func printTeam(w io.Writer, st *rpc.StatusResult, prefix string) {
	t := st.Team
	if t == nil {
		return
	}
	now := snapshotTime(st)
	if !t.DegradedSince.IsZero() {
		fmt.Fprintf(w, "%sSHARED LIMITS DEGRADED since %s (%s ago): redis %s does not answer (%s)\n%s  each host spends what it holds, then its safe share of each limit\n",
			prefix, t.DegradedSince.Local().Format(time.TimeOnly), now.Sub(t.DegradedSince).Round(time.Second), t.Redis, t.LastError, prefix)
	} else {
		fmt.Fprintf(w, "%steam of %s: redis %s  host %s  round trip %s\n", prefix, plural(max(t.Hosts, 1), "host", "hosts"), t.Redis, t.Host, micros(t.RTTUS))
	}
	for _, s := range t.Scopes {
		line := fmt.Sprintf("%s  scope %s (%s): %s", prefix, s.Name, strings.Join(s.Backends, ","), plural(s.Hosts, "host", "hosts"))
		if s.LevelRPM >= 0 {
			line += fmt.Sprintf("  shared rpm %s, lease %s", compact(s.LevelRPM), compact(s.LeaseRPM))
		}
		if s.LevelTPM >= 0 {
			line += fmt.Sprintf("  shared tpm %s, lease %s", compact(s.LevelTPM), compact(s.LeaseTPM))
		}
		if s.CoolingUntil.After(now) {
			line += "  cooling " + s.CoolingUntil.Sub(now).Round(100*time.Millisecond).String()
		}
		if s.Degraded {
			var share []string
			if s.ShareRPM > 0 {
				share = append(share, "rpm "+compact(s.ShareRPM))
			}
			if s.ShareTPM > 0 {
				share = append(share, "tpm "+compact(s.ShareTPM))
			}
			if len(share) > 0 {
				line += "  spending its safe share: " + strings.Join(share, ", ")
			}
		}
		fmt.Fprintln(w, line)
	}
}

// snapshotTime is the daemon's clock when it took st, so that countdowns
// read the same whenever the snapshot is printed.
func snapshotTime(st *rpc.StatusResult) time.Time {
	if st.StartedAt.IsZero() {
		return time.Now()
	}
	return st.StartedAt.Add(time.Duration(st.UptimeS * float64(time.Second)))
}

// backendState is the state column: the state, and for a cooling backend
// how long it still cools.
func backendState(b rpc.BackendStatus, now time.Time) string {
	switch b.State {
	case rpc.StateCooling:
		left := b.CooldownUntil.Sub(now)
		if b.CooldownUntil.IsZero() || left <= 0 {
			return "cooling"
		}
		if left < 10*time.Second {
			return "cooling " + left.Round(100*time.Millisecond).String()
		}
		return "cooling " + left.Round(time.Second).String()
	case rpc.StateSaturated:
		if b.Reason != "" {
			return "saturated: " + b.Reason
		}
	case "":
		return "-"
	}
	return b.State
}

// usedOf is "used/limit", the limit "-" when unknown.
func usedOf(used, limit int64) string {
	if limit <= 0 {
		return compact(used) + "/-"
	}
	return compact(used) + "/" + compact(limit)
}

// compact writes n in at most five characters: 950, 12.5k, 150k, 2M, 1.5M.
func compact(n int64) string {
	if n < 10_000 && n > -10_000 {
		return strconv.FormatInt(n, 10)
	}
	v := float64(n)
	for _, unit := range []string{"k", "M"} {
		if v /= 1000; v < 999.5 && v > -999.5 {
			return trimZero(v) + unit
		}
	}
	return trimZero(v/1000) + "G"
}

// trimZero formats v with one decimal under 100 and none from there,
// dropping a trailing ".0".
func trimZero(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
}

func millis(ms float64) string {
	d := time.Duration(ms * float64(time.Millisecond))
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}

func micros(us int64) string {
	if us <= 0 {
		return "-"
	}
	d := time.Duration(us) * time.Microsecond
	if d >= time.Millisecond {
		d = d.Round(100 * time.Microsecond)
	}
	return d.String()
}

// printJSON writes v to w as indented JSON, the --json output of commands.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
