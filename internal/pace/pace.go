// Package pace measures how fast something is going now: events a second
// over the last few seconds, for an ETA that follows the rate limits
// rather than the first burst.
package pace

import "time"

// Window is how far back Pace looks: long enough to smooth a rate limit's
// refill, short enough that a batch's first burst (full buckets) has left
// it a few seconds after.
const Window = 10

// Pace counts events per second over the last Window seconds. The zero
// value is ready; it is not safe for concurrent use.
type Pace struct {
	sec [Window]int64 // the second each count is for
	cnt [Window]int
}

// Add counts n events at now.
func (p *Pace) Add(now time.Time, n int) {
	s := now.Unix()
	i := s % Window
	if p.sec[i] != s {
		p.sec[i], p.cnt[i] = s, 0
	}
	p.cnt[i] += n
}

// Rate is the events a second over the Window seconds before now, or since
// start when that is shorter; 0 before any time has passed.
func (p *Pace) Rate(now, start time.Time) float64 {
	span := min(now.Sub(start).Seconds(), Window)
	if span <= 0 {
		return 0
	}
	n := 0
	for i, s := range p.sec {
		if s > now.Unix()-Window && s <= now.Unix() {
			n += p.cnt[i]
		}
	}
	return float64(n) / span
}
