package proxy

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// overhead keeps the daemon's own time of the last requests (neither
// upstream nor queued) for the status percentiles.
type overhead struct {
	mu   sync.Mutex // guards ring and n
	ring [1024]time.Duration
	n    int
}

func (o *overhead) record(d time.Duration) {
	o.mu.Lock()
	o.ring[o.n%len(o.ring)] = d
	o.n++
	o.mu.Unlock()
}

// percentiles returns the p50 and p99 of the recorded times.
func (o *overhead) percentiles() (p50, p99 time.Duration) {
	o.mu.Lock()
	n := min(o.n, len(o.ring))
	s := slices.Clone(o.ring[:n])
	o.mu.Unlock()
	if n == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[(n-1)*50/100], s[(n-1)*99/100]
}

// LatencyBuckets are the upper bounds of the latency histograms, seconds.
var LatencyBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Histogram counts durations into LatencyBuckets; safe for concurrent use.
type Histogram struct {
	counts [len(LatencyBuckets) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumUS  atomic.Uint64
}

func (h *Histogram) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(LatencyBuckets[:], s) // the first bound >= s
	h.counts[i].Add(1)
	h.sumUS.Add(uint64(max(d.Microseconds(), 0)))
}

// Latencies are the per-backend histograms of answered requests: the whole
// request as its client saw it, and the upstream part. A backend's pair is
// made on first use, so backends added by a reload have theirs. The zero
// value is ready; safe for concurrent use.
type Latencies struct {
	m sync.Map // backend name → *[2]Histogram
}

// Of returns backend's histograms.
func (l *Latencies) Of(backend string) *[2]Histogram {
	if h, ok := l.m.Load(backend); ok {
		return h.(*[2]Histogram)
	}
	h, _ := l.m.LoadOrStore(backend, new([2]Histogram))
	return h.(*[2]Histogram)
}

// Observe records one answered request.
func (l *Latencies) Observe(backend string, total, upstream time.Duration) {
	if backend == "" {
		return // answered without a backend: a cache hit
	}
	h := l.Of(backend)
	h[0].observe(total)
	h[1].observe(upstream)
}

// Count is the number of durations in bucket i (not cumulative); the last
// bucket, len(LatencyBuckets), is +Inf.
func (h *Histogram) Count(i int) uint64 { return h.counts[i].Load() }

// SumSeconds is the sum of every duration observed.
func (h *Histogram) SumSeconds() float64 { return float64(h.sumUS.Load()) / 1e6 }
