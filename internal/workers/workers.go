// Package workers runs functions on goroutines that stay for the next one.
//
// A new goroutine starts on a small stack and grows it, copying it each
// time it doubles, as its calls go deeper: a request's upstream call
// through net/http grows a fresh stack three or four times, which measured
// about 9 % of lbgptd's CPU under load (docs/benchmarks.md). A goroutine
// kept between uses keeps its grown stack.
package workers

import (
	"slices"
	"sync"
	"time"
)

// IdleFor is how long a goroutine waits for the next function before it
// ends.
const IdleFor = 10 * time.Second

// Pool runs functions on the goroutines it keeps. The zero Pool is ready
// to use; Close ends its goroutines once they are idle. In a
// testing/synctest bubble, Close the pool before the bubble's function
// returns: an idle goroutine waits on the bubble's clock, and the bubble
// does not advance it after its function has returned.
type Pool struct {
	mu      sync.Mutex
	idle    []*worker // most recently parked last
	closed  bool
	started int // goroutines started, for the tests
}

type worker struct {
	work chan func() // one slot: a worker taken from idle gets exactly one
}

// Go runs f on an idle goroutine of the pool, or on a new one.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- f
		return
	}
	p.started++
	p.mu.Unlock()
	go p.run(&worker{work: make(chan func(), 1)}, f)
}

// Close ends the idle goroutines; the busy ones end when their function
// returns. Go still works after Close, on a goroutine that ends with its
// function.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, w := range p.idle {
		w.work <- nil // the slot is free: nobody else took w
	}
	p.idle = nil
}

// run runs f, then the functions Go hands w, until it has waited IdleFor
// for one or the pool closed.
func (p *Pool) run(w *worker, f func()) {
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for f != nil {
		f()
		f = nil // not kept alive while idle
		if !p.park(w) {
			return
		}
		if idle == nil {
			idle = time.NewTimer(IdleFor)
		} else {
			idle.Reset(IdleFor)
		}
		select {
		case f = <-w.work:
		case <-idle.C:
			if p.leave(w) {
				return
			}
			f = <-w.work // Go took w meanwhile: its function is on the way
		}
	}
}

// park puts w among the idle; false when the pool is closed.
func (p *Pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// leave takes w out of the idle, and reports whether it was there.
func (p *Pool) leave(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.idle, w)
	if i < 0 {
		return false
	}
	p.idle = slices.Delete(p.idle, i, i+1)
	return true
}

// Idle is the count of goroutines waiting for a function.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}
