package daemon

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// A batch under rate limits: a burst of 100 items in its first second
// (full buckets), then 2 a second (the refill). Twenty seconds in, the
// ETA goes by the refill, not the average the burst inflates.
func TestBatchETAFollowsThePace(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	b := &batchRun{start: start, sum: rpc.BatchSummary{Total: 200}}
	for i := range 100 {
		b.pace.Add(start.Add(time.Duration(i)*5*time.Millisecond), 1)
		b.done++
	}
	for s := 1; s < 20; s++ {
		for k := range 2 {
			b.pace.Add(start.Add(time.Duration(s)*time.Second+time.Duration(k)*400*time.Millisecond), 1)
			b.done++
		}
	}
	now := start.Add(20 * time.Second)
	st := b.status(now)
	left := 200 - b.done // 62 items at 2 a second: 31 s
	if st.RatePerS < 1.8 || st.RatePerS > 2.2 || st.ETAS < 28 || st.ETAS > 35 {
		t.Errorf("rate %.1f/s, ETA %.0f s for %d items left at 2 a second (the average since the start would say %.1f/s, %.0f s)",
			st.RatePerS, st.ETAS, left, float64(b.done)/20, float64(left)/(float64(b.done)/20))
	}
	// Early on, the window is the time since the start.
	early := &batchRun{start: start, sum: rpc.BatchSummary{Total: 200}}
	for i := range 100 {
		early.pace.Add(start.Add(time.Duration(i)*5*time.Millisecond), 1)
		early.done++
	}
	if st := early.status(start.Add(500 * time.Millisecond)); st.RatePerS < 150 {
		t.Errorf("half a second into the burst the rate is %.0f/s", st.RatePerS)
	}
}

// The status stamps the variables the keys came from, so that a client
// can tell when its shell has other keys; no value shows.
func TestStatusStampsTheEnvironment(t *testing.T) {
	h := start(t, sim.Options{}, twoBackends)
	st, err := h.client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Env == nil || st.Env.Vars["KEY_A"] == "" {
		t.Fatalf("no stamp of KEY_A: %+v", st.Env)
	}
	same := map[string]string{"KEY_A": keyA, "KEY_B": keyB}
	if d := st.Env.Differs(func(k string) string { return same[k] }); len(d) != 0 {
		t.Errorf("the daemon's own keys differ: %v", d)
	}
	other := map[string]string{"KEY_A": "sk-fixed-in-the-shell", "KEY_B": keyB}
	if d := st.Env.Differs(func(k string) string { return other[k] }); len(d) != 1 || d[0] != "KEY_A" {
		t.Errorf("a shell with another KEY_A: differs %v", d)
	}
	b, _ := json.Marshal(st)
	if strings.Contains(string(b), keyA) || strings.Contains(string(b), keyB) {
		t.Error("the status shows a key")
	}
}
