package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

const oneBackend = `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"
models = ["gpt-4o-mini", "gpt-4o"]
max_concurrent = 64
`

// The original's case: a bad model in the middle of a three-item batch is an
// error in slot 2 and answers in slots 1 and 3, in order.
func TestBatchBadItemInTheMiddle(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, oneBackend)
	reqs := []any{
		userRequest("gpt-4o-mini", "first question"),
		userRequest("no-such-model", "second question"),
		userRequest("gpt-4o-mini", "third question"),
	}
	var res *rpc.BatchResult
	items, progress := 0, 0
	for ev, err := range h.client.Batch(t.Context(), reqs, rpc.Options{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Item != nil:
			items++
		case ev.Progress != nil:
			progress++
		case ev.Result != nil:
			res = ev.Result
		}
	}
	if res == nil || len(res.Items) != 3 {
		t.Fatalf("result = %+v", res)
	}
	for i, want := range []string{"first question", "", "third question"} {
		it := res.Items[i]
		if it.Index != i {
			t.Errorf("slot %d holds index %d", i, it.Index)
		}
		if want == "" {
			if it.Error == nil || it.Error.Code != rpc.CodeNotFound || !strings.Contains(it.Error.Message, "no-such-model") {
				t.Errorf("slot %d: want a not-found error naming the model, got %+v", i, it)
			}
			continue
		}
		if it.Error != nil || !strings.Contains(client.AnswerText(it.Result.Response), want) {
			t.Errorf("slot %d: want the answer to %q, got %+v", i, want, it)
		}
	}
	if s := res.Summary; s.Total != 3 || s.OK != 2 || s.Failed != 1 {
		t.Errorf("summary = %+v", s)
	}
	if items != 3 || progress == 0 {
		t.Errorf("%d item and %d progress notifications", items, progress)
	}
}

// Ten identical requests at once make one upstream call.
func TestSingleFlight(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 200 * time.Millisecond}}}, oneBackend)
	var wg sync.WaitGroup
	var mu sync.Mutex
	caches := map[string]int{}
	for range 10 {
		wg.Go(func() {
			res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "the same question"), rpc.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			if !strings.Contains(client.AnswerText(res.Response), "the same question") {
				t.Errorf("answer %s", res.Response)
			}
			mu.Lock()
			caches[res.Meta.Cache]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if n := len(h.sim.Log()); n != 1 {
		t.Errorf("the simulator saw %d calls, want 1", n)
	}
	if caches[rpc.CacheMiss] != 1 || caches[rpc.CacheCoalesced] != 9 {
		t.Errorf("cache outcomes %v, want 1 miss and 9 coalesced", caches)
	}
	// In a batch too.
	reqs := make([]any, 5)
	for i := range reqs {
		reqs[i] = userRequest("gpt-4o-mini", "a batch of one question")
	}
	var res *rpc.BatchResult
	for ev, err := range h.client.Batch(t.Context(), reqs, rpc.Options{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Result != nil {
			res = ev.Result
		}
	}
	if res.Summary.OK != 5 || res.Summary.Coalesced != 4 || len(h.sim.Log()) != 2 {
		t.Errorf("batch of 5 identical: summary %+v, simulator calls %d", res.Summary, len(h.sim.Log()))
	}
}

// Stopping a batch cancels what is in flight upstream and starts nothing
// more.
func TestBatchCancel(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 5 * time.Second}}}, oneBackend)
	reqs := make([]any, 20)
	for i := range reqs {
		reqs[i] = userRequest("gpt-4o-mini", fmt.Sprintf("slow question %d", i))
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		for _, err := range h.client.Batch(ctx, reqs, rpc.Options{}, 4) {
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	waitFor(t, func() bool { return len(h.sim.Log()) == 4 })
	cancel()
	if err := <-errc; err == nil {
		t.Error("canceled batch ended without an error")
	}
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 0 })
	time.Sleep(100 * time.Millisecond) // would a fifth item start now?
	if n := len(h.sim.Log()); n != 4 {
		t.Errorf("the simulator saw %d calls, want the 4 in flight when canceled", n)
	}
}

func TestWatch(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, oneBackend)
	w, err := h.client.Watch(t.Context(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	first, err := w.Next(t.Context())
	if err != nil || len(first.Backends) != 1 || first.Backends[0].Requests != 0 {
		t.Fatalf("first snapshot %+v, %v", first, err)
	}
	if _, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "move the counters"), rpc.Options{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for {
		st, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("no update after a request: %v", err)
		}
		if st.Backends[0].Requests == 1 && st.Backends[0].Tokens > 0 {
			return
		}
	}
}

// A running batch is listed in status, with its progress and the backends
// that answered, and watchers see that progress move; a finished batch is
// no longer listed.
func TestBatchInStatus(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 30 * time.Millisecond}}}, oneBackend)
	w, err := h.client.Watch(t.Context(), 20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reqs := make([]any, 12)
	for i := range reqs {
		reqs[i] = userRequest("gpt-4o-mini", fmt.Sprintf("question %d", i))
	}
	done := make(chan error, 1)
	go func() {
		for _, err := range h.client.Batch(t.Context(), reqs, rpc.Options{}, 2) {
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	seen := map[int]bool{} // Done counts the watcher saw
	var last rpc.BatchStatus
	for len(seen) < 2 || last.Done < len(reqs)/2 {
		st, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watch: %v (saw done counts %v)", err, seen)
		}
		if len(st.Batches) != 1 {
			continue
		}
		last = st.Batches[0]
		seen[last.Done] = true
	}
	if last.ID == "" || last.Total != len(reqs) || last.StartedAt.IsZero() || last.RatePerS <= 0 || last.ETAS <= 0 {
		t.Errorf("batch status %+v", last)
	}
	if last.Backends["a"] == 0 || last.Backends["a"] > last.Done {
		t.Errorf("backends %v with %d done", last.Backends, last.Done)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := h.client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Batches) != 0 {
		t.Errorf("finished batch still listed: %+v", st.Batches)
	}
}

// batchRaw sends a batch request line as a client would and reads every
// line up to its result: the batch.item notifications and the result.
func batchRaw(t *testing.T, c *rawConn, params string) (items []rpc.BatchItem, result map[string]json.RawMessage) {
	t.Helper()
	if _, err := c.nc.Write([]byte(`{"jsonrpc":"2.0","id":41,"method":"batch","params":` + params + "}\n")); err != nil {
		t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		var msg struct {
			Method string                     `json:"method"`
			Params rpc.BatchItemParams        `json:"params"`
			Result map[string]json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			if !strings.Contains(string(line), rpc.NotifyBatchProgress) {
				t.Fatalf("line %s: %v", line, err)
			}
			continue
		}
		switch {
		case msg.Method == rpc.NotifyBatchItem:
			items = append(items, msg.Params.Item)
		case msg.Method == "":
			return items, msg.Result
		}
	}
}

// With summary_only every item is notified once and the result is the
// summary alone; without it (an older client) the result still holds every
// item in input order, and the items are notified as before.
func TestBatchSummaryOnly(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, oneBackend)
	reqs := `[{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q0"}]},` +
		`{"model":"no-such-model","messages":[{"role":"user","content":"q1"}]},` +
		`[1],` +
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q3"}]},` +
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q4"}]}]`
	for _, summaryOnly := range []bool{true, false} {
		t.Run(fmt.Sprint("summary_only=", summaryOnly), func(t *testing.T) {
			c := dialRaw(t, h.socket)
			params := `{"requests":` + reqs + `,"concurrency":2}`
			if summaryOnly {
				params = `{"requests":` + reqs + `,"summary_only":true}`
			}
			notified, result := batchRaw(t, c, params)
			got := map[int]int{}
			for _, it := range notified {
				got[it.Index]++
				if (it.Index == 1 || it.Index == 2) != (it.Error != nil) {
					t.Errorf("item %d: %+v", it.Index, it)
				}
			}
			if len(notified) != 5 || len(got) != 5 {
				t.Errorf("notified %v, want each of the 5 items once", got)
			}
			var sum rpc.BatchSummary
			if err := json.Unmarshal(result["summary"], &sum); err != nil || sum.Total != 5 || sum.OK != 3 || sum.Failed != 2 {
				t.Errorf("summary %s (%v)", result["summary"], err)
			}
			raw, hasItems := result["items"]
			if summaryOnly {
				if hasItems {
					t.Errorf("summary_only result has items: %s", raw)
				}
				return
			}
			var items []rpc.BatchItem
			if err := json.Unmarshal(raw, &items); err != nil || len(items) != 5 {
				t.Fatalf("items %s (%v)", raw, err)
			}
			for i, it := range items {
				if it.Index != i || (i == 1 || i == 2) != (it.Error != nil) {
					t.Errorf("slot %d: %+v", i, it)
				}
				if it.Result != nil && !strings.Contains(client.AnswerText(it.Result.Response), fmt.Sprintf("q%d", i)) {
					t.Errorf("slot %d answers %q", i, client.AnswerText(it.Result.Response))
				}
			}
		})
	}
}
