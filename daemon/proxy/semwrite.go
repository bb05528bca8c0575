package proxy

import (
	"context"
	"sync"
	"time"
)

// semWriter runs the semantic index's writes off the request path: a
// bounded queue (when it is full, the request that queues waits:
// backpressure, nothing is dropped) and one goroutine that runs the jobs
// in order. The daemon's caches own it; close drains it and waits.
type semWriter struct {
	mu     sync.RWMutex // guards closed; held shared while queueing
	closed bool
	jobs   chan func()
	done   chan struct{} // closed when the goroutine has stopped

	pmu      sync.Mutex     // guards pending, written and settling
	pending  map[string]int // the writes queued and not yet done, by partition
	written  chan struct{}  // closed (and replaced) whenever a write ends
	settling int            // lookups waiting in settled
	// maxSettle bounds how long a lookup waits for the writes of its
	// partition: a writer far behind (a batch of new prompts) does not
	// hold every lookup up.
	maxSettle time.Duration
}

func newSemWriter(size int) *semWriter {
	w := &semWriter{jobs: make(chan func(), size), done: make(chan struct{}), pending: map[string]int{}, written: make(chan struct{}), maxSettle: 100 * time.Millisecond}
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

// add queues the write of an entry of partition: a lookup in the
// partition waits for it (see settled). false when the writer is closed.
func (w *semWriter) add(partition string, job func()) bool {
	w.pmu.Lock()
	w.pending[partition]++
	w.pmu.Unlock()
	ok := w.do(func() {
		defer w.end(partition)
		job()
	})
	if !ok {
		w.end(partition)
	}
	return ok
}

func (w *semWriter) end(partition string) {
	w.pmu.Lock()
	defer w.pmu.Unlock()
	if w.pending[partition]--; w.pending[partition] <= 0 {
		delete(w.pending, partition)
	}
	close(w.written)
	w.written = make(chan struct{})
}

// settled waits until no write of partition is queued or running, for at
// most maxSettle, so that a lookup sees the answers stored before it
// (a paraphrase sent right after its original hits).
func (w *semWriter) settled(ctx context.Context, partition string) {
	var timeout <-chan time.Time
	for {
		w.pmu.Lock()
		n, ch, most := w.pending[partition], w.written, w.maxSettle
		if n > 0 && timeout == nil {
			w.settling++
			defer func() {
				w.pmu.Lock()
				w.settling--
				w.pmu.Unlock()
			}()
		}
		w.pmu.Unlock()
		if n == 0 {
			return
		}
		if timeout == nil {
			t := time.NewTimer(most)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return
		case <-ctx.Done():
			return
		}
	}
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
