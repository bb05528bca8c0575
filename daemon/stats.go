package daemon

import (
	"slices"
	"sync"
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
