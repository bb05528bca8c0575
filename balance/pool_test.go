package balance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

func backend(name string, weight float64, models ...string) config.Backend {
	return config.Backend{Name: name, Type: "openai", Weight: weight, MaxConcurrent: 5, Models: models}
}

func pool(opts Options, backends ...config.Backend) *Pool { return New(backends, nil, opts) }

func req(model string) Request { return Request{Model: model, Tokens: 10} }

// script answers each call by member name from a list of errors; nil means
// success. Calls beyond the list succeed.
type script struct {
	mu    sync.Mutex
	errs  map[string][]error
	calls []string
}

func (s *script) call(_ context.Context, m *Member) (string, Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, m.Name())
	errs := s.errs[m.Name()]
	if len(errs) == 0 {
		return "answer from " + m.Name(), Outcome{Tokens: 10}, nil
	}
	err := errs[0]
	s.errs[m.Name()] = errs[1:]
	return "", Outcome{}, err
}

func upstream(kind provider.Kind, retryAfter time.Duration) error {
	return &provider.Error{Kind: kind, Backend: "x", Message: string(kind), RetryAfter: retryAfter}
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	p := pool(Options{Strategy: config.StrategyWeighted}, backend("a", 1), backend("b", 3))
	var seq strings.Builder
	for range 8 {
		_, rep, err := Do(t.Context(), p, req("gpt-4o"), (&script{errs: map[string][]error{}}).call)
		if err != nil {
			t.Fatal(err)
		}
		seq.WriteString(rep.Backend)
	}
	// 1:3 spread evenly, never four b in a row as a plain rotation would.
	if got := seq.String(); got != "babbbabb" {
		t.Errorf("sequence = %s, want babbbabb", got)
	}
}

func TestModelFilter(t *testing.T) {
	p := pool(Options{}, backend("a", 1, "gpt-4o"), backend("b", 1, "gpt-4o-mini"))
	s := &script{errs: map[string][]error{}}
	for range 3 {
		v, rep, err := Do(t.Context(), p, req("gpt-4o-mini"), s.call)
		if err != nil || v != "answer from b" || rep.Backend != "b" {
			t.Fatalf("Do = %q, %+v, %v", v, rep, err)
		}
	}
	_, _, err := Do(t.Context(), p, req("o3"), s.call)
	var be *Error
	if !errors.As(err, &be) || be.Kind != KindNoBackend || !strings.Contains(err.Error(), `no backend serves model "o3" (backends: a, b)`) {
		t.Errorf("unserved model: %v", err)
	}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name      string
		errs      map[string][]error
		wantCalls string
		wantKind  provider.Kind // "" = success
		check     func(t *testing.T, p *Pool)
	}{
		{
			name:      "refused key fails over without backoff and marks the key dead",
			errs:      map[string][]error{"a": {upstream(provider.KindAuth, 0)}},
			wantCalls: "a b",
			check: func(t *testing.T, p *Pool) {
				if p.State()[0].State != "dead_key" {
					t.Error("a is not marked dead")
				}
			},
		},
		{
			name:      "model missing on one backend goes to another",
			errs:      map[string][]error{"a": {upstream(provider.KindNotFound, 0)}},
			wantCalls: "a b",
			check: func(t *testing.T, p *Pool) {
				if st := p.State()[0]; st.State != "ok" {
					t.Errorf("a's state changed for a per-request failure: %+v", st)
				}
			},
		},
		{
			name:      "model missing everywhere",
			errs:      map[string][]error{"a": {upstream(provider.KindNotFound, 0)}, "b": {upstream(provider.KindNotFound, 0)}},
			wantCalls: "a b",
			wantKind:  provider.KindNotFound,
		},
		{
			name:      "bad request is not retried",
			errs:      map[string][]error{"a": {upstream(provider.KindBadRequest, 0)}},
			wantCalls: "a",
			wantKind:  provider.KindBadRequest,
		},
		{
			name:      "server error moves to the other backend",
			errs:      map[string][]error{"a": {upstream(provider.KindServer, 0)}},
			wantCalls: "a b",
		},
		{
			name:      "rate limit cools the backend down for Retry-After",
			errs:      map[string][]error{"a": {upstream(provider.KindRateLimited, 7*time.Second)}},
			wantCalls: "a b",
			check: func(t *testing.T, p *Pool) {
				until := p.State()[0].CooldownUntil
				if d := time.Until(until); d < 6*time.Second || d > 7*time.Second {
					t.Errorf("a cools down for %v, want the 7s Retry-After", d)
				}
			},
		},
		{
			name: "attempt budget",
			errs: map[string][]error{
				"a": {upstream(provider.KindServer, 0), upstream(provider.KindServer, 0), upstream(provider.KindServer, 0)},
				"b": {upstream(provider.KindNetwork, 0), upstream(provider.KindNetwork, 0), upstream(provider.KindNetwork, 0)},
			},
			wantCalls: "a b a b",
			wantKind:  provider.KindNetwork,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// a is always chosen first: weight 2 against 1.
			p := pool(Options{Strategy: config.StrategyWeighted, MaxAttempts: 4, BackoffBase: time.Microsecond, BackoffMax: time.Microsecond}, backend("a", 2), backend("b", 1))
			s := &script{errs: tt.errs}
			v, rep, err := Do(t.Context(), p, req("gpt-4o"), s.call)
			if got := strings.Join(s.calls, " "); got != tt.wantCalls {
				t.Errorf("calls = %q, want %q", got, tt.wantCalls)
			}
			if rep.Attempts != len(s.calls) {
				t.Errorf("attempts = %d, calls = %d", rep.Attempts, len(s.calls))
			}
			if tt.wantKind == "" {
				if err != nil || v == "" {
					t.Errorf("Do = %q, %v; want an answer", v, err)
				}
			} else {
				var be *Error
				if !errors.As(err, &be) || be.Kind != tt.wantKind {
					t.Errorf("err = %v, want kind %s", err, tt.wantKind)
				}
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestCooldownEnds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := pool(Options{Now: func() time.Time { return now }}, backend("a", 1))
	a := p.members[0]
	w := &waiter{req: req("gpt-4o")}
	rateLimited := func(d time.Duration) {
		p.mu.Lock()
		p.reserveLocked(now, a, w.req)
		p.mu.Unlock()
		p.release(a, w.req, Outcome{}, &provider.Error{Kind: provider.KindRateLimited, RetryAfter: d}, false, 0)
	}
	rateLimited(2 * time.Second)
	if p.readyLocked(now, a, w) {
		t.Fatal("ready while cooling down")
	}
	// A shorter Retry-After never shortens a cooldown already running.
	rateLimited(time.Second)
	if got := p.State()[0].CooldownUntil; !got.Equal(now.Add(2 * time.Second)) {
		t.Errorf("cooldown until %v, want unchanged %v", got, now.Add(2*time.Second))
	}
	now = now.Add(2 * time.Second)
	if !p.readyLocked(now, a, w) {
		t.Error("not ready after the cooldown")
	}
	if st := p.State()[0]; !st.CooldownUntil.IsZero() || st.State != "ok" || st.Status429 != 2 {
		t.Errorf("state after the cooldown: %+v", st)
	}
}

func TestWaitsForSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backend("a", 1)
		b.MaxConcurrent = 1
		p := pool(Options{}, b)
		s := &script{errs: map[string][]error{}}
		_, _, done, err := Open(t.Context(), p, req("gpt-4o"), s.call)
		if err != nil {
			t.Fatal(err)
		}
		returned := make(chan error)
		go func() {
			_, _, err := Do(t.Context(), p, req("gpt-4o"), s.call)
			returned <- err
		}()
		synctest.Wait()
		select {
		case <-returned:
			t.Fatal("a second call ran while the only slot was held")
		default:
		}
		done(Outcome{Tokens: 10}, nil)
		if err := <-returned; err != nil {
			t.Fatal(err)
		}
		if st := p.State()[0]; st.InFlight != 0 || st.Requests != 2 {
			t.Errorf("state = %+v", st)
		}
	})
}

func TestDeadlineWhileCooling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, backend("a", 1))
		s := &script{errs: map[string][]error{"a": {upstream(provider.KindRateLimited, time.Minute)}}}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, rep, err := Do(ctx, p, req("gpt-4o"), s.call)
		var be *Error
		if !errors.As(err, &be) || be.Kind != provider.KindRateLimited || !strings.Contains(err.Error(), "until the deadline") {
			t.Errorf("err = %v", err)
		}
		if rep.Attempts != 1 {
			t.Errorf("attempts = %d: the cooling backend was called again", rep.Attempts)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Errorf("waited %v, want the whole 10s deadline", waited)
		}
	})
}

// A request larger than every backend's token limit is refused at once,
// naming the limits, and touches no bucket; one that fits a larger backend
// goes there; the queue keeps serving small requests meanwhile. A limit
// learnt from a 429 makes a request that no longer fits fail at once too.
func TestTooLargeRefusedAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		small, large := backend("small", 1), backend("large", 1)
		small.LimitTPM, large.LimitTPM = 1000, 3000
		p := pool(Options{}, small, large)
		s := &script{errs: map[string][]error{}}
		_, rep, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 5000}, s.call)
		var be *Error
		if !errors.As(err, &be) || be.Kind != KindTooLarge || rep.Attempts != 0 ||
			!strings.Contains(err.Error(), "about 5000 tokens") || !strings.Contains(err.Error(), "small: 1000, large: 3000") {
			t.Fatalf("oversized: %v (%+v)", err, rep)
		}
		for _, st := range p.State() {
			if st.UsedTPM != 0 || st.UsedRPM != 0 {
				t.Errorf("%s used %d tokens, %d requests after a refused request", st.Name, st.UsedTPM, st.UsedRPM)
			}
		}
		for range 3 {
			if _, rep, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 2000}, s.call); err != nil || rep.Backend != "large" {
				t.Fatalf("a request only the large backend fits: %v, %+v", err, rep)
			}
		}
		// Small requests keep flowing on both.
		for range 4 {
			if _, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 100}, s.call); err != nil {
				t.Fatal(err)
			}
		}

		// A backend with no limit configured learns one from a 429.
		u := backend("unknown", 1)
		p = pool(Options{}, u)
		tooLarge := &provider.Error{Kind: provider.KindRateLimited, Backend: "unknown", Message: "Request too large"}
		var calls int
		_, _, err = Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 50_000}, func(ctx context.Context, m *Member) (string, Outcome, error) {
			calls++
			rl := provider.RateLimit{LimitRequests: provider.Unknown, LimitTokens: 30_000, RemainingRequests: provider.Unknown,
				RemainingTokens: 30_000, ResetRequests: provider.Unknown, ResetTokens: provider.Unknown}
			return "", Outcome{Obs: provider.Observation{Status: 429, RateLimit: rl}}, tooLarge
		})
		if !errors.As(err, &be) || be.Kind != KindTooLarge || calls != 1 || !strings.Contains(err.Error(), "unknown: 30000") {
			t.Fatalf("after the limit was learnt: %v (%d calls)", err, calls)
		}
		if st := p.State()[0]; st.UsedTPM != 0 {
			t.Errorf("the refused request's tokens stayed reserved: used %d", st.UsedTPM)
		}
	})
}

// Server and network failures back off before the next attempt (full
// jitter, never zero), holding no slot meanwhile.
func TestFailuresBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{BackoffBase: time.Second, BackoffMax: 4 * time.Second}, backend("a", 1))
		var at []time.Time
		s := &script{errs: map[string][]error{"a": {upstream(provider.KindServer, 0), upstream(provider.KindNetwork, 0)}}}
		_, rep, err := Do(t.Context(), p, req("gpt-4o"), func(ctx context.Context, m *Member) (string, Outcome, error) {
			at = append(at, time.Now())
			return s.call(ctx, m)
		})
		if err != nil || rep.Attempts != 3 {
			t.Fatalf("Do: %v, %d attempts", err, rep.Attempts)
		}
		for i := 1; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap <= 0 || gap > 4*time.Second {
				t.Errorf("attempt %d came %s after the one before, want a backoff in (0, 4s]", i+1, gap)
			}
		}
	})
}

// A backend failing every other call goes out for a while (counted in a
// row, its failures never added up); one with a rare failure among many
// successes stays in.
func TestFailuresCountedInAWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, MaxAttempts: 1}, backend("a", 1))
		flaky := upstream(provider.KindServer, 0)
		for i := range 5 { // fail, ok, fail, ok, fail
			var err error
			if i%2 == 0 {
				err = flaky
			}
			s := &script{errs: map[string][]error{"a": {err}}}
			Do(t.Context(), p, req("gpt-4o"), s.call)
		}
		if st := p.State()[0]; st.State != "down" {
			t.Errorf("after failing every other call: %s, want down", st.State)
		}

		p = pool(Options{MaxAttempts: 1}, backend("b", 1))
		m := p.Members()[0]
		for i := range 30 {
			var err error
			if i%10 == 0 {
				err = flaky
			}
			s := &script{errs: map[string][]error{"b": {err}}}
			Do(t.Context(), p, req("gpt-4o"), s.call)
		}
		if st := p.State()[0]; st.State == "down" || m.failures > 1 {
			t.Errorf("after one failure in ten: %s (%d failures counted)", st.State, m.failures)
		}
	})
}

// A server error on one backend sends the request to another that has room
// at once: the backoff is for waiting on a backend, not for moving on (one
// backend's 500s made an unrelated request wait seconds).
func TestFailoverWithoutBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := backend("a", 1), backend("b", 1)
		b.Priority = 1
		p := pool(Options{Strategy: config.StrategyPriority, BackoffBase: 10 * time.Second, BackoffMax: 10 * time.Second}, a, b)
		s := &script{errs: map[string][]error{"a": {upstream(provider.KindServer, 0)}}}
		start := time.Now()
		_, rep, err := Do(t.Context(), p, req("gpt-4o"), s.call)
		if err != nil || rep.Backend != "b" || rep.Attempts != 2 {
			t.Fatalf("Do: %v %+v", err, rep)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("waited %s before trying b", waited)
		}
	})
}

// Tokens are counted only where a bound would cost admissions: a TPM limit
// with less than half its bucket left after the bound.
func TestCountingFollowsRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limited, free := backend("limited", 1, "gpt-4o"), backend("free", 1, "llama")
		limited.LimitTPM = 1000
		p := pool(Options{}, limited, free)
		for _, tt := range []struct {
			req  Request
			want Counting
		}{
			{Request{Model: "llama", Tokens: 100}, CountNone},
			{Request{Model: "gpt-4o", Tokens: 100}, CountBound},
			{Request{Model: "gpt-4o", Tokens: 501}, CountExact},
		} {
			if got := p.Counting(tt.req); got != tt.want {
				t.Errorf("full bucket, %+v: %v, want %v", tt.req, got, tt.want)
			}
		}
		// 450 tokens spent (the clock stands still: no refill): 550 left,
		// and 100 more would leave less than half.
		if _, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 450}, func(context.Context, *Member) (string, Outcome, error) {
			return "", Outcome{Tokens: 450}, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := p.Counting(Request{Model: "gpt-4o", Tokens: 100}); got != CountExact {
			t.Errorf("bucket at %v: %v, want CountExact", p.State()[0].RemainingTPM, got)
		}
		if got := p.Counting(Request{Model: "gpt-4o", Tokens: 40}); got != CountBound {
			t.Errorf("a bound that leaves half: %v, want CountBound", got)
		}
	})
}
