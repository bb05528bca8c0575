package balance

import (
	"math"
	"time"
)

// A Limit is one rate limit of a backend — its requests or its tokens per
// minute — as the pool spends it: it holds what a request reserves at
// admission until its call returns, settles the reservation with what the
// upstream charged, and reads what the upstream reports. Its home is this
// daemon ([Bucket], the default) or a team's shared budget (package
// shared), chosen by [Options.Limits].
//
// The pool calls a Limit's methods under its lock, with its clock, and
// never concurrently: they must not block. A Limit whose room appears on
// its own (a shared budget's grant) calls the wake function it was made
// with, outside any lock of the pool, and the queue looks again.
type Limit interface {
	// Known reports whether the limit is known; an unknown limit never
	// blocks and its other methods do nothing.
	Known() bool
	// Capacity is the limit: what a full bucket holds.
	Capacity() float64
	// Room is what could be taken now.
	Room(now time.Time) float64
	// Fits reports whether n fits now. A request larger than the whole
	// capacity fits once the bucket is full: it can never fit better.
	Fits(n float64, now time.Time) bool
	// When is the earliest time n fits: now when it fits, or when only a
	// release or a wake can make room.
	When(n float64, now time.Time) time.Time
	// Hold takes n for a request about to be sent; Unhold ends the hold
	// when its call has returned (the upstream has charged it by then).
	Hold(n float64, now time.Time)
	Unhold(n float64, now time.Time)
	// Adjust takes delta more (or gives -delta back): the reservation
	// settled against what the upstream charged, or handed back unused.
	Adjust(delta float64, now time.Time)
	// Observe reads what a response said of the limit.
	Observe(r Reading, now time.Time)
	// Resize adopts a limit set by a new configuration; 0 makes it
	// unknown.
	Resize(limit int, now time.Time)
}

// A Reading is what one upstream response said of a limit.
type Reading struct {
	// Limit and Remaining are the x-ratelimit-limit-* and
	// x-ratelimit-remaining-* headers; <= 0 and < 0 when absent.
	Limit, Remaining int64
	// CoolUntil is when a 429 asked every caller of the limit to wait
	// until; zero otherwise. A Bucket leaves cooling to the pool; a shared
	// limit cools the whole team.
	CoolUntil time.Time
}

var _ Limit = (*Bucket)(nil)

// Bucket is a Limit of this daemon alone: one rate limit as OpenAI applies
// it, a bucket of capacity = the limit that refills continuously at
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
// Bucket is plain data; its methods take the time, so tests need no clock.
type Bucket struct {
	capacity float64 // 0: unknown
	level    float64 // what is left, <= capacity - held; may go below 0 after reconciling
	held     float64 // reserved for requests in flight (known limit or not)
	last     time.Time
}

// NewBucket returns a full bucket of limit; 0 is an unknown limit.
func NewBucket(limit float64, now time.Time) *Bucket {
	return &Bucket{capacity: limit, level: limit, last: now}
}

// NewEmptyBucket returns a bucket of limit that starts empty and fills in
// a minute.
func NewEmptyBucket(limit float64, now time.Time) *Bucket {
	return &Bucket{capacity: limit, last: now}
}

func (b *Bucket) Known() bool { return b.capacity > 0 }

func (b *Bucket) Capacity() float64 { return b.capacity }

// refill brings the level up to now.
func (b *Bucket) refill(now time.Time) {
	if !b.Known() {
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
func (b *Bucket) ceiling() float64 { return b.capacity - b.held }

func (b *Bucket) Room(now time.Time) float64 {
	if !b.Known() {
		return math.Inf(1)
	}
	b.refill(now)
	return b.level
}

func (b *Bucket) Fits(n float64, now time.Time) bool {
	if !b.Known() {
		return true
	}
	return b.Room(now) >= math.Min(n, b.capacity)
}

// take takes n (the level may go negative: a debt that refills).
func (b *Bucket) take(n float64, now time.Time) {
	if !b.Known() {
		return
	}
	b.refill(now)
	b.level -= n
}

// give returns n, up to the ceiling.
func (b *Bucket) give(n float64, now time.Time) {
	if !b.Known() {
		return
	}
	b.refill(now)
	b.level = math.Min(b.ceiling(), b.level+n)
}

func (b *Bucket) Hold(n float64, now time.Time) {
	b.take(n, now)
	b.held += n
}

func (b *Bucket) Unhold(n float64, now time.Time) {
	b.refill(now) // up to now under the old ceiling
	b.held -= n
}

// When: releases wake the queue, so a request that only a release can
// make room for fits "now" as far as the timer goes.
func (b *Bucket) When(n float64, now time.Time) time.Time {
	if !b.Known() {
		return now
	}
	n = math.Min(n, b.capacity)
	missing := n - b.Room(now)
	if missing <= 0 || n > b.ceiling() {
		return now
	}
	// Round up: a sliver missing still needs a wait.
	return now.Add(max(time.Duration(math.Ceil(missing/(b.capacity/60)*float64(time.Second))), 1))
}

// resync lowers the level to what the server reported left; it never raises
// it, because the server has not yet seen the reservations in flight.
func (b *Bucket) resync(remaining int64, now time.Time) {
	if !b.Known() || remaining < 0 {
		return
	}
	b.refill(now)
	b.level = math.Min(b.level, float64(remaining))
}

// learn adopts a limit the server reported when the configuration gave
// none or a higher one: the server's word is the limit in force.
func (b *Bucket) learn(limit int64, now time.Time) {
	switch {
	case limit <= 0:
	case !b.Known():
		b.capacity, b.last = float64(limit), now
		b.level = b.ceiling()
	case float64(limit) < b.capacity:
		b.refill(now)
		b.capacity = float64(limit)
		b.level = math.Min(b.level, b.ceiling())
	}
}

// Resize changes the limit to one set by a new configuration, keeping
// what was used of the old one: with 900 of 1000 used, raising the limit
// to 1500 leaves 600, and lowering it to 500 leaves a debt of 400 that
// refills at the new rate. A limit that was unknown starts full; 0 makes
// it unknown.
func (b *Bucket) Resize(limit int, now time.Time) {
	switch {
	case limit <= 0:
		b.capacity, b.level = 0, 0
	case !b.Known():
		b.capacity, b.last = float64(limit), now
		b.level = b.ceiling()
	default:
		b.refill(now)
		used := b.capacity - b.level
		b.capacity = float64(limit)
		b.level = math.Min(b.capacity-used, b.ceiling())
	}
}

// Adjust takes delta more, or gives -delta back up to the ceiling.
func (b *Bucket) Adjust(delta float64, now time.Time) {
	if delta > 0 {
		b.take(delta, now)
	} else if delta < 0 {
		b.give(-delta, now)
	}
}

// Observe learns a lower (or first) limit and lowers the level to what
// the server has left. A cooldown is the pool's to keep.
func (b *Bucket) Observe(r Reading, now time.Time) {
	b.learn(r.Limit, now)
	b.resync(r.Remaining, now)
}
