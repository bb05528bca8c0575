package shared

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/provider"
)

func openTeam(t *testing.T, srv *redistest.Server, host string) *Team {
	t.Helper()
	team, err := Open(Options{Config: config.Shared{Redis: srv.URL(), KeyPrefix: "test"}, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { team.Close() })
	return team
}

func sharedBackend(rpm, tpm int) config.Backend {
	return config.Backend{Name: "a", Type: config.TypeOpenAI, BaseURL: "http://upstream.invalid/v1", Key: "sk-test", LimitRPM: rpm, LimitTPM: tpm, MaxConcurrent: 1000}
}

func sharedPool(team *Team, b config.Backend) *balance.Pool {
	var limits func(config.Backend, func()) (balance.Limit, balance.Limit)
	if team != nil {
		limits = team.Limits
	}
	return balance.New([]config.Backend{b}, nil, balance.Options{Limits: limits})
}

// burst sends n requests of tokens each through p at once and counts those
// admitted before ctx ends.
func burst(ctx context.Context, p *balance.Pool, n, tokens int, out func() balance.Outcome) int64 {
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, _, err := balance.Do(ctx, p, balance.Request{Model: "m", Tokens: tokens}, func(context.Context, *balance.Member) (struct{}, balance.Outcome, error) {
				return struct{}{}, out(), nil
			})
			if err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return ok.Load()
}

func noHeaders() balance.Outcome { return balance.Outcome{} }

// Two hosts sharing a scope admit, together, what one bucket allows: its
// capacity plus the refill of the window. Alone, each would admit as much.
func TestHostsShareOneBudget(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(60, 0) // a full bucket of 60, 1 a second
	window := 1500 * time.Millisecond
	run := func(pools ...*balance.Pool) int64 {
		ctx, cancel := context.WithTimeout(context.Background(), window)
		defer cancel()
		var total atomic.Int64
		var wg sync.WaitGroup
		for _, p := range pools {
			wg.Go(func() { total.Add(burst(ctx, p, 100, 1, noHeaders)) })
		}
		wg.Wait()
		return total.Load()
	}
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	got := run(sharedPool(a, b), sharedPool(c, b))
	// 60 at once, plus at most 1 a second over the window (and a second
	// of slack for the requests the window cut while granted).
	if got > 63 {
		t.Errorf("two hosts admitted %d requests against one bucket of 60/min in %v; at most 63 fit", got, window)
	}
	if got < 50 {
		t.Errorf("two hosts admitted only %d of the 60 the shared bucket held", got)
	}
	isolated := run(sharedPool(nil, b), sharedPool(nil, b))
	if isolated < 110 {
		t.Errorf("the baseline without sharing admitted %d, want about 120 (60 each): the test cannot tell sharing from not", isolated)
	}
	t.Logf("shared: %d admitted; isolated: %d", got, isolated)
}

// A 429 seen by one host cools the scope on every host at once.
func TestRateLimitedCoolsEveryHost(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(6000, 0)
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	ctx := context.Background()
	if n := burst(ctx, pc, 5, 1, noHeaders); n != 5 {
		t.Fatalf("host b admitted %d of 5 before the 429", n)
	}
	// One attempt: the pool would wait out the cooldown and try again.
	actx, acancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer acancel()
	_, _, err := balance.Do(actx, pa, balance.Request{Model: "m", Tokens: 1}, func(context.Context, *balance.Member) (struct{}, balance.Outcome, error) {
		pe := &provider.Error{Kind: provider.KindRateLimited, Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second}
		return struct{}{}, balance.Outcome{Obs: provider.Observation{Status: 429}}, pe
	})
	if err == nil {
		t.Fatal("the 429 was not an error")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := pc.State()[0]
		if st.RemainingRPM == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host b still has room %d two seconds after host a's 429 (scopes %+v)", st.RemainingRPM, c.Scopes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if n := burst(cctx, pc, 3, 1, noHeaders); n != 0 {
		t.Errorf("host b admitted %d requests while the scope cools", n)
	}
}

// With Redis gone, a host spends what it holds and then its safe share,
// starting from empty: never the whole capacity again.
func TestRedisDownSpendsTheSafeShare(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(600, 0) // 10 a second
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	ctx := context.Background()
	burst(ctx, pa, 5, 1, noHeaders)
	burst(ctx, pc, 5, 1, noHeaders)
	held := a.Scopes()[0].LeaseRPM
	srv.Stop()
	window := time.Second
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	got := burst(wctx, pa, 200, 1, noHeaders)
	// Its lease, then half of 10 a second (two hosts were active).
	// (A grant in flight when Redis stopped may add to what was read.)
	if limit := int64(held) + 5*int64(window/time.Second) + 6; got > limit {
		t.Errorf("with redis down, host a admitted %d in %v holding a lease of %.0f; its safe share allows %d", got, window, held, limit)
	}
	if got == 0 {
		t.Error("with redis down, host a admitted nothing: the team stopped")
	}
	if !a.Scopes()[0].Degraded || a.Health().DegradedSince.IsZero() {
		t.Errorf("status does not say degraded: %+v %+v", a.Scopes()[0], a.Health())
	}
	t.Logf("lease %.0f, admitted %d in %v with redis down", held, got, window)
}

// A Redis restarted empty is noticed: leases are dropped as spent and the
// bucket starts again from empty.
func TestRedisRestartedEmpty(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(60, 0)
	a := openTeam(t, srv, "host-a")
	pa := sharedPool(a, b)
	ctx := context.Background()
	if n := burst(ctx, pa, 3, 1, noHeaders); n != 3 {
		t.Fatalf("admitted %d of 3", n)
	}
	srv.Restart()
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	// A full bucket would admit 57 more; an empty one about 1 a second,
	// besides what the host held when Redis went.
	held := a.Scopes()[0].LeaseRPM
	if got := burst(wctx, pa, 60, 1, noHeaders); float64(got) > held+3 {
		t.Errorf("after an empty restart the host admitted %d holding %.0f: the bucket came back full", got, held)
	}
}

func TestScopeNameHidesTheKey(t *testing.T) {
	b := sharedBackend(1, 1)
	b.Key = "sk-very-secret"
	n := ScopeName(b)
	c := b
	c.Key = "sk-another"
	if n == ScopeName(c) {
		t.Error("two keys share a scope")
	}
	if len(n) != 16 || n == string(b.Key) {
		t.Errorf("scope name %q", n)
	}
	b.LimitScope = "project-x"
	if ScopeName(b) != "project-x" {
		t.Error("limit_scope not used")
	}
}

// A host whose head-of-line request needs more than the refill of a
// moment is not starved by another host's stream of small requests: while
// it waits, nobody gets a smaller grant.
func TestHeadOfLineNotStarvedAcrossHosts(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(0, 120_000) // 2000 tokens a second
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var small atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, _, err := balance.Do(ctx, pc, balance.Request{Model: "m", Tokens: 50}, func(context.Context, *balance.Member) (struct{}, balance.Outcome, error) {
					return struct{}{}, balance.Outcome{}, nil
				}); err == nil {
					small.Add(1)
				}
			}
		})
	}
	// Host b drains the bucket; then host a asks for 4000, two seconds of
	// refill.
	deadline := time.Now().Add(5 * time.Second)
	for small.Load() < 120_000/50-100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 4*time.Second) // 2 s of refill, and slack
	defer cancel()
	_, _, err := balance.Do(lctx, pa, balance.Request{Model: "m", Tokens: 4000}, func(context.Context, *balance.Member) (struct{}, balance.Outcome, error) {
		return struct{}{}, balance.Outcome{}, nil
	})
	waited := time.Since(start)
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("host a's request of 4000 tokens was starved by host b's small ones for %v: %v (b admitted %d; a %+v %+v; b %+v %+v)",
			waited, err, small.Load(), a.Scopes(), a.Health(), c.Scopes(), c.Health())
	}
	t.Logf("host a waited %v for 4000 tokens (refill 2000/s) while host b sent %d small requests", waited.Round(time.Millisecond), small.Load())
}

// A host that dies holding a lease loses it: after hostTTL it is dropped,
// and what it held is not handed back to the bucket (under-use, never
// overshoot).
func TestDeadHostLeaseSpent(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(600, 0)
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	a.hostTTL, c.hostTTL = time.Second, time.Second
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	burst(ctx, pc, 500, 1, noHeaders) // most of the bucket: a lease handed back would show
	burst(ctx, pa, 50, 1, noHeaders)
	for burst(ctx, pc, 1, 1, noHeaders); c.Scopes()[0].Hosts != 2; burst(ctx, pc, 1, 1, noHeaders) {
		if time.Now().After(deadline) {
			t.Fatalf("host b never saw host a: %+v", c.Scopes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lease := a.Scopes()[0].LeaseRPM
	if lease < 3 {
		t.Fatalf("host a holds a lease of %.0f after its burst: too little to tell (%+v)", lease, a.Scopes())
	}
	// What the live hosts have: the level and host b's holdings. Host a's
	// lease handed back would join it.
	key := c.scope(ScopeName(b), b).key
	team := func() float64 {
		lvl, err := c.rdb.HGet(ctx, key, "r.lvl").Float64()
		if err != nil {
			t.Fatal(err)
		}
		held, _ := c.rdb.HGet(ctx, key, "r:host-b").Float64()
		return lvl + held
	}
	before, at := team(), time.Now()
	// Host a dies: no last exchange hands its lease back.
	a.rdb.Close()
	a.Close()
	deadline = time.Now().Add(5 * time.Second)
	for c.Scopes()[0].Hosts != 1 { // host b's heartbeats see host a dropped
		if time.Now().After(deadline) {
			t.Fatalf("host a still counted 5 s after it died (ttl 1 s): %+v", c.Scopes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	refill := time.Since(at).Seconds() * 10
	if got := team(); got > before+refill+1 {
		t.Errorf("the live team's budget rose from %.1f to %.1f in %.1fs (refill %.1f): host a's lease of %.0f came back", before, got, time.Since(at).Seconds(), refill, lease)
	}
}
