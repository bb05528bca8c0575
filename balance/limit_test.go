package balance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	b := NewBucket(600, t0) // 10 a second
	b.take(600, t0)
	if b.Fits(1, t0) {
		t.Error("empty bucket fits 1")
	}
	if got := b.When(5, t0); !got.Equal(t0.Add(500 * time.Millisecond)) {
		t.Errorf("5 fit at %v, want +500ms", got.Sub(t0))
	}
	if got := b.Room(t0.Add(time.Second)); got != 10 {
		t.Errorf("room after 1s = %v, want 10", got)
	}
	if got := b.Room(t0.Add(time.Hour)); got != 600 {
		t.Errorf("room after an hour = %v, want the capacity", got)
	}
	if !b.Fits(5000, t0.Add(time.Hour)) {
		t.Error("a request larger than the capacity never fits, even in a full bucket")
	}
	b.resync(100, t0.Add(time.Hour))
	if got := b.Room(t0.Add(time.Hour)); got != 100 {
		t.Errorf("after resync to 100: room %v", got)
	}
	b.resync(500, t0.Add(time.Hour))
	if got := b.Room(t0.Add(time.Hour)); got != 100 {
		t.Errorf("resync raised the level to %v", got)
	}
	var unknown Bucket
	if !unknown.Fits(1e9, t0) || unknown.Known() {
		t.Error("an unknown limit blocks")
	}
	unknown.learn(60, t0)
	if unknown.Room(t0) != 60 {
		t.Error("learnt limit not adopted")
	}
}

// heldCalls answers every call and keeps its slot until release is called,
// so tests can see where a burst goes.
type heldCalls struct {
	mu    sync.Mutex
	count map[string]int
	done  []func(Outcome, error)
}

func (h *heldCalls) open(t *testing.T, p *Pool, r Request) {
	t.Helper()
	_, rep, done, err := Open(t.Context(), p, r, func(context.Context, *Member) (struct{}, Outcome, error) {
		return struct{}{}, Outcome{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count == nil {
		h.count = map[string]int{}
	}
	h.count[rep.Backend]++
	h.done = append(h.done, done)
}

func limited(name string, rpm, tpm int) config.Backend {
	b := backend(name, 1)
	b.LimitRPM, b.LimitTPM, b.MaxConcurrent = rpm, tpm, 1000
	return b
}

func fixedClock() func() time.Time { return func() time.Time { return t0 } }

// The original's test: max_headroom with TPM 1000 against 100 sends every
// request to the larger.
func TestMaxHeadroomPrefersTheLarger(t *testing.T) {
	p := pool(Options{Now: fixedClock()}, limited("small", 0, 100), limited("large", 0, 1000))
	var h heldCalls
	for range 10 {
		h.open(t, p, Request{Model: "gpt-4o", Tokens: 20})
	}
	if h.count["large"] != 10 {
		t.Errorf("went %v, want all 10 to large", h.count)
	}
}

// A burst that fills the pool lands in proportion to the headroom, and
// never over a limit.
func TestBurstSpreadsByHeadroom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, limited("a", 0, 3000), limited("b", 0, 1000))
		var h heldCalls
		for range 80 {
			h.open(t, p, Request{Model: "gpt-4o", Tokens: 50})
		}
		if h.count["a"] != 60 || h.count["b"] != 20 {
			t.Errorf("80 requests of 50 tokens over TPM 3000 and 1000 went %v, want a:60 b:20", h.count)
		}
		for _, st := range p.State() {
			if st.RemainingTPM != 0 || st.State != "saturated" {
				t.Errorf("%s after the burst: %+v", st.Name, st)
			}
		}
		// The 81st waits for the buckets to refill; nothing is over.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, rep, err := Do(ctx, p, Request{Model: "gpt-4o", Tokens: 50}, func(context.Context, *Member) (int, Outcome, error) {
			return 0, Outcome{}, nil
		})
		if err != nil {
			t.Fatalf("81st: %v", err)
		}
		// a refills 50 tokens a second, b 16.7: the 81st fits on a after 1s.
		if rep.Queued != time.Second || rep.Backend != "a" {
			t.Errorf("81st was admitted to %s after %v, want a after 1s", rep.Backend, rep.Queued)
		}
	})
}

func TestSaturationWaitsInsteadOfFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, limited("a", 60, 0)) // one request a second after the first 60
		start := time.Now()
		for i := range 63 {
			_, _, err := Do(t.Context(), p, req("gpt-4o"), func(context.Context, *Member) (int, Outcome, error) {
				return i, Outcome{}, nil
			})
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("63 requests under RPM 60 took %v, want 3s: 60 at once, then one a second", got)
		}
	})
}

// A large request that arrived first is not starved by small ones that
// would fit sooner.
func TestQueueIsFirstComeFirstServed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, limited("a", 0, 600)) // 10 tokens a second
		var h heldCalls
		h.open(t, p, Request{Model: "gpt-4o", Tokens: 600})
		var mu sync.Mutex
		var order []string
		run := func(name string, tokens int) {
			_, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: tokens}, func(context.Context, *Member) (int, Outcome, error) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				return 0, Outcome{}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}
		var wg sync.WaitGroup
		wg.Go(func() { run("large", 300) })
		synctest.Wait()
		wg.Go(func() { run("small", 10) })
		wg.Wait()
		if len(order) != 2 || order[0] != "large" {
			t.Errorf("order %v, want large first", order)
		}
	})
}

func TestResyncToServerReadings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, limited("a", 0, 6000)) // 100 tokens a second
		obs := provider.Observation{Status: 200, RateLimit: provider.RateLimit{
			LimitRequests: provider.Unknown, RemainingRequests: provider.Unknown,
			LimitTokens: 6000, RemainingTokens: 0, // another client used it all
		}}
		_, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 10}, func(context.Context, *Member) (int, Outcome, error) {
			return 0, Outcome{Obs: obs, Tokens: 10}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, _, err = Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 200}, func(context.Context, *Member) (int, Outcome, error) {
			return 0, Outcome{Tokens: 200}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("after the server said 0 tokens left, 200 tokens waited %v, want 2s", got)
		}
	})
}

func TestLearnsLimitsFromHeaders(t *testing.T) {
	p := pool(Options{Now: fixedClock()}, backend("a", 1))
	obs := provider.Observation{Status: 200, RateLimit: provider.RateLimit{LimitRequests: 100, RemainingRequests: 40, LimitTokens: provider.Unknown, RemainingTokens: provider.Unknown}}
	_, _, err := Do(t.Context(), p, req("gpt-4o"), func(context.Context, *Member) (int, Outcome, error) { return 0, Outcome{Obs: obs}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if st := p.State()[0]; st.LimitRPM != 100 || st.RemainingRPM != 40 || st.LimitTPM != 0 || st.RemainingTPM != -1 {
		t.Errorf("state = %+v", st)
	}
}

func TestDeadKeyIsReprobed(t *testing.T) {
	now := t0
	p := pool(Options{Now: func() time.Time { return now }, Reprobe: time.Minute}, backend("a", 1))
	refused := func(context.Context, *Member) (int, Outcome, error) {
		return 0, Outcome{}, &provider.Error{Kind: provider.KindAuth, Status: 401}
	}
	ok := func(context.Context, *Member) (int, Outcome, error) { return 1, Outcome{}, nil }
	if _, _, err := Do(t.Context(), p, req("gpt-4o"), refused); err == nil || p.State()[0].State != "dead_key" {
		t.Fatalf("after 401: err %v, state %s", err, p.State()[0].State)
	}
	calls := 0
	_, _, err := Do(t.Context(), p, req("gpt-4o"), func(ctx context.Context, m *Member) (int, Outcome, error) { calls++; return ok(ctx, m) })
	var be *Error
	if !errors.As(err, &be) || be.Kind != provider.KindAuth || calls != 0 {
		t.Errorf("while dead: err %v, calls %d; want an auth error without calling", err, calls)
	}
	now = now.Add(time.Minute)
	if _, _, err := Do(t.Context(), p, req("gpt-4o"), ok); err != nil {
		t.Errorf("probe after reprobe interval: %v", err)
	}
	if st := p.State()[0].State; st != "ok" {
		t.Errorf("after a successful probe: %s", st)
	}
}

func TestOverallocate(t *testing.T) {
	p := pool(Options{Now: fixedClock(), Overallocate: true}, limited("a", 1, 0))
	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, rep, err := Do(ctx, p, req("gpt-4o"), func(context.Context, *Member) (int, Outcome, error) { return 0, Outcome{}, nil })
		cancel()
		if err != nil || rep.Queued > 100*time.Millisecond {
			t.Errorf("request %d with overallocate: err %v, queued %v", i, err, rep.Queued)
		}
	}
}

func TestPriorityFallsThrough(t *testing.T) {
	primary, spare := limited("primary", 2, 0), limited("spare", 100, 0)
	spare.Priority = 1
	p := pool(Options{Now: fixedClock(), Strategy: config.StrategyPriority}, spare, primary)
	var h heldCalls
	for range 4 {
		h.open(t, p, req("gpt-4o"))
	}
	if h.count["primary"] != 2 || h.count["spare"] != 2 {
		t.Errorf("went %v, want primary:2 (its RPM) then spare:2", h.count)
	}
}

func TestRefillNeverCountsTimeTwice(t *testing.T) {
	b := NewBucket(60, t0) // 1 a second
	b.take(60, t0)
	b.refill(t0.Add(time.Second))
	b.refill(t0.Add(500 * time.Millisecond)) // a clock read before the lock
	if got := b.Room(t0.Add(time.Second)); got != 1 {
		t.Errorf("room = %v after 1s, want 1", got)
	}
}

func TestLearnsALowerServerLimit(t *testing.T) {
	b := NewBucket(500, t0)
	b.learn(100, t0)
	if b.capacity != 100 || b.Room(t0) != 100 {
		t.Errorf("capacity %v room %v, want the server's 100", b.capacity, b.Room(t0))
	}
	b.learn(1000, t0)
	if b.capacity != 100 {
		t.Error("a higher reported limit raised the configured one")
	}
}

// The reservation is reconciled to what the upstream reports it charged,
// up or down.
func TestReconcile(t *testing.T) {
	for _, charged := range []int{40, 400, 900} {
		p := pool(Options{Now: fixedClock()}, limited("a", 0, 6000))
		_, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: 400}, func(context.Context, *Member) (int, Outcome, error) {
			return 0, Outcome{Tokens: charged}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := 6000 - p.State()[0].RemainingTPM; got != int64(charged) {
			t.Errorf("%d tokens taken, want the %d charged", got, charged)
		}
	}
}

// A backend that fails call after call is taken out for a while instead of
// being tried by every request, then probed.
func TestFailingBackendGoesDown(t *testing.T) {
	now := t0
	p := pool(Options{Now: func() time.Time { return now }, MaxAttempts: 1}, backend("a", 1), backend("b", 1))
	refused := func(_ context.Context, m *Member) (string, Outcome, error) {
		if m.Name() == "a" {
			return "", Outcome{}, &provider.Error{Kind: provider.KindNetwork, Message: "connection refused"}
		}
		return "b", Outcome{}, nil
	}
	for range 6 { // a gets about every other request until it has failed 3 times in a row
		Do(t.Context(), p, req("gpt-4o"), refused)
	}
	if st := p.State()[0]; st.State != "down" || st.Errors != downAfter {
		t.Fatalf("a = %+v, want down after %d failures", st, downAfter)
	}
	for range 5 {
		if _, rep, _ := Do(t.Context(), p, req("gpt-4o"), refused); rep.Backend != "b" {
			t.Fatal("a down backend was tried")
		}
	}
	now = now.Add(time.Second) // rested: one request probes it
	ok := func(_ context.Context, m *Member) (string, Outcome, error) { return m.Name(), Outcome{}, nil }
	for range 2 {
		Do(t.Context(), p, req("gpt-4o"), ok)
	}
	if st := p.State()[0]; st.State != "ok" || st.Requests != downAfter+1 {
		t.Errorf("after the probe a = %+v", st)
	}
}

// upstreamBucket is the server's side of a rate limit, as OpenAI (and the
// simulator) keep it: full until a request arrives, charged on arrival,
// never above its capacity.
type upstreamBucket struct {
	mu                    sync.Mutex
	capacity, level, rate float64 // rate per second
	last                  time.Time
	refused               int
}

func (u *upstreamBucket) charge(n float64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	u.level = min(u.capacity, u.level+now.Sub(u.last).Seconds()*u.rate)
	u.last = now
	if u.level < n {
		u.refused++
		return
	}
	u.level -= n
}

// A reservation the server has not seen yet must not refill: until it
// arrives the server's bucket may be full, where refill is lost. Here the
// first request is slow to arrive (a new connection, say), the server stays
// full meanwhile, and the refill the pool counted since sending it let in
// requests the server had no room for.
func TestUnseenReservationsDoNotRefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := pool(Options{}, limited("a", 0, 600)) // 10 tokens a second
		up := &upstreamBucket{capacity: 600, level: 600, rate: 10, last: time.Now()}
		call := func(transit time.Duration, tokens int) func(context.Context, *Member) (int, Outcome, error) {
			return func(context.Context, *Member) (int, Outcome, error) {
				time.Sleep(transit)
				up.charge(float64(tokens))
				return 0, Outcome{Tokens: tokens}, nil
			}
		}
		var wg sync.WaitGroup
		send := func(at, transit time.Duration, tokens int) {
			wg.Go(func() {
				time.Sleep(at)
				if _, _, err := Do(t.Context(), p, Request{Model: "gpt-4o", Tokens: tokens}, call(transit, tokens)); err != nil {
					t.Error(err)
				}
			})
		}
		send(0, time.Second, 600)         // arrives at 1s: the server is full until then
		send(500*time.Millisecond, 0, 5)  // refilling since 0, the pool would see 5 by now
		send(1100*time.Millisecond, 0, 5) // and 6 by now, where the server has 1
		send(1200*time.Millisecond, 0, 5)
		wg.Wait()
		if up.refused > 0 {
			t.Errorf("the server refused %d of 4 requests the pool admitted", up.refused)
		}
	})
}

// A saturated member says why it takes nothing now: its concurrency cap,
// or the limit with no room.
func TestSaturatedSaysWhy(t *testing.T) {
	busy := limited("busy", 0, 0)
	busy.MaxConcurrent = 2
	for _, c := range []struct {
		b     config.Backend
		calls int
		why   string
	}{
		{busy, 2, "2/2 in flight"},
		{limited("rpm", 3, 0), 3, "rpm"},
		{limited("tpm", 0, 100), 2, "tpm"},
	} {
		synctest.Test(t, func(t *testing.T) {
			p := pool(Options{}, c.b)
			var h heldCalls
			for range c.calls {
				h.open(t, p, Request{Model: "gpt-4o", Tokens: 50})
			}
			if st := p.State()[0]; st.State != "saturated" || st.Reason != c.why {
				t.Errorf("%s after %d calls: %s %q, want saturated %q", c.b.Name, c.calls, st.State, st.Reason, c.why)
			}
		})
	}
}
