package balance

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbgpt/lbgpt/config"
)

// TestReconfigureKeepsState: a kept backend keeps its stats, its requests
// in flight and what it used of its limits; a removed one finishes what it
// has in flight and takes nothing new; a new one takes the queue.
func TestReconfigureKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := backend("a", 1)
		a.LimitRPM = 10
		b := backend("b", 1)
		p := pool(Options{Strategy: config.StrategyWeighted}, a, b)

		// Two finished calls on each, then one call held open on each.
		for range 4 {
			if _, _, err := Do(t.Context(), p, req("m"), (&script{errs: nil}).call); err != nil {
				t.Fatal(err)
			}
		}
		release := make(chan struct{})
		var held sync.WaitGroup
		var mu sync.Mutex
		on := map[string]int{}
		hold := func(ctx context.Context, m *Member) (string, Outcome, error) {
			mu.Lock()
			on[m.Name()]++
			mu.Unlock()
			<-release
			return m.Name(), Outcome{Tokens: 10}, nil
		}
		for range 2 {
			held.Go(func() {
				if _, _, err := Do(context.Background(), p, req("m"), hold); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait()
		if on["a"] != 1 || on["b"] != 1 {
			t.Fatalf("held calls by backend %v, want one on a and one on b", on)
		}

		// a doubles its limit and weight; b is gone; c joins.
		a2 := a
		a2.LimitRPM, a2.Weight = 20, 2
		c := backend("c", 1)
		p.Reconfigure([]config.Backend{a2, c}, nil, Options{Strategy: config.StrategyWeighted})

		st := states(p)
		if _, ok := st["b"]; ok {
			t.Errorf("b still listed after its removal")
		}
		sa := st["a"]
		if sa.Requests != 2 || sa.InFlight != 1 || sa.LimitRPM != 20 || sa.Config.Weight != 2 {
			t.Errorf("a after reload: requests %d, in flight %d, limit %d, weight %v; want 2, 1, 20, 2",
				sa.Requests, sa.InFlight, sa.LimitRPM, sa.Config.Weight)
		}
		// 3 of 10 used before; 3 of 20 used after: 17 left.
		if sa.RemainingRPM != 17 {
			t.Errorf("a remaining RPM %d, want 17 (what was used is kept)", sa.RemainingRPM)
		}
		// New requests go to a and c only.
		for range 6 {
			_, rep, err := Do(t.Context(), p, req("m"), (&script{}).call)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Backend == "b" {
				t.Fatalf("removed backend b took a new request")
			}
		}
		// The held call on b finishes normally.
		close(release)
		held.Wait()
		if st := states(p); st["a"].InFlight != 0 || st["c"].InFlight != 0 {
			t.Errorf("in flight after release: a %d, c %d", st["a"].InFlight, st["c"].InFlight)
		}
	})
}

// TestReconfigureNewAccount: the same name on another URL is a new member
// with fresh state.
func TestReconfigureNewAccount(t *testing.T) {
	a := backend("a", 1)
	a.BaseURL = "http://one"
	p := pool(Options{}, a)
	if _, _, err := Do(t.Context(), p, req("m"), (&script{}).call); err != nil {
		t.Fatal(err)
	}
	a.BaseURL = "http://two"
	p.Reconfigure([]config.Backend{a}, nil, Options{})
	if got := states(p)["a"]; got.Requests != 0 || got.Config.BaseURL != "http://two" {
		t.Errorf("a on a new URL: requests %d, URL %s; want fresh state on http://two", got.Requests, got.Config.BaseURL)
	}
}

// TestReconfigureWakesQueue: a request waiting for room is admitted by a
// backend that a reload adds.
func TestReconfigureWakesQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := backend("a", 1)
		a.MaxConcurrent = 1
		p := pool(Options{}, a)
		release := make(chan struct{})
		go Do(context.Background(), p, req("m"), func(ctx context.Context, m *Member) (string, Outcome, error) {
			<-release
			return "", Outcome{}, nil
		})
		synctest.Wait()
		got := make(chan string, 1)
		go func() {
			_, rep, _ := Do(context.Background(), p, req("m"), (&script{}).call)
			got <- rep.Backend
		}()
		synctest.Wait()
		if p.QueueLen() != 1 {
			t.Fatalf("queue %d, want 1", p.QueueLen())
		}
		p.Reconfigure([]config.Backend{a, backend("b", 1)}, nil, Options{})
		select {
		case name := <-got:
			if name != "b" {
				t.Errorf("queued request went to %s, want the new b", name)
			}
		case <-time.After(time.Minute):
			t.Error("queued request not admitted after b joined")
		}
		close(release)
	})
}

func states(p *Pool) map[string]MemberState {
	out := map[string]MemberState{}
	for _, s := range p.State() {
		out[s.Name] = s
	}
	return out
}
