package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/internal/wire"
	"github.com/lbgpt/lbgpt/rpc"
)

// fidelityCorpus are request bodies as OpenAI clients send them, with what
// a proxy built on a typed client would lose: unknown fields, content parts
// of every type, explicit zeros, numbers beyond float64, odd white space.
var fidelityCorpus = []string{
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"prompt_cache_key":"k1","modalities":["text"],"web_search_options":{},"x_future":{"a":[1,2,{"b":null}]}}`,
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"read this"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"high"}},` +
		`{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjQ="}},` +
		`{"type":"input_audio","input_audio":{"data":"UklGRiQAAABXQVZF","format":"wav"}}]}]}`,
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"zero"}],"max_completion_tokens":0}`,
	`{ "model" : "gpt-4o-mini" , "seed": 123456789012345678901234567890, "temperature": 0.70000000000000001,` + "\n\t" +
		`"logit_bias": {"50256": -100}, "messages": [ {"role":"user","content":"spaces\u00e9 \ud83d\ude00"} ] }`,
	`{"model":"gpt-4o-mini","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":"hi"}],"temperature":0,"top_p":0,"n":1,"metadata":{"k":"v"},"store":true}`,
	`{"messages":[{"role":"user","content":"model last"}],"model":"gpt-4o-mini","parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]}`,
}

// What an OpenAI client sends reaches the upstream byte for byte; a
// streamed request differs only by the stream_options lbgpt needs.
func TestRequestBytesReachUpstream(t *testing.T) {
	h := startHTTP(t, sim.Options{KeepBodies: true, Accounts: []sim.Account{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}}, httpBackends)
	bodies := func() map[string]bool {
		m := map[string]bool{}
		for _, r := range h.sim.Log() {
			if strings.HasSuffix(r.Path, "/chat/completions") {
				m[string(r.Body)] = true
			}
		}
		return m
	}
	for i, body := range fidelityCorpus {
		resp := h.do(t, "POST", "/v1/chat/completions", h.token, body, map[string]string{rpc.HeaderNoStore: "1", rpc.HeaderNoCache: "1"})
		io.Copy(io.Discard, resp.Body)
		if !bodies()[body] {
			t.Errorf("request %d (answered %d) did not reach the upstream as sent: %s", i, resp.StatusCode, body)
		}
	}

	// Streamed: the one change is stream_options.include_usage.
	stream := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream it"}],"x_future":123456789012345678901}`
	resp := h.do(t, "POST", "/v1/chat/completions", h.token, stream, map[string]string{rpc.HeaderNoStore: "1"})
	io.Copy(io.Discard, resp.Body)
	want := `{"stream_options":{"include_usage":true},` + stream[1:]
	if !bodies()[want] {
		t.Errorf("streamed request reached the upstream otherwise than %s: %v", want, bodies())
	}
	withOpts := `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_obfuscation":false},"messages":[{"role":"user","content":"keep my options"}]}`
	resp = h.do(t, "POST", "/v1/chat/completions", h.token, withOpts, map[string]string{rpc.HeaderNoStore: "1"})
	io.Copy(io.Discard, resp.Body)
	want = strings.Replace(withOpts, `{"include_obfuscation":false}`, `{"include_obfuscation":false,"include_usage":true}`, 1)
	if !bodies()[want] {
		t.Errorf("streamed request with options reached the upstream otherwise than %s", want)
	}
}

// httpJSON posts body and decodes a 200 answer.
func (h *httpHarness) postJSON(t *testing.T, path, body string, header map[string]string) (map[string]any, http.Header) {
	t.Helper()
	resp := h.do(t, "POST", path, h.token, body, header)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("POST %s: %v: %s", path, err, b)
	}
	return m, resp.Header
}

// sseEvents reads a server-sent event stream: its data payloads (names
// too, for the Responses API), without [DONE] and comments.
func sseEvents(t *testing.T, r io.Reader) (names []string, data [][]byte) {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n\n") {
		name := ""
		for line := range strings.SplitSeq(ev, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && line != "data: [DONE]":
				names = append(names, name)
				data = append(data, []byte(strings.TrimPrefix(line, "data: ")))
			}
		}
	}
	return names, data
}

// jsonEqual compares two JSON documents by value, numbers as written.
func jsonEqual(t *testing.T, a, b []byte) string {
	t.Helper()
	dec := func(x []byte) any {
		d := json.NewDecoder(bytes.NewReader(x))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%v: %s", err, x)
		}
		return v
	}
	return cmp.Diff(dec(a), dec(b))
}

// A cached answer is what the upstream sent, whichever form it was stored
// in and whichever form is asked for: plain to plain and stream to stream
// byte for byte, across forms by a conversion that keeps logprobs, tool
// calls and service_tier and adds nothing.
func TestReplayKeepsEveryField(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	const logprobs = `"temperature":0,"logprobs":true,"top_logprobs":2`
	const tools = `"temperature":0,"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}],"tool_choice":"required"`
	for _, tt := range []struct {
		name, extra string
		want        string // a field the answer must carry
	}{{"logprobs", logprobs, `"top_logprobs"`}, {"tool calls", tools, `"tool_calls"`}} {
		for _, first := range []string{"plain", "stream"} {
			t.Run(tt.name+"/"+first+" first", func(t *testing.T) {
				base := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"replay %s %s"}],%s`, tt.name, first, tt.extra)
				plainReq, streamReq := base+"}", base+`,"stream":true,"stream_options":{"include_usage":true}}`
				get := func(body string) (plain []byte, chunks [][]byte, cache string) {
					resp := h.do(t, "POST", "/v1/chat/completions", h.token, body, nil)
					if resp.StatusCode != 200 {
						b, _ := io.ReadAll(resp.Body)
						t.Fatalf("%d %s", resp.StatusCode, b)
					}
					cache = resp.Header.Get(rpc.HeaderCache)
					if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
						_, chunks = sseEvents(t, resp.Body)
						if cache == "" {
							cache = resp.Trailer.Get(rpc.HeaderCache)
						}
						return nil, chunks, cache
					}
					plain, _ = io.ReadAll(resp.Body)
					return plain, nil, cache
				}
				var paidPlain []byte
				var paidChunks [][]byte
				if first == "plain" {
					p, _, c := get(plainReq)
					paidPlain = p
					if c != rpc.CacheMiss {
						t.Fatalf("first answer: cache %q", c)
					}
					paidChunks, _ = wire.ChatChunks(p, true)
				} else {
					_, ch, c := get(streamReq)
					paidChunks = ch
					if c != rpc.CacheMiss {
						t.Fatalf("first answer: cache %q", c)
					}
					var err error
					if paidPlain, err = wire.AssembleChat(ch); err != nil {
						t.Fatal(err)
					}
				}
				if !bytes.Contains(paidPlain, []byte(tt.want)) || !bytes.Contains(paidPlain, []byte(`"service_tier"`)) {
					t.Fatalf("the upstream's answer lacks %s or service_tier: %s", tt.want, paidPlain)
				}
				// Both forms, from the cache.
				plain, _, c := get(plainReq)
				if c != rpc.CacheExact {
					t.Errorf("plain repeat: cache %q", c)
				}
				if first == "plain" && !bytes.Equal(plain, paidPlain) {
					t.Errorf("plain replay of a plain answer changed:\n%s\nwas\n%s", plain, paidPlain)
				}
				if d := jsonEqual(t, plain, paidPlain); d != "" {
					t.Errorf("plain replay differs (-replayed +paid):\n%s", d)
				}
				_, chunks, c := get(streamReq)
				if c != rpc.CacheExact {
					t.Errorf("streamed repeat: cache %q", c)
				}
				if first == "stream" {
					if d := cmp.Diff(chunks, paidChunks); d != "" {
						t.Errorf("streamed replay of a stream changed (-replayed +paid):\n%s", d)
					}
				}
				again, err := wire.AssembleChat(chunks)
				if err != nil {
					t.Fatal(err)
				}
				if d := jsonEqual(t, again, paidPlain); d != "" {
					t.Errorf("streamed replay assembles otherwise (-replayed +paid):\n%s", d)
				}
				for _, ch := range chunks {
					if bytes.Contains(ch, []byte("content_filter_results")) {
						t.Errorf("a replayed chunk gained a field: %s", ch)
					}
				}
			})
		}
	}
}

// Regenerate: a sampled request from an OpenAI client gets a fresh answer
// (and Cache-Control: no-cache always does); one that asks for the cache,
// or is greedy, is a hit.
func TestHTTPSampledRequestsAnsweredFresh(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	sampled := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"tell me a story"}],"temperature":0.9}`
	var ids []any
	cacheOf := func(body string, header map[string]string) string {
		m, hd := h.postJSON(t, "/v1/chat/completions", body, header)
		ids = append(ids, m["id"])
		return hd.Get(rpc.HeaderCache)
	}
	for i, want := range []string{rpc.CacheMiss, rpc.CacheMiss} {
		if got := cacheOf(sampled, nil); got != want {
			t.Errorf("sampled request %d: cache %q, want %q", i+1, got, want)
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("regenerate gave the same answer %v", ids[0])
	}
	if got := cacheOf(sampled, map[string]string{rpc.HeaderNoCache: "0"}); got != rpc.CacheExact {
		t.Errorf("sampled request asking for the cache: %q, want exact", got)
	}
	greedy := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"tell me a fact"}],"temperature":0}`
	cacheOf(greedy, nil)
	if got := cacheOf(greedy, nil); got != rpc.CacheExact {
		t.Errorf("greedy repeat: %q, want exact", got)
	}
	if got := cacheOf(greedy, map[string]string{"Cache-Control": "no-cache"}); got != rpc.CacheMiss {
		t.Errorf("greedy repeat with Cache-Control: no-cache: %q, want miss", got)
	}
}

// A Responses chain stays on the backend that made its first turn while
// other traffic is balanced; the record survives a restart; calls on the
// id go there too; a removed backend is a clear error.
func TestResponsesAffinity(t *testing.T) {
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}})
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	cfg := strings.Replace(twoBackends, "version = 1\n", "version = 1\n[balance]\nstrategy = \"weighted\"\n", 1)
	h := startHTTPWith(t, s, state, cfg)
	turn := func(h *httpHarness, prev, text string) (id, backend string) {
		body := fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q}`, text)
		if prev != "" {
			body = fmt.Sprintf(`{"model":"gpt-4o-mini","input":%q,"previous_response_id":%q}`, text, prev)
		}
		m, hd := h.postJSON(t, "/v1/responses", body, nil)
		id, _ = m["id"].(string)
		if m["object"] != "response" || id == "" {
			t.Fatalf("not a response: %v", m)
		}
		return id, hd.Get(rpc.HeaderBackend)
	}
	id, home := turn(h, "", "first turn")
	seen := map[string]int{}
	for i := range 2 {
		// Other traffic in between is balanced over both backends.
		for j := range 4 {
			_, hd := h.postJSON(t, "/v1/responses", fmt.Sprintf(`{"model":"gpt-4o-mini","input":"other %d %d","store":false}`, i, j), nil)
			seen[hd.Get(rpc.HeaderBackend)]++
		}
		var b string
		id, b = turn(h, id, fmt.Sprintf("turn %d", i+2))
		if b != home {
			t.Errorf("turn %d went to %s, the chain lives on %s", i+2, b, home)
		}
	}
	if seen["a"] == 0 || seen["b"] == 0 {
		t.Errorf("stateless traffic was not balanced: %v", seen)
	}

	// Retrieve and input items go to the holder; they work after a restart.
	h.stop()
	h = startHTTPWith(t, s, state, cfg)
	resp := h.do(t, "GET", "/v1/responses/"+id, h.token, "", nil)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), id) || resp.Header.Get(rpc.HeaderBackend) != home {
		t.Fatalf("retrieve after a restart: %d %s %s", resp.StatusCode, resp.Header.Get(rpc.HeaderBackend), b)
	}
	if _, b := turn(h, id, "after the restart"); b != home {
		t.Errorf("the chain moved to %s after a restart, it lives on %s", b, home)
	}
	resp = h.do(t, "GET", "/v1/responses/"+id+"/input_items?order=asc", h.token, "", nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"list"`) {
		t.Errorf("input items: %d %s", resp.StatusCode, b)
	}
	resp = h.do(t, "DELETE", "/v1/responses/"+id, h.token, "", nil)
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), `"deleted":true`) {
		t.Errorf("delete: %d %s", resp.StatusCode, b)
	}
	resp = h.do(t, "GET", "/v1/responses/"+id, h.token, "", nil)
	if e := openAIErrorBody(t, resp); resp.StatusCode != 404 {
		t.Errorf("retrieve after delete: %d %+v", resp.StatusCode, e)
	}
	if resp.Header.Get("X-Should-Retry") != "false" {
		t.Errorf("x-should-retry = %q on an error", resp.Header.Get("X-Should-Retry"))
	}

	// A chain whose backend is gone from the configuration.
	other := map[string]string{"a": "b", "b": "a"}[home]
	id, _ = turn(h, "", "a new chain")
	for range 3 {
		if _, b := turn(h, "", "again"); b == other {
			break
		}
	}
	if holder, _ := h.daemon.pl.Hooks().Holder(id); holder == "" {
		t.Fatal("no affinity record for a stored response")
	}
	h.stop()
	gone, _ := h.daemon.pl.Hooks().Holder(id)
	kept := other
	if gone == other {
		kept = home
	}
	h = startHTTPWith(t, s, state, strings.Split(cfg, "[[backend]]")[0]+"[[backend]]"+
		map[string]string{"a": strings.Split(cfg, "[[backend]]")[1], "b": strings.Split(cfg, "[[backend]]")[2]}[kept]+
		"[[backend]]\nname = \"c\"\ntype = \"openai\"\nbase_url = \"{{URL}}/v1\"\napi_key_env = \"KEY_A\"\n")
	resp = h.do(t, "POST", "/v1/responses", h.token, fmt.Sprintf(`{"model":"gpt-4o-mini","input":"x","previous_response_id":%q}`, id), nil)
	e := openAIErrorBody(t, resp)
	if resp.StatusCode != 404 || !strings.Contains(e.Message, "no longer configured") || !strings.Contains(e.Message, gone) {
		t.Errorf("continuing a response of a removed backend: %d %+v", resp.StatusCode, e)
	}
}

// A streamed Responses request relays OpenAI's events as they come, its
// stateful id is recorded, and a stateless one is cached and replayed in
// either form.
func TestResponsesStream(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	body := `{"model":"gpt-4o-mini","input":"stream a response","stream":true}`
	resp := h.do(t, "POST", "/v1/responses", h.token, body, nil)
	if resp.StatusCode != 200 || resp.Header.Get(rpc.HeaderBackend) == "" {
		t.Fatalf("%d, backend %q", resp.StatusCode, resp.Header.Get(rpc.HeaderBackend))
	}
	names, data := sseEvents(t, resp.Body)
	if len(names) < 5 || names[0] != "response.created" || names[len(names)-1] != "response.completed" {
		t.Fatalf("events %v", names)
	}
	whole, err := wire.AssembleResponse(toWire(names, data))
	if err != nil {
		t.Fatal(err)
	}
	var r struct{ ID string }
	json.Unmarshal(whole, &r)
	if b, ok := h.daemon.pl.Hooks().Holder(r.ID); !ok || b != resp.Header.Get(rpc.HeaderBackend) {
		t.Errorf("affinity of %s = %q, want %q", r.ID, b, resp.Header.Get(rpc.HeaderBackend))
	}

	// Stateless: cached, and the cached stream answers a plain request.
	stateless := `{"model":"gpt-4o-mini","input":"a stateless one","store":false,"temperature":0`
	resp = h.do(t, "POST", "/v1/responses", h.token, stateless+`,"stream":true}`, nil)
	names, data = sseEvents(t, resp.Body)
	paid, err := wire.AssembleResponse(toWire(names, data))
	if err != nil {
		t.Fatal(err)
	}
	m, hd := h.postJSON(t, "/v1/responses", stateless+"}", nil)
	if hd.Get(rpc.HeaderCache) != rpc.CacheExact {
		t.Errorf("plain repeat of a stateless streamed response: cache %q", hd.Get(rpc.HeaderCache))
	}
	again, _ := json.Marshal(m)
	if d := jsonEqual(t, again, paid); d != "" {
		t.Errorf("replayed response differs (-replayed +paid):\n%s", d)
	}
	resp = h.do(t, "POST", "/v1/responses", h.token, stateless+`,"stream":true}`, nil)
	names2, data2 := sseEvents(t, resp.Body)
	if resp.Header.Get(rpc.HeaderCache) != rpc.CacheExact || !cmp.Equal(names, names2) || !cmp.Equal(data, data2) {
		t.Errorf("streamed repeat: cache %q, %d events (first had %d)", resp.Header.Get(rpc.HeaderCache), len(names2), len(names))
	}
}

func toWire(names []string, data [][]byte) []wire.Event {
	out := make([]wire.Event, len(names))
	for i := range names {
		out[i] = wire.Event{Name: names[i], Data: data[i]}
	}
	return out
}

// A stream that keeps coming is not cut by request_timeout: the deadline
// covers reaching the first token, then an idle timeout applies.
func TestStreamOutlivesRequestTimeout(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, PerToken: 15 * time.Millisecond}}},
		"version = 1\n[daemon]\nrequest_timeout = \"300ms\"\nstream_idle_timeout = \"1s\"\n"+anyModel[len("version = 1\n"):])
	req := userRequest("gpt-4o-mini", "a long answer that takes longer than the request timeout to stream")
	req["max_tokens"] = 60
	req["stream"] = true
	start := time.Now()
	st, err := streamAll(t, h, req)
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("the stream took %s: not longer than the request timeout, the test proves nothing", took)
	}
	if len(st.chunks) < 50 {
		t.Errorf("%d chunks", len(st.chunks))
	}
}

// Other routes that name a model are forwarded as they came, uncached.
func TestOtherRoutesForwarded(t *testing.T) {
	h := startHTTP(t, sim.Options{KeepBodies: true, Accounts: []sim.Account{{Name: "a", Key: keyA}, {Name: "b", Key: keyB}}}, httpBackends)
	body := `{"model":"gpt-4o-mini","prompt":"Say this is a test","max_tokens":7,"x_unknown":true}`
	for range 2 {
		m, hd := h.postJSON(t, "/v1/completions", body, nil)
		if m["object"] != "text_completion" || hd.Get(rpc.HeaderCache) != rpc.CacheMiss || hd.Get("X-Request-Id") == "" {
			t.Errorf("completions: %v, cache %q, request id %q", m, hd.Get(rpc.HeaderCache), hd.Get("X-Request-Id"))
		}
	}
	n := 0
	for _, r := range h.sim.Log() {
		if r.Path == "/v1/completions" {
			n++
			if string(r.Body) != body {
				t.Errorf("forwarded body %s, sent %s", r.Body, body)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d completions upstream, want 2 (never cached)", n)
	}
}

// The responses method: a Responses request over the socket, plain and
// streamed, through the Go client.
func TestResponsesMethod(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends)
	req := map[string]any{"model": "gpt-4o-mini", "input": "over the socket", "store": false, "temperature": 0}
	res, err := h.client.Responses(t.Context(), req, rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Object string `json:"object"`
		Output []struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"output"`
	}
	if json.Unmarshal(res.Response, &r); r.Object != "response" || len(r.Output) == 0 || !strings.Contains(r.Output[0].Content[0].Text, "over the socket") {
		t.Fatalf("response %s", res.Response)
	}
	if res.Meta.Backend == "" || res.Meta.Cache != rpc.CacheMiss || res.Meta.RequestID == "" {
		t.Errorf("meta %+v", res.Meta)
	}
	var names []string
	var final *rpc.ChatResult
	for ev, err := range h.client.ResponsesStream(t.Context(), req, rpc.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Result != nil {
			final = ev.Result
			break
		}
		names = append(names, ev.Name)
	}
	if final == nil || final.Meta.Cache != rpc.CacheExact || len(names) < 5 || names[len(names)-1] != "response.completed" {
		t.Fatalf("streamed repeat: %v, meta %+v", names, final)
	}
	if d := jsonEqual(t, final.Response, res.Response); d != "" {
		t.Errorf("the streamed replay's response differs (-stream +plain):\n%s", d)
	}
}

// Another route's stream (image generation: named events, no [DONE], the
// connection closes at its end) is relayed whole and ends cleanly: one
// upstream call, no error event.
func TestOtherRouteStream(t *testing.T) {
	s := sim.New(accounts(sim.Faults{}))
	var calls atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/images/generations" {
			s.ServeHTTP(w, r)
			return
		}
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req_image_1")
		for i := range 3 {
			fmt.Fprintf(w, "event: image_generation.partial_image\ndata: {\"type\":\"image_generation.partial_image\",\"partial_image_index\":%d,\"b64_json\":\"AAAA\"}\n\n", i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprint(w, "event: image_generation.completed\ndata: {\"type\":\"image_generation.completed\",\"b64_json\":\"AAAA\",\"usage\":{\"total_tokens\":100,\"input_tokens\":10,\"output_tokens\":90}}\n\n")
	})
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	h := startHTTPHandler(t, s, up, state, twoBackends)
	resp := h.do(t, "POST", "/v1/images/generations", h.token, `{"model":"gpt-image-1","prompt":"a cat","stream":true,"partial_images":3}`, nil)
	names, data := sseEvents(t, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != "req_image_1" || len(names) != 4 || names[3] != "image_generation.completed" {
		t.Fatalf("%d %v: %v", resp.StatusCode, resp.Header, names)
	}
	for _, d := range data {
		if strings.Contains(string(d), `"error"`) {
			t.Errorf("an error event: %s", d)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d upstream calls for one image stream, want 1", n)
	}
}
