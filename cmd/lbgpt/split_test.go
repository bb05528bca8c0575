package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

func TestSplitBatch(t *testing.T) {
	// Requests of 100 bytes; an empty batch's params are 15 bytes, so a
	// part of n requests is 15+128 + 100n + (n-1) bytes.
	req := func(n int) json.RawMessage {
		r := json.RawMessage(`{"model":"` + strings.Repeat("m", n-12) + `"}`)
		if len(r) != n {
			panic(len(r))
		}
		return r
	}
	reqs := func(sizes ...int) *input {
		in := &input{name: "in.jsonl"}
		for i, n := range sizes {
			in.reqs = append(in.reqs, req(n))
			in.lines = append(in.lines, 2*i+1) // a blank line between requests
		}
		return in
	}
	tests := []struct {
		name  string
		in    *input
		limit int
		want  []span
		err   string
	}{
		{"all in one", reqs(100, 100, 100), 1 << 20, []span{{0, 3}}, ""},
		{"exactly full", reqs(100, 100, 100), 143 + 302, []span{{0, 3}}, ""},
		{"one byte short", reqs(100, 100, 100), 143 + 301, []span{{0, 2}, {2, 3}}, ""},
		{"one each", reqs(100, 100, 100), 143 + 100, []span{{0, 1}, {1, 2}, {2, 3}}, ""},
		{"a large one alone", reqs(100, 300, 100), 143 + 300, []span{{0, 1}, {1, 2}, {2, 3}}, ""},
		{"a request too large", reqs(100, 301, 100), 143 + 300, nil,
			"in.jsonl:3: the request is 301 bytes, more than lbgptd accepts in one message (444 bytes with the batch around it; [daemon] max_message_bytes is 443)"},
		{"no requests", reqs(), 1000, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitBatch(tt.in, tt.limit, rpc.Options{}, 0)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Errorf("err = %v\nwant %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(span{})); diff != "" {
				t.Errorf("parts (-want +got):\n%s", diff)
			}
		})
	}
	// Options and concurrency count too.
	got, err := splitBatch(reqs(100, 100, 100), 143+302, rpc.Options{Timeout: rpc.Duration(time.Minute)}, 8)
	if err != nil || len(got) != 2 {
		t.Errorf("with options: parts %v, err %v; want 2", got, err)
	}
}

// partFake answers every batch with its items in reverse order, numbered
// within the batch, and counts 1 retry and 1 coalesced request per batch.
func partFake(t *testing.T) *fakeDaemon {
	return newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodBatch {
			return
		}
		id := idOf(msg)
		p := prompts(t, msg)
		items := make([]string, len(p))
		for i := range p {
			items[i] = okItem(i, "re: "+clip(p[i], 12), 1)
		}
		for i := len(p) - 1; i >= 0; i-- {
			send(itemNote(id, items[i]))
		}
		send(`{"jsonrpc":"2.0","method":"batch.progress","params":{"id":` + id + `,"total":1,"ok":1,"retries":1,"done":1}}`)
		send(resultMsg(id, items, fmt.Sprintf(`{"total":%d,"ok":%d,"retries":1,"coalesced":1}`, len(p), len(p))))
	})
}

func TestBatchRunsInParts(t *testing.T) {
	f := partFake(t)
	var input strings.Builder
	var want []string
	for i := range 10 {
		fmt.Fprintln(&input, requestLine("m", fmt.Sprintf("prompt %d", i)))
		want = append(want, fmt.Sprintf("%d re: prompt %d", i, i))
	}
	in, err := readRequests(strings.NewReader(input.String()), "stdin", "")
	if err != nil {
		t.Fatal(err)
	}
	const limit = 400 // about four requests a message
	c := &client.Client{Socket: f.socket, MaxMessageBytes: limit}
	defer c.Close()
	parts, err := splitBatch(in, c.MessageLimit(), rpc.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	b := &batchRun{results: newResults(w, len(in.reqs), in.ids), start: time.Now()}
	if err := b.run(t.Context(), c, in.reqs, parts, rpc.Options{}, 0); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range outputLines(t, out.String()) {
		got = append(got, fmt.Sprintf("%v %s", l["index"], answerOf(l)))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	batches := 0
	sizes := f.lineSizes()
	for i, m := range f.messages() {
		if m["method"] == rpc.MethodBatch {
			batches++
			if sizes[i] > limit {
				t.Errorf("batch message %d is %d bytes, over the %d-byte limit", batches, sizes[i], limit)
			}
		}
	}
	if batches < 3 || batches != len(parts) {
		t.Errorf("%d batch calls for %d parts, want at least 3", batches, len(parts))
	}
	// The counts span every part.
	if c := b.counts(time.Second); c.done != 10 || c.ok != 10 || c.retries != batches || c.coalesced != batches {
		t.Errorf("counts %+v, want 10 done and %d retries and coalesced", c, batches)
	}
}

// TestBatchLargeInput runs lbgpt batch on an input over the default message
// limit (8 MiB): three requests of 3 MiB go as two batches.
func TestBatchLargeInput(t *testing.T) {
	f := partFake(t)
	big := strings.Repeat("x", 3<<20)
	var input strings.Builder
	for i := range 3 {
		fmt.Fprintln(&input, requestLine("m", fmt.Sprintf("%d%s", i, big)))
	}
	stdout, stderr, code := runCtx(t.Context(), input.String(), "batch", "--socket", f.socket, "--no-autostart")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got []string
	for _, l := range outputLines(t, stdout) {
		got = append(got, fmt.Sprintf("%v %s", l["index"], answerOf(l)))
	}
	want := []string{"0 re: 0xxxxxxxxxx…", "1 re: 1xxxxxxxxxx…", "2 re: 2xxxxxxxxxx…"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	batches := 0
	for _, m := range f.messages() {
		if m["method"] == rpc.MethodBatch {
			batches++
		}
	}
	// One summary over both batches: 1 retry and 1 coalesced in each.
	if batches != 2 || !strings.Contains(stderr, "lbgpt batch: 3 requests: 3 ok, 0 failed, 2 retries, 2 coalesced in ") {
		t.Errorf("%d batch calls, stderr %q", batches, stderr)
	}
}

func TestBatchRequestTooLargeAlone(t *testing.T) {
	f := newFake(t, nil)
	input := requestLine("m", "small") + "\n\n" + requestLine("m", strings.Repeat("x", rpc.DefaultMaxMessageBytes)) + "\n"
	stdout, stderr, code := runCtx(t.Context(), input, "batch", "--socket", f.socket)
	if code != exitUsage || !strings.Contains(stderr, "stdin:3: the request is 8388663 bytes, more than lbgptd accepts in one message") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q", stdout)
	}
	if msgs := f.messages(); len(msgs) != 0 {
		t.Errorf("the daemon received %d messages", len(msgs))
	}
}
