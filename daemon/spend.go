package daemon

import (
	"context"
	"strconv"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

// spendReport is the handler of rpc.MethodSpend.
func (d *Daemon) spendReport(ctx context.Context, c *call) (any, error) {
	var p rpc.SpendParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	switch p.By {
	case "", string(spend.ByBackend), string(spend.ByModel), string(spend.ByNamespace):
	default:
		return nil, proxy.InvalidParams("by", "by must be backend, model or namespace (or left out for the total), not %q", p.By)
	}
	since, err := parseSince(p.Since, time.Now())
	if err != nil {
		return nil, err
	}
	return d.pl.SpendReport(since, p.By)
}

// parseSince reads SpendParams.Since at now.
func parseSince(s string, now time.Time) (time.Time, error) {
	switch s {
	case "", string(spend.Day):
		return spend.Day.Since(now), nil
	case string(spend.Hour), string(spend.Month):
		return spend.Period(s).Since(now), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs >= 0 {
		return now.Add(-time.Duration(secs * float64(time.Second))), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, proxy.InvalidParams("since", `since must be "hour", "day" or "month" (the current one, UTC), a duration back from now ("72h"), or an RFC 3339 time; not %q`, s)
}
