// Package balance spreads requests over a pool of upstream backends and
// retries them: it picks a backend that serves the request's model and has
// room for it, calls it, classifies the failure, and tries again elsewhere
// within one attempt budget and one deadline.
//
// A Pool is safe for concurrent use. Its live state (in-flight calls,
// cooldowns, dead keys) is plain data guarded by one mutex and read with a
// clock passed in, so tests can drive it without sleeping.
package balance

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// Member is one backend of a pool: its configuration, the provider that
// calls it, and its live state.
type Member struct {
	Config   config.Backend
	Provider *provider.Provider

	// Counters, read without the pool's lock.
	requests atomic.Int64
	errors   atomic.Int64

	// Guarded by the pool's mu.
	inFlight      int
	cooldownUntil time.Time
	dead          bool
	current       float64 // smooth weighted round-robin state
}

// Name is the backend's configured name.
func (m *Member) Name() string { return m.Config.Name }

// Options tune a Pool. The zero value gives the defaults.
type Options struct {
	// MaxAttempts is the upstream calls one request may make, the
	// successful one included. Default 10.
	MaxAttempts int
	// BackoffBase and BackoffMax bound the exponential backoff (with full
	// jitter) after server, network and timeout errors. Defaults 200ms, 10s.
	BackoffBase, BackoffMax time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pool is a set of backends with their live state.
type Pool struct {
	opts    Options
	members []*Member

	mu      sync.Mutex    // guards the members' live state and changed
	changed chan struct{} // closed and replaced whenever a slot frees
}

// New returns a pool over members, in order.
func New(members []*Member, opts Options) *Pool {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 200 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Pool{opts: opts, members: members, changed: make(chan struct{})}
}

// Members returns the pool's members in configuration order.
func (p *Pool) Members() []*Member { return p.members }

// MemberState is a snapshot of one member's live state.
type MemberState struct {
	Name          string
	Requests      int64
	Errors        int64
	InFlight      int
	CooldownUntil time.Time // zero unless cooling down now
	Dead          bool
}

// State returns a snapshot of every member, in configuration order.
func (p *Pool) State() []MemberState {
	now := p.opts.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]MemberState, len(p.members))
	for i, m := range p.members {
		out[i] = MemberState{
			Name:     m.Name(),
			Requests: m.requests.Load(),
			Errors:   m.errors.Load(),
			InFlight: m.inFlight,
			Dead:     m.dead,
		}
		if m.cooldownUntil.After(now) {
			out[i].CooldownUntil = m.cooldownUntil
		}
	}
	return out
}

// Report says how a request was answered.
type Report struct {
	Backend  string        // the member that answered (or made the last attempt)
	Attempts int           // upstream calls made
	Upstream time.Duration // time spent inside calls
}

// Error is the failure of a whole request: the last attempt's error plus
// what was tried. Its Kind is the last upstream failure's, or KindNoBackend.
type Error struct {
	Kind     provider.Kind
	Attempts int
	Last     *provider.Error // nil when no call was made
	Message  string
}

// KindNoBackend: no backend of the pool serves the model.
const KindNoBackend provider.Kind = "no_backend"

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error {
	if e.Last == nil {
		return nil
	}
	return e.Last
}

// Do runs call on a backend chosen for model, retrying on other backends
// (or the same after a backoff) until it succeeds, fails in a way retrying
// cannot fix, the attempt budget is spent, or ctx ends. call must return a
// *provider.Error (possibly wrapped) when the upstream failed.
func Do[T any](ctx context.Context, p *Pool, model string, call func(context.Context, *Member) (T, error)) (T, Report, error) {
	v, rep, _, err := do(ctx, p, model, call, false)
	return v, rep, err
}

// Open is Do for calls whose use outlasts call, such as streams: the
// backend's slot stays taken until done is called (exactly once, and only
// when err is nil).
func Open[T any](ctx context.Context, p *Pool, model string, call func(context.Context, *Member) (T, error)) (v T, rep Report, done func(), err error) {
	return do(ctx, p, model, call, true)
}

func do[T any](ctx context.Context, p *Pool, model string, call func(context.Context, *Member) (T, error), keep bool) (T, Report, func(), error) {
	var zero T
	var rep Report
	if err := p.servesModel(model); err != nil {
		return zero, rep, nil, err
	}
	excluded := map[*Member]bool{} // failed for this request in a way only another backend can fix
	var avoid *Member              // failed transiently: prefer another if there is one
	var last *provider.Error
	backoffs := 0
	for rep.Attempts < p.opts.MaxAttempts {
		m, err := p.acquire(ctx, model, excluded, avoid)
		if err != nil {
			return zero, rep, nil, p.finalError(err, rep, last)
		}
		rep.Attempts++
		rep.Backend = m.Name()
		start := time.Now()
		v, err := call(ctx, m)
		rep.Upstream += time.Since(start)
		m.requests.Add(1)
		if err == nil {
			if keep {
				return v, rep, sync.OnceFunc(func() { p.release(m, nil) }), nil
			}
			p.release(m, nil)
			return v, rep, nil, nil
		}
		m.errors.Add(1)
		var pe *provider.Error
		if !errors.As(err, &pe) {
			pe = &provider.Error{Kind: provider.KindServer, Backend: m.Name(), Message: err.Error(), Err: err}
		}
		last = pe
		p.release(m, pe)
		switch pe.Kind {
		case provider.KindCanceled, provider.KindBadRequest:
			return zero, rep, nil, p.finalError(ctx.Err(), rep, last)
		case provider.KindTimeout:
			if ctx.Err() != nil { // our own deadline, not the upstream's
				return zero, rep, nil, p.finalError(ctx.Err(), rep, last)
			}
		case provider.KindAuth, provider.KindNotFound:
			excluded[m] = true
			continue // another backend, no backoff
		case provider.KindRateLimited:
			continue // the member cools down; acquire waits or goes elsewhere
		}
		// Server, network, timeout: back off, prefer another backend.
		avoid = m
		backoffs++
		if err := sleep(ctx, p.backoff(backoffs)); err != nil {
			return zero, rep, nil, p.finalError(err, rep, last)
		}
	}
	return zero, rep, nil, p.finalError(nil, rep, last)
}

func (p *Pool) backoff(n int) time.Duration {
	d := p.opts.BackoffBase << min(n-1, 20)
	if d <= 0 || d > p.opts.BackoffMax {
		d = p.opts.BackoffMax
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

// servesModel reports an error naming the model and the backends when no
// member serves model.
func (p *Pool) servesModel(model string) error {
	names := make([]string, 0, len(p.members))
	for _, m := range p.members {
		if m.Config.Serves(model) {
			return nil
		}
		names = append(names, m.Name())
	}
	return &Error{Kind: KindNoBackend, Message: fmt.Sprintf("no backend serves model %q (backends: %s)", model, strings.Join(names, ", "))}
}

// errNoCandidate: every member that serves the model is dead or excluded.
var errNoCandidate = errors.New("no candidate")

// acquire picks a member for model and takes one of its slots, waiting while
// every candidate is cooling down or full.
func (p *Pool) acquire(ctx context.Context, model string, excluded map[*Member]bool, avoid *Member) (*Member, error) {
	for {
		now := p.opts.Now()
		p.mu.Lock()
		m, wake, ok := p.pickLocked(now, model, excluded, avoid)
		if m != nil {
			m.inFlight++
			p.mu.Unlock()
			return m, nil
		}
		changed := p.changed
		p.mu.Unlock()
		if !ok {
			return nil, errNoCandidate
		}
		if err := waitChange(ctx, changed, wake, now); err != nil {
			return nil, err
		}
	}
}

// waitChange waits until changed is closed, the clock reaches wake (when
// set), or ctx ends.
func waitChange(ctx context.Context, changed <-chan struct{}, wake, now time.Time) error {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(wake.Sub(now))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-changed:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// pickLocked chooses by smooth weighted round-robin among the members that
// can take the request now. When none can, it says whether any could later
// (ok) and, if one is cooling down, when the first cooldown ends.
func (p *Pool) pickLocked(now time.Time, model string, excluded map[*Member]bool, avoid *Member) (chosen *Member, wake time.Time, ok bool) {
	var ready []*Member
	for _, m := range p.members {
		if !m.Config.Serves(model) || m.dead || excluded[m] {
			continue
		}
		ok = true
		if m.cooldownUntil.After(now) {
			if wake.IsZero() || m.cooldownUntil.Before(wake) {
				wake = m.cooldownUntil
			}
			continue
		}
		if m.inFlight >= m.Config.MaxConcurrent {
			continue
		}
		ready = append(ready, m)
	}
	if avoid != nil && len(ready) > 1 {
		ready = slices.DeleteFunc(ready, func(m *Member) bool { return m == avoid })
	}
	if len(ready) == 0 {
		return nil, wake, ok
	}
	var total float64
	for _, m := range ready {
		m.current += m.Config.Weight
		total += m.Config.Weight
		if chosen == nil || m.current > chosen.current {
			chosen = m
		}
	}
	chosen.current -= total
	return chosen, time.Time{}, true
}

// release frees m's slot and records what the upstream said.
func (p *Pool) release(m *Member, pe *provider.Error) {
	now := p.opts.Now()
	p.mu.Lock()
	m.inFlight--
	if pe != nil {
		switch pe.Kind {
		case provider.KindAuth:
			m.dead = true
		case provider.KindRateLimited:
			wait := pe.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
			if until := now.Add(wait); until.After(m.cooldownUntil) {
				m.cooldownUntil = until
			}
		}
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// finalError explains why a request ended without an answer.
func (p *Pool) finalError(cause error, rep Report, last *provider.Error) error {
	e := &Error{Attempts: rep.Attempts, Last: last}
	switch {
	case errors.Is(cause, context.DeadlineExceeded):
		e.Kind = provider.KindTimeout
		e.Message = fmt.Sprintf("deadline exceeded after %d attempts", rep.Attempts)
		if last != nil && last.Kind == provider.KindRateLimited {
			e.Kind = provider.KindRateLimited
			e.Message = fmt.Sprintf("every backend stayed rate limited until the deadline (%d attempts)", rep.Attempts)
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
			e.Message = fmt.Sprintf("no backend left to try after %d attempts; the last said: %v", rep.Attempts, last)
		case rep.Attempts >= p.opts.MaxAttempts && last.Kind.Retryable():
			e.Message = fmt.Sprintf("gave up after %d attempts; the last said: %v", rep.Attempts, last)
		default:
			e.Message = last.Error()
		}
	default:
		e.Kind = provider.KindServer
		e.Message = fmt.Sprintf("request failed: %v", cause)
	}
	return e
}
