// Package balance spreads requests over a pool of upstream backends without
// ever going over their rate limits, and retries them: it admits a request
// to a backend that serves its model and has room for it (free slot, RPM
// and TPM headroom for its estimated tokens), calls it, reconciles the
// estimate with the real usage and the server's rate-limit headers,
// classifies failures, and tries again elsewhere within one attempt budget
// and one deadline. When no backend has room, requests wait in a
// first-come queue until one has or their deadline passes.
//
// A Pool is safe for concurrent use. Its state is plain data guarded by one
// mutex and read with a clock passed in (Options.Now), so tests can drive it
// with a fake clock or testing/synctest; one timer per pool wakes the queue
// when a limit refills or a cooldown ends.
package balance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// Options tune a Pool. The zero value gives the defaults.
type Options struct {
	// Strategy is config.StrategyWeighted, StrategyMaxHeadroom (default)
	// or StrategyPriority.
	Strategy string
	// Overallocate admits a request to the best backend even when every
	// backend is at its limits, instead of queueing it.
	Overallocate bool
	// MaxAttempts is the upstream calls one request may make, the
	// successful one included. Default 10.
	MaxAttempts int
	// BackoffBase and BackoffMax bound the exponential backoff (with full
	// jitter) after server, network and timeout errors. Defaults 200ms, 10s.
	BackoffBase, BackoffMax time.Duration
	// Reprobe is how long a backend with a refused key rests before one
	// request tries it again. Default 5m.
	Reprobe time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Limits makes a backend's RPM and TPM limits; wake asks the pool to
	// look at its queue again, for limits whose room appears on its own.
	// nil: each is a Bucket of this daemon alone, sized by the backend's
	// limit_rpm and limit_tpm.
	Limits func(b config.Backend, wake func()) (rpm, tpm Limit)
}

// Pool is a set of backends with their live state.
type Pool struct {
	now func() time.Time // Options.Now

	mu      sync.Mutex // guards opts, members, the members' live state, queue and timer
	opts    Options
	members []*Member
	queue   []*waiter // requests waiting for room, first come first
	timer   *time.Timer
	wake    time.Time // when timer fires; zero when stopped
	closed  bool      // Close was called: no more probes
}

// Member is one backend of a pool: its configuration, the provider that
// calls it, and its live state.
type Member struct {
	Config   config.Backend
	Provider *provider.Provider

	// Guarded by the pool's mu.
	rpm, tpm      Limit
	inFlight      int
	reserved      int // estimated tokens of the requests in flight
	cooldownUntil time.Time
	downUntil     time.Time // after failures in a row: rests until then, then one request probes it
	failures      int       // server, network and timeout failures among the last calls (outcomes)
	outcomes      uint16    // the last healthWindow calls, newest in bit 0: 1 a failure, 0 a success
	seen          int       // calls recorded in outcomes, up to healthWindow
	deadUntil     time.Time // zero while the key works
	probing       bool      // one request is re-trying a dead key
	current       float64   // smooth weighted round-robin state
	avgCost       float64   // moving average of estimated request tokens
	stats         stats
	retired       bool        // a reload removed it: it finishes its calls, then closes its connections
	probeTimer    *time.Timer // a pending free probe of its health; nil when none
	probes        int         // probes in a row that found it still failing
}

// closeIdle closes the member's idle upstream connections.
func (m *Member) closeIdle() {
	if m.Provider != nil {
		go m.Provider.CloseIdleConnections()
	}
}

// Name is the backend's configured name.
func (m *Member) Name() string { return m.Config.Name }

// New returns a pool over backends, in order.
func New(backends []config.Backend, providers []*provider.Provider, opts Options) *Pool {
	opts = withDefaults(opts)
	now := opts.Now()
	p := &Pool{now: opts.Now, opts: opts}
	for i, b := range backends {
		var prov *provider.Provider
		if i < len(providers) {
			prov = providers[i]
		}
		p.members = append(p.members, p.newMember(memberDefaults(b), prov, now))
	}
	return p
}

func withDefaults(opts Options) Options {
	if opts.Strategy == "" {
		opts.Strategy = config.StrategyMaxHeadroom
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = config.DefaultMaxAttempts
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = config.DefaultBackoffBase
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = max(config.DefaultBackoffMax, opts.BackoffBase)
	}
	if opts.Reprobe <= 0 {
		opts.Reprobe = config.DefaultReprobe
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return opts
}

func memberDefaults(b config.Backend) config.Backend {
	if b.MaxConcurrent <= 0 {
		b.MaxConcurrent = config.DefaultMaxConcurrent
	}
	if b.Weight <= 0 {
		b.Weight = config.DefaultWeight
	}
	return b
}

func (p *Pool) newMember(b config.Backend, prov *provider.Provider, now time.Time) *Member {
	m := &Member{Config: b, Provider: prov}
	if p.opts.Limits != nil {
		m.rpm, m.tpm = p.opts.Limits(b, p.lookAgain)
	} else {
		m.rpm, m.tpm = NewBucket(float64(b.LimitRPM), now), NewBucket(float64(b.LimitTPM), now)
	}
	return m
}

// lookAgain looks at the queue again: a limit found room on its own.
func (p *Pool) lookAgain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) > 0 {
		p.dispatchLocked(p.now())
	}
}

// Counting is how admission must count a request's tokens.
type Counting int

const (
	// CountNone: no backend that could take the request has a TPM limit;
	// its tokens are not needed.
	CountNone Counting = iota
	// CountBound: every TPM limit it could meet has room to spare, so an
	// upper bound of its tokens serves as well as a count. (The
	// reservation is settled against the upstream's usage after the call.)
	CountBound
	// CountExact: some limit is short enough that an over-estimate would
	// keep other requests out: count the tokens.
	CountExact
)

// Counting says how to count req's tokens, req.Tokens being an upper
// bound of them. Counting tokens is the costliest step of admission; it
// is worth its cost only when a bucket runs low, and the bound's
// over-estimate (a token spans at least one byte) would hold room others
// could use. A bucket has room to spare when it stays half full after
// taking the bound.
func (p *Pool) Counting(req Request) Counting {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	c := CountNone
	for _, m := range p.members {
		if !m.tpm.Known() || !m.serves(req) {
			continue
		}
		if m.tpm.Room(now)-float64(req.Tokens) < m.tpm.Capacity()/2 {
			return CountExact
		}
		c = CountBound
	}
	return c
}

// Members returns the pool's members in configuration order. Their Config
// may change under a Reconfigure: read it through State.
func (p *Pool) Members() []*Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members)
}

// Request is what the pool needs to know of a request to admit it.
type Request struct {
	Model  string
	Tokens int // estimated total tokens: prompt + the answer's bound or estimate
	// Backend pins the request to the member of that name, whatever its
	// models (a stateful response lives on the account that made it); ""
	// lets the pool choose among those that serve Model.
	Backend string
}

// Outcome is what one upstream call reports back.
type Outcome struct {
	Obs provider.Observation // status and rate-limit headers
	// Tokens is what the upstream counted against its TPM limit, from the
	// usage it reported; 0 if unknown. The reservation is reconciled to it.
	Tokens int
}

// Report says how a request was answered.
type Report struct {
	Backend  string        // the member that answered (or made the last attempt)
	Attempts int           // upstream calls made
	Upstream time.Duration // time spent inside calls
	Queued   time.Duration // time spent waiting for room
}

// Error is the failure of a whole request: the last attempt's error plus
// what was tried. Its Kind is the last upstream failure's, or KindNoBackend.
type Error struct {
	Kind     provider.Kind
	Attempts int
	Last     *provider.Error // nil when no call was made
	Message  string
	Cause    error // why the request stopped, when it was not the upstream: the context's cause
}

// KindNoBackend: no backend of the pool serves the model.
const KindNoBackend provider.Kind = "no_backend"

// KindTooLarge: the request needs more tokens than any backend's limit.
const KindTooLarge provider.Kind = "too_large"

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Last != nil {
		errs = append(errs, e.Last)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// Do runs call on a backend admitted for req, retrying on other backends
// (or the same after a backoff) until it succeeds, fails in a way retrying
// cannot fix, the attempt budget is spent, or ctx ends. call must return a
// *provider.Error (possibly wrapped) when the upstream failed.
func Do[T any](ctx context.Context, p *Pool, req Request, call func(context.Context, *Member) (T, Outcome, error)) (T, Report, error) {
	v, rep, _, err := do(ctx, p, req, call, false)
	return v, rep, err
}

// Open is Do for calls whose use outlasts call, such as streams: the
// backend's slot stays taken until done is called (once, and only when err
// is nil) with the final outcome and the error that ended the use, if any.
func Open[T any](ctx context.Context, p *Pool, req Request, call func(context.Context, *Member) (T, Outcome, error)) (v T, rep Report, done func(Outcome, error), err error) {
	return do(ctx, p, req, call, true)
}

func do[T any](ctx context.Context, p *Pool, req Request, call func(context.Context, *Member) (T, Outcome, error), keep bool) (T, Report, func(Outcome, error), error) {
	var zero T
	var rep Report
	if err := p.admissible(req); err != nil {
		return zero, rep, nil, err
	}
	opts := p.options()
	w := &waiter{req: req, excluded: map[*Member]bool{}, grant: make(chan grant, 1)}
	var last *provider.Error
	backoffs := 0
	for rep.Attempts < opts.MaxAttempts {
		queued := time.Now()
		m, err := p.acquire(ctx, w)
		rep.Queued += time.Since(queued)
		if errors.Is(err, errNoCandidate) {
			if e := p.admissible(req); e != nil { // a limit learnt since: now too small
				return zero, rep, nil, e
			}
		}
		if err != nil {
			return zero, rep, nil, finalError(opts, err, rep, last)
		}
		rep.Attempts++
		rep.Backend = m.Name()
		start := time.Now()
		v, out, err := safeCall(ctx, m, call)
		elapsed := time.Since(start)
		p.arrived(m, req)
		rep.Upstream += elapsed
		retry := rep.Attempts > 1
		if err == nil {
			if keep {
				var once sync.Once
				opened := out.Obs
				return v, rep, func(out Outcome, err error) {
					if out.Obs.Status == 0 {
						out.Obs = opened // the headers of the response that opened the stream
					}
					once.Do(func() { p.release(m, req, out, classify(m, err), retry, elapsed) })
				}, nil
			}
			p.release(m, req, out, nil, retry, elapsed)
			return v, rep, nil, nil
		}
		pe := classify(m, err)
		last = pe
		p.release(m, req, out, pe, retry, elapsed)
		if pe.Kind == provider.KindServer && pe.Status >= 200 && pe.Status <= 299 {
			// A 2xx whose body is unusable was charged all the same:
			// sending it again would pay twice.
			return zero, rep, nil, finalError(opts, nil, rep, last)
		}
		switch pe.Kind {
		case provider.KindCanceled, provider.KindBadRequest:
			return zero, rep, nil, finalError(opts, context.Cause(ctx), rep, last)
		case provider.KindTimeout:
			if ctx.Err() != nil { // our own deadline, not the upstream's
				return zero, rep, nil, finalError(opts, context.Cause(ctx), rep, last)
			}
		case provider.KindAuth, provider.KindNotFound:
			w.excluded[m] = true
			continue // another backend, no backoff
		case provider.KindRateLimited:
			continue // the member cools down; acquire waits or goes elsewhere
		}
		// Server, network, timeout: prefer another backend — at once when
		// one has room (a request need not wait out one backend's trouble)
		// — else back off holding no slot.
		w.avoid = m
		if p.readyElsewhere(w, m) {
			continue
		}
		backoffs++
		if err := sleep(ctx, backoff(opts, backoffs)); err != nil {
			return zero, rep, nil, finalError(opts, context.Cause(ctx), rep, last)
		}
	}
	return zero, rep, nil, finalError(opts, nil, rep, last)
}

// readyElsewhere reports whether a member other than m has room for w now.
func (p *Pool) readyElsewhere(w *waiter, m *Member) bool {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.members {
		if o != m && p.candidateLocked(now, o, w) && p.readyLocked(now, o, w) {
			return true
		}
	}
	return false
}

// safeCall runs call, turning a panic into an error so that the member's
// slot is still released.
func safeCall[T any](ctx context.Context, m *Member, call func(context.Context, *Member) (T, Outcome, error)) (v T, out Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &provider.Error{Kind: provider.KindBadRequest, Backend: m.Name(), Message: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	return call(ctx, m)
}

// classify returns err as a *provider.Error naming m (nil for nil).
func classify(m *Member, err error) *provider.Error {
	pe := provider.AsError(err)
	if pe != nil && pe.Backend == "" {
		pe.Backend = m.Name()
	}
	return pe
}

// options returns the pool's options now (Reconfigure may change them).
func (p *Pool) options() Options {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts
}

func backoff(opts Options, n int) time.Duration {
	d := opts.BackoffBase << min(n-1, 20)
	if d <= 0 || d > opts.BackoffMax {
		d = opts.BackoffMax
	}
	return time.Duration(rand.Int64N(int64(d)) + 1) // full jitter
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// admissible reports an error when no member could ever take req: none
// serves its model (or the backend it is pinned to is gone), or every one
// that does has a token limit smaller than the request. Such a request is
// refused at once: it never touches a bucket nor waits in the queue, where
// it would keep every backend's refill for itself.
func (p *Pool) admissible(req Request) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.members))
	var limits []string
	for _, m := range p.members {
		names = append(names, m.Name())
		if !m.serves(req) {
			continue
		}
		if m.fitsEver(req) {
			return nil
		}
		limits = append(limits, fmt.Sprintf("%s: %d", m.Name(), int64(m.tpm.Capacity())))
	}
	switch {
	case limits != nil:
		return &Error{Kind: KindTooLarge, Message: fmt.Sprintf("the request needs about %d tokens (its prompt and answer bound), more than the tokens-per-minute limit of every backend that serves model %q (%s): "+
			"it can never be sent; shorten it or lower its max_tokens", req.Tokens, req.Model, strings.Join(limits, ", "))}
	case req.Backend != "":
		return &Error{Kind: KindNoBackend, Message: fmt.Sprintf("backend %q is no longer configured (backends: %s)", req.Backend, strings.Join(names, ", "))}
	}
	return &Error{Kind: KindNoBackend, Message: fmt.Sprintf("no backend serves model %q (backends: %s)", req.Model, strings.Join(names, ", "))}
}

// serves reports whether m may take req: the member it is pinned to, or
// one that serves its model.
func (m *Member) serves(req Request) bool {
	if req.Backend != "" {
		return m.Name() == req.Backend
	}
	return m.Config.Serves(req.Model)
}

// fitsEver reports whether req fits m's token limit when the bucket is
// full (an unknown limit always does).
func (m *Member) fitsEver(req Request) bool {
	return !m.tpm.Known() || float64(req.Tokens) <= m.tpm.Capacity()
}

// A backend is taken out for a while when, among its last healthWindow
// calls, at least downAfter failed, and at least half of them: a backend
// failing every other call goes out (counting failures in a row, it never
// did), one busy backend's rare failure does not.
const (
	downAfter    = 3
	healthWindow = 10
)

// record notes the outcome of one of m's calls and returns the failures
// among its last healthWindow calls.
func (m *Member) record(failed bool) int {
	m.outcomes <<= 1
	if failed {
		m.outcomes |= 1
	}
	m.seen = min(m.seen+1, healthWindow)
	m.failures = bits.OnesCount16(m.outcomes & (1<<m.seen - 1))
	return m.failures
}

// errNoCandidate: every member that serves the model is dead or excluded.
var errNoCandidate = errors.New("no candidate")

// waiter is one request looking for a backend.
type waiter struct {
	req      Request
	excluded map[*Member]bool // failed for this request in a way only another backend can fix
	avoid    *Member          // failed transiently: prefer another if there is one
	grant    chan grant       // capacity 1: the pool's answer while queued
}

type grant struct {
	m   *Member
	err error
}

// acquire admits w to a member, queueing while none has room.
func (p *Pool) acquire(ctx context.Context, w *waiter) (*Member, error) {
	now := p.now()
	p.mu.Lock()
	if len(p.queue) == 0 {
		if m := p.admitLocked(now, w, nil); m != nil {
			p.mu.Unlock()
			return m, nil
		}
	}
	if !p.hasCandidateLocked(now, w) {
		p.mu.Unlock()
		return nil, errNoCandidate
	}
	p.queue = append(p.queue, w)
	p.dispatchLocked(now)
	p.mu.Unlock()

	select {
	case g := <-w.grant:
		return g.m, g.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, q := range p.queue {
		if q == w {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			return nil, context.Cause(ctx)
		}
	}
	// Granted while the context ended: hand the reservation back.
	if g := <-w.grant; g.m != nil {
		p.unreserveLocked(g.m, w.req)
		p.dispatchLocked(p.now())
	}
	return nil, context.Cause(ctx)
}

// dispatchLocked admits queued requests in arrival order, then sets the
// timer for the next time one could be admitted. A member that an earlier
// waiter could use but found full is kept for it: later waiters may not
// take its refill, so large requests are not starved by small ones.
func (p *Pool) dispatchLocked(now time.Time) {
	kept := map[*Member]bool{}
	q := p.queue[:0]
	for _, w := range p.queue {
		if !p.hasCandidateLocked(now, w) {
			w.grant <- grant{err: errNoCandidate}
			continue
		}
		if m := p.admitLocked(now, w, kept); m != nil {
			w.grant <- grant{m: m}
			continue
		}
		for _, m := range p.members {
			if p.candidateLocked(now, m, w) {
				kept[m] = true
			}
		}
		q = append(q, w)
	}
	clear(p.queue[len(q):])
	p.queue = q
	p.scheduleLocked(now)
}

// scheduleLocked sets the timer to the earliest time a queued request could
// fit because a bucket refilled, a cooldown ended or a dead key is due for a
// probe. Slots that free up wake the queue on release instead.
func (p *Pool) scheduleLocked(now time.Time) {
	var next time.Time
	for _, w := range p.queue {
		for _, m := range p.members {
			if !p.candidateLocked(now, m, w) {
				continue
			}
			t := later(m.cooldownUntil, m.downUntil, m.rpm.When(1, now), m.tpm.When(float64(w.req.Tokens), now))
			if !t.After(now) {
				continue // waits for a slot or a probe: release wakes the queue
			}
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	if next.IsZero() || (!p.wake.IsZero() && !next.Before(p.wake) && p.wake.After(now)) {
		return
	}
	p.wake = next
	d := max(next.Sub(now), time.Millisecond)
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.onTimer)
	} else {
		p.timer.Reset(d)
	}
}

func (p *Pool) onTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wake = time.Time{}
	p.dispatchLocked(p.now())
}

func later(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// candidateLocked reports whether m could ever take w: it serves the model,
// its key is not refused (or is due for a probe), and w has not excluded it.
func (p *Pool) candidateLocked(now time.Time, m *Member, w *waiter) bool {
	return m.serves(w.req) && m.fitsEver(w.req) && !w.excluded[m] && !m.deadUntil.After(now)
}

// hasCandidateLocked reports whether any member could take w eventually.
func (p *Pool) hasCandidateLocked(now time.Time, w *waiter) bool {
	for _, m := range p.members {
		if p.candidateLocked(now, m, w) {
			return true
		}
	}
	return false
}

// readyLocked reports whether m has room for w now.
func (p *Pool) readyLocked(now time.Time, m *Member, w *waiter) bool {
	switch {
	case m.cooldownUntil.After(now), m.downUntil.After(now):
		return false
	case (!m.deadUntil.IsZero() || !m.downUntil.IsZero()) && (m.probing || m.probeTimer != nil): // one probe at a time; a free one first
		return false
	case m.inFlight >= m.Config.MaxConcurrent:
		return false
	}
	return m.rpm.Fits(1, now) && m.tpm.Fits(float64(w.req.Tokens), now)
}

// admitLocked picks a member with room for w by the pool's strategy and
// reserves it. kept members are skipped (see dispatchLocked).
func (p *Pool) admitLocked(now time.Time, w *waiter, kept map[*Member]bool) *Member {
	var ready []*Member
	for _, m := range p.members {
		if p.candidateLocked(now, m, w) && !kept[m] && p.readyLocked(now, m, w) {
			ready = append(ready, m)
		}
	}
	if w.avoid != nil && len(ready) > 1 {
		for i, m := range ready {
			if m == w.avoid {
				ready = append(ready[:i], ready[i+1:]...)
				break
			}
		}
	}
	if len(ready) == 0 && p.opts.Overallocate {
		for _, m := range p.members {
			if p.candidateLocked(now, m, w) && !m.cooldownUntil.After(now) && !m.downUntil.After(now) && m.deadUntil.IsZero() {
				ready = append(ready, m)
			}
		}
	}
	if len(ready) == 0 {
		return nil
	}
	m := p.choose(now, ready, float64(max(w.req.Tokens, 1)))
	p.reserveLocked(now, m, w.req)
	return m
}

// choose applies the strategy to members that all have room.
func (p *Pool) choose(now time.Time, ready []*Member, cost float64) *Member {
	sel, ok := selectors[p.opts.Strategy]
	if !ok {
		sel = selectors[config.StrategyMaxHeadroom]
	}
	return sel.pick(now, ready, cost)
}

// A selector is a strategy: it picks one of members that all have room for
// a request of cost tokens.
type selector interface {
	pick(now time.Time, ready []*Member, cost float64) *Member
}

// selectors are the strategies by their names in [balance] strategy.
var selectors = map[string]selector{
	config.StrategyWeighted:    weighted{},
	config.StrategyMaxHeadroom: maxHeadroom{},
	config.StrategyPriority:    priority{},
}

// weighted spreads requests in proportion to the backends' weights.
type weighted struct{}

func (weighted) pick(_ time.Time, ready []*Member, _ float64) *Member { return swrr(ready) }

// maxHeadroom picks the backend that could take the most requests like
// this one; ties (equal limits, or none known) go by weight.
type maxHeadroom struct{}

func (maxHeadroom) pick(now time.Time, ready []*Member, cost float64) *Member {
	var top []*Member
	bestScore := math.Inf(-1)
	for _, m := range ready {
		s := headroom(now, m, cost)
		switch {
		case s > bestScore+1e-9:
			bestScore, top = s, append(top[:0], m)
		case math.Abs(s-bestScore) <= 1e-9:
			top = append(top, m)
		}
	}
	return swrr(top)
}

// priority keeps to the lowest tier with room, by headroom within it.
type priority struct{}

func (priority) pick(now time.Time, ready []*Member, cost float64) *Member {
	best := ready[0].Config.Priority
	for _, m := range ready {
		best = min(best, m.Config.Priority)
	}
	tier := ready[:0:0]
	for _, m := range ready {
		if m.Config.Priority == best {
			tier = append(tier, m)
		}
	}
	return maxHeadroom{}.pick(now, tier, cost)
}

// headroom is how many more requests of cost tokens m could take now: the
// least of its RPM room, TPM room and free slots, over the limits it knows.
func headroom(now time.Time, m *Member, cost float64) float64 {
	h := float64(m.Config.MaxConcurrent - m.inFlight)
	if m.rpm.Known() || m.tpm.Known() {
		h = math.Inf(1)
	}
	if m.rpm.Known() {
		h = math.Min(h, m.rpm.Room(now))
	}
	if m.tpm.Known() {
		h = math.Min(h, m.tpm.Room(now)/cost)
	}
	return h
}

// swrr is smooth weighted round-robin: over time each member is chosen in
// proportion to its weight, evenly spread.
func swrr(ms []*Member) *Member {
	var chosen *Member
	var total float64
	for _, m := range ms {
		m.current += m.Config.Weight
		total += m.Config.Weight
		if chosen == nil || m.current > chosen.current {
			chosen = m
		}
	}
	chosen.current -= total
	return chosen
}

func (p *Pool) reserveLocked(now time.Time, m *Member, req Request) {
	m.inFlight++
	m.reserved += req.Tokens
	m.rpm.Hold(1, now)
	m.tpm.Hold(float64(req.Tokens), now)
	if !m.deadUntil.IsZero() || !m.downUntil.IsZero() {
		m.probing = true
	}
	const alpha = 0.1
	if m.avgCost == 0 {
		m.avgCost = float64(req.Tokens)
	}
	m.avgCost += alpha * (float64(req.Tokens) - m.avgCost)
}

// unreserveLocked undoes a reservation that was never used.
func (p *Pool) unreserveLocked(m *Member, req Request) {
	now := p.now()
	m.inFlight--
	m.reserved -= req.Tokens
	m.probing = false
	m.rpm.Unhold(1, now)
	m.tpm.Unhold(float64(req.Tokens), now)
	m.rpm.Adjust(-1, now)
	m.tpm.Adjust(-float64(req.Tokens), now)
}

// arrived ends the hold of req's reservation once its call has returned
// (for a stream, once it is open): the upstream has charged it by then, if
// ever, so it refills from now on. The slot stays taken until release.
func (p *Pool) arrived(m *Member, req Request) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	m.rpm.Unhold(1, now)
	m.tpm.Unhold(float64(req.Tokens), now)
	p.dispatchLocked(now) // a higher ceiling may bring a refill within reach
}

// release frees m's slot, reconciles the reservation with what the upstream
// reported, records the outcome, and admits whoever can go now.
func (p *Pool) release(m *Member, req Request, out Outcome, pe *provider.Error, retry bool, elapsed time.Duration) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	m.inFlight--
	m.reserved -= req.Tokens
	m.probing = false
	if pe == nil && out.Tokens > 0 {
		m.tpm.Adjust(float64(out.Tokens-req.Tokens), now)
	}
	// Failures keep their reservation: the upstream may have counted them.
	// But a request refused with 429 was not processed: its tokens come
	// back (the request itself may count against the RPM limit, as OpenAI
	// says), before the server's readings lower the level.
	if pe != nil && pe.Kind == provider.KindRateLimited {
		m.tpm.Adjust(-float64(req.Tokens), now)
	}
	if out.Obs.Status != 0 { // a response arrived: its headers are readings
		rl := out.Obs.RateLimit
		rr := Reading{Limit: rl.LimitRequests, Remaining: rl.RemainingRequests}
		if pe != nil && pe.Kind == provider.KindRateLimited {
			rr.CoolUntil = now.Add(coolFor(pe))
		}
		m.rpm.Observe(rr, now)
		m.tpm.Observe(Reading{Limit: rl.LimitTokens, Remaining: rl.RemainingTokens}, now)
	}
	switch {
	case pe == nil:
		if !m.downUntil.IsZero() { // the request that probed it: a clean slate
			m.outcomes, m.seen = 0, 0
		}
		m.deadUntil, m.downUntil = time.Time{}, time.Time{}
		m.record(false)
	case pe.Kind == provider.KindServer || pe.Kind == provider.KindNetwork || pe.Kind == provider.KindTimeout:
		// A backend failing call after call (refusing connections, say) is
		// taken out for a while, doubling from 1s up to a minute, rather
		// than tried by every request: it keeps the most headroom because
		// failed calls cost it nothing. One that took a request and said
		// nothing at all is taken out at once: the next request would wait
		// as long.
		fails := m.record(true)
		silent := pe.Code == provider.CodeNoHeaders
		if silent || (fails >= downAfter && 2*fails >= m.seen) {
			m.downUntil = now.Add(min(time.Second<<min(max(fails-downAfter, 0), 6), time.Minute))
			p.probeLocked(m, m.downUntil.Sub(now))
		}
	case pe.Kind == provider.KindAuth:
		m.deadUntil = now.Add(p.opts.Reprobe)
		p.probeLocked(m, firstKeyProbe)
	case pe.Kind == provider.KindRateLimited:
		if until := now.Add(coolFor(pe)); until.After(m.cooldownUntil) {
			m.cooldownUntil = until
		}
	}
	m.stats.record(now, pe, retry, out.Tokens, elapsed)
	if m.retired && m.inFlight == 0 {
		m.closeIdle()
	}
	p.dispatchLocked(now)
}

// coolFor is how long a 429 cools its backend: what it asked, else a
// second.
func coolFor(pe *provider.Error) time.Duration {
	if pe.RetryAfter > 0 {
		return pe.RetryAfter
	}
	return time.Second
}

// Health is learnt from a free probe — the backend's model list, a GET
// that costs nothing — rather than by spending a user's request on a
// backend that is down or whose key was refused: a member with a provider
// stays out until a probe says it answers again. (Without a provider, as
// in tests of the pool alone, one request probes it once its rest is over.)

// firstKeyProbe is when a refused key is first asked again; the waits then
// double up to Options.Reprobe.
const firstKeyProbe = 10 * time.Second

// probeTimeout bounds one probe.
const probeTimeout = 10 * time.Second

// probeLocked schedules a probe of m after wait, unless one is pending.
func (p *Pool) probeLocked(m *Member, wait time.Duration) {
	if m.Provider == nil || m.probeTimer != nil || p.closed {
		return
	}
	m.probeTimer = time.AfterFunc(wait, func() { p.probe(m) })
}

// probe asks m for its model list and puts it back in service when it
// answers with anything but a refused key or a failure; else it rests
// longer and is asked again.
func (p *Pool) probe(m *Member) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	_, _, err := m.Provider.Models(ctx)
	cancel()
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	m.probeTimer = nil
	if m.retired || p.closed {
		return
	}
	pe := classify(m, err)
	switch {
	case pe == nil || pe.Kind == provider.KindNotFound || pe.Kind == provider.KindBadRequest || pe.Kind == provider.KindRateLimited:
		// It answered, and did not refuse the key (a server without a
		// model list answers 404; that is an answer).
		m.downUntil, m.deadUntil, m.failures, m.outcomes, m.seen, m.probes = time.Time{}, time.Time{}, 0, 0, 0, 0
		p.dispatchLocked(now)
	case pe.Kind == provider.KindAuth:
		m.probes++
		wait := min(firstKeyProbe<<min(m.probes, 10), p.opts.Reprobe)
		m.downUntil, m.deadUntil = time.Time{}, now.Add(wait)
		p.probeLocked(m, wait)
	default:
		m.probes++
		wait := min(time.Second<<min(m.probes, 6), time.Minute)
		m.downUntil = now.Add(wait)
		p.probeLocked(m, wait)
	}
}

// Close stops the pool's probes. Requests still work; a backend that goes
// down then waits for a request to probe it.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, m := range p.members {
		if m.probeTimer != nil {
			m.probeTimer.Stop()
			m.probeTimer = nil
		}
	}
}

// finalError explains why a request ended without an answer.
func finalError(opts Options, cause error, rep Report, last *provider.Error) error {
	e := &Error{Attempts: rep.Attempts, Last: last}
	if cause != nil && !errors.Is(cause, errNoCandidate) {
		e.Cause = cause
	}
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		e.Kind = provider.KindTimeout
		e.Message = fmt.Sprintf("deadline exceeded after %s", plural(rep.Attempts, "attempt"))
		if rep.Attempts == 0 {
			e.Kind = provider.KindRateLimited
			e.Message = fmt.Sprintf("deadline exceeded waiting %s for a backend with room under its limits", rep.Queued.Round(time.Millisecond))
		}
		if last != nil && last.Kind == provider.KindRateLimited {
			e.Kind = provider.KindRateLimited
			e.Message = fmt.Sprintf("every backend stayed rate limited until the deadline (%s)", plural(rep.Attempts, "attempt"))
		}
	case errors.Is(cause, context.Canceled):
		e.Kind = provider.KindCanceled
		e.Message = "canceled"
	case errors.Is(cause, errNoCandidate) && last == nil:
		e.Kind = provider.KindAuth
		e.Message = "every backend serving this model has a refused API key"
	case last != nil:
		e.Kind = last.Kind
		switch {
		case errors.Is(cause, errNoCandidate) && rep.Attempts > 1:
			e.Message = fmt.Sprintf("no backend left to try after %s; the last said: %v", plural(rep.Attempts, "attempt"), last)
		case rep.Attempts >= opts.MaxAttempts && last.Kind.Retryable():
			e.Message = fmt.Sprintf("gave up after %s; the last said: %v", plural(rep.Attempts, "attempt"), last)
		default:
			e.Message = last.Error()
		}
	default:
		e.Kind = provider.KindCanceled
		e.Message = fmt.Sprintf("request stopped: %v", cause)
	}
	return e
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
