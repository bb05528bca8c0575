package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

// limitHeaderNames are every header a rate-limited answer may carry.
var limitHeaderNames = []string{
	"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests",
	"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens",
	"Retry-After", "Retry-After-Ms", "X-Ms-Retry-After-Ms",
}

func limitHeaders(h http.Header) map[string]string {
	m := map[string]string{}
	for _, k := range limitHeaderNames {
		if v := h.Get(k); v != "" {
			m[k] = v
		}
	}
	return m
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

// step is one request of a rate-limit scenario and what it must get.
type step struct {
	advance    time.Duration // on the fake clock before the request
	body       string
	wantStatus int
	wantHdr    map[string]string
	wantMsg    string // for 429s
	wantType   string // for 429s
}

func runSteps(t *testing.T, w wire, acct Account, steps []step) *Server {
	t.Helper()
	clk := newClock()
	s, ts := start(t, Options{Accounts: []Account{acct}, Now: clk.Now})
	for i, st := range steps {
		clk.Advance(st.advance)
		resp, b := w.call(t, ts.URL, "chat/completions", acct.Key, st.body)
		if resp.StatusCode != st.wantStatus {
			t.Fatalf("step %d: status %d, want %d: %s", i, resp.StatusCode, st.wantStatus, b)
		}
		if diff := cmp.Diff(st.wantHdr, limitHeaders(resp.Header)); diff != "" {
			t.Errorf("step %d headers (-want +got):\n%s", i, diff)
		}
		if st.wantStatus == http.StatusTooManyRequests {
			var e errorBody
			if err := json.Unmarshal([]byte(b), &e); err != nil {
				t.Fatal(err)
			}
			if e.Error.Message != st.wantMsg || e.Error.Type != st.wantType || e.Error.Code != "rate_limit_exceeded" || e.Error.Param != nil {
				t.Errorf("step %d: body %s\nwant message %q", i, b, st.wantMsg)
			}
		}
	}
	return s
}

func TestRPM(t *testing.T) {
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			retry := func(s, ms string) map[string]string {
				m := map[string]string{"Retry-After": s, "Retry-After-Ms": ms}
				if w.name == WireAzure {
					m["X-Ms-Retry-After-Ms"] = ms
				}
				return m
			}
			hdr := func(remaining, reset string, extra map[string]string) map[string]string {
				m := map[string]string{"X-Ratelimit-Limit-Requests": "2", "X-Ratelimit-Remaining-Requests": remaining, "X-Ratelimit-Reset-Requests": reset}
				for k, v := range extra {
					m[k] = v
				}
				return m
			}
			const msg = "Rate limit reached for gpt-4o-mini in organization org-sim on requests per min (RPM): Limit 2, Used 2, Requested 1. Please try again in "
			s := runSteps(t, w, Account{Name: "a", Key: "k", RPM: 2}, []step{
				{body: hello, wantStatus: 200, wantHdr: hdr("1", "30s", nil)},
				{body: hello, wantStatus: 200, wantHdr: hdr("0", "1m0s", nil)},
				{body: hello, wantStatus: 429, wantHdr: hdr("0", "1m0s", retry("30", "30000")), wantMsg: msg + "30s.", wantType: "requests"},
				{advance: 29500 * time.Millisecond, body: hello, wantStatus: 429, wantHdr: hdr("0", "30.5s", retry("1", "500")), wantMsg: msg + "500ms.", wantType: "requests"},
				{advance: 500 * time.Millisecond, body: hello, wantStatus: 200, wantHdr: hdr("0", "1m0s", nil)},
				{advance: time.Hour, body: hello, wantStatus: 200, wantHdr: hdr("1", "30s", nil)},
				// Errors after authentication carry the headers too, and charge nothing.
				{body: `{"model":`, wantStatus: 400, wantHdr: hdr("1", "30s", nil)},
			})
			st := s.Stats()["a"]
			if st.RateLimited != 2 || st.OK != 4 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestTPM(t *testing.T) {
	// One user message "hi" costs 3 + 3 + 1 + 1 = 8 prompt tokens; with
	// max_tokens 40 a request is charged 48.
	if n := tokens.CountMessages("gpt-4o-mini", []tokens.Message{{Role: "user", Content: "hi"}}); n != 8 {
		t.Fatalf("prompt tokens %d, want 8", n)
	}
	body := func(max int) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, max)
	}
	hdr := func(remaining, reset string, extra ...string) map[string]string {
		m := map[string]string{"X-Ratelimit-Limit-Tokens": "100", "X-Ratelimit-Remaining-Tokens": remaining, "X-Ratelimit-Reset-Tokens": reset}
		for i := 0; i < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	s := runSteps(t, azureWire, Account{Name: "a", Key: "k", TPM: 100}, []step{
		{body: body(40), wantStatus: 200, wantHdr: hdr("52", "28.8s")},
		{body: body(40), wantStatus: 200, wantHdr: hdr("4", "57.6s")},
		{body: body(40), wantStatus: 429, wantHdr: hdr("4", "57.6s", "Retry-After", "27", "Retry-After-Ms", "26400", "X-Ms-Retry-After-Ms", "26400"),
			wantType: "tokens",
			wantMsg:  "Rate limit reached for gpt-4o-mini in organization org-sim on tokens per min (TPM): Limit 100, Used 96, Requested 48. Please try again in 26.4s."},
		// Larger than the whole bucket: never fits, so no Retry-After.
		{body: body(200), wantStatus: 429, wantHdr: hdr("4", "57.6s"), wantType: "tokens",
			wantMsg: "Request too large for gpt-4o-mini in organization org-sim on tokens per min (TPM): Limit 100, Requested 208. The input or output tokens must be reduced in order to run successfully."},
		{advance: 26400 * time.Millisecond, body: body(40), wantStatus: 200, wantHdr: hdr("0", "1m0s")},
	})
	var charged []int
	for _, r := range s.Log() {
		charged = append(charged, r.Charged)
	}
	if diff := cmp.Diff([]int{48, 48, 0, 0, 48}, charged); diff != "" {
		t.Errorf("charged (-want +got):\n%s", diff)
	}
}

// TestTPMChargesRealLength: without max_tokens a request is charged its
// prompt and its real completion length.
func TestTPMChargesRealLength(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", RPM: 10, TPM: 1000}}, Now: clk.Now})
	resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
	u := decode[completion](t, b).Usage
	if got := s.Log()[0].Charged; got != u.TotalTokens {
		t.Errorf("charged %d, want prompt+completion %d", got, u.TotalTokens)
	}
	want := map[string]string{
		"X-Ratelimit-Limit-Requests": "10", "X-Ratelimit-Remaining-Requests": "9", "X-Ratelimit-Reset-Requests": "6s",
		"X-Ratelimit-Limit-Tokens": "1000", "X-Ratelimit-Remaining-Tokens": fmt.Sprint(1000 - u.TotalTokens),
		"X-Ratelimit-Reset-Tokens": (time.Duration(u.TotalTokens) * 60 * time.Millisecond).String(),
	}
	if diff := cmp.Diff(want, limitHeaders(resp.Header)); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	_, b = openaiWire.call(t, ts.URL, "embeddings", "k", `{"model":"text-embedding-3-small","input":"hello world"}`)
	if got := s.Log()[1].Charged; got != 2 {
		t.Errorf("embeddings charged %d, want 2", got)
	}
}

func TestUnlimitedHasNoHeaders(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	resp, _ := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
	if h := limitHeaders(resp.Header); len(h) != 0 {
		t.Errorf("unlimited account sent %v", h)
	}
}

func TestBucket(t *testing.T) {
	t0 := time.Unix(0, 0)
	b := bucket{max: 3}
	b.refill(t0)
	if b.remaining() != 3 || b.untilFull() != 0 {
		t.Fatalf("new bucket: %d remaining, full in %v", b.remaining(), b.untilFull())
	}
	b.level -= 3 * unit
	if w := b.wait(1); w != 20*time.Second {
		t.Errorf("wait %v, want 20s", w)
	}
	b.refill(t0.Add(10*time.Second + 999*time.Microsecond)) // sub-millisecond remainder carries over
	if b.level != unit/2 {
		t.Errorf("level %d, want %d", b.level, unit/2)
	}
	b.refill(t0.Add(10*time.Second + 1001*time.Microsecond))
	if b.level != unit/2+3 {
		t.Errorf("level %d, want %d", b.level, unit/2+3)
	}
	b.refill(t0) // a clock going backwards refills nothing
	if b.level != unit/2+3 {
		t.Errorf("level %d after going back", b.level)
	}
	b.refill(t0.Add(time.Hour))
	if b.remaining() != 3 {
		t.Errorf("remaining %d after an hour", b.remaining())
	}
}
