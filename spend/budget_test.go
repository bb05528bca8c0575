package spend

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/config"
)

// batch runs requests of namespace ns from workers goroutines against b,
// each reserving estimate and costing cost(), until each of them is
// refused. It returns how many were answered, and one refusal.
func batch(t *testing.T, b *Budget, ns string, workers int, estimate Nanos, cost func() Nanos) (int64, error) {
	t.Helper()
	var answered atomic.Int64
	var refusal error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				r, err := b.Reserve(ns, estimate)
				if err != nil {
					once.Do(func() { refusal = err })
					return
				}
				c := cost()
				if c > estimate {
					t.Errorf("cost %s over the estimate %s", c, estimate)
				}
				if err := r.Commit(Entry{Backend: "b", Model: "gpt-4o", Cost: c, Priced: true}); err != nil {
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

// TestBatchStopsAtLimit runs a batch against a namespace's daily budget,
// concurrently: it must stop at the limit, and never go over it.
func TestBatchStopsAtLimit(t *testing.T) {
	// A request of 1000 input tokens and max_tokens 500 on gpt-4o costs at
	// most 1000 × $2.50/1M + 500 × $10/1M = $0.0075.
	price := builtin["gpt-4o"]
	estimate := price.Cost(Usage{Input: 1000, Output: 500})
	if estimate != 7_500_000 {
		t.Fatalf("estimate %d", estimate)
	}
	cfg := config.Budget{WarnAt: 0.8, Namespaces: []config.NamespaceBudget{{Name: "research", Day: 5}}}

	t.Run("answers cost their estimate", func(t *testing.T) {
		l := open(t, t.TempDir(), newClock(t0))
		b := NewBudget(l, cfg)
		answered, err := batch(t, b, "research", 32, estimate, func() Nanos { return estimate })
		// $5.00 / $0.0075 = 666.67: 666 requests fit, the 667th would cross.
		if answered != 666 {
			t.Errorf("%d answered, want 666", answered)
		}
		const msg = `budget namespace "research" per day: $5.00 of $5.00 spent or reserved`
		var be *BudgetError
		if !errors.As(err, &be) || !errors.Is(err, ErrOverBudget) || err.Error() != msg {
			t.Errorf("refusal = %v, want %q", err, msg)
		}
		if be != nil && be.Limit.Spent+be.Limit.Reserved != 666*estimate {
			t.Errorf("refused at %s spent and %s reserved, want $4.995 in all", be.Limit.Spent, be.Limit.Reserved)
		}
		if got := total(t, l); got.Requests != 666 || got.Cost != 666*estimate {
			t.Errorf("ledger: %d requests, %s; want 666, $4.995", got.Requests, got.Cost)
		}
	})

	t.Run("answers cost less", func(t *testing.T) {
		l := open(t, t.TempDir(), newClock(t0))
		b := NewBudget(l, cfg)
		answered, _ := batch(t, b, "research", 64, estimate, func() Nanos {
			return price.Cost(Usage{Input: 1000, Output: rand.IntN(501)})
		})
		got := total(t, l)
		if got.Cost > USD(5) {
			t.Errorf("spent %s of a $5.00 budget", got.Cost)
		}
		// Each worker stopped at a refusal: then less than its estimate
		// was left, or the others' reservations held it.
		if got.Cost < USD(5)-64*estimate {
			t.Errorf("spent %s: stopped before the limit", got.Cost)
		}
		if got.Requests != answered {
			t.Errorf("ledger: %d requests, %d answered", got.Requests, answered)
		}
	})
}

func TestOverallBudget(t *testing.T) {
	l := open(t, t.TempDir(), newClock(t0))
	b := NewBudget(l, config.Budget{Day: 1, WarnAt: 0.5, Namespaces: []config.NamespaceBudget{{Name: "a", Month: 0.6}}})
	// Namespaces a and b share the overall $1.00 a day.
	answered, err := batch(t, b, "a", 8, 10*Cent, func() Nanos { return 10 * Cent })
	if answered != 6 || err == nil || err.Error() != `budget namespace "a" per month: $0.60 of $0.60 spent or reserved` {
		t.Errorf("namespace a: %d answered, %v", answered, err)
	}
	answered, err = batch(t, b, "b", 8, 10*Cent, func() Nanos { return 10 * Cent })
	if answered != 4 || err == nil || err.Error() != "budget overall per day: $1.00 of $1.00 spent or reserved" {
		t.Errorf("namespace b: %d answered, %v", answered, err)
	}
	// Nothing more fits, however small; nothing at all is still allowed.
	if _, err := b.Reserve("", 1); err == nil {
		t.Errorf("a reservation past the overall limit was allowed")
	}
	r, err := b.Reserve("", 0)
	if err != nil {
		t.Errorf("a free request was refused: %v", err)
	} else {
		r.Release()
	}
}

func TestReservations(t *testing.T) {
	l := open(t, t.TempDir(), newClock(t0))
	b := NewBudget(l, config.Budget{Day: 1, WarnAt: 0.8})
	r1, err := b.Reserve("x", 60*Cent)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve("y", 50*Cent); err == nil {
		t.Fatalf("reservations of $1.10 under a $1.00 limit")
	}
	r1.Release()
	r1.Release() // again: nothing
	r2, err := b.Reserve("y", 50*Cent)
	if err != nil {
		t.Fatalf("the released reservation still counts: %v", err)
	}
	if err := r2.Commit(Entry{Namespace: "other", Cost: 30 * Cent, Priced: true}); err != nil {
		t.Fatal(err)
	}
	r2.Release() // after Commit: nothing
	want := []Limit{{Period: Day, Max: Dollar, Spent: 30 * Cent}}
	if diff := cmp.Diff(want, b.Status()); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	r, _ := l.Report(time.Time{}, ByNamespace)
	if len(r.Rows) != 1 || r.Rows[0].Name != "y" {
		t.Errorf("Commit recorded %+v, want in the reservation's namespace", r.Rows)
	}
	// An unpriced answer costs nothing against the budget.
	r3, _ := b.Reserve("y", 0)
	r3.Commit(Entry{Model: "llama3.2", Usage: Usage{Input: 10}})
	if s := b.Status(); s[0].Spent != 30*Cent {
		t.Errorf("spent %s after an unpriced answer, want $0.30", s[0].Spent)
	}
}

// TestBudgetPeriods checks the UTC day and month, and that what was spent
// survives a restart.
func TestBudgetPeriods(t *testing.T) {
	dir := t.TempDir()
	c := newClock(time.Date(2025, 3, 31, 23, 30, 0, 0, time.UTC))
	l := open(t, dir, c)
	cfg := config.Budget{Day: 2, Month: 3, WarnAt: 0.8, Namespaces: []config.NamespaceBudget{{Name: "r", Day: 1.5}}}
	b := NewBudget(l, cfg)
	r, err := b.Reserve("r", Dollar)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit(Entry{Cost: Dollar, Priced: true})

	l.Close()
	l = open(t, dir, c)
	b = NewBudget(l, cfg)
	status := func() []Limit {
		t.Helper()
		s := b.Status()
		for i := range s {
			s[i].Max = 0 // known
		}
		return s
	}
	want := []Limit{
		{Period: Day, Spent: Dollar},
		{Period: Month, Spent: Dollar},
		{Namespace: "r", Period: Day, Spent: Dollar},
	}
	if diff := cmp.Diff(want, status()); diff != "" {
		t.Errorf("after a restart (-want +got):\n%s", diff)
	}
	if _, err := b.Reserve("r", Dollar); err == nil {
		t.Errorf("$2.00 in a day under a $1.50 limit")
	}

	c.set(time.Date(2025, 4, 1, 0, 30, 0, 0, time.UTC)) // a new day, a new month
	if diff := cmp.Diff([]Limit{{Period: Day}, {Period: Month}, {Namespace: "r", Period: Day}}, status()); diff != "" {
		t.Errorf("the next day (-want +got):\n%s", diff)
	}
	r, err = b.Reserve("r", Dollar)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit(Entry{Cost: Dollar, Priced: true})
	c.set(time.Date(2025, 4, 2, 9, 0, 0, 0, time.UTC))
	r, err = b.Reserve("r", Dollar)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit(Entry{Cost: Dollar, Priced: true})
	want = []Limit{
		{Period: Day, Spent: Dollar},
		{Period: Month, Spent: 2 * Dollar},
		{Namespace: "r", Period: Day, Spent: Dollar},
	}
	if diff := cmp.Diff(want, status()); diff != "" {
		t.Errorf("the day after (-want +got):\n%s", diff)
	}
	c.set(time.Date(2025, 4, 3, 9, 0, 0, 0, time.UTC)) // a day with $2.00 to spend, but not the month
	if _, err := b.Reserve("", 1*Dollar+1); err == nil || err.Error() != "budget overall per month: $2.00 of $3.00 spent or reserved" {
		t.Errorf("over the month = %v", err)
	}
}

func TestWarn(t *testing.T) {
	l := open(t, t.TempDir(), newClock(t0))
	b := NewBudget(l, config.Budget{Day: 10, WarnAt: 0.8})
	for _, step := range []struct {
		cost Nanos
		warn bool
	}{{7 * Dollar, false}, {99 * Cent, false}, {Cent, true}} {
		r, err := b.Reserve("", step.cost)
		if err != nil {
			t.Fatal(err)
		}
		r.Commit(Entry{Cost: step.cost, Priced: true})
		if s := b.Status()[0]; s.Warn != step.warn {
			t.Errorf("at %s of %s: warn %v, want %v", s.Spent, s.Max, s.Warn, step.warn)
		}
	}
	b.Reconfigure(config.Budget{Day: 10, WarnAt: 0.9})
	if b.Status()[0].Warn {
		t.Errorf("warns at $8.00 of $10.00 with warn_at 0.9")
	}
	b.Reconfigure(config.Budget{WarnAt: 0.9})
	if len(b.Status()) != 0 {
		t.Errorf("limits left after removing them: %+v", b.Status())
	}
}

func BenchmarkReserveCommit(b *testing.B) {
	l := open(b, b.TempDir(), newClock(t0))
	bu := NewBudget(l, config.Budget{Day: 1e6, Month: 1e7, WarnAt: 0.8, Namespaces: []config.NamespaceBudget{{Name: "research", Day: 1e5}}})
	e := Entry{Backend: "azure-east", Model: "gpt-4o-mini", Usage: Usage{Input: 1200, Output: 300}, Cost: 300_000, Priced: true}
	b.ReportAllocs()
	for b.Loop() {
		r, err := bu.Reserve("research", 400_000)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Commit(e); err != nil {
			b.Fatal(err)
		}
	}
}
