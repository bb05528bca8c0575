package provider

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Observation is what the transport saw on the HTTP response of one call,
// whether the call succeeded or not. A call that got no response (a refused
// connection, a request go-openai rejected before sending) has Status 0 and
// an unknown RateLimit.
type Observation struct {
	Status     int           // HTTP status; 0 when no response arrived
	RetryAfter time.Duration // the server's requested wait, see ParseRetryAfter; 0 = none
	RateLimit  RateLimit
	Latency    time.Duration // from the request written to the response headers
	// Body is the response body exactly as the upstream sent it, for a
	// successful call that is not a stream (Provider.Chat, Embeddings):
	// passing it on keeps every field, even those go-openai does not know,
	// and spares an encoding.
	Body []byte
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

// call is the transport's record of one Provider call, passed to the
// recorder through the request's context.
type call struct {
	stream bool // scan the body for "data: [DONE]"

	mu      sync.Mutex // guards the fields below
	obs     Observation
	sent    bool      // the request reached the transport
	got     bool      // response headers arrived
	wrote   time.Time // when the request was last written
	bodyErr error     // the first error reading the body, io.EOF aside
	done    bool      // a "data: [DONE]" line went by
	line    []byte    // the start of the body's current line, for done
	body    []byte    // the whole body of a call that is not a stream
}

type callKey struct{}

// begin starts a call: the returned context carries it to the recorder.
func begin(ctx context.Context, stream bool) (context.Context, *call) {
	c := &call{stream: stream}
	c.obs.RateLimit = unknownRateLimit
	return context.WithValue(ctx, callKey{}, c), c
}

func (c *call) observation() Observation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.obs
}

func (c *call) sawDone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// state is what classify needs to know about c.
func (c *call) state() (got, sent bool, bodyErr error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got, c.sent, c.bodyErr
}

// recorder is the http.RoundTripper under go-openai: it fills the call of
// each request with what the response said and watches the response body.
type recorder struct {
	next http.RoundTripper
}

var _ http.RoundTripper = (*recorder)(nil)

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(callKey{}).(*call)
	if c == nil {
		return r.next.RoundTrip(req)
	}
	start := time.Now()
	c.mu.Lock()
	c.sent = true
	c.wrote = time.Time{}
	c.mu.Unlock()
	trace := &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			now := time.Now()
			c.mu.Lock()
			c.wrote = now
			c.mu.Unlock()
		},
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c.mu.Lock()
	from := c.wrote
	if from.IsZero() || from.After(now) { // a transport without tracing
		from = start
	}
	c.got = true
	c.obs = Observation{
		Status:     resp.StatusCode,
		RetryAfter: ParseRetryAfter(resp.Header, now),
		RateLimit:  ParseRateLimit(resp.Header),
		Latency:    now.Sub(from),
	}
	c.mu.Unlock()
	resp.Body = &body{rc: resp.Body, c: c}
	return resp, nil
}

// body watches a response body for read errors and, on streams, for the
// final "data: [DONE]" line.
type body struct {
	rc io.ReadCloser
	c  *call
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.c.read(p[:n], err)
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// maxLine is as much of a line as the [DONE] check needs to keep.
const maxLine = 64

func (c *call) read(p []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && err != io.EOF && c.bodyErr == nil {
		c.bodyErr = err
	}
	if !c.stream {
		c.body = append(c.body, p...)
		return
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.keep(p)
			break
		}
		c.keep(p[:i])
		c.endLine()
		p = p[i+1:]
	}
	if err == io.EOF {
		c.endLine() // a last line without a newline
	}
}

func (c *call) keep(p []byte) {
	if room := maxLine - len(c.line); room > 0 {
		c.line = append(c.line, p[:min(room, len(p))]...)
	}
}

// endLine checks the line read so far the way go-openai does: "data:",
// optional spaces, "[DONE]".
func (c *call) endLine() {
	line := bytes.TrimSpace(c.line)
	if rest, ok := bytes.CutPrefix(line, []byte("data:")); ok && string(bytes.TrimSpace(rest)) == "[DONE]" {
		c.done = true
	}
	c.line = c.line[:0]
}
