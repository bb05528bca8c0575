package proxy

import "context"

type waitKey struct{}

// WithWait returns ctx carrying f, which Serve calls before the request
// first waits on anything but its own work (the team's cache, an embedder,
// the pool, an upstream call, an answer in flight): a caller that runs
// quick requests on the goroutine that read them moves its reading on to
// another goroutine then. f may be called more than once.
func WithWait(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, waitKey{}, f)
}

// waiting tells ctx's caller that the request is about to wait.
func waiting(ctx context.Context) {
	if f, ok := ctx.Value(waitKey{}).(func()); ok {
		f()
	}
}
