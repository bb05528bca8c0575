package shared

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
)

// The shared limits.
//
// Each limit scope has one budget in Redis: a token bucket per dimension
// (RPM, TPM) with the semantics of balance.Bucket, kept by limit.lua. A
// host never asks Redis per request. It holds a lease — about a second of
// its own demand, at most the capacity over the active hosts — spends it
// locally, asks for more when half is gone, and hands it back when idle.
// A request larger than the lease asks for what it needs; while it waits,
// no host gets a smaller grant (the pool's first-come rule, made global).
//
// When Redis does not answer, a host spends what it holds, then a local
// bucket at its safe share (the capacity over the hosts last seen active),
// still lowered by the upstream's headers; what it spent meanwhile is
// charged to the shared bucket when Redis answers again.

//go:embed limit.lua
var limitLua string

var limitScript = redis.NewScript(limitLua)

const (
	// hostTTL: a host silent this long is dropped, its holdings spent
	// (Team.hostTTL; tests shorten it).
	hostTTL = 10 * time.Second
	// idleReturn: a lease unused this long is handed back (Team.idleReturn).
	idleReturn = 2 * time.Second
	// leaseSpan: a lease is about this much of the host's own demand.
	leaseSpan = time.Second
)

// ScopeName is the limit scope of b: its limit_scope, else a hash of its
// type, base URL, key, models and Azure deployments (the key never leaves
// the host).
func ScopeName(b config.Backend) string {
	if b.LimitScope != "" {
		return b.LimitScope
	}
	models := slices.Clone(b.Models)
	for m, dep := range b.ModelMap {
		models = append(models, m+"="+dep)
	}
	slices.Sort(models)
	h := sha256.Sum256([]byte(b.Type + "\x00" + b.BaseURL + "\x00" + b.Key.Reveal() + "\x00" + strings.Join(models, ",")))
	return hex.EncodeToString(h[:8])
}

// Limits returns the shared RPM and TPM limits of backend b, for
// balance.Options.Limits. Backends with the same scope share one budget,
// on this host as on every other.
func (t *Team) Limits(b config.Backend, wake func()) (rpm, tpm balance.Limit) {
	s := t.scope(ScopeName(b), b)
	s.mu.Lock()
	s.wakes = append(s.wakes, wake)
	s.mu.Unlock()
	return &limit{s, 0}, &limit{s, 1}
}

func (t *Team) scope(name string, b config.Backend) *Scope {
	t.scopesMu.Lock()
	defer t.scopesMu.Unlock()
	if s := t.scopes[name]; s != nil {
		return s
	}
	if t.scopes == nil {
		t.scopes = map[string]*Scope{}
	}
	s := &Scope{team: t, name: name, key: t.key("limits", name), kick: make(chan struct{}, 1)}
	s.dims[0] = dim{capacity: float64(b.LimitRPM), low: -1}
	s.dims[1] = dim{capacity: float64(b.LimitTPM), low: -1}
	t.scopes[name] = s
	t.wg.Add(1)
	go s.run()
	return s
}

// Scope is one limit scope's budget as this host sees it.
type Scope struct {
	team *Team
	name string
	key  string
	kick chan struct{} // wakes run

	mu        sync.Mutex
	wakes     []func() // the pools to wake when a grant lands
	dims      [2]dim   // RPM, TPM
	coolUntil time.Time
	coolAsk   time.Duration // a 429 here, not yet told
	epoch     string
	active    int
	degraded  bool
	last      time.Time // the last exchange that measured the demand
	told      time.Time // the last exchange
	retryAt   time.Time // a refused need may fit then
	lastLevel [2]int64
	nudged    bool      // another host cooled the scope: ask now
	lastHold  time.Time // the last request admitted (or found fitting), in either dimension
	// graceUntil: after finding Redis restarted empty, the host spends its
	// safe share (degraded, asking no grants, charging what it spends)
	// until then.
	graceUntil time.Time
}

// share is the safe share of a capacity: what one host may spend alone,
// over the most hosts it knows of (on this scope, or in the team).
func (s *Scope) share(capacity float64) float64 {
	return capacity / float64(max(s.active, s.team.Size()))
}

// dim is one dimension of a scope.
type dim struct {
	capacity float64         // 0: unknown
	lease    float64         // granted and not spent; below 0, spent beyond grants
	held     float64         // in requests on their way
	low      int64           // the lowest remaining read since the last exchange; -1 none
	want     float64         // the largest need a queued request has waited for
	spent    float64         // since the demand was last measured
	recent   float64         // since the last exchange
	rate     float64         // demand per second, smoothed
	fallback *balance.Bucket // while Redis does not answer: the safe share
}

func (d *dim) target(active int) float64 {
	share := d.capacity / float64(max(active, 1))
	return math.Min(math.Max(d.rate*leaseSpan.Seconds(), d.capacity/60/float64(max(active, 1))), share)
}

// ask is what to ask for at an exchange: the grant wanted, and the least
// worth having (what a waiting request needs beyond the lease). The lease
// should hold the target, or twice what went since the last exchange: a
// burst outruns the smoothed demand, and so the lease doubles to its pace
// in a few exchanges — counting what the lease already holds, or it would
// creep up at every exchange and park capacity idle.
func (d *dim) ask(active int) (ask, need float64) {
	need = math.Ceil(math.Max(d.want-d.lease, 0))
	hold := math.Max(d.target(active), math.Min(2*d.recent, d.capacity/float64(max(active, 1))))
	ask = math.Ceil(math.Max(hold-d.lease, need))
	if ask < 1 {
		ask = 0
	}
	return ask, need
}

// limit is one dimension of a scope, as a balance.Limit.
type limit struct {
	s *Scope
	i int
}

var _ balance.Limit = (*limit)(nil)

func (l *limit) Known() bool {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.dims[l.i].capacity > 0
}

func (l *limit) Capacity() float64 {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.dims[l.i].capacity
}

// Room is this host's lease and what the shared bucket held at the last
// exchange: what this host could take now, asking. (Fits and When go by
// the lease alone: the level is spent only when granted.)
func (l *limit) Room(now time.Time) float64 {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.roomLocked(l.i, now)
	if s.degraded || s.coolUntil.After(now) || s.dims[l.i].capacity <= 0 {
		return r
	}
	return math.Max(r, 0) + math.Max(float64(s.lastLevel[l.i]), 0)
}

func (s *Scope) roomLocked(i int, now time.Time) float64 {
	d := &s.dims[i]
	switch {
	case s.coolUntil.After(now):
		return 0
	case d.capacity <= 0:
		return math.Inf(1)
	case s.degraded && d.fallback != nil:
		return math.Max(d.lease, 0) + d.fallback.Room(now)
	}
	return d.lease
}

func (l *limit) Fits(n float64, now time.Time) bool {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.fitsLocked(l.i, n, now)
	if ok && s.dims[l.i].capacity > 0 && now.After(s.lastHold) {
		// The pool holds what fits right after, under its own lock but
		// not this one: an exchange in between must not hand the lease
		// back as idle, or the request would go out on a lease already
		// credited to the bucket (and granted elsewhere) and be charged
		// only at the next exchange.
		s.lastHold = now
	}
	return ok
}

func (s *Scope) fitsLocked(i int, n float64, now time.Time) bool {
	d := &s.dims[i]
	if d.capacity <= 0 {
		return !s.coolUntil.After(now)
	}
	return s.roomLocked(i, now) >= math.Min(n, d.capacity)
}

// When asks for what n needs: a grant, which wakes the pool when it lands.
func (l *limit) When(n float64, now time.Time) time.Time {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.dims[l.i]
	switch {
	case s.coolUntil.After(now):
		return s.coolUntil
	case s.fitsLocked(l.i, n, now):
		return now
	case s.degraded && d.fallback != nil:
		return d.fallback.When(math.Min(n, d.capacity)-math.Max(d.lease, 0), now)
	}
	if need := math.Min(n, d.capacity); need > d.want {
		d.want = need
		s.poke()
	}
	return now
}

func (l *limit) Hold(n float64, now time.Time) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.dims[l.i]
	if d.capacity <= 0 {
		return
	}
	if s.degraded && d.fallback != nil {
		if rest := n - math.Max(d.lease, 0); rest > 0 {
			d.fallback.Adjust(math.Min(rest, n), now)
		}
	}
	d.lease -= n
	d.held += n
	d.spent += n
	d.recent += n
	s.lastHold = now
	if d.lease < d.target(s.active)/2 {
		s.poke()
	}
}

func (l *limit) Unhold(n float64, now time.Time) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if d := &l.s.dims[l.i]; d.capacity > 0 {
		d.held = math.Max(d.held-n, 0)
	}
}

func (l *limit) Adjust(delta float64, now time.Time) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	d := &l.s.dims[l.i]
	if d.capacity <= 0 {
		return
	}
	d.lease -= delta
	if l.s.degraded && d.fallback != nil && delta > 0 {
		d.fallback.Adjust(delta, now)
	}
}

func (l *limit) Observe(r balance.Reading, now time.Time) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	d := &s.dims[l.i]
	if r.Limit > 0 && (d.capacity <= 0 || float64(r.Limit) < d.capacity) {
		d.capacity = float64(r.Limit)
		if d.fallback != nil {
			d.fallback.Resize(int(s.share(d.capacity)), now)
		}
	}
	if r.Remaining >= 0 {
		if d.low < 0 || r.Remaining < d.low {
			d.low = r.Remaining
		}
		if d.fallback != nil {
			d.fallback.Observe(balance.Reading{Remaining: r.Remaining}, now)
		}
	}
	if r.CoolUntil.After(now) {
		if r.CoolUntil.After(s.coolUntil) {
			s.coolUntil = r.CoolUntil
		}
		s.coolAsk = max(s.coolAsk, r.CoolUntil.Sub(now))
		s.poke()
	}
}

func (l *limit) Resize(n int, now time.Time) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	d := &l.s.dims[l.i]
	d.capacity = float64(max(n, 0))
	if d.fallback != nil {
		d.fallback.Resize(int(l.s.share(float64(n))), now)
	}
}

// poke wakes the scope's exchanger; it never blocks.
func (s *Scope) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run exchanges with Redis when poked, when a refused need may fit, and
// at a heartbeat while the host holds anything, until the team closes.
func (s *Scope) run() {
	defer s.team.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-s.team.done:
			s.exchange(true)
			return
		case <-s.kick:
		case <-timer.C:
		}
		next := s.exchange(false)
		timer.Reset(max(next, time.Millisecond))
	}
}

// exchange tells Redis what this host holds and spent, takes what it is
// granted, and says when to exchange again. final hands everything back.
func (s *Scope) exchange(final bool) time.Duration {
	now := time.Now()
	s.mu.Lock()
	if !final && now.Before(s.retryAt) && s.coolAsk == 0 && !s.nudged {
		// A refused need waits for its retry, but never past the
		// heartbeat: a host silent for the host TTL is dropped, and what
		// it holds counted as spent while it still spends it.
		if beat := s.told.Add(s.team.hostTTL / 3); now.Before(beat) {
			wait := min(s.retryAt.Sub(now), beat.Sub(now))
			s.mu.Unlock()
			return wait
		}
	}
	type send struct{ cap, ask, need, ret, charge, out, low float64 }
	var args [2]send
	var busy bool
	// The scope is idle when no request was admitted for a while and none
	// waits, in either dimension: a request waiting for TPM must not see
	// its RPM lease handed back meanwhile (and then wait for RPM while its
	// TPM lease goes back).
	idle := now.Sub(s.lastHold) > s.team.idleReturn
	for i := range s.dims {
		idle = idle && s.dims[i].want == 0
	}
	for i := range s.dims {
		d := &s.dims[i]
		if d.capacity <= 0 {
			continue
		}
		a := &args[i]
		a.cap, a.low = d.capacity, float64(d.low)
		if d.lease < 0 {
			a.charge, d.lease = -d.lease, 0
		}
		switch {
		case final || idle:
			a.ret, d.lease = d.lease, 0
		case s.degraded:
			// Spending the safe share (an outage, or the grace after
			// it): no grants.
		default:
			a.ask, a.need = d.ask(s.active)
		}
		a.out = d.lease + d.held
		busy = busy || a.out > 0 || a.ask > 0 || a.ret > 0 || a.charge > 0
	}
	cool := s.coolAsk
	epoch := s.epoch
	busy = busy || now.Before(s.graceUntil)
	if !busy && cool == 0 && !s.degraded && !s.nudged {
		s.mu.Unlock()
		return time.Hour
	}
	s.coolAsk, s.nudged = 0, false
	s.mu.Unlock()

	argv := []any{s.team.host, epoch, s.team.hostTTL.Milliseconds(), cool.Milliseconds()}
	for _, a := range args {
		argv = append(argv, a.cap, a.ask, a.need, a.ret, a.charge, a.out, a.low)
	}
	var reply []any
	ctx := context.Background()
	err := s.team.call(ctx, func(ctx context.Context) error {
		v, err := limitScript.Run(ctx, s.team.rdb, []string{s.key, s.team.key("team", "")}, argv...).Slice()
		reply = v
		return err
	})
	if err == nil {
		err = s.take(reply, args[0].ask, args[1].ask, now)
	}
	if cool > 0 && err == nil {
		s.team.publishCool(s.name)
	}

	s.mu.Lock()
	var next time.Duration
	if err != nil {
		// Keep the debts that could not be told, and fall back. A lease
		// handed back stays handed back: a call that timed out may still
		// run when Redis resumes, and a lease both credited and kept
		// would be spent twice (dropping it is under-use, never
		// overshoot).
		for i := range s.dims {
			s.dims[i].lease -= args[i].charge
		}
		s.coolAsk = max(s.coolAsk, cool)
		s.fallBack(now)
		next = retryEvery
	} else {
		next = s.team.hostTTL / 3 // a host holding anything reports this often
		if !s.retryAt.IsZero() {
			next = min(next, max(time.Until(s.retryAt), time.Millisecond))
		}
		if s.degraded { // the restart's grace: end it on time
			next = min(next, max(time.Until(s.graceUntil), time.Millisecond))
		}
	}
	wakes := slices.Clone(s.wakes)
	s.mu.Unlock()
	if !final {
		for _, w := range wakes {
			w()
		}
	}
	return next
}

// fallBack turns to the local safe share: buckets that start empty.
func (s *Scope) fallBack(now time.Time) {
	s.graceUntil = time.Time{} // it starts when Redis answers again
	if s.degraded {
		return
	}
	s.degraded = true
	for i := range s.dims {
		d := &s.dims[i]
		if d.capacity > 0 {
			d.fallback = balance.NewEmptyBucket(s.share(d.capacity), now)
		}
	}
}

// restartGrace is how long a host that finds Redis restarted empty, or
// answering again after an outage, keeps to its safe share (charging what
// it spends, asking no grant): the others may still be on theirs until their next
// probe (retryEvery), and a host spending the new bucket's whole refill
// meanwhile would take the team over the limit.
const restartGrace = 2 * retryEvery

// take applies a reply of limit.lua.
func (s *Scope) take(reply []any, askR, askT float64, now time.Time) error {
	if len(reply) != 9 {
		return fmt.Errorf("shared: limit script replied %d values", len(reply))
	}
	num := func(v any) float64 {
		switch x := v.(type) {
		case int64:
			return float64(x)
		case string:
			f, _ := strconv.ParseFloat(x, 64)
			return f
		}
		return 0
	}
	epoch, _ := reply[0].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch != "" && epoch != s.epoch {
		// Redis lost the bucket (restarted empty): what this host held is
		// taken as spent, and the bucket starts again from empty (the
		// script ignored this exchange's return and charge).
		for i := range s.dims {
			s.dims[i].lease = math.Min(s.dims[i].lease, 0)
		}
		s.fallBack(now)
		s.graceUntil = now.Add(restartGrace)
		s.team.log.Warn("shared limits restarted: redis lost the scope's bucket; leases dropped as spent", "scope", s.name)
	}
	s.epoch = epoch
	s.active = int(num(reply[1]))
	if cl := time.Duration(num(reply[2])) * time.Millisecond; cl > 0 {
		if u := now.Add(cl); u.After(s.coolUntil) {
			s.coolUntil = u
		}
	}
	s.retryAt = time.Time{}
	s.told = now
	dt := now.Sub(s.last).Seconds()
	for i := range s.dims {
		d := &s.dims[i]
		g, retry, lvl := num(reply[3+3*i]), num(reply[4+3*i]), num(reply[5+3*i])
		s.lastLevel[i] = int64(lvl)
		if d.capacity <= 0 {
			continue
		}
		d.lease += g
		d.low = -1
		if d.lease >= d.want {
			d.want = 0
		}
		if retry > 0 {
			if at := now.Add(time.Duration(retry) * time.Millisecond); s.retryAt.IsZero() || at.Before(s.retryAt) {
				s.retryAt = at
			}
		}
		d.recent = 0
		if dt > 0.05 {
			if !s.last.IsZero() {
				d.rate = 0.5*d.rate + 0.5*d.spent/dt
			}
			d.spent = 0
		}
	}
	if dt > 0.05 || s.last.IsZero() {
		s.last = now
	}
	if s.degraded && s.graceUntil.IsZero() {
		// Back from an outage: the other hosts may still be on their safe
		// shares until their next probe, and what they spent is charged
		// only then. Granted now, this host would be given the refill they
		// spent: it keeps to its own share a moment longer, charging.
		s.graceUntil = now.Add(restartGrace)
	}
	if s.degraded && !now.Before(s.graceUntil) {
		s.degraded = false
		for i := range s.dims {
			s.dims[i].fallback = nil
		}
	}
	return nil
}

// ScopeState is one scope as this host sees it, for the status.
type ScopeState struct {
	Name         string
	Hosts        int   // hosts active on it at the last exchange
	LevelRPM     int64 // the shared bucket's level at the last exchange; -1 unknown
	LevelTPM     int64
	LeaseRPM     float64 // what this host holds unspent
	LeaseTPM     float64
	CoolingUntil time.Time // zero unless cooling
	Degraded     bool      // spending a local safe share: Redis does not answer
	// ShareRPM and ShareTPM are that safe share while degraded; 0 otherwise
	// or when the limit is unknown.
	ShareRPM, ShareTPM float64
}

// Scopes reports every scope this host uses, by name.
func (t *Team) Scopes() []ScopeState {
	t.scopesMu.Lock()
	ss := make([]*Scope, 0, len(t.scopes))
	for _, s := range t.scopes {
		ss = append(ss, s)
	}
	t.scopesMu.Unlock()
	slices.SortFunc(ss, func(a, b *Scope) int { return strings.Compare(a.name, b.name) })
	out := make([]ScopeState, 0, len(ss))
	now := time.Now()
	for _, s := range ss {
		s.mu.Lock()
		st := ScopeState{Name: s.name, Hosts: s.active, LevelRPM: s.lastLevel[0], LevelTPM: s.lastLevel[1],
			LeaseRPM: math.Max(s.dims[0].lease, 0), LeaseTPM: math.Max(s.dims[1].lease, 0), Degraded: s.degraded}
		if s.coolUntil.After(now) {
			st.CoolingUntil = s.coolUntil
		}
		if s.degraded {
			st.ShareRPM, st.ShareTPM = s.share(s.dims[0].capacity), s.share(s.dims[1].capacity)
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	return out
}
