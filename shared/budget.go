package shared

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbgpt/lbgpt/spend"
)

// The team's spend.
//
// Each host keeps its own ledger (package spend), and reports its figures
// for the current UTC day and month, by namespace, to two hashes in Redis,
// one field per ledger and namespace. A ledger's figures only grow within a
// period, so Redis keeps the greater of what it had and what it is told:
// a report told twice, late or out of order changes nothing, and a Redis
// that lost them is told again in full by each host's next exchange. The
// team's totals are the sums of those fields.
//
// The [budget] limits hold team-wide by reservation, as on one host, but in
// Redis: budget.lua admits a reservation only if, for each limit it falls
// under, every host's spend plus every host's reservations plus its
// estimate stay within the limit, atomically. A reservation is settled in
// one call that reports the answer's cost (already in the ledger) and drops
// the reservation, so spent + reserved never dips below the truth. A
// reservation whose host stops its heartbeat (team.lua) for the host TTL is
// dropped: a host killed while holding one does not hold it for ever.
//
// When Redis does not answer, a host admits what its safe share allows:
// what was left of each limit at its last exchange, over the team's size,
// less what it reserved since. What it spent meanwhile reaches Redis with
// its ledger's figures, and its reservations still in flight are held
// there, when Redis answers again. A host that has not had one exchange
// since it started knows nothing of what the team spent, and refuses.

//go:embed budget.lua
var budgetLua string

var budgetScript = redis.NewScript(budgetLua)

const (
	// maxHold: a reservation older than this is dropped whoever holds it
	// (a request is long over by then; a lost release must not hold a
	// budget for ever).
	maxHold = time.Hour
	// budgetSync is how often the figures this host recorded outside
	// reservations (hits, embeddings) and the ends Redis did not take are
	// told.
	budgetSync = 500 * time.Millisecond
	// budgetFresh: Status asks Redis again when its figures are older.
	budgetFresh = time.Second
	// sweepEvery: every this many budgetSync, the host tells Redis the
	// reservations it has in flight, and Redis drops its others: a call
	// that timed out may still run (a Redis that hung, then resumed) and
	// hold what the host gave up.
	sweepEvery = 4
	// budgetDown: Redis is down for the budget once this host's calls
	// have failed for this long, the breaker open (Team.budgetDown).
	budgetDown = time.Second
	// budgetPause: a reservation whose call failed asks again after this.
	budgetPause = 25 * time.Millisecond
)

// down reports whether err, an exchange's failure, finds Redis down: the
// breaker open and every call failing for budgetDown.
func (b *Budget) down(err error) bool {
	if !errors.Is(err, errDegraded) {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.degradedSince.IsZero() && time.Since(b.degradedSince) >= b.team.budgetDown
}

// Ledger is what the team's budget reads of this host's ledger:
// *spend.Ledger.
type Ledger interface {
	// ID names the ledger in the team, the same across restarts.
	ID() string
	// Current is what the ledger recorded in the current day and month.
	Current() spend.Current
}

var (
	_ Ledger     = (*spend.Ledger)(nil)
	_ spend.Team = (*Budget)(nil)
	_ spend.Hold = (*hold)(nil)
)

// Budget is the team's spend and the team-wide holding of the [budget]
// limits, for spend.NewTeamBudget. It reports what this host's ledger
// records to Redis behind the requests, until the team closes. It is safe
// for concurrent use.
type Budget struct {
	team   *Team
	ledger Ledger
	nonce  string // this process's, in its reservations' ids
	seq    atomic.Uint64

	mu sync.Mutex // guards the fields below
	ls []spend.Limit
	// sent is, by period key and namespace, the figures Redis took.
	sent map[string]map[string]string
	// adds are reservations admitted while Redis did not answer, to hold
	// there; releases, ended ones whose end Redis may not have taken.
	adds     map[string]held
	releases map[string]struct{}
	// live are this host's reservations in flight (from before Redis is
	// asked): a sweep drops its others in Redis.
	live   map[string]struct{}
	synced bool   // an exchange succeeded since the start
	round  uint64 // exchanges that succeeded
	snap   budgetSnap
	// degradedSince is when an exchange last failed, after the last that
	// succeeded; zero while Redis answers.
	degradedSince time.Time
	// used is, while Redis does not answer, what this host reserved (then
	// spent) since the last exchange, by limit.
	used map[limitKey]spend.Nanos
}

type held struct {
	ns     string
	amount spend.Nanos
}

type limitKey struct {
	ns     string
	period spend.Period
}

// budgetSnap is the team's spend as the last exchange saw it.
type budgetSnap struct {
	at         time.Time
	limits     map[limitKey][2]spend.Nanos // spent, reserved
	hosts      int                         // alive in the team
	day, month Spend
}

// Spend is what every host of the team recorded in a period.
type Spend struct {
	Requests int64 // answers paid upstream
	Hits     int64 // answers from the caches or coalesced
	Unpriced int64 // of both, those whose model has no price
	Cost     spend.Nanos
	Saved    spend.Nanos
	Tokens   spend.Usage // paid upstream
}

// NewBudget returns the team's budget, reporting what l records.
func NewBudget(t *Team, l Ledger) *Budget {
	var r [4]byte
	rand.Read(r[:])
	b := &Budget{team: t, ledger: l, nonce: hex.EncodeToString(r[:]), sent: map[string]map[string]string{},
		adds: map[string]held{}, releases: map[string]struct{}{}, live: map[string]struct{}{}, used: map[limitKey]spend.Nanos{}}
	// The first exchange: the team's figures before the first request (a
	// host that never had them refuses what a limit applies to while Redis
	// does not answer), and the script loaded.
	b.exchange(nil, nil, always)
	t.wg.Add(1)
	go b.run()
	return b
}

// run tells Redis, every budgetSync, what this host recorded outside
// reservations and the ends it did not take, until the team closes; then
// once more.
func (b *Budget) run() {
	defer b.team.wg.Done()
	tick := time.NewTicker(budgetSync)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-b.team.done:
			b.exchange(nil, nil, untold)
			return
		case <-tick.C:
			m := untold
			if n%sweepEvery == 0 {
				m = sweep
			}
			b.exchange(nil, nil, m)
		}
	}
}

// ask is a reservation asked of Redis.
type ask struct {
	id, ns string
	amount spend.Nanos
}

// outcome is what an exchange that asked for a reservation found.
type outcome struct {
	admitted bool
	refused  spend.Limit // when not admitted
}

// An exchange's mode: whether it calls Redis when nothing is untold and
// asks for nothing, and whether it sweeps (see sweepEvery).
type mode int

const (
	untold mode = iota // only when something is untold
	always
	sweep // always, and sweep
)

// exchange tells Redis what is untold, and asks for r when set. ls are the
// limits (nil: those of the last call).
func (b *Budget) exchange(ls []spend.Limit, r *ask, m mode) (outcome, error) {
	out, lost, err := b.exchangeOnce(ls, r, m)
	if err == nil && lost {
		// Redis lost this ledger's figures (restarted empty, or evicted):
		// tell them all again before going by the sums. A reservation
		// admitted the first time is admitted again (its id is held).
		out, _, err = b.exchangeOnce(ls, r, always)
	}
	return out, err
}

const periodFields = 9

// pack is the figures of t in budget.lua's order.
func pack(t spend.Totals) string {
	n := [periodFields]int64{t.Requests, t.Exact.Hits + t.Semantic.Hits + t.Coalesced.Hits,
		t.Unpriced + t.Exact.Unpriced + t.Semantic.Unpriced + t.Coalesced.Unpriced,
		int64(t.Cost), int64(t.Saved()),
		int64(t.Tokens.Input), int64(t.Tokens.CachedInput), int64(t.Tokens.Output), int64(t.Tokens.Reasoning)}
	bs := make([]byte, 0, 64)
	for i, x := range n {
		if i > 0 {
			bs = append(bs, ' ')
		}
		bs = strconv.AppendInt(bs, x, 10)
	}
	return string(bs)
}

func unpack(n []int64) Spend {
	return Spend{Requests: n[0], Hits: n[1], Unpriced: n[2], Cost: spend.Nanos(n[3]), Saved: spend.Nanos(n[4]),
		Tokens: spend.Usage{Input: int(n[5]), CachedInput: int(n[6]), Output: int(n[7]), Reasoning: int(n[8])}}
}

func (b *Budget) exchangeOnce(ls []spend.Limit, r *ask, m mode) (out outcome, lost bool, err error) {
	cur := b.ledger.Current()
	dk := b.team.key("spend", "day:"+cur.Day.Format(time.DateOnly))
	mk := b.team.key("spend", "month:"+cur.Month.Format("2006-01"))
	type fig struct{ period, key, ns, v string }
	var figs []fig

	b.mu.Lock()
	if ls == nil {
		ls = b.ls
	} else {
		b.ls = ls
	}
	had := [2]bool{len(b.sent[dk]) > 0, len(b.sent[mk]) > 0}
	for _, p := range []struct {
		period, key string
		by          map[string]spend.Totals
	}{{"d", dk, cur.DayByNS}, {"m", mk, cur.MonthByNS}} {
		for ns, t := range p.by {
			if v := pack(t); b.sent[p.key][ns] != v {
				figs = append(figs, fig{p.period, p.key, ns, v})
			}
		}
	}
	adds := make(map[string]held, len(b.adds))
	for id, h := range b.adds {
		adds[id] = h
	}
	rels := make([]string, 0, len(b.releases))
	for id := range b.releases {
		rels = append(rels, id)
	}
	// A sweep spares the reservations this host made after it listed
	// those in flight: their calls may reach Redis before its own.
	var live []string
	sweeping := m == sweep && r == nil
	upTo := b.seq.Load()
	if sweeping {
		live = make([]string, 0, len(b.live))
		for id := range b.live {
			live = append(live, id)
		}
	}
	b.mu.Unlock()
	if r == nil && m == untold && len(figs) == 0 && len(adds) == 0 && len(rels) == 0 {
		return outcome{}, false, nil
	}

	argv := []any{b.team.host, b.ledger.ID(), b.team.hostTTL.Milliseconds(), maxHold.Milliseconds(),
		cur.Day.AddDate(0, 0, 2).UnixMilli(), cur.Month.AddDate(0, 1, 2).UnixMilli()}
	if r != nil {
		argv = append(argv, r.id, r.ns, int64(r.amount))
	} else {
		argv = append(argv, "", "", 0)
	}
	argv = append(argv, len(ls))
	for _, l := range ls {
		argv = append(argv, l.Namespace, string(l.Period[0]), int64(l.Max))
	}
	argv = append(argv, len(adds))
	for id, h := range adds {
		argv = append(argv, id, h.ns, int64(h.amount))
	}
	argv = append(argv, len(rels))
	for _, id := range rels {
		argv = append(argv, id)
	}
	argv = append(argv, len(figs))
	for _, f := range figs {
		argv = append(argv, f.period, f.ns, f.v)
	}
	sw := "-1"
	if sweeping {
		sw = strconv.FormatUint(upTo, 10)
	}
	argv = append(argv, b.nonce, sw, len(live))
	for _, id := range live {
		argv = append(argv, id)
	}
	var reply []any
	err = b.team.call(context.Background(), func(ctx context.Context) error {
		v, err := budgetScript.Run(ctx, b.team.rdb, []string{b.team.key("team", ""), b.team.key("spend", "held"), dk, mk}, argv...).Slice()
		reply = v
		return err
	})
	if err == nil && len(reply) != 5+2*periodFields+2*len(ls) {
		err = fmt.Errorf("shared: budget script replied %d values", len(reply))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		if b.degradedSince.IsZero() {
			b.degradedSince = time.Now()
		}
		return outcome{}, false, err
	}
	n := make([]int64, len(reply))
	for i, v := range reply {
		n[i], _ = v.(int64)
	}
	for _, f := range figs {
		if b.sent[f.key] == nil {
			b.sent[f.key] = map[string]string{}
		}
		b.sent[f.key][f.ns] = f.v
	}
	for k := range b.sent { // the periods gone by
		if k != dk && k != mk {
			delete(b.sent, k)
		}
	}
	for id := range adds {
		delete(b.adds, id)
	}
	for _, id := range rels {
		delete(b.releases, id)
	}
	if had[0] && n[2] == 0 {
		lost = true
		delete(b.sent, dk)
	}
	if had[1] && n[3] == 0 {
		lost = true
		delete(b.sent, mk)
	}
	snap := budgetSnap{at: time.Now(), limits: map[limitKey][2]spend.Nanos{}, hosts: int(n[4]),
		day: unpack(n[5 : 5+periodFields]), month: unpack(n[5+periodFields : 5+2*periodFields])}
	rest := n[5+2*periodFields:]
	for i, l := range ls {
		snap.limits[limitKey{l.Namespace, l.Period}] = [2]spend.Nanos{spend.Nanos(rest[2*i]), spend.Nanos(rest[2*i+1])}
	}
	b.snap = snap
	b.synced = true
	b.round++
	b.degradedSince = time.Time{}
	clear(b.used)
	out.admitted = n[0] == 1
	if i := int(n[1]) - 1; i >= 0 && i < len(ls) {
		st := snap.limits[limitKey{ls[i].Namespace, ls[i].Period}]
		out.refused = spend.Limit{Namespace: ls[i].Namespace, Period: ls[i].Period, Max: ls[i].Max, Spent: st[0], Reserved: st[1]}
	}
	return out, lost, nil
}

// Reserve reserves estimate under the limits of ls that apply to
// namespace, team-wide: see spend.Team. When Redis is down (see
// down), the host's safe share decides; a call that failed otherwise is
// tried again for a while, then the reservation refused.
func (b *Budget) Reserve(namespace string, estimate spend.Nanos, ls []spend.Limit) (spend.Hold, error) {
	id := b.team.host + "|" + b.nonce + "." + strconv.FormatUint(b.seq.Add(1), 10)
	b.mu.Lock()
	b.live[id] = struct{}{}
	b.mu.Unlock()
	r := &ask{id: id, ns: namespace, amount: estimate}
	out, err := b.exchange(ls, r, always)
	// The safe share is for a Redis that is down: this host's calls have
	// failed for budgetDown and the breaker is open. Spent on a mere slow
	// call, it would go beside what Redis grants the others, and this
	// host's other requests, meanwhile. Until then the request waits,
	// asking again with the same id (a call that timed out and ran is not
	// held twice); a Redis that neither answers nor is found down in twice
	// that time refuses it.
	start := time.Now()
	for err != nil && !b.down(err) {
		if time.Since(start) > 2*b.team.budgetDown {
			b.mu.Lock()
			delete(b.live, id)
			b.releases[id] = struct{}{} // a call that timed out may have held it
			b.mu.Unlock()
			return nil, fmt.Errorf("the team's budget could not be asked: redis %s did not answer in time (%w)", b.team.where, err)
		}
		time.Sleep(budgetPause)
		out, err = b.exchange(ls, r, always)
	}
	switch {
	case err != nil:
		h, err := b.reserveAlone(id, namespace, estimate, ls, true, err)
		if err != nil {
			b.mu.Lock()
			delete(b.live, id)
			b.mu.Unlock()
		}
		return h, err
	case !out.admitted:
		b.mu.Lock()
		delete(b.live, id)
		b.mu.Unlock()
		return nil, &spend.BudgetError{Limit: out.refused}
	}
	return &hold{b: b, id: id}, nil
}

// reserveAlone admits a reservation by this host's safe share, Redis not
// answering (cause: see down). ran: a call may have reached
// Redis all the same.
func (b *Budget) reserveAlone(id, ns string, estimate spend.Nanos, ls []spend.Limit, ran bool, cause error) (spend.Hold, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	refuse := func(err error) (spend.Hold, error) {
		if ran {
			b.releases[id] = struct{}{}
		}
		return nil, err
	}
	if !b.synced {
		return refuse(fmt.Errorf("the team's spend is unknown: redis %s has not answered since lbgptd started (%v), so no team-wide [budget] limit can be held", b.team.where, cause))
	}
	hosts := b.hosts()
	var keys []limitKey
	for _, l := range ls {
		if l.Namespace != "" && l.Namespace != ns {
			continue
		}
		k := limitKey{l.Namespace, l.Period}
		st, ok := b.snap.limits[k]
		if !ok {
			return refuse(fmt.Errorf("the team's spend under the new limit %s is unknown: redis %s does not answer (%v)", l.Name(), b.team.where, cause))
		}
		left := max(l.Max-st[0]-st[1], 0)
		share := left / spend.Nanos(hosts)
		if b.used[k]+estimate > share {
			be := &spend.BudgetError{Limit: spend.Limit{Namespace: l.Namespace, Period: l.Period, Max: l.Max, Spent: st[0], Reserved: st[1] + b.used[k]}}
			return refuse(&ShareError{Budget: be, Left: left, Share: share, Hosts: hosts, AsOf: b.snap.at})
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		b.used[k] += estimate
	}
	b.adds[id] = held{ns, estimate}
	return &hold{b: b, id: id, alone: true, round: b.round, amount: estimate, limits: keys}, nil
}

// hosts is the team's size: the larger of the last heartbeat's and the last
// exchange's count (a host that joined since the heartbeat counts at once).
// The caller holds mu.
func (b *Budget) hosts() int { return max(b.team.Size(), b.snap.hosts, 1) }

// ShareError is a refusal while Redis does not answer: the request could
// take this host past its safe share of what was left of a limit. It
// matches spend.ErrOverBudget and wraps the *spend.BudgetError.
type ShareError struct {
	Budget *spend.BudgetError // the limit, as the last exchange saw it plus this host's reservations since
	Left   spend.Nanos        // what was left of it at the last exchange
	Share  spend.Nanos        // this host's: Left over Hosts
	Hosts  int
	AsOf   time.Time // the last exchange
}

func (e *ShareError) Error() string {
	return fmt.Sprintf("%v; redis does not answer, and this host's safe share of the %v left at %s (1/%d, a team of %d) is spent or reserved",
		e.Budget, e.Left, e.AsOf.UTC().Format(time.TimeOnly), e.Hosts, e.Hosts)
}

func (e *ShareError) Unwrap() error { return e.Budget }

// hold is a reservation of the team's budget.
type hold struct {
	b  *Budget
	id string
	// alone: admitted by the safe share, in round; it counts amount
	// against limits in used until the next exchange.
	alone  bool
	round  uint64
	amount spend.Nanos
	limits []limitKey
	once   sync.Once
}

// Settle ends the reservation in Redis, in the call that tells the
// answer's cost (recorded in the ledger already), so that the team's spent
// + reserved never dips below the truth. When Redis does not answer, the
// end is told at the next exchange.
func (h *hold) Settle(cost spend.Nanos, answered bool) {
	h.once.Do(func() {
		b := h.b
		b.mu.Lock()
		if h.alone && b.round == h.round {
			delta := -h.amount
			if answered {
				delta += cost
			}
			for _, k := range h.limits {
				b.used[k] = max(b.used[k]+delta, 0)
			}
		}
		delete(b.adds, h.id)
		delete(b.live, h.id)
		b.releases[h.id] = struct{}{}
		b.mu.Unlock()
		b.exchange(nil, nil, always)
	})
}

// Status returns ls with the team's Spent and Reserved: those of the last
// exchange, made again when older than a second.
func (b *Budget) Status(ls []spend.Limit) ([]spend.Limit, error) {
	b.refresh(ls)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.synced {
		return nil, fmt.Errorf("the team's spend is unknown: redis %s has not answered since lbgptd started", b.team.where)
	}
	out := make([]spend.Limit, len(ls))
	for i, l := range ls {
		st := b.snap.limits[limitKey{l.Namespace, l.Period}]
		out[i] = spend.Limit{Namespace: l.Namespace, Period: l.Period, Max: l.Max, Spent: st[0], Reserved: st[1]}
	}
	return out, nil
}

// refresh asks Redis for the figures when those of the last exchange are
// stale; ls nil keeps the limits of the last call.
func (b *Budget) refresh(ls []spend.Limit) {
	b.mu.Lock()
	stale := time.Since(b.snap.at) > budgetFresh
	b.mu.Unlock()
	if stale || ls != nil && !sameLimits(ls, b.lastLimits()) {
		b.exchange(ls, nil, always)
	}
}

func (b *Budget) lastLimits() []spend.Limit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ls
}

func sameLimits(a, c []spend.Limit) bool {
	if len(a) != len(c) {
		return false
	}
	for i := range a {
		if a[i].Namespace != c[i].Namespace || a[i].Period != c[i].Period || a[i].Max != c[i].Max {
			return false
		}
	}
	return true
}

// BudgetState is the team's spend, for the status.
type BudgetState struct {
	Day, Month Spend     // every host's, at AsOf
	AsOf       time.Time // the last exchange; zero: none since the start
	// DegradedSince is when Redis stopped answering this host's
	// exchanges; zero while it answers. Each host then holds the limits
	// by its safe share.
	DegradedSince time.Time
	Hosts         int
}

// State returns the team's spend, asking Redis when the last figures are
// older than a second.
func (b *Budget) State() BudgetState {
	b.refresh(nil)
	b.mu.Lock()
	defer b.mu.Unlock()
	st := BudgetState{DegradedSince: b.degradedSince, Hosts: b.hosts()}
	if b.synced {
		st.Day, st.Month, st.AsOf = b.snap.day, b.snap.month, b.snap.at
	}
	return st
}
