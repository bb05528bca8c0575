package sim

import (
	"net/http"
	"strconv"
	"time"
)

// unit is the number of bucket units in one request or token. A bucket of
// capacity max refills max units per millisecond, a whole bucket per minute,
// so the arithmetic is exact in integers.
const unit = 60_000

// bucket is a token bucket of capacity max that refills continuously at max
// per minute. A zero max means unlimited.
type bucket struct {
	max   int64     // capacity in requests or tokens; 0 = unlimited
	level int64     // units available
	last  time.Time // time up to which level is refilled
	set   bool      // level and last are initialised (a new bucket is full)
}

func (b *bucket) refill(now time.Time) {
	if !b.set {
		b.level, b.last, b.set = b.max*unit, now, true
		return
	}
	full := b.max * unit
	d := now.Sub(b.last)
	if d <= 0 || b.level == full {
		if b.level == full {
			b.last = now
		}
		return
	}
	ms := int64(d / time.Millisecond)
	if ms >= unit { // a minute refills any bucket
		b.level, b.last = full, now
		return
	}
	b.level += ms * b.max
	b.last = b.last.Add(time.Duration(ms) * time.Millisecond)
	if b.level >= full {
		b.level, b.last = full, now
	}
}

// wait returns how long until n fit in the bucket (0 if they fit now).
func (b *bucket) wait(n int64) time.Duration {
	need := n*unit - b.level
	if need <= 0 {
		return 0
	}
	return time.Duration(ceilDiv(need, b.max)) * time.Millisecond
}

// remaining returns the whole requests or tokens available.
func (b *bucket) remaining() int64 { return b.level / unit }

// untilFull returns how long until the bucket is full again.
func (b *bucket) untilFull() time.Duration {
	return time.Duration(ceilDiv(b.max*unit-b.level, b.max)) * time.Millisecond
}

// limits are an account's two buckets.
type limits struct {
	req, tok bucket
}

// state is what the x-ratelimit-* headers tell, taken under the account lock.
type state struct {
	reqLimit, tokLimit         int64 // 0 = unlimited: no headers for it
	reqRemaining, tokRemaining int64
	reqReset, tokReset         time.Duration
}

func (l *limits) state() state {
	var st state
	if l.req.max > 0 {
		st.reqLimit, st.reqRemaining, st.reqReset = l.req.max, l.req.remaining(), l.req.untilFull()
	}
	if l.tok.max > 0 {
		st.tokLimit, st.tokRemaining, st.tokReset = l.tok.max, l.tok.remaining(), l.tok.untilFull()
	}
	return st
}

// verdict is the outcome of an admission.
type verdict struct {
	state
	ok       bool
	tooLarge bool          // tokens exceed the whole TPM capacity
	dim      string        // the dimension that refused: "requests" or "tokens"
	used     int64         // of the refusing dimension: limit - remaining
	wait     time.Duration // until the request would fit (0 when tooLarge)
}

// admit charges one request and tokens to the buckets if both have room, as
// of now; a refusal charges nothing.
func (l *limits) admit(now time.Time, tokens int64) verdict {
	var v verdict
	var reqWait, tokWait time.Duration
	if l.req.max > 0 {
		l.req.refill(now)
		reqWait = l.req.wait(1)
	}
	if l.tok.max > 0 {
		l.tok.refill(now)
		if tokens > l.tok.max {
			v.tooLarge, v.dim = true, "tokens"
		} else {
			tokWait = l.tok.wait(tokens)
		}
	}
	switch {
	case v.tooLarge:
		v.used = l.tok.max - l.tok.remaining()
	case tokWait > 0 && tokWait >= reqWait:
		v.dim, v.wait, v.used = "tokens", tokWait, l.tok.max-l.tok.remaining()
	case reqWait > 0:
		v.dim, v.wait, v.used = "requests", max(reqWait, tokWait), l.req.max-l.req.remaining()
	default:
		v.ok = true
		if l.req.max > 0 {
			l.req.level -= unit
		}
		if l.tok.max > 0 {
			l.tok.level -= tokens * unit
		}
	}
	v.state = l.state()
	return v
}

// peek returns the limit state without charging anything.
func (l *limits) peek(now time.Time) state {
	if l.req.max > 0 {
		l.req.refill(now)
	}
	if l.tok.max > 0 {
		l.tok.refill(now)
	}
	return l.state()
}

func (c *call) peek() state {
	a := c.acct
	if a.RPM == 0 && a.TPM == 0 {
		return state{}
	}
	now := c.s.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lim.peek(now)
}

func (c *call) admit(tokens int) verdict {
	a := c.acct
	if a.RPM == 0 && a.TPM == 0 {
		return verdict{ok: true}
	}
	now := c.s.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lim.admit(now, int64(tokens))
}

// limitHeaders sets the x-ratelimit-* headers of each limited dimension.
func (c *call) limitHeaders(st state) {
	c.limitsSent = true
	h := c.w.Header()
	if st.reqLimit > 0 {
		h["X-Ratelimit-Limit-Requests"] = []string{strconv.FormatInt(st.reqLimit, 10)}
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatInt(st.reqRemaining, 10)}
		h["X-Ratelimit-Reset-Requests"] = []string{st.reqReset.String()}
	}
	if st.tokLimit > 0 {
		h["X-Ratelimit-Limit-Tokens"] = []string{strconv.FormatInt(st.tokLimit, 10)}
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatInt(st.tokRemaining, 10)}
		h["X-Ratelimit-Reset-Tokens"] = []string{st.tokReset.String()}
	}
}

// admitOrRefuse admits a request costing tokens, or answers 429 and returns
// false. Either way the response carries the limit headers.
func (c *call) admitOrRefuse(model string, tokens int) bool {
	v := c.admit(tokens)
	c.limitHeaders(v.state)
	if v.ok {
		c.rec.Charged = tokens
		return true
	}
	var msg string
	if v.tooLarge {
		msg = "Request too large for " + model + " in organization org-sim on tokens per min (TPM): Limit " +
			strconv.FormatInt(v.tokLimit, 10) + ", Requested " + strconv.Itoa(tokens) +
			". The input or output tokens must be reduced in order to run successfully."
	} else {
		limit, requested, abbr := v.reqLimit, int64(1), "RPM"
		if v.dim == "tokens" {
			limit, requested, abbr = v.tokLimit, int64(tokens), "TPM"
		}
		msg = "Rate limit reached for " + model + " in organization org-sim on " + v.dim + " per min (" + abbr +
			"): Limit " + strconv.FormatInt(limit, 10) + ", Used " + strconv.FormatInt(v.used, 10) +
			", Requested " + strconv.FormatInt(requested, 10) + ". Please try again in " + v.wait.String() + "."
		h := c.w.Header()
		ms := strconv.FormatInt(v.wait.Milliseconds(), 10)
		h["Retry-After"] = []string{strconv.FormatInt(max(1, ceilDiv(v.wait.Milliseconds(), 1000)), 10)}
		h["Retry-After-Ms"] = []string{ms}
		if c.route.wire == WireAzure {
			h["X-Ms-Retry-After-Ms"] = []string{ms}
		}
	}
	c.fail(http.StatusTooManyRequests, msg, v.dim, "", "rate_limit_exceeded")
	return false
}
