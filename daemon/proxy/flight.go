package proxy

import (
	"context"
	"sync"
)

// flights coalesces identical requests in flight at the same time: the first
// makes the upstream call, the others wait for its answer. The call runs on
// its own context with no deadline of its own, canceled only when its last
// waiter has gone (with that waiter's reason as the cause), so one impatient
// client cannot fail the others.
type flights[T any] struct {
	mu sync.Mutex // guards m and every flight's waiters
	m  map[string]*flight[T]
	// run starts a call on another goroutine: the pipeline's workers,
	// whose goroutines keep the stack an upstream call grows (set by New).
	run func(func())
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelCauseFunc
}

// do returns fn's result for key, calling fn only if no call for key is in
// flight. shared reports that the result came from another request's call.
func (f *flights[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (v T, shared bool, err error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[string]*flight[T])
	}
	fl, shared := f.m[key]
	if !shared {
		callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		fl = &flight[T]{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		call := func() {
			fl.val, fl.err = fn(callCtx)
			f.mu.Lock()
			if f.m[key] == fl {
				delete(f.m, key)
			}
			f.mu.Unlock()
			cancel(nil)
			close(fl.done)
		}
		f.run(call)
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		return fl.val, shared, fl.err
	case <-ctx.Done():
	}
	f.mu.Lock()
	fl.waiters--
	last := fl.waiters == 0
	if last && f.m[key] == fl {
		delete(f.m, key) // the next identical request starts afresh
	}
	f.mu.Unlock()
	if !last {
		var zero T
		return zero, shared, context.Cause(ctx)
	}
	// Nobody else wants the answer: stop the call, and report how it ended
	// (a deadline spent waiting for a backend reads differently from one
	// spent upstream).
	fl.cancel(context.Cause(ctx))
	<-fl.done
	return fl.val, shared, fl.err
}
