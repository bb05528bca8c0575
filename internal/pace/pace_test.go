package pace

import (
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	var p Pace
	p.Add(start, 100) // a burst at the start
	for s := 1; s <= 30; s++ {
		p.Add(start.Add(time.Duration(s)*time.Second), 3)
	}
	if r := p.Rate(start.Add(30*time.Second+500*time.Millisecond), start); r != 3 {
		t.Errorf("rate after 30 s at 3 a second = %v, want 3 (the burst left the window)", r)
	}
	if r := p.Rate(start.Add(45*time.Second), start); r != 0 {
		t.Errorf("rate 15 s after the last event = %v, want 0", r)
	}
	var q Pace
	q.Add(start, 10)
	if r := q.Rate(start.Add(2*time.Second), start); r != 5 {
		t.Errorf("10 events in the first 2 s: rate %v, want 5", r)
	}
}
