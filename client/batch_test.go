package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/rpc"
)

func TestBatchEvents(t *testing.T) {
	socket := socketPath(t)
	got := make(chan map[string]any, 1)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodBatch {
			return
		}
		got <- msg
		id := idOf(msg)
		// Somebody else's notifications first: they must not show up here.
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":999,"item":{"index":0,"error":{"code":-32603,"message":"NOT MINE"}}}}`)
		send(`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":` + id + `,"chunk":{}}}`)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":1,"error":{"code":-32004,"message":"no backend serves model \"nope\"","data":{"kind":"no_backend"}}}}}`)
		send(`{"jsonrpc":"2.0","method":"batch.progress","params":{"id":` + id + `,"total":2,"ok":0,"failed":1,"retries":0,"coalesced":0,"elapsed_ms":3,"done":1}}`)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":0,"result":{"response":{"choices":[{"message":{"content":"a"}}]},"lbgpt":{"backend":"x","attempts":2}}}}}`)
		send(`{"jsonrpc":"2.0","id":` + id + `,"result":{"items":[` +
			`{"index":0,"result":{"response":{"choices":[{"message":{"content":"a"}}]},"lbgpt":{"backend":"x","attempts":2}}},` +
			`{"index":1,"error":{"code":-32004,"message":"no backend serves model \"nope\""}}],` +
			`"summary":{"total":2,"ok":1,"failed":1,"retries":1,"coalesced":0,"elapsed_ms":5}}}`)
	})
	c := &Client{Socket: socket}
	defer c.Close()
	reqs := []any{
		map[string]any{"model": "m", "messages": []any{}},
		json.RawMessage(`{"model":"nope","messages":[]}`),
	}
	var trace []string
	var final *rpc.BatchResult
	for ev, err := range c.Batch(t.Context(), reqs, rpc.Options{Timeout: rpc.Duration(30e9)}, 8) {
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Item != nil && ev.Item.Error != nil:
			trace = append(trace, fmt.Sprintf("item %d error %d", ev.Item.Index, ev.Item.Error.Code))
		case ev.Item != nil:
			trace = append(trace, fmt.Sprintf("item %d %s", ev.Item.Index, AnswerText(ev.Item.Result.Response)))
		case ev.Progress != nil:
			trace = append(trace, fmt.Sprintf("progress %d/%d", ev.Progress.Done, ev.Progress.Total))
		case ev.Result != nil:
			final = ev.Result
			trace = append(trace, "result")
		}
	}
	want := []string{"item 1 error -32004", "progress 1/2", "item 0 a", "result"}
	if diff := cmp.Diff(want, trace); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if final == nil || len(final.Items) != 2 || final.Summary.Retries != 1 || !errors.Is(final.Items[1].Error, rpc.ErrNotFound) {
		t.Errorf("result = %+v", final)
	}
	msg := <-got
	params := msg["params"].(map[string]any)
	if params["concurrency"] != float64(8) || params["options"].(map[string]any)["timeout"] != "30s" {
		t.Errorf("params = %v", params)
	}
	if r := params["requests"].([]any); len(r) != 2 || r[1].(map[string]any)["model"] != "nope" {
		t.Errorf("requests = %v", r)
	}
}

func TestBatchEarlyStopCancels(t *testing.T) {
	socket := socketPath(t)
	canceled := make(chan string, 1)
	var batchID string
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		switch msg["method"] {
		case rpc.MethodBatch:
			batchID = idOf(msg) // the fake serves one message at a time
			send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + batchID + `,"item":{"index":0,"result":{"response":{},"lbgpt":{}}}}}`)
			// ...and never the rest.
		case rpc.MethodCancel:
			canceled <- idOf(msg["params"].(map[string]any))
		}
	})
	c := &Client{Socket: socket}
	defer c.Close()
	reqs := []any{json.RawMessage(`{"model":"m"}`), json.RawMessage(`{"model":"m"}`)}
	n := 0
	for ev, err := range c.Batch(t.Context(), reqs, rpc.Options{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Item == nil {
			t.Fatalf("event %+v, want the first item", ev)
		}
		n++
		break
	}
	if n != 1 {
		t.Fatalf("%d events", n)
	}
	if id := <-canceled; id != batchID {
		t.Errorf("cancel for id %s, want the batch's %s", id, batchID)
	}
}

func TestBatchRefusesBadRequestBeforeSending(t *testing.T) {
	socket := socketPath(t)
	f := newFake(t, socket, func(msg map[string]any, send func(string)) {
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"version":"v","backends":[]}}`, idOf(msg)))
	})
	c := &Client{Socket: socket}
	defer c.Close()
	var errs []error
	for _, err := range c.Batch(t.Context(), []any{json.RawMessage(`{"model":"m"}`), json.RawMessage(`[1]`)}, rpc.Options{}, 0) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || errs[0] == nil || errs[0].Error() != "batch request 1: encode request: not a JSON object" {
		t.Errorf("errors = %v", errs)
	}
	// A status call after it is the first message the daemon sees.
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	if msgs := f.messages(); len(msgs) != 1 || msgs[0]["method"] != rpc.MethodStatus {
		t.Errorf("daemon saw %v", msgs)
	}
}

func TestBatchDaemonError(t *testing.T) {
	socket := socketPath(t)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		send(`{"jsonrpc":"2.0","id":` + idOf(msg) + `,"error":{"code":-32010,"message":"daemon shutting down"}}`)
	})
	c := &Client{Socket: socket}
	defer c.Close()
	var errs []error
	for ev, err := range c.Batch(t.Context(), []any{json.RawMessage(`{"model":"m"}`)}, rpc.Options{}, 0) {
		if err == nil {
			t.Errorf("event %+v", ev)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], rpc.ErrShuttingDown) {
		t.Errorf("errors = %v", errs)
	}
}

// Batch asks for the summary only and builds the result's items, in input
// order, from the notifications; an item never notified is an error in its
// slot.
func TestBatchSummaryOnlyItemsFromNotifications(t *testing.T) {
	socket := socketPath(t)
	got := make(chan map[string]any, 1)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		got <- msg
		id := idOf(msg)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":2,"result":{"response":{"choices":[{"message":{"content":"c"}}]},"lbgpt":{}}}}}`)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":0,"result":{"response":{"choices":[{"message":{"content":"a"}}]},"lbgpt":{}}}}}`)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":0,"result":{"response":{"choices":[{"message":{"content":"REPEAT"}}]},"lbgpt":{}}}}}`)
		send(`{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":{"index":7,"error":{"code":-32603,"message":"OUT OF RANGE"}}}}`)
		send(`{"jsonrpc":"2.0","id":` + id + `,"result":{"summary":{"total":3,"ok":2,"failed":0,"retries":0,"coalesced":0,"elapsed_ms":5}}}`)
	})
	c := &Client{Socket: socket}
	defer c.Close()
	reqs := []any{json.RawMessage(`{"model":"m"}`), json.RawMessage(`{"model":"m"}`), json.RawMessage(`{"model":"m"}`)}
	var final *rpc.BatchResult
	for ev, err := range c.Batch(t.Context(), reqs, rpc.Options{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Result != nil {
			final = ev.Result
		}
	}
	if params := (<-got)["params"].(map[string]any); params["summary_only"] != true {
		t.Errorf("params = %v, want summary_only", params)
	}
	if final == nil || len(final.Items) != 3 {
		t.Fatalf("result = %+v", final)
	}
	var slots []string
	for i, it := range final.Items {
		switch {
		case it.Index != i:
			slots = append(slots, fmt.Sprintf("index %d", it.Index))
		case it.Error != nil:
			slots = append(slots, fmt.Sprintf("error %d", it.Error.Code))
		default:
			slots = append(slots, AnswerText(it.Result.Response))
		}
	}
	if diff := cmp.Diff([]string{"a", fmt.Sprintf("error %d", rpc.CodeInternal), "c"}, slots); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}
