package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

const statusUsage = `Usage: lbgpt status [flags]

Shows the daemon (version, uptime, config) and one line per backend: its
state (ok, cooling after a 429, dead_key after a refused key), requests,
errors and calls in flight.

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
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	printStatus(e.stdout, st, "")
	return nil
}

// printStatus writes st as a table, every line starting with prefix.
func printStatus(w io.Writer, st *rpc.StatusResult, prefix string) {
	cfg := st.Config
	if cfg == "" {
		cfg = "(from the environment)"
	}
	if st.Simulated {
		cfg = "(built-in demo)"
		fmt.Fprintln(w, prefix+"SIMULATED backends: this daemon runs on lbgpt's built-in simulator, not a real API.")
	}
	fmt.Fprintf(w, "%slbgptd %s  pid %d  up %s  config %s\n\n", prefix, st.Version, st.PID,
		(time.Duration(st.UptimeS * float64(time.Second))).Round(time.Second), cfg)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, prefix+"BACKEND\tTYPE\tSTATE\tREQUESTS\tERRORS\tIN FLIGHT\tMODELS")
	for _, b := range st.Backends {
		state := b.State
		if b.State == rpc.StateCooling {
			state = fmt.Sprintf("cooling %s", time.Until(b.CooldownUntil).Round(100*time.Millisecond))
		}
		models := strings.Join(b.Models, ",")
		if models == "" {
			models = "any"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%d\t%d\t%d\t%s\n", prefix, b.Name, b.Type, state, b.Requests, b.Errors, b.InFlight, models)
	}
	tw.Flush()
}
