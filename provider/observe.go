package provider

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Observation is what the transport saw on the HTTP response of one call,
// whether the call succeeded or not. A call that got no response (a refused
// connection, a request that could not be built) has Status 0 and
// an unknown RateLimit.
type Observation struct {
	Status     int           // HTTP status; 0 when no response arrived
	RetryAfter time.Duration // the server's requested wait, see ParseRetryAfter; 0 = none
	RateLimit  RateLimit
	Latency    time.Duration // from sending the request to the response headers
	// Header is the response's headers; nil when no response arrived.
	Header http.Header
}

// RateLimit holds the x-ratelimit-* headers of a response. A header that is
// missing or unreadable is Unknown, never 0: 0 means the server said 0.
type RateLimit struct {
	LimitRequests, LimitTokens         int64
	RemainingRequests, RemainingTokens int64
	ResetRequests, ResetTokens         time.Duration // until the window resets
}

// Unknown marks a RateLimit field whose header was missing.
const Unknown = -1

// unknownRateLimit is the RateLimit of no headers.
var unknownRateLimit = RateLimit{Unknown, Unknown, Unknown, Unknown, Unknown, Unknown}

// maxRetryAfter bounds ParseRetryAfter: a larger value is clamped to it.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter returns how long the server asks the client to wait, from
// retry-after-ms (OpenAI), x-ms-retry-after-ms (Azure) or Retry-After (whole
// or fractional seconds, or an HTTP date, measured from now), preferred in
// that order because the millisecond forms are exact. It returns 0 when none
// is present or readable, or when the date has passed, and clamps values
// above 24 hours.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, ok := parseNumber(h.Get(name)); ok {
			return clampDuration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, ok := parseNumber(v); ok {
		return clampDuration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return clampDuration(float64(t.Sub(now)))
	}
	return 0
}

// parseNumber reads a finite, non-negative decimal number.
func parseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "xXpP") { // no hex floats
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	return f, true
}

func clampDuration(ns float64) time.Duration {
	switch {
	case ns <= 0:
		return 0
	case ns >= float64(maxRetryAfter):
		return maxRetryAfter
	}
	return time.Duration(ns)
}

// ParseRateLimit reads the x-ratelimit-limit-*, -remaining-* and -reset-*
// headers for requests and tokens. Resets are Go-style durations as OpenAI
// sends them ("1s", "6m0s", "20ms", "1m30.5s") or plain seconds.
func ParseRateLimit(h http.Header) RateLimit {
	return RateLimit{
		LimitRequests:     parseCount(h.Get("x-ratelimit-limit-requests")),
		LimitTokens:       parseCount(h.Get("x-ratelimit-limit-tokens")),
		RemainingRequests: parseCount(h.Get("x-ratelimit-remaining-requests")),
		RemainingTokens:   parseCount(h.Get("x-ratelimit-remaining-tokens")),
		ResetRequests:     parseReset(h.Get("x-ratelimit-reset-requests")),
		ResetTokens:       parseReset(h.Get("x-ratelimit-reset-tokens")),
	}
}

func parseCount(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" { // the header is absent: no error value to allocate
		return Unknown
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n
	}
	if f, ok := parseNumber(s); ok && f < math.MaxInt64 { // "1500.0" from some servers
		return int64(f)
	}
	return Unknown
}

func parseReset(s string) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" {
		return Unknown
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d
	}
	if f, ok := parseNumber(s); ok && f*float64(time.Second) < math.MaxInt64 {
		return time.Duration(f * float64(time.Second))
	}
	return Unknown
}
