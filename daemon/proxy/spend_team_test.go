package proxy

import (
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// Two pipelines of a team with one [budget]: a reservation on one host
// counts on the other, and the status shows the team's figures.
func TestSharedBudget(t *testing.T) {
	srv := redistest.Start(t)
	// A chat request with no max_tokens reserves its prompt and 16384
	// output tokens: about $0.0098 on gpt-4o-mini. Two fit in $0.02.
	a, _ := teamHost(t, srv, "host-a", "[budget]\nday = 0.02\n", "")
	b, _ := teamHost(t, srv, "host-b", "[budget]\nday = 0.02\n", "")
	raw := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	r, err := Parse(provider.PathChat, raw)
	if err != nil {
		t.Fatal(err)
	}
	var held []func()
	for range 2 {
		resv, err := a.pl.reserve(r, "")
		if err != nil || resv == nil {
			t.Fatalf("host a: %v", err)
		}
		held = append(held, resv.Release)
	}
	_, err = b.pl.reserve(r, "")
	if e, ok := err.(*rpc.Error); !ok || e.Code != rpc.CodeBudget || !strings.Contains(e.Message, "overall per day") {
		t.Fatalf("host b reserved beside host a's two reservations: %v", err)
	}
	st := b.pl.SpendStatus()
	if !st.Team || st.TeamAsOf.IsZero() || len(st.Budgets) != 1 || st.Budgets[0].ReservedUSD < 0.019 {
		t.Errorf("host b's status: %+v, want the team's reservations", st)
	}
	for _, release := range held {
		release()
	}
	if resv, err := b.pl.reserve(r, ""); err != nil {
		t.Errorf("host b after host a released: %v", err)
	} else {
		resv.Release()
	}
	res := a.ask(t, "what is 2+2", rpc.Options{})
	if res.Meta.Cost == nil || *res.Meta.Cost <= 0 {
		t.Fatalf("no cost: %+v", res.Meta)
	}
	eventually(t, "host b sees host a's answer in the team's totals", func() bool {
		st := b.pl.SpendStatus()
		return st.TeamToday.Requests == 1 && st.Today.Requests == 0
	})
}
