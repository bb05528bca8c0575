package shared

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/spend"
)

// budgetHost is one daemon's spend in a team: its own ledger, the team's
// budget.
type budgetHost struct {
	team   *Team
	ledger *spend.Ledger
	shared *Budget
	budget *spend.Budget
}

func openBudgetHost(t *testing.T, srv *redistest.Server, opts Options, cfg config.Budget) *budgetHost {
	t.Helper()
	l, err := spend.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	team := openTeamWith(t, srv, opts) // closed before the ledger: its last report reads it
	sb := NewBudget(team, l)
	return &budgetHost{team: team, ledger: l, shared: sb, budget: spend.NewTeamBudget(l, cfg, sb)}
}

// spendUntilRefused runs workers goroutines that each reserve estimate and
// commit an answer costing it, until refused; it returns how many were
// answered and one refusal.
func (h *budgetHost) spendUntilRefused(t *testing.T, workers int, ns string, estimate spend.Nanos) (int64, error) {
	var answered atomic.Int64
	var refusal error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				r, err := h.budget.Reserve(ns, estimate)
				if err != nil {
					once.Do(func() { refusal = err })
					return
				}
				if err := r.Commit(spend.Entry{Backend: "b", Model: "gpt-4o", Cost: estimate, Priced: true}); err != nil {
					t.Error(err)
					return
				}
				answered.Add(1)
			}
		})
	}
	wg.Wait()
	return answered.Load(), refusal
}

// status is the budget's status, the team's figures asked of Redis now
// (Status asks only when they are a second old).
func (h *budgetHost) status() []spend.Limit {
	h.shared.exchange(nil, nil, always)
	return h.budget.Status()
}

func (h *budgetHost) spent(t *testing.T) spend.Nanos {
	t.Helper()
	rep, err := h.ledger.Report(spend.Day.Since(time.Now()), "")
	if err != nil {
		t.Fatal(err)
	}
	return rep.Total.Cost
}

// Two hosts, each with a batch of 16 workers, against one $1.00 a day:
// together they stop at the limit, with no request over it. Alone, each
// would spend $1.00.
func TestTeamBudgetStopsAtLimit(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config.Budget{WarnAt: 0.8, Namespaces: []config.NamespaceBudget{{Name: "research", Day: 1}}}
	a := openBudgetHost(t, srv, Options{Host: "host-a"}, cfg)
	b := openBudgetHost(t, srv, Options{Host: "host-b"}, cfg)
	const estimate = 7_500_000 // $0.0075: 133 fit in $1.00, the 134th would cross
	var na, nb int64
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { na, ea = a.spendUntilRefused(t, 16, "research", estimate) })
	wg.Go(func() { nb, eb = b.spendUntilRefused(t, 16, "research", estimate) })
	wg.Wait()
	if na+nb != 133 {
		t.Errorf("the team answered %d (%d + %d), want 133", na+nb, na, nb)
	}
	if sa, sb := a.spent(t), b.spent(t); sa+sb != 133*estimate {
		t.Errorf("the ledgers hold %v + %v, want $0.9975 in all", sa, sb)
	}
	for _, err := range []error{ea, eb} {
		var be *spend.BudgetError
		if !errors.As(err, &be) || be.Limit.Spent+be.Limit.Reserved+estimate <= be.Limit.Max {
			t.Errorf("refusal %v, want the limit's", err)
		}
	}
	// Both hosts see the team's figures (within a second: Status asks
	// Redis again when its figures are older).
	for _, h := range []*budgetHost{a, b} {
		waitFor(t, "$0.9975 spent, nothing reserved, warned", func() bool {
			st := h.status()
			return len(st) == 1 && st[0].Spent == 133*estimate && st[0].Reserved == 0 && st[0].Warn
		})
	}
	if ts := a.shared.State(); ts.Day.Requests != 133 || ts.Day.Cost != 133*estimate || ts.Month.Cost != 133*estimate {
		t.Errorf("team totals %+v, want 133 requests, $0.9975", ts)
	}
	t.Logf("host a %d, host b %d", na, nb)
}

// A host killed while it holds a reservation: the reservation holds the
// budget until the host is silent for its TTL, then no longer.
func TestTeamBudgetDeadHostReservation(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config.Budget{Day: 1, WarnAt: 0.8}
	const ttl = 300 * time.Millisecond
	a := openBudgetHost(t, srv, Options{Host: "host-a", hostTTL: ttl}, cfg)
	b := openBudgetHost(t, srv, Options{Host: "host-b", hostTTL: ttl}, cfg)
	if _, err := a.budget.Reserve("", 90*spend.Cent); err != nil {
		t.Fatal(err)
	}
	if _, err := b.budget.Reserve("", 20*spend.Cent); !errors.Is(err, spend.ErrOverBudget) {
		t.Fatalf("host b reserved $0.20 past host a's $0.90 of $1.00: %v", err)
	}
	// Host a dies: no last exchange ends its reservation.
	a.team.rdb.Close()
	a.team.Close()
	killed := time.Now()
	if _, err := b.budget.Reserve("", 20*spend.Cent); !errors.Is(err, spend.ErrOverBudget) {
		t.Fatalf("host a's reservation went at once: %v", err)
	}
	for {
		r, err := b.budget.Reserve("", 20*spend.Cent)
		if err == nil {
			r.Release()
			break
		}
		if time.Since(killed) > 10*ttl {
			t.Fatalf("host a's reservation still held %v after it died (ttl %v): %v", time.Since(killed), ttl, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(killed); d < ttl/2 {
		t.Errorf("host a's reservation went after %v, before its ttl of %v", d, ttl)
	}
	if st := b.budget.Status(); st[0].Reserved != 0 {
		t.Errorf("%v still reserved", st[0].Reserved)
	}
}

// Redis goes: each host admits its safe share of what was left, not more;
// Redis comes back empty: the figures are told again, and the team's
// spend is every host's.
func TestTeamBudgetRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config.Budget{Day: 1, WarnAt: 0.8}
	a := openBudgetHost(t, srv, Options{Host: "host-a", budgetDown: 300 * time.Millisecond}, cfg)
	b := openBudgetHost(t, srv, Options{Host: "host-b", budgetDown: 300 * time.Millisecond}, cfg)
	const estimate = 10 * spend.Cent
	for range 4 {
		r, err := a.budget.Reserve("", estimate)
		if err != nil {
			t.Fatal(err)
		}
		r.Commit(spend.Entry{Model: "gpt-4o", Cost: estimate, Priced: true})
	}
	waitFor(t, "host b sees $0.40 spent", func() bool { return b.status()[0].Spent == 4*estimate })
	if na, nb := a.shared.State().Hosts, b.shared.State().Hosts; na != 2 || nb != 2 {
		t.Fatalf("team sizes %d, %d", na, nb)
	}

	srv.Stop()
	// $0.60 was left: each of two hosts may spend $0.30 of it.
	for _, h := range []*budgetHost{a, b} {
		n, err := h.spendUntilRefused(t, 1, "", estimate)
		var se *ShareError
		if n != 3 || !errors.As(err, &se) || !errors.Is(err, spend.ErrOverBudget) || se.Share != 30*spend.Cent {
			t.Errorf("with redis down: %d answered, %v; want 3 and the safe share of $0.30", n, err)
		}
	}
	if st := a.shared.State(); st.DegradedSince.IsZero() {
		t.Errorf("not degraded: %+v", st)
	}

	srv.Restart() // empty
	waitFor(t, "the team's $1.00 told again after redis came back empty", func() bool {
		st := b.shared.State()
		return st.DegradedSince.IsZero() && st.Day.Cost == 100*spend.Cent
	})
	for _, h := range []*budgetHost{a, b} {
		_, err := h.budget.Reserve("", spend.Cent)
		var be *spend.BudgetError
		if !errors.As(err, &be) || be.Limit.Spent != 100*spend.Cent {
			t.Errorf("after redis came back: %v; want the limit's refusal at $1.00", err)
		}
	}
}

// A reservation admitted while Redis did not answer, still in flight when
// it answers again, is held there.
func TestTeamBudgetHeldAfterRecovery(t *testing.T) {
	srv := redistest.Start(t)
	cfg := config.Budget{Day: 1, WarnAt: 0.8}
	a := openBudgetHost(t, srv, Options{Host: "host-a", budgetDown: 100 * time.Millisecond}, cfg)
	b := openBudgetHost(t, srv, Options{Host: "host-b"}, cfg)
	srv.Pause()                                   // a Redis that hangs: every call times out
	r, err := a.budget.Reserve("", 40*spend.Cent) // within $1.00 / 2
	if err != nil {
		t.Fatal(err)
	}
	srv.Resume()
	waitFor(t, "host a's reservation made while redis hung is held", func() bool { return b.status()[0].Reserved == 40*spend.Cent })
	if _, err := b.budget.Reserve("", 70*spend.Cent); !errors.Is(err, spend.ErrOverBudget) {
		t.Errorf("host b reserved $0.70 beside host a's $0.40: %v", err)
	}
	r.Commit(spend.Entry{Model: "gpt-4o", Cost: 30 * spend.Cent, Priced: true})
	waitFor(t, "$0.30 spent and nothing reserved after the commit", func() bool {
		st := b.status()[0]
		return st.Reserved == 0 && st.Spent == 30*spend.Cent
	})
}

// waitFor polls cond until it holds, failing after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
