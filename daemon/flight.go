package daemon

import (
	"context"
	"sync"
)

// flights coalesces identical requests in flight at the same time: the first
// makes the upstream call, the others wait for its answer. The call runs on
// its own context, canceled only when every waiter has gone, so one
// impatient client cannot fail the others.
type flights[T any] struct {
	mu sync.Mutex // guards m
	m  map[string]*flight[T]
}

type flight[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do returns fn's result for key, calling fn only if no call for key is in
// flight. shared reports that the result came from another request's call.
func (f *flights[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (v T, shared bool, err error) {
	f.mu.Lock()
	if f.m == nil {
		f.m = make(map[string]*flight[T])
	}
	fl, ok := f.m[key]
	if !ok {
		// The call keeps the first request's deadline but not its
		// cancellation.
		callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if dl, ok := ctx.Deadline(); ok {
			callCtx, cancel = context.WithDeadline(context.WithoutCancel(ctx), dl)
		}
		fl = &flight[T]{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		go func() {
			fl.val, fl.err = fn(callCtx)
			f.forget(key, fl)
			cancel()
			close(fl.done)
		}()
	}
	fl.waiters++
	f.mu.Unlock()

	select {
	case <-fl.done:
		return fl.val, ok, fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		last := fl.waiters == 0
		f.mu.Unlock()
		if last { // nobody wants the answer: stop the call, let the next request start afresh
			f.forget(key, fl)
			fl.cancel()
		}
		var zero T
		return zero, ok, ctx.Err()
	}
}

// forget removes fl from the map if it is still the flight for key.
func (f *flights[T]) forget(key string, fl *flight[T]) {
	f.mu.Lock()
	if f.m[key] == fl {
		delete(f.m, key)
	}
	f.mu.Unlock()
}
