package shared

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/provider"
)

func openTeam(t testing.TB, srv *redistest.Server, host string) *Team {
	t.Helper()
	return openTeamWith(t, srv, Options{Host: host})
}

// openTeamWith opens a team on srv and waits for its subscription to the
// cool channel: a 429 published before it would reach this host only at
// its next exchange. (go-redis v9.23 also reads its options unlocked when
// it subscribes, while a connection's first handshake writes them; once the
// subscription's connection made that write, no other does: -race.)
func openTeamWith(t testing.TB, srv *redistest.Server, opts Options) *Team {
	t.Helper()
	opts.Config = config.Shared{Redis: srv.URL(), KeyPrefix: "test"}
	subscribers := srv.Subscribers("test:cool")
	team, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { team.Close() })
	srv.WaitSubscribers(team.coolChannel(), subscribers+1)
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
	a := openTeamWith(t, srv, Options{Host: "host-a", hostTTL: time.Second, idleReturn: time.Hour}) // it keeps its lease until it dies
	c := openTeamWith(t, srv, Options{Host: "host-b", hostTTL: time.Second})
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	ctx := context.Background()
	deadline := time.Now().Add(5 * time.Second)
	burst(ctx, pc, 500, 1, noHeaders) // most of the bucket: a lease handed back would show
	burst(ctx, pa, 5, 1, noHeaders)
	// Host a asks for a lease of 20, as a request waiting for 20 would.
	sa := a.scope(ScopeName(b), b)
	sa.mu.Lock()
	sa.dims[0].want = 20
	sa.mu.Unlock()
	sa.poke()
	for burst(ctx, pc, 1, 1, noHeaders); c.Scopes()[0].Hosts != 2 || a.Scopes()[0].LeaseRPM < 20; burst(ctx, pc, 1, 1, noHeaders) {
		if time.Now().After(deadline) {
			t.Fatalf("host a holds no lease of 20, or host b never saw it: a %+v, b %+v", a.Scopes(), c.Scopes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lease := a.Scopes()[0].LeaseRPM
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

// A lease holds the target or twice the recent demand, counting what it
// already holds: a host that keeps pace does not ask for more at every
// exchange (the lease crept up and parked capacity idle).
func TestAskCountsTheLease(t *testing.T) {
	for _, c := range []struct {
		name              string
		d                 dim
		active            int
		wantAsk, wantNeed float64
	}{
		{"keeping pace", dim{capacity: 600, lease: 30, recent: 10, rate: 10}, 1, 0, 0},
		{"burst doubles", dim{capacity: 600, lease: 5, recent: 20, rate: 10}, 1, 35, 0},
		{"floor of a minute's share", dim{capacity: 600, lease: 0}, 2, 5, 0},
		{"burst capped at the share", dim{capacity: 600, lease: 0, recent: 1000}, 3, 200, 0},
		{"a waiting request needs more than the lease", dim{capacity: 600, lease: 4, want: 50, rate: 10}, 1, 46, 46},
		{"the lease covers the want", dim{capacity: 600, lease: 60, want: 50, rate: 10}, 1, 0, 0},
	} {
		ask, need := c.d.ask(c.active)
		if ask != c.wantAsk || need != c.wantNeed {
			t.Errorf("%s: ask %v need %v, want %v %v", c.name, ask, need, c.wantAsk, c.wantNeed)
		}
	}
}

// scopeInUse starts a Redis and host-a on it, admits five requests of
// tokens each to b, and returns the host and the scope they used.
func scopeInUse(t *testing.T, b config.Backend, tokens int) (*Team, *Scope) {
	t.Helper()
	a := openTeam(t, redistest.Start(t), "host-a")
	if n := burst(context.Background(), sharedPool(a, b), 5, tokens, noHeaders); n != 5 {
		t.Fatalf("admitted %d of 5", n)
	}
	return a, a.scope(ScopeName(b), b)
}

// exchangeNow asks the scope for an exchange with Redis and waits until
// one has been made.
func exchangeNow(t *testing.T, s *Scope) {
	t.Helper()
	s.mu.Lock()
	told := s.told
	s.mu.Unlock()
	s.poke()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.mu.Lock()
		done := s.told.After(told)
		s.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no exchange within 2 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A request waiting for TPM keeps the scope busy: its RPM lease is not
// handed back as idle meanwhile (the two dimensions took turns handing
// back what the other waited for, and the request never went).
func TestWaitingDimensionKeepsTheOtherLease(t *testing.T) {
	a, s := scopeInUse(t, sharedBackend(600, 60_000), 100)
	exchanged := func() { t.Helper(); exchangeNow(t, s) }
	s.mu.Lock()
	s.lastHold = time.Now().Add(-time.Hour) // idle, but for the want
	s.dims[1].want = s.dims[1].capacity + 1 // more than the bucket holds now: it waits
	s.mu.Unlock()
	exchanged()
	if st := a.Scopes()[0]; st.LeaseRPM == 0 {
		t.Errorf("the RPM lease went back while a request waited for TPM: %+v", st)
	}
	// The control: with nothing waiting, the idle lease does go back.
	s.mu.Lock()
	s.dims[1].want = 0
	s.mu.Unlock()
	exchanged()
	if st := a.Scopes()[0]; st.LeaseRPM != 0 || st.LeaseTPM != 0 {
		t.Errorf("an idle scope kept its leases: %+v", st)
	}
}

// What a host spent while Redis was down is in the emptiness of a bucket
// restarted empty: it is not charged again on top (the level went
// negative, and the team waited for an outage it had paid for twice).
func TestRestartedBucketNotChargedTwice(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(600, 0) // 10 a second
	a := openTeam(t, srv, "host-a")
	pa := sharedPool(a, b)
	ctx := context.Background()
	burst(ctx, pa, 3, 1, noHeaders)
	srv.Stop()
	// Degraded: the lease, then the safe share (10 a second, from empty).
	dctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	spent := burst(dctx, pa, 40, 1, noHeaders)
	cancel()
	srv.Restart()
	s := a.scope(ScopeName(b), b)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		debt, degraded := s.dims[0].lease, s.degraded
		s.mu.Unlock()
		if !degraded && debt >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host a never exchanged with the restarted redis (lease %v, degraded %v)", debt, degraded)
		}
		s.poke()
		time.Sleep(20 * time.Millisecond)
	}
	lvl, err := a.rdb.HGet(ctx, s.key, "r.lvl").Float64()
	if err != nil {
		t.Fatal(err)
	}
	if lvl < -0.5 {
		t.Errorf("the restarted bucket's level is %.1f after host a spent %d while redis was down: charged on top of starting empty", lvl, spent)
	}
	t.Logf("spent %d while down; level after the restart %.1f", spent, lvl)
}

// A Redis restarted empty and reached first by a host that never knew the
// team (started during the outage) is still found out, by the first host
// that knew it: a scope first used after that starts from the refill since
// the restart, not full.
func TestRestartFoundAfterANewHostCame(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(600, 0)
	ttl := 300 * time.Millisecond // heartbeats every 100 ms
	a := openTeamWith(t, srv, Options{Host: "host-a", hostTTL: ttl})
	burst(context.Background(), sharedPool(a, b), 3, 1, noHeaders)
	srv.Restart()
	c := openTeamWith(t, srv, Options{Host: "host-c", hostTTL: ttl}) // writes the team's hash first
	// After the outage, host a's breaker lets a call through every 500 ms,
	// each with 50 ms for a new connection and two script loads: on a
	// starved machine several fail before one marks the restart (3 s was
	// once too short under load). The loop ends as soon as one does.
	deadline := time.Now().Add(10 * time.Second)
	for a.rdb.HExists(context.Background(), a.key("team", ""), "rs").Val() == false {
		if time.Now().After(deadline) {
			t.Fatalf("host a's heartbeats never marked the restart: %v", a.rdb.HGetAll(context.Background(), a.key("team", "")).Val())
		}
		time.Sleep(20 * time.Millisecond)
	}
	other := b
	other.LimitScope = "another-scope" // first used now, by host c
	wctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if got := burst(wctx, sharedPool(c, other), 100, 1, noHeaders); got > 25 {
		t.Errorf("a scope first used a moment after an empty restart admitted %d in 1 s: it started full (600)", got)
	}
}

// With Redis down, the safe share counts every host of the team, not only
// those that had used the scope: idle hosts may start spending too.
func TestSafeShareCountsIdleHosts(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(1200, 0) // 20 a second
	ttl := 600 * time.Millisecond
	state := t.TempDir()
	a := openTeamWith(t, srv, Options{Host: "host-a", hostTTL: ttl, StateDir: state})
	openTeamWith(t, srv, Options{Host: "host-b", hostTTL: ttl})
	openTeamWith(t, srv, Options{Host: "host-c", hostTTL: ttl})
	deadline := time.Now().Add(3 * time.Second)
	for a.Size() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("host a sees a team of %d, want 3", a.Size())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pa := sharedPool(a, b)
	ctx := context.Background()
	burst(ctx, pa, 5, 1, noHeaders) // host a alone on the scope
	held := a.Scopes()[0].LeaseRPM
	srv.Stop()
	window := time.Second
	wctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	got := burst(wctx, pa, 200, 1, noHeaders)
	// Its lease, then a third of 20 a second; alone on the scope it would
	// take all 20.
	if limit := int64(held) + 7 + 3; got > limit {
		t.Errorf("with redis down, host a admitted %d in %v holding %.0f; a third of the limit allows %d", got, window, held, limit)
	}
	// A daemon started while Redis is down knows the team's size from the
	// state directory.
	late, err := Open(Options{Config: config.Shared{Redis: srv.URL(), KeyPrefix: "test"}, Host: "host-a2", StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if late.Size() != 3 {
		t.Errorf("a daemon started with redis down sees a team of %d; the state directory says 3", late.Size())
	}
}

// A host that handed its lease back is not "saturated": its status counts
// what a grant could bring (the shared level), though it spends only
// what it is granted.
func TestIdleHostNotSaturated(t *testing.T) {
	srv := redistest.Start(t)
	b := sharedBackend(600, 0)
	a := openTeamWith(t, srv, Options{Host: "host-a", idleReturn: 50 * time.Millisecond})
	pa := sharedPool(a, b)
	burst(context.Background(), pa, 5, 1, noHeaders)
	deadline := time.Now().Add(3 * time.Second)
	for a.Scopes()[0].LeaseRPM != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the idle lease never went back: %+v", a.Scopes())
		}
		a.scope(ScopeName(b), b).poke()
		time.Sleep(20 * time.Millisecond)
	}
	st := pa.State()[0]
	if st.State != "ok" || st.RemainingRPM < 500 {
		t.Errorf("an idle host with the shared bucket nearly full shows %q with %d requests of room", st.State, st.RemainingRPM)
	}
}

// A Redis that refuses the password is a configuration error, said at
// once: not an outage to wait out.
func TestWrongPasswordRefusedAtOpen(t *testing.T) {
	srv := redistest.Start(t)
	rc := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Socket})
	if err := rc.ConfigSet(t.Context(), "requirepass", "right-password").Err(); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	for _, pw := range []string{"", "wrong-password"} {
		_, err := Open(Options{Config: config.Shared{Redis: srv.URL(), Secret: config.Secret(pw)}, Host: "h"})
		if err == nil || !strings.Contains(err.Error(), "refused this daemon") || !strings.Contains(err.Error(), "password_env") {
			t.Errorf("password %q: Open = %v, want a refusal that says to check the password", pw, err)
		}
		if pw != "" && err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	team, err := Open(Options{Config: config.Shared{Redis: srv.URL(), Secret: "right-password"}, Host: "h"})
	if err != nil {
		t.Fatalf("the right password: %v", err)
	}
	team.Close()
}

// scriptHost runs limit.lua for one host of a team on srv, as its
// exchanger would, without a Scope: the test says what the host holds, and
// moves the bucket's clock itself (elapse).
type scriptHost struct {
	t     *testing.T
	team  *Team
	key   string
	epoch string
}

// exchangeRPM is one exchange of the host on an RPM-only scope of capacity
// cap: it asks for ask, holds out (its unspent lease and requests on their
// way) and hands back ret. It returns the grant and the level after it.
func (h *scriptHost) exchangeRPM(cap, ask, ret, out float64) (grant, level float64) {
	h.t.Helper()
	argv := []any{h.team.host, h.epoch, h.team.hostTTL.Milliseconds(), 0,
		cap, ask, 0, ret, 0, out, -1,
		0, 0, 0, 0, 0, 0, -1}
	reply, err := limitScript.Run(h.t.Context(), h.team.rdb, []string{h.key, h.team.key("team", "")}, argv...).Slice()
	if err != nil {
		h.t.Fatal(err)
	}
	h.epoch, _ = reply[0].(string)
	grant = float64(reply[3].(int64))
	level, err = h.team.rdb.HGet(h.t.Context(), h.key, "r.lvl").Float64()
	if err != nil {
		h.t.Fatal(err)
	}
	return grant, level
}

// elapse moves the scope's bucket d into the past, as if d had gone by
// since its last exchange (Redis's TIME cannot be set): its refill and
// its hosts' last-seen times.
func (h *scriptHost) elapse(d time.Duration) {
	h.t.Helper()
	ctx := h.t.Context()
	all, err := h.team.rdb.HGetAll(ctx, h.key).Result()
	if err != nil {
		h.t.Fatal(err)
	}
	for f, v := range all {
		if f == "r.last" || f == "t.last" || strings.HasPrefix(f, "s:") {
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				h.t.Fatalf("%s = %q: %v", f, v, err)
			}
			h.team.rdb.HSet(ctx, h.key, f, ms-d.Milliseconds())
		}
	}
}

// The refill between two exchanges is capped by what the hosts held
// between them, not by what they hold at the second: a lease held unspent
// (or requests on their way) keeps the upstream's bucket full, refilling
// nothing, and its spending at the end of the interval empties it. Capped
// by the holdings reported at the second exchange, the bucket credited the
// whole interval's refill at once, and granted what the upstream did not
// have (most likely the one upstream 429 of TestMultihostSharedBudget on a
// loaded machine, whose first requests took long to reach the upstream).
func TestRefillNotCreditedWhileHeld(t *testing.T) {
	srv := redistest.Start(t)
	h := &scriptHost{t: t, team: openTeam(t, srv, "host-a"), key: "{test}:limits:held"}
	const rpm = 60 // 1 a second

	// The whole bucket, as a lease.
	if g, lvl := h.exchangeRPM(rpm, rpm, 0, 0); g != rpm || lvl > 0.1 {
		t.Fatalf("first exchange: granted %v (level %.2f), want the full %d", g, lvl, rpm)
	}
	// 30 s later the host reports it spent it all: the upstream, full
	// until then, is empty, whenever in those 30 s the lease went.
	h.elapse(30 * time.Second)
	g, lvl := h.exchangeRPM(rpm, rpm, 0, 0)
	if g > 0 || lvl > 0.5 {
		t.Errorf("after a lease of the whole bucket held 30 s and then spent, granted %v (level %.1f); the upstream may hold nothing: want 0", g, lvl)
	}
	// With nothing held, the refill counts in full.
	h.elapse(30 * time.Second)
	if g, _ := h.exchangeRPM(rpm, rpm, 0, 0); g < 29 || g > 31 {
		t.Errorf("30 s after the bucket emptied, with nothing held, granted %v; want the refill, 30", g)
	}
}

// The pool asks Fits, then Holds, under its lock but not the scope's: an
// exchange that runs in between must not hand the lease back as idle. (It
// did: the request went out on a lease already credited to the shared
// bucket, and was charged only at the next exchange, after the bucket may
// have granted it to another host.)
func TestLeaseNotHandedBackBetweenFitsAndHold(t *testing.T) {
	a, s := scopeInUse(t, sharedBackend(600, 0), 1)
	rpm := &limit{s, 0}
	now := time.Now()
	s.mu.Lock()
	s.lastHold = now.Add(-time.Hour) // idle for long: the lease would go back
	s.mu.Unlock()
	if !rpm.Fits(1, now) {
		t.Fatalf("no lease to admit from: %+v", a.Scopes())
	}
	exchangeNow(t, s) // between the pool's Fits and its Hold
	rpm.Hold(1, now)
	s.mu.Lock()
	lease := s.dims[0].lease
	s.mu.Unlock()
	if lease < 0 {
		t.Errorf("the lease went back between Fits and Hold: the admitted request left a debt of %v, spent beyond the grants", -lease)
	}
}

// A host back from a Redis outage before the others must not be granted
// the refill they spent, and still spend, on their safe shares: it keeps to
// its own share a moment, charging what it spends, as after an empty
// restart. (It was granted at once the whole outage's refill less only its
// own spending — capped at best by a remaining header it read during the
// outage — while the others still spent theirs: the one upstream 429 of
// TestMultihostRedisOutage/hang on a loaded CI.)
func TestBackFromOutageNotGrantedOthersSafeShare(t *testing.T) {
	srv := redistest.Start(t)
	const rpm = 600 // 10 a second; two hosts, a safe share of 5 a second each
	b := sharedBackend(rpm, 0)
	a, c := openTeam(t, srv, "host-a"), openTeam(t, srv, "host-b")
	pa, pc := sharedPool(a, b), sharedPool(c, b)
	sa, sc := a.scope(ScopeName(b), b), c.scope(ScopeName(b), b)

	// The upstream: a bucket of 600, full, refilling 10 a second.
	var mu sync.Mutex
	level, last := float64(rpm), time.Now()
	var admitted, refused atomic.Int64
	upstream := func() {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		level = min(rpm, level+now.Sub(last).Seconds()*rpm/60)
		last = now
		if level < 1 {
			refused.Add(1)
			return
		}
		level--
		admitted.Add(1)
	}
	// Both hosts keep asking throughout.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, p := range []*balance.Pool{pa, pc} {
		for range 8 {
			wg.Go(func() {
				for ctx.Err() == nil {
					balance.Do(ctx, p, balance.Request{Model: "m", Tokens: 1}, func(context.Context, *balance.Member) (struct{}, balance.Outcome, error) {
						upstream()
						return struct{}{}, noHeaders(), nil
					})
				}
			})
		}
	}
	for admitted.Load() < rpm { // the bucket spent: on the refill
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	// Redis does not answer either host: both on their safe shares.
	holdBreaker(a, time.Now().Add(time.Hour))
	holdBreaker(c, time.Now().Add(time.Hour))
	time.Sleep(2 * time.Second)
	// It answers host a again; host b's probe comes 700 ms later (a
	// loaded machine).
	holdBreaker(a, time.Now())
	exchangeNow(t, sa)
	time.Sleep(700 * time.Millisecond)
	holdBreaker(c, time.Now())
	exchangeNow(t, sc)
	time.Sleep(1500 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("upstream: %d admitted, %d refused", admitted.Load(), refused.Load())
	if n := refused.Load(); n > 0 {
		t.Errorf("two hosts drew %d upstream 429s across a redis outage; want 0", n)
	}
}

// holdBreaker opens team's breaker until until: no call is made before.
func holdBreaker(team *Team, until time.Time) {
	team.brk.mu.Lock()
	defer team.brk.mu.Unlock()
	if !team.brk.open {
		team.brk.open, team.brk.since = true, time.Now()
	}
	team.brk.probeAt = until
}
