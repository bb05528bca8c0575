package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/rpc"
)

// okItem is a batch item answering with text.
func okItem(index int, text string, attempts int) string {
	return fmt.Sprintf(`{"index":%d,"result":{"response":{"choices":[{"message":{"content":%q}}]},"lbgpt":{"backend":"b","model":"m","attempts":%d,"cache":"miss"}}}`, index, text, attempts)
}

func itemNote(id, item string) string {
	return `{"jsonrpc":"2.0","method":"batch.item","params":{"id":` + id + `,"item":` + item + `}}`
}

func resultMsg(id string, items []string, summary string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"result":{"items":[` + strings.Join(items, ",") + `],"summary":` + summary + `}}`
}

// prompts are the user messages of a batch request, in order.
func prompts(t *testing.T, msg map[string]any) []string {
	t.Helper()
	var out []string
	for _, r := range msg["params"].(map[string]any)["requests"].([]any) {
		out = append(out, r.(map[string]any)["messages"].([]any)[0].(map[string]any)["content"].(string))
	}
	return out
}

func requestLine(model, prompt string) string {
	b, _ := json.Marshal(map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}}})
	return string(b)
}

// outputLines decodes JSONL output, failing on a line that is not JSON.
func outputLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" && out == "" {
			break
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %d is not JSON: %q", i+1, l)
		}
		lines = append(lines, m)
	}
	return lines
}

func answerOf(line map[string]any) string {
	resp, _ := line["response"].(map[string]any)
	if resp == nil {
		return ""
	}
	return resp["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
}

func TestBatchWritesInInputOrder(t *testing.T) {
	f := newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodBatch {
			return
		}
		id := idOf(msg)
		p := prompts(t, msg)
		// Somebody else's item, then this batch's items out of order.
		send(itemNote("999", okItem(0, "NOT MINE", 1)))
		for _, i := range []int{3, 1, 0, 2} {
			send(itemNote(id, okItem(i, "re: "+p[i], 1+i%2)))
			send(`{"jsonrpc":"2.0","method":"batch.progress","params":{"id":` + id + `,"total":4,"ok":1,"retries":1,"done":1}}`)
		}
		// The final result repeats the items; the notifications came first.
		var items []string
		for i := range p {
			items = append(items, okItem(i, "FROM RESULT", 1))
		}
		send(resultMsg(id, items, `{"total":4,"ok":4,"failed":0,"retries":2,"coalesced":1,"elapsed_ms":12}`))
	})
	input := strings.Join([]string{requestLine("m", "a"), "", requestLine("m", "b"), "  ", requestLine("m", "c"), requestLine("m", "d")}, "\n")
	stdout, stderr, code := runCtx(t.Context(), input, "batch", "--socket", f.socket, "--no-autostart", "--concurrency", "3", "--timeout", "30s")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	var got []string
	for _, l := range outputLines(t, stdout) {
		got = append(got, fmt.Sprintf("%v %s %v", l["index"], answerOf(l), l["lbgpt"].(map[string]any)["attempts"]))
	}
	want := []string{"0 re: a 1", "1 re: b 2", "2 re: c 1", "3 re: d 2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-want +got):\n%s\nstdout:\n%s", diff, stdout)
	}
	// Retries and coalesced are the daemon's final counts.
	if !strings.Contains(stderr, "4 requests: 4 ok, 0 failed, 2 retries, 1 coalesced in ") {
		t.Errorf("summary: %q", stderr)
	}
	for _, m := range f.messages() {
		if m["method"] == rpc.MethodBatch {
			p := m["params"].(map[string]any)
			if p["concurrency"] != float64(3) || p["options"].(map[string]any)["timeout"] != "30s" {
				t.Errorf("batch params %v", p)
			}
		}
	}
}

func TestBatchFillsInFromTheResult(t *testing.T) {
	// A daemon that sends no item notifications at all: the output comes
	// from the final result, and a request it leaves out gets an error line.
	f := newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] == rpc.MethodBatch {
			send(resultMsg(idOf(msg), []string{okItem(0, "x", 1)}, `{"total":2,"ok":1}`))
		}
	})
	stdout, stderr, code := runCtx(t.Context(), requestLine("m", "a")+"\n"+requestLine("m", "b")+"\n", "batch", "--socket", f.socket)
	lines := outputLines(t, stdout)
	if code != 1 || len(lines) != 2 || answerOf(lines[0]) != "x" || lines[1]["error"] == nil {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestBatchFailedItem(t *testing.T) {
	f := newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodBatch {
			return
		}
		id := idOf(msg)
		bad := `{"index":1,"error":{"code":-32004,"message":"no backend serves model \"nope\" (backends: a, b)","data":{"kind":"no_backend","attempts":3}}}`
		items := []string{okItem(0, "one", 1), bad, okItem(2, "three", 1)}
		for _, it := range items {
			send(itemNote(id, it))
		}
		send(resultMsg(id, items, `{"total":3,"ok":2,"failed":1,"retries":2}`))
	})
	input := requestLine("m", "a") + "\n" + requestLine("nope", "b") + "\n" + requestLine("m", "c") + "\n"
	stdout, stderr, code := runCtx(t.Context(), input, "batch", "--socket", f.socket)
	if code != exitFailed {
		t.Errorf("exit %d, want 1", code)
	}
	lines := outputLines(t, stdout)
	if len(lines) != 3 || answerOf(lines[0]) != "one" || answerOf(lines[2]) != "three" {
		t.Fatalf("stdout:\n%s", stdout)
	}
	wantErr := map[string]any{
		"index": float64(1),
		"error": map[string]any{"code": float64(-32004), "message": `no backend serves model "nope" (backends: a, b)`,
			"data": map[string]any{"kind": "no_backend", "attempts": float64(3)}},
	}
	if diff := cmp.Diff(wantErr, lines[1]); diff != "" {
		t.Errorf("error line (-want +got):\n%s", diff)
	}
	for _, want := range []string{"3 requests: 2 ok, 1 failed, 2 retries", "1 of 3 requests failed"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
}

func TestBatchBadInputSendsNothing(t *testing.T) {
	good := requestLine("m", "fine")
	tests := []struct {
		name   string
		stdin  string
		args   []string
		stderr string
	}{
		{"not JSON", good + "\n\n{\"model\": oops}\n" + good, nil, "stdin:3: not a JSON object: invalid character 'o'"},
		{"an array", good + "\n[1,2]\n", nil, "stdin:2: not a JSON object"},
		{"trailing garbage", good + "\n" + good + " x\n", nil, "stdin:2: not a JSON object"},
		{"no model", good + "\n" + `{"messages":[]}` + "\n", nil, `stdin:2: no "model": give one in the line or use --model`},
		{"empty model", `{"model":"","messages":[]}`, nil, `stdin:1: no "model"`},
		{"every bad line at once", good + "\n[1]\n" + good + "\nnope\n", nil, "stdin:2: not a JSON object\nstdin:4: not a JSON object"},
		{"missing file", "", []string{"/nonexistent/in.jsonl"}, "no such file"},
		{"two files", "", []string{"a", "b"}, "batch takes one FILE at most"},
		{"negative concurrency", good, []string{"--concurrency", "-1"}, "--concurrency must be from 0 (the daemon's default, 64) to 4096"},
		{"concurrency past the daemon's bound", good, []string{"--concurrency", "4097"}, "--concurrency must be from 0 (the daemon's default, 64) to 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, nil)
			args := append([]string{"batch", "--socket", f.socket}, tt.args...)
			stdout, stderr, code := runCtx(t.Context(), tt.stdin, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
			if msgs := f.messages(); len(msgs) != 0 {
				t.Errorf("the daemon received %v", msgs)
			}
		})
	}
}

func TestBatchDefaultModel(t *testing.T) {
	models := make(chan []string, 1)
	f := newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodBatch {
			return
		}
		var ms []string
		var items []string
		for i, r := range msg["params"].(map[string]any)["requests"].([]any) {
			ms = append(ms, r.(map[string]any)["model"].(string))
			items = append(items, okItem(i, "ok", 1))
		}
		models <- ms
		send(resultMsg(idOf(msg), items, `{}`))
	})
	input := requestLine("gpt-4o", "a") + "\n" + `{"messages":[{"role":"user","content":"b"}]}` + "\n" + `{"model":null,"messages":[]}` + "\n"
	_, stderr, code := runCtx(t.Context(), input, "batch", "--socket", f.socket, "--model", "gpt-4o-mini")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if diff := cmp.Diff([]string{"gpt-4o", "gpt-4o-mini", "gpt-4o-mini"}, <-models); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
}

func TestBatchOutFile(t *testing.T) {
	input := requestLine("m", "a") + "\n" + requestLine("m", "b") + "\n" + requestLine("m", "c") + "\n"
	tests := []struct {
		name string
		// fail: after the first item, the daemon answers the batch with
		// an error instead of a result.
		fail    bool
		code    int
		partial int // lines kept in FILE.partial; -1: no such file
	}{
		{"complete", false, 0, -1},
		// 0 and 2 were answered, 1 was not: the partial file has all
		// three lines, 1 as canceled, so no paid answer is lost.
		{"batch fails midway", true, exitFailed, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(msg map[string]any, send func(string)) {
				if msg["method"] != rpc.MethodBatch {
					return
				}
				id := idOf(msg)
				send(itemNote(id, okItem(0, "first", 1)))
				send(itemNote(id, okItem(2, "third", 1))) // not writable yet: 1 is missing
				if tt.fail {
					send(`{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32010,"message":"daemon shutting down"}}`)
					return
				}
				send(resultMsg(id, []string{okItem(0, "first", 1), okItem(1, "second", 1), okItem(2, "third", 1)}, `{}`))
			})
			out := filepath.Join(t.TempDir(), "results.jsonl")
			if err := os.WriteFile(out, []byte("old\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := runCtx(t.Context(), input, "batch", "--socket", f.socket, "--out", out)
			if code != tt.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q with --out", stdout)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			partial, perr := os.ReadFile(out + ".partial")
			if tt.partial < 0 {
				if lines := outputLines(t, string(got)); len(lines) != 3 || answerOf(lines[1]) != "second" {
					t.Errorf("%s:\n%s", out, got)
				}
				if perr == nil {
					t.Errorf("%s.partial left behind", out)
				}
				return
			}
			if string(got) != "old\n" {
				t.Errorf("%s changed after a failure: %q", out, got)
			}
			lines := outputLines(t, string(partial))
			if perr != nil || len(lines) != tt.partial || answerOf(lines[2]) != "third" {
				t.Errorf("%s.partial: %q, %v; want %d lines, the third answered", out, partial, perr, tt.partial)
			}
			if !strings.Contains(stderr, out+".partial") || !strings.Contains(stderr, "daemon shutting down") {
				t.Errorf("stderr %q", stderr)
			}
		})
	}
}

func TestBatchInterrupted(t *testing.T) {
	started := make(chan string, 1)
	canceled := make(chan string, 1)
	f := newFake(t, func(msg map[string]any, send func(string)) {
		switch msg["method"] {
		case rpc.MethodBatch:
			id := idOf(msg)
			send(itemNote(id, okItem(1, "second", 1))) // held back: 0 is not answered
			send(itemNote(id, okItem(0, "first", 1)))
			started <- id
		case rpc.MethodCancel:
			canceled <- idOf(msg["params"].(map[string]any))
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type outcome struct {
		stdout, stderr string
		code           int
	}
	done := make(chan outcome)
	go func() {
		input := strings.Repeat(requestLine("m", "q")+"\n", 5)
		stdout, stderr, code := runCtx(ctx, input, "batch", "--socket", f.socket)
		done <- outcome{stdout, stderr, code}
	}()
	id := <-started
	cancel() // Ctrl-C
	o := <-done
	if got := <-canceled; got != id {
		t.Errorf("cancel for id %s, want the batch's %s", got, id)
	}
	if o.code != exitInterrupted || !strings.Contains(o.stderr, "interrupted") || !strings.Contains(o.stderr, "stopped with") {
		t.Errorf("exit %d, stderr %q", o.code, o.stderr)
	}
	// Whatever was written is whole lines, in order from index 0.
	for i, l := range outputLines(t, o.stdout) {
		if l["index"] != float64(i) {
			t.Errorf("line %d has index %v", i, l["index"])
		}
	}
}

func TestBatchNoDaemon(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	_, stderr, code := runCtx(t.Context(), requestLine("m", "a"), "batch", "--socket", socket, "--no-autostart")
	if code != exitUnreachable || !strings.Contains(stderr, "lbgptd is not running") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(socket); err == nil {
		t.Error("socket appeared")
	}
}

func TestBatchEmptyInput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	_, stderr, code := runCtx(t.Context(), "\n\n", "batch", "--socket", filepath.Join(t.TempDir(), "none.sock"), "--no-autostart", "--out", out)
	if b, err := os.ReadFile(out); code != 0 || err != nil || len(b) != 0 {
		t.Errorf("exit %d, stderr %q, %s: %q %v", code, stderr, out, b, err)
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		name  string
		c     batchCounts
		total int
		want  string
	}{
		{"starting", batchCounts{}, 200, "0/200   0% [░░░░░░░░░░░░░░░░░░░░] 0.0/s ETA -- · retries 0 · coalesced 0 · failed 0"},
		{"a quarter", batchCounts{done: 50, ok: 47, failed: 3, retries: 2, coalesced: 1, elapsed: 10 * time.Second}, 200,
			"50/200  25% [█████░░░░░░░░░░░░░░░] 5.0/s ETA 30s · retries 2 · coalesced 1 · failed 3"},
		{"rate-bound after a burst: the ETA by the recent pace", batchCounts{done: 120, ok: 120, elapsed: 20 * time.Second, pace: 2}, 200,
			"120/200  60% [████████████░░░░░░░░] 2.0/s ETA 40s · retries 0 · coalesced 0 · failed 0"},
		{"cache hits", batchCounts{done: 10, ok: 10, cacheHits: 4, elapsed: time.Second}, 10,
			"10/10 100% [████████████████████] 10.0/s ETA 0s · retries 0 · coalesced 0 · cache hits 4 · failed 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressLine(tt.c, tt.total); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestProgressBarRedrawsAtMostTenTimesASecond(t *testing.T) {
	var w bytes.Buffer
	p := &progressBar{w: &w, total: 10}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, at := range []time.Duration{0, 30 * time.Millisecond, 90 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, 250 * time.Millisecond} {
		p.draw(t0.Add(at), batchCounts{done: i}, false)
	}
	if n := strings.Count(w.String(), "\r"); n != 3 {
		t.Errorf("%d redraws, want 3 (at 0, 100 and 250 ms): %q", n, w.String())
	}
	p.clear()
	if !strings.HasSuffix(w.String(), "\r\x1b[K") {
		t.Errorf("clear did not erase the line: %q", w.String())
	}
}

// Lines in OpenAI's Batch API input format are answered by their body, and
// their custom_id comes back in the result line; a line for another
// endpoint is refused by its line number.
func TestBatchAPIFormat(t *testing.T) {
	input := `{"custom_id":"req-1","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"one"}]}}
{"model":"gpt-4o-mini","messages":[{"role":"user","content":"plain"}]}
`
	in, err := readRequests(strings.NewReader(input), "b.jsonl", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.reqs) != 2 || !strings.Contains(string(in.reqs[0]), `"content":"one"`) || strings.Contains(string(in.reqs[0]), "custom_id") ||
		in.ids[0] != "req-1" || in.ids[1] != "" {
		t.Fatalf("requests %s, ids %q", in.reqs, in.ids)
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	r := newResults(w, 2, in.ids)
	for i := range 2 {
		if err := r.add(rpc.BatchItem{Index: i, Result: &rpc.ChatResult{Response: json.RawMessage(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[0], `"custom_id":"req-1"`) || strings.Contains(lines[1], "custom_id") {
		t.Errorf("output:\n%s", out.String())
	}
	_, err = readRequests(strings.NewReader(`{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"model":"m","input":"x"}}`), "b.jsonl", "")
	if err == nil || !strings.Contains(err.Error(), "b.jsonl:1:") || !strings.Contains(err.Error(), "chat completions") {
		t.Errorf("embeddings line: %v", err)
	}
}

// A batch stopped early (Ctrl-C) still writes every answer it got: the
// answers that waited behind an unanswered request go out, the gap as a
// canceled line, in input order.
func TestBatchInterruptedWritesEveryAnswer(t *testing.T) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	r := newResults(w, 6, nil)
	for _, i := range []int{0, 2, 3} {
		if err := r.add(rpc.BatchItem{Index: i, Result: &rpc.ChatResult{Response: json.RawMessage(`{"n":` + fmt.Sprint(i) + `}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Fatalf("%d lines before the stop, want 1 (2 and 3 wait for 1)", n)
	}
	if err := r.interrupted(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[1], `"index":1`) || !strings.Contains(lines[1], fmt.Sprint(rpc.CodeCanceled)) ||
		!strings.Contains(lines[2], `"n":2`) || !strings.Contains(lines[3], `"n":3`) {
		t.Errorf("after the stop:\n%s", out.String())
	}
}

// The summary says what the batch paid and what the cache saved, from the
// items' metadata; a daemon that prices nothing leaves it out.
func TestSummarySaysWhatItCost(t *testing.T) {
	var c batchCounts
	cost, saved, zero := 4.0, 1.3, 0.0
	for _, m := range []rpc.Meta{
		{Cache: rpc.CacheMiss, Cost: &cost},
		{Cache: rpc.CacheExact, Cost: &zero, Saved: &saved},
		{Cache: rpc.CacheMiss, Cost: &[]float64{0.12}[0]},
		{Cache: rpc.CacheMiss}, // a model without a price
	} {
		c.add(rpc.BatchItem{Result: &rpc.ChatResult{Meta: m}})
	}
	c.add(rpc.BatchItem{Error: &rpc.Error{Code: rpc.CodeBudget, Message: "budget overall per day: $5.00 of $5.00 spent or reserved"}})
	c.elapsed = time.Second
	got := summaryLine(c, 4, true)
	if want := "; $4.12 paid, $1.30 saved by the cache (and 1 answer of a model without a price)"; !strings.HasSuffix(got, want) {
		t.Errorf("summary %q does not end in %q", got, want)
	}
	if want := "4 ok, 1 failed (1 refused: a [budget] limit was spent)"; !strings.Contains(got, want) {
		t.Errorf("summary %q does not say %q", got, want)
	}
	if got := summaryLine(batchCounts{ok: 1, done: 1, unpriced: 1, elapsed: time.Second}, 1, true); strings.Contains(got, "$") || strings.Contains(got, "price") {
		t.Errorf("nothing priced, yet: %q", got)
	}
}

// TestSummaryLineOfOne: one request is "1 request".
func TestSummaryLineOfOne(t *testing.T) {
	if got := summaryLine(batchCounts{ok: 1}, 1, true); !strings.HasPrefix(got, "1 request: 1 ok, 0 failed, 0 retries") {
		t.Errorf("summary %q", got)
	}
}
