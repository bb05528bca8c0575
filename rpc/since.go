package rpc

import (
	"cmp"
	"fmt"
	"strconv"
	"time"
)

// ParseSince reads SpendParams.Since at now (the periods as package
// spend's, repeated here because rpc imports nothing of lbgpt's): "hour", "day" or "month" is
// the current one (UTC; "" is "day"); a duration or a number of seconds
// goes back from now; a date (2006-01-02, UTC) or an RFC 3339 time is that
// time. The ledger counts by the hour, so a report starts at the start of
// the hour that holds the time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	now = now.UTC()
	switch cmp.Or(s, "day") {
	case "hour":
		return now.Truncate(time.Hour), nil
	case "day":
		return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), nil
	case "month":
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if secs, err := strconv.ParseFloat(s, 64); err == nil && secs >= 0 {
		return now.Add(-time.Duration(secs * float64(time.Second))), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf(`since must be "hour", "day" or "month" (the current one, UTC), a duration back from now ("72h"), a date (2026-12-01) or an RFC 3339 time; not %q`, s)
}
