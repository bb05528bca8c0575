package proxy

import "sync"

// semWriter runs the semantic index's writes off the request path: a
// bounded queue (when it is full, the request that queues waits:
// backpressure, nothing is dropped) and one goroutine that runs the jobs
// in order. The daemon's caches own it; close drains it and waits.
type semWriter struct {
	mu     sync.RWMutex // guards closed; held shared while queueing
	closed bool
	jobs   chan func()
	done   chan struct{} // closed when the goroutine has stopped
}

func newSemWriter(size int) *semWriter {
	w := &semWriter{jobs: make(chan func(), size), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for job := range w.jobs {
			job()
		}
	}()
	return w
}

// do queues job; false when the writer is closed.
func (w *semWriter) do(job func()) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return false
	}
	w.jobs <- job
	return true
}

// wait returns once every job queued before it has run.
func (w *semWriter) wait() {
	ran := make(chan struct{})
	if w.do(func() { close(ran) }) {
		<-ran
	}
}

// close runs the jobs queued and stops; it is idempotent.
func (w *semWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	<-w.done
}
