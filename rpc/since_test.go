package rpc

import (
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 3, 7, 29, 10, 0, time.UTC)
	for in, want := range map[string]string{
		"":                     "2026-12-03T00:00:00Z",
		"day":                  "2026-12-03T00:00:00Z",
		"hour":                 "2026-12-03T07:00:00Z",
		"month":                "2026-12-01T00:00:00Z",
		"90m":                  "2026-12-03T05:59:10Z",
		"3600":                 "2026-12-03T06:29:10Z",
		"2026-12-01":           "2026-12-01T00:00:00Z",
		"2026-11-30T12:00:00Z": "2026-11-30T12:00:00Z",
	} {
		got, err := ParseSince(in, now)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("%q: %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"week", "-5h", "1y", "now"} {
		if _, err := ParseSince(bad, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
