package balance

import (
	"math"
	"time"
)

// bucket is one rate limit (requests or tokens per minute) as OpenAI applies
// it: a bucket of capacity = the limit that refills continuously at
// limit/60 per second. Reservations take from it at admission; reconciling
// with the real usage gives back or takes more. A zero capacity is an
// unknown limit: it never blocks.
//
// The server charges a request when it arrives, later than we reserve it,
// and its bucket never holds more than the capacity: while a request is on
// its way the server's bucket may sit full, refilling nothing. So what is
// held for requests on their way is never refilled: the level stays at most
// capacity - held, and the refill resumes as their calls return.
//
// bucket is plain data; its methods take the time, so tests need no clock.
type bucket struct {
	capacity float64 // 0: unknown
	level    float64 // what is left, <= capacity - held; may go below 0 after reconciling
	held     float64 // reserved for requests in flight (known limit or not)
	last     time.Time
}

func newBucket(limit int, now time.Time) bucket {
	return bucket{capacity: float64(limit), level: float64(limit), last: now}
}

func (b *bucket) known() bool { return b.capacity > 0 }

// refill brings the level up to now.
func (b *bucket) refill(now time.Time) {
	if !b.known() {
		return
	}
	// Callers read the clock before taking the pool's lock, so now may be
	// a little older than last: never refill the same time twice.
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.level = math.Min(b.ceiling(), b.level+dt*b.capacity/60)
		b.last = now
	}
}

// ceiling is the most the level can be: the capacity less what is held.
func (b *bucket) ceiling() float64 { return b.capacity - b.held }

// room is what could be taken now.
func (b *bucket) room(now time.Time) float64 {
	if !b.known() {
		return math.Inf(1)
	}
	b.refill(now)
	return b.level
}

// fits reports whether n fits now. A reservation larger than the whole
// capacity fits once the bucket is full: it can never fit better.
func (b *bucket) fits(n float64, now time.Time) bool {
	if !b.known() {
		return true
	}
	return b.room(now) >= math.Min(n, b.capacity)
}

// take reserves n (the level may go negative: a debt that refills).
func (b *bucket) take(n float64, now time.Time) {
	if !b.known() {
		return
	}
	b.refill(now)
	b.level -= n
}

// give returns n, up to the ceiling.
func (b *bucket) give(n float64, now time.Time) {
	if !b.known() {
		return
	}
	b.refill(now)
	b.level = math.Min(b.ceiling(), b.level+n)
}

// hold reserves n for a request about to be sent.
func (b *bucket) hold(n float64, now time.Time) {
	b.take(n, now)
	b.held += n
}

// unhold ends the hold of n when its call has returned: the server has
// charged it by now, if ever.
func (b *bucket) unhold(n float64, now time.Time) {
	b.refill(now) // up to now under the old ceiling
	b.held -= n
}

// when is the earliest time n fits; now when it already does, or when
// only releasing a request in flight can make room (releases wake the queue).
func (b *bucket) when(n float64, now time.Time) time.Time {
	if !b.known() {
		return now
	}
	n = math.Min(n, b.capacity)
	missing := n - b.room(now)
	if missing <= 0 || n > b.ceiling() {
		return now
	}
	// Round up: a sliver missing still needs a wait.
	return now.Add(max(time.Duration(math.Ceil(missing/(b.capacity/60)*float64(time.Second))), 1))
}

// resync lowers the level to what the server reported left; it never raises
// it, because the server has not yet seen the reservations in flight.
func (b *bucket) resync(remaining int64, now time.Time) {
	if !b.known() || remaining < 0 {
		return
	}
	b.refill(now)
	b.level = math.Min(b.level, float64(remaining))
}

// learn adopts a limit the server reported when the configuration gave
// none or a higher one: the server's word is the limit in force.
func (b *bucket) learn(limit int64, now time.Time) {
	switch {
	case limit <= 0:
	case !b.known():
		b.capacity, b.last = float64(limit), now
		b.level = b.ceiling()
	case float64(limit) < b.capacity:
		b.refill(now)
		b.capacity = float64(limit)
		b.level = math.Min(b.level, b.ceiling())
	}
}

// resize changes the limit to one set by a new configuration, keeping
// what was used of the old one: with 900 of 1000 used, raising the limit
// to 1500 leaves 600, and lowering it to 500 leaves a debt of 400 that
// refills at the new rate. A limit that was unknown starts full; 0 makes
// it unknown.
func (b *bucket) resize(limit int, now time.Time) {
	switch {
	case limit <= 0:
		b.capacity, b.level = 0, 0
	case !b.known():
		b.capacity, b.last = float64(limit), now
		b.level = b.ceiling()
	default:
		b.refill(now)
		used := b.capacity - b.level
		b.capacity = float64(limit)
		b.level = math.Min(b.capacity-used, b.ceiling())
	}
}
