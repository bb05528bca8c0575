package balance

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// stats are one member's counters. Guarded by the pool's mu.
type stats struct {
	requests, errors, status429, retries, tokens int64

	latency  [256]time.Duration // successful calls, a ring
	nLatency int

	// traffic counts calls and tokens per second over the last minute, a
	// ring indexed by Unix second.
	traffic    [60]int
	trafficTok [60]int
	lastSecond int64
}

func (s *stats) record(now time.Time, pe *provider.Error, retry bool, tokens int, elapsed time.Duration) {
	if pe != nil && pe.Kind == provider.KindCanceled {
		return // the client changed its mind: says nothing about the backend
	}
	s.requests++
	if retry {
		s.retries++
	}
	if pe != nil {
		s.errors++
		if pe.Kind == provider.KindRateLimited {
			s.status429++
		}
	} else {
		s.tokens += int64(tokens)
		s.latency[s.nLatency%len(s.latency)] = elapsed
		s.nLatency++
	}
	s.advance(now)
	i := now.Unix() % 60
	s.traffic[i]++
	s.trafficTok[i] += tokens
}

// advance clears the seconds that passed since the last record.
func (s *stats) advance(now time.Time) {
	sec := now.Unix()
	if s.lastSecond == 0 || sec-s.lastSecond >= 60 {
		s.traffic, s.trafficTok = [60]int{}, [60]int{}
	} else {
		for t := s.lastSecond + 1; t <= sec; t++ {
			s.traffic[t%60], s.trafficTok[t%60] = 0, 0
		}
	}
	if sec > s.lastSecond {
		s.lastSecond = sec
	}
}

// MemberState is a snapshot of one member's live state.
type MemberState struct {
	Name          string
	Config        config.Backend // as configured now; read-only
	State         string         // "ok", "cooling", "down", "dead_key" or "saturated" (rpc.State* values)
	Requests      int64
	Errors        int64
	Status429     int64
	Retries       int64
	Tokens        int64
	InFlight      int
	LimitRPM      int64 // 0: unknown (configured, or learnt from the server's headers)
	LimitTPM      int64
	UsedRPM       int64 // calls in the last 60 s plus those in flight
	UsedTPM       int64 // tokens answered in the last 60 s plus the reservations in flight
	RemainingRPM  int64 // -1 when the limit is unknown
	RemainingTPM  int64
	CooldownUntil time.Time // zero unless cooling down now
	// Reason says why a saturated member takes nothing now: "3/3 in
	// flight" (max_concurrent), "rpm" or "tpm" (no room under that limit).
	Reason     string
	LatencyP50 time.Duration
	LatencyP95 time.Duration
	Traffic    []int // calls per second, the last 60 seconds, oldest first
}

// State returns a snapshot of every member, in configuration order.
func (p *Pool) State() []MemberState {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]MemberState, len(p.members))
	for i, m := range p.members {
		s := &m.stats
		s.advance(now)
		st := MemberState{
			Name:      m.Name(),
			Config:    m.Config,
			Requests:  s.requests,
			Errors:    s.errors,
			Status429: s.status429,
			Retries:   s.retries,
			Tokens:    s.tokens,
			InFlight:  m.inFlight,
		}
		var callsMinute, tokensMinute int
		st.Traffic = make([]int, 60)
		for k := range 60 {
			j := (now.Unix() + 1 + int64(k)) % 60
			st.Traffic[k] = s.traffic[j]
			callsMinute += s.traffic[j]
			tokensMinute += s.trafficTok[j]
		}
		st.LimitRPM, st.RemainingRPM = limit(m.rpm, now)
		st.LimitTPM, st.RemainingTPM = limit(m.tpm, now)
		st.UsedRPM = int64(callsMinute + m.inFlight)
		st.UsedTPM = int64(tokensMinute + m.reserved)
		n := min(s.nLatency, len(s.latency))
		if n > 0 {
			lat := slices.Clone(s.latency[:n])
			slices.Sort(lat)
			st.LatencyP50 = lat[(n-1)*50/100]
			st.LatencyP95 = lat[(n-1)*95/100]
		}
		switch {
		case !m.deadUntil.IsZero():
			st.State = "dead_key"
		case m.cooldownUntil.After(now):
			st.State = "cooling"
			st.CooldownUntil = m.cooldownUntil
		case !m.downUntil.IsZero():
			st.State = "down"
			st.CooldownUntil = m.downUntil
		case m.inFlight >= m.Config.MaxConcurrent:
			st.State, st.Reason = "saturated", fmt.Sprintf("%d/%d in flight", m.inFlight, m.Config.MaxConcurrent)
		case !hasRoom(m.rpm, 1, now):
			st.State, st.Reason = "saturated", "rpm"
		case !hasRoom(m.tpm, max(m.avgCost, 1), now):
			st.State, st.Reason = "saturated", "tpm"
		default:
			st.State = "ok"
		}
		out[i] = st
	}
	return out
}

// QueueLen is the number of requests waiting for room.
func (p *Pool) QueueLen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// hasRoom reports whether l could take n now: for a local bucket, whether
// it fits; for a shared one, also what a grant could bring.
func hasRoom(l Limit, n float64, now time.Time) bool {
	return !l.Known() || l.Room(now) >= math.Min(n, l.Capacity())
}

// limit reads a limit: its size and what could be taken now; 0 and -1 when
// it is unknown.
func limit(b Limit, now time.Time) (size, remaining int64) {
	if !b.Known() {
		return 0, -1
	}
	return int64(b.Capacity()), int64(max(b.Room(now), 0))
}
