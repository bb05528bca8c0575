package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

const spendUsage = `Usage: lbgpt spend [flags]

What the answers lbgptd paid upstream cost, and what its caches saved (a
hit saves what its answer cost when it was paid), from the usage each
answer reported and the model's price: OpenAI's list prices of the date
shown, or [[price]] in the config. Amounts are USD; days and months UTC.
Kept in lbgptd's state directory across restarts.

Flags:
`

func runSpend(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("spend", spendUsage, e)
	var df daemonFlags
	by := fs.String("by", "", "one row per backend, model or namespace")
	since := fs.String("since", "day", "hour, day or month: the current one (UTC); or a time back from now (90m, 12h, 7d), a date (2026-12-01) or an RFC 3339 time. Counted by the hour: a report starts at the start of the hour that holds the time")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("spend takes no arguments")
	}
	switch *by {
	case "", "backend", "model", "namespace":
	default:
		return usageErr("--by must be backend, model or namespace, not %q", *by)
	}
	p := rpc.SpendParams{Since: *since, By: *by}
	if d, err := parseAge(*since); err == nil && d > 0 {
		p.Since = d.String() // days, which the daemon does not read
	}
	if _, err := rpc.ParseSince(p.Since, time.Now()); err != nil {
		return usageErr("--%v", err)
	}
	c, err := df.connect(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	rep, err := c.Spend(ctx, p)
	if err != nil {
		return askError(err)
	}
	if *jsonOut {
		return printJSON(e.stdout, rep)
	}
	printSpendReport(e.stdout, rep)
	return nil
}

// printSpendReport writes rep as a table: a row per group, then the total.
func printSpendReport(w io.Writer, rep *rpc.SpendResult) {
	fmt.Fprintf(w, "since %s (UTC); prices: OpenAI's list of %s unless [[price]] says otherwise\n\n",
		rep.Since.UTC().Format(time.DateTime), rep.PricesDate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "PAID\tSAVED\tANSWERS\tHITS\tUNPRICED\tINPUT\tCACHED\tOUTPUT\t"
	if rep.By != "" {
		fmt.Fprintf(tw, "%s\t%s\n", strings.ToUpper(rep.By), head)
	} else {
		fmt.Fprintf(tw, "\t%s\n", head)
	}
	money := func(usd float64, n, unpriced int64) string {
		if n > 0 && n == unpriced {
			return "unpriced" // no price for the model: not $0.00
		}
		return spend.USD(usd).String()
	}
	row := func(name string, t rpc.SpendTotals) {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%d\t%d\t%s\t%s\t%s\t\n", name, money(t.CostUSD, t.Requests+t.Hits, t.Unpriced), spend.USD(t.SavedUSD),
			t.Requests, t.Hits, t.Unpriced, compact(t.InputTokens), compact(t.CachedInputTokens), compact(t.OutputTokens))
	}
	for _, r := range rep.Rows {
		name := r.Name
		if name == "" {
			name = `""`
			if rep.By == "backend" {
				name = "(cache)"
			}
		}
		row(name, r.SpendTotals)
	}
	row("total", rep.Total)
	tw.Flush()
}
