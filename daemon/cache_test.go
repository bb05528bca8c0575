package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/internal/wire"
	"github.com/lbgpt/lbgpt/rpc"
)

// anyModel is one backend serving every model, embeddings included.
const anyModel = `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"
max_concurrent = 64
`

// noCache turns the cache off, for tests that count upstream calls of
// repeated requests.
const noCache = "\n[cache]\nenabled = false\n"

func oneAccount() sim.Options {
	return sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}
}

func chat(t *testing.T, h *harness, req any, opts rpc.Options) *rpc.ChatResult {
	t.Helper()
	res, err := h.client.Chat(t.Context(), req, opts)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	return res
}

func chatCalls(h *harness) int {
	n := 0
	for _, r := range h.sim.Log() {
		if strings.HasSuffix(r.Path, "/chat/completions") {
			n++
		}
	}
	return n
}

// A repeat is answered from the cache with no upstream call, with the
// same response, and the metadata says so.
func TestRepeatServedFromCache(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "What is a cache?")
	first := chat(t, h, req, rpc.Options{})
	if first.Meta.Cache != rpc.CacheMiss || len(first.Meta.CacheEntry) != 64 {
		t.Fatalf("first meta = %+v, want a stored miss", first.Meta)
	}
	// The same request, written differently: other field order, 0.0, white space.
	again := json.RawMessage(`{"messages":[{"content":"What is a cache?  ","role":"user"}],  "model":"gpt-4o-mini", "user":"someone"}`)
	second := chat(t, h, again, rpc.Options{})
	if second.Meta.Cache != rpc.CacheExact || second.Meta.CacheEntry != first.Meta.CacheEntry || second.Meta.Attempts != 0 {
		t.Errorf("second meta = %+v, want an exact hit on %s", second.Meta, first.Meta.CacheEntry)
	}
	if !bytes.Equal(second.Response, first.Response) {
		t.Errorf("cached response differs:\n%s\n%s", second.Response, first.Response)
	}
	if n := chatCalls(h); n != 1 {
		t.Errorf("%d upstream calls, want exactly 1", n)
	}
	st, err := h.client.CacheStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 1 || st.Hits.Exact != 1 || st.Misses != 1 || st.HitRate != 0.5 || st.Bytes == 0 {
		t.Errorf("stats = %+v", st)
	}
	status, err := h.client.Status(t.Context())
	if err != nil || status.Cache == nil || status.Cache.Hits.Exact != 1 {
		t.Errorf("status.cache = %+v (%v)", status.Cache, err)
	}
}

func TestNoCacheNoStore(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "no store please")
	if r := chat(t, h, req, rpc.Options{NoStore: true}); r.Meta.Cache != rpc.CacheMiss || r.Meta.CacheEntry != "" {
		t.Errorf("no_store meta = %+v", r.Meta)
	}
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheMiss {
		t.Fatalf("after no_store: %s, want a miss (nothing was stored)", r.Meta.Cache)
	}
	// no_cache skips the read but still writes.
	if r := chat(t, h, req, rpc.Options{NoCache: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("no_cache meta = %+v, want a miss", r.Meta)
	}
	if n := chatCalls(h); n != 3 {
		t.Errorf("%d upstream calls, want 3", n)
	}
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheExact {
		t.Errorf("after no_cache: %s, want a hit", r.Meta.Cache)
	}
}

func TestNamespacesAndAlias(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "namespaced question")
	chat(t, h, req, rpc.Options{Namespace: "team-a"})
	for _, ns := range []string{"", "team-b"} {
		if r := chat(t, h, req, rpc.Options{Namespace: ns, NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
			t.Errorf("namespace %q answered from team-a's entry", ns)
		}
	}
	if r := chat(t, h, req, rpc.Options{Namespace: "team-a"}); r.Meta.Cache != rpc.CacheExact {
		t.Errorf("team-a's own repeat: %s", r.Meta.Cache)
	}

	// A request for gpt-4o with model_alias gpt-4o-mini is answered from
	// gpt-4o-mini's entries.
	mini := chat(t, h, userRequest("gpt-4o-mini", "alias me"), rpc.Options{})
	r := chat(t, h, userRequest("gpt-4o", "alias me"), rpc.Options{ModelAlias: "gpt-4o-mini"})
	if r.Meta.Cache != rpc.CacheExact || r.Meta.CacheEntry != mini.Meta.CacheEntry {
		t.Errorf("aliased request meta = %+v, want a hit on %s", r.Meta, mini.Meta.CacheEntry)
	}
	if r := chat(t, h, userRequest("gpt-4o", "alias me"), rpc.Options{}); r.Meta.Cache != rpc.CacheMiss {
		t.Error("without the alias, gpt-4o hit gpt-4o-mini's entry")
	}
}

func TestDeterministicOnly(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\ndeterministic_only = true\n")
	sampled := userRequest("gpt-4o-mini", "sampled")
	greedy := userRequest("gpt-4o-mini", "greedy")
	greedy["temperature"] = 0
	for range 2 {
		chat(t, h, sampled, rpc.Options{})
		chat(t, h, greedy, rpc.Options{})
	}
	if n := chatCalls(h); n != 3 {
		t.Errorf("%d upstream calls, want 3: the sampled request twice, the greedy one once", n)
	}
}

func TestCacheTTL(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\nttl = \"1h\"\n")
	r := chat(t, h, userRequest("gpt-4o-mini", "ttl"), rpc.Options{})
	e, ok := h.daemon.pl.Hooks().Store().Get(r.Meta.CacheEntry)
	if !ok || e.Expires.Sub(e.Created) != time.Hour {
		t.Errorf("entry expires %v after creation, want the configured 1h", e.Expires.Sub(e.Created))
	}
	r = chat(t, h, userRequest("gpt-4o-mini", "ttl 2"), rpc.Options{CacheTTL: rpc.Duration(time.Minute)})
	e, _ = h.daemon.pl.Hooks().Store().Get(r.Meta.CacheEntry)
	if e.Expires.Sub(e.Created) != time.Minute {
		t.Errorf("entry expires %v after creation, want the request's 1m", e.Expires.Sub(e.Created))
	}
}

type streamed struct {
	chunks []json.RawMessage
	text   string
	res    *rpc.ChatResult
}

func streamAll(t *testing.T, h *harness, req any) (streamed, error) {
	t.Helper()
	var s streamed
	var text strings.Builder
	for ev, err := range h.client.ChatStream(t.Context(), req, rpc.Options{}) {
		if err != nil {
			return s, err
		}
		if ev.Result != nil {
			s.res = ev.Result
			break
		}
		s.chunks = append(s.chunks, ev.Chunk)
		text.WriteString(client.DeltaText(ev.Chunk))
	}
	s.text = text.String()
	return s, nil
}

// A streamed miss is stored whole, and a streamed repeat is replayed as
// chunks that assemble to the same answer, usage chunk included when asked.
func TestStreamStoredAndReplayed(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "stream then replay this answer, which is long enough to need several chunks of replay")
	req["stream_options"] = map[string]any{"include_usage": true}
	first, err := streamAll(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.res.Meta.Cache != rpc.CacheMiss || first.res.Meta.CacheEntry == "" {
		t.Fatalf("first meta = %+v", first.res.Meta)
	}
	second, err := streamAll(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	if second.res.Meta.Cache != rpc.CacheExact || !second.res.Meta.Streamed {
		t.Fatalf("second meta = %+v, want a streamed exact hit", second.res.Meta)
	}
	if second.text != first.text || len(second.chunks) < 4 {
		t.Errorf("replayed %d chunks %q, want the first stream's text %q", len(second.chunks), second.text, first.text)
	}
	// A streamed repeat gets the very chunks the upstream sent.
	if d := cmp.Diff(first.chunks, second.chunks); d != "" {
		t.Errorf("replayed chunks differ from the stream's (-first +replayed):\n%s", d)
	}
	chunks := make([][]byte, len(second.chunks))
	for i, c := range second.chunks {
		chunks[i] = c
	}
	replayed, err := wire.AssembleChat(chunks)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(first.res.Response), string(replayed)); d != "" {
		t.Errorf("replayed chunks assemble differently (-stored +replayed):\n%s", d)
	}
	last := second.chunks[len(second.chunks)-1]
	if !strings.Contains(string(last), `"usage"`) || !strings.Contains(string(last), `"choices":[]`) {
		t.Errorf("last replayed chunk is not the usage chunk: %s", last)
	}
	// The stored stream also answers a plain request.
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheExact {
		t.Errorf("plain repeat of a streamed request: %s", r.Meta.Cache)
	}
	if n := chatCalls(h); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// A stream that broke is never stored.
func TestAbortedStreamNotStored(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, Faults: sim.Faults{StreamBreak: 1}}}}, anyModel)
	req := userRequest("gpt-4o-mini", "this stream breaks in the middle")
	if _, err := streamAll(t, h, req); err == nil {
		t.Fatal("the broken stream succeeded")
	}
	if st, _ := h.client.CacheStats(t.Context()); st.Entries != 0 {
		t.Errorf("%d entries after a broken stream, want 0", st.Entries)
	}
	// Nor is a stream the client stopped, mid-way (the answer takes 20 ms a
	// token, the client stops at the first chunk).
	h = start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, PerToken: 20 * time.Millisecond}}}, anyModel)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for range h.client.ChatStream(ctx, userRequest("gpt-4o-mini", "stopped by its client"), rpc.Options{}) {
		cancel()
		break
	}
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 0 })
	if st, _ := h.client.CacheStats(t.Context()); st.Entries != 0 {
		t.Errorf("%d entries after a canceled stream, want 0", st.Entries)
	}
}

// A cache write that fails still delivers the paid answer, with a warning
// and a counted write error.
func TestWriteFailureStillAnswers(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	h.daemon.pl.Hooks().Store().Close()
	r := chat(t, h, userRequest("gpt-4o-mini", "store fails"), rpc.Options{})
	if client.AnswerText(r.Response) == "" || r.Meta.Warning == "" || r.Meta.CacheEntry != "" {
		t.Errorf("meta = %+v, want the answer with a warning", r.Meta)
	}
	if st, _ := h.client.CacheStats(t.Context()); st.WriteErrors != 1 {
		t.Errorf("write errors = %d, want 1", st.WriteErrors)
	}
}

func TestCacheManagement(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	ctx := t.Context()
	ids := map[string]string{}
	for _, ns := range []string{"a", "a", "b", ""} {
		r := chat(t, h, userRequest("gpt-4o-mini", "manage "+ns+time.Now().String()), rpc.Options{Namespace: ns})
		ids[ns] = r.Meta.CacheEntry
	}
	ns := "a"
	if res, err := h.client.CachePurge(ctx, &ns, 0); err != nil || res.Removed != 2 {
		t.Fatalf("purge namespace a = %+v, %v; want 2", res, err)
	}
	if res, err := h.client.CachePurge(ctx, nil, time.Hour); err != nil || res.Removed != 0 {
		t.Fatalf("purge older than 1h = %+v, %v; want 0", res, err)
	}
	if ok, err := h.client.CacheForget(ctx, ids["b"]); !ok || err != nil {
		t.Fatalf("forget = %v, %v", ok, err)
	}
	if ok, _ := h.client.CacheForget(ctx, ids["b"]); ok {
		t.Error("forgot twice")
	}
	res, err := h.client.CacheCompact(ctx)
	if err != nil || res.BytesAfter == 0 {
		t.Fatalf("compact = %+v, %v", res, err)
	}
	// Still serving from the compacted file.
	st, _ := h.client.CacheStats(ctx)
	if st.Entries != 1 {
		t.Errorf("%d entries, want 1", st.Entries)
	}
	// The age filter reaches the store (its clock is tested in package
	// cache): a fresh entry is not older than an hour; without it, all go.
	if res, _ := h.client.CachePurge(ctx, nil, time.Hour); res == nil || res.Removed != 0 {
		t.Errorf("purge older than 1h = %+v, want 0: the entry is fresh", res)
	}
	if res, _ := h.client.CachePurge(ctx, nil, 0); res == nil || res.Removed != 1 {
		t.Errorf("purge = %+v, want 1", res)
	}
	var re *rpc.Error
	if _, err := h.client.CacheForget(ctx, ""); !errors.As(err, &re) || re.Code != rpc.CodeInvalidParams {
		t.Errorf("forget without id: %v", err)
	}
}

// TestNoSecretInCacheFile: neither keys nor auth headers reach the file.
func TestNoSecretInCacheFile(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	chat(t, h, userRequest("gpt-4o-mini", "secret check"), rpc.Options{})
	h.client.Embeddings(t.Context(), map[string]any{"model": "text-embedding-3-small", "input": []string{"x", "y"}}, rpc.Options{})
	path := h.daemon.pl.Hooks().Store().Path()
	h.stop()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("secret check")) {
		t.Fatal("the answer is not in the file: the test checks the wrong file")
	}
	for _, s := range []string{keyA, keyB, keyAzure, "Bearer", "Authorization"} {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("the cache file contains %q", s)
		}
	}
}

// inputCounter counts the embedding inputs each upstream request carried.
type inputCounter struct {
	next   http.Handler
	mu     sync.Mutex
	inputs []int
}

func (c *inputCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Input []json.RawMessage `json:"input"`
		}
		json.Unmarshal(body, &req)
		c.mu.Lock()
		c.inputs = append(c.inputs, len(req.Input))
		c.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	c.next.ServeHTTP(w, r)
}

// Five inputs, two of them cached: one upstream request for three.
func TestEmbeddingsPerInputCache(t *testing.T) {
	s := sim.New(oneAccount())
	counter := &inputCounter{next: s}
	h := startHandler(t, s, counter, anyModel)
	ctx := t.Context()
	req := func(in ...string) map[string]any {
		return map[string]any{"model": "text-embedding-3-small", "input": in}
	}
	first, err := h.client.Embeddings(ctx, req("two", "four"), rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.client.Embeddings(ctx, req("one", "two", "three", "four", "five"), rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, true, false, true, false}; !cmp.Equal(res.Cached, want) {
		t.Errorf("cached = %v, want %v", res.Cached, want)
	}
	if want := []int{2, 3}; !cmp.Equal(counter.inputs, want) {
		t.Errorf("upstream requests carried %v inputs, want %v", counter.inputs, want)
	}
	embeds := func(raw json.RawMessage) [][]float32 {
		var r struct {
			Data []struct {
				Index     int       `json:"index"`
				Embedding []float32 `json:"embedding"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		out := make([][]float32, len(r.Data))
		for i, d := range r.Data {
			if d.Index != i {
				t.Errorf("data[%d].index = %d", i, d.Index)
			}
			out[i] = d.Embedding
		}
		return out
	}
	a, b := embeds(first.Response), embeds(res.Response)
	if len(b) != 5 || !cmp.Equal(a[0], b[1]) || !cmp.Equal(a[1], b[3]) || cmp.Equal(b[0], b[2]) {
		t.Error("embeddings are not in input order, or the cached ones differ from the first answer")
	}
	// All cached: no upstream request at all, and the meta says so.
	all, err := h.client.Embeddings(ctx, req("one", "five"), rpc.Options{})
	if err != nil || all.Meta.Cache != rpc.CacheExact || len(counter.inputs) != 2 {
		t.Errorf("all-cached request: meta %+v, upstream %v, err %v", all.Meta, counter.inputs, err)
	}
	// Another namespace shares nothing.
	if r, _ := h.client.Embeddings(ctx, req("one"), rpc.Options{Namespace: "x"}); r == nil || r.Cached[0] {
		t.Error("an embedding leaked across namespaces")
	}
	// base64 encodes the same vector.
	b64, err := h.client.Embeddings(ctx, map[string]any{"model": "text-embedding-3-small", "input": "two", "encoding_format": "base64"}, rpc.Options{})
	if err != nil || !b64.Cached[0] || !strings.Contains(string(b64.Response), `"embedding":"`) {
		t.Errorf("base64: %v %s", err, b64.Response)
	}
	if n := len(s.Log()); n != 3 {
		t.Errorf("simulator log has %d requests, want 3", n)
	}
}

// fakeIndex is a semantic index that hits when the text matches one
// stored in the same partition after lower-casing.
type fakeIndex struct {
	mu      sync.Mutex
	entries []proxy.SemanticEntry
	failAdd bool
	hold    chan struct{} // non-nil: Add waits until it is closed
	// lookupHold non-nil: Lookup says so on lookupIn, then waits until it
	// is closed.
	lookupIn, lookupHold chan struct{}
}

func (f *fakeIndex) Lookup(ctx context.Context, partition, text string) (proxy.SemanticHit, bool, error) {
	if f.lookupHold != nil {
		f.lookupIn <- struct{}{}
		<-f.lookupHold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.entries {
		if e.Partition == partition && strings.EqualFold(e.Text, text) {
			return proxy.SemanticHit{ID: e.ID, Target: e.Target, Similarity: 0.97, Exact: e.Text == text}, true, nil
		}
	}
	return proxy.SemanticHit{}, false, nil
}

func (f *fakeIndex) Add(ctx context.Context, e proxy.SemanticEntry) error {
	if f.hold != nil {
		<-f.hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAdd {
		return errors.New("index full")
	}
	f.entries = append(f.entries, e)
	return nil
}

func (f *fakeIndex) setFailAdd(fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAdd = fail
}

func (f *fakeIndex) Forget(id string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.entries {
		if e.ID == id {
			f.entries = append(f.entries[:i], f.entries[i+1:]...)
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeIndex) Purge(match func(proxy.SemanticEntry) bool) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	kept := f.entries[:0]
	for _, e := range f.entries {
		if match(e) {
			n++
		} else {
			kept = append(kept, e)
		}
	}
	f.entries = kept
	return n, nil
}

func (f *fakeIndex) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

// The semantic write happens after the answer went: a held Add does not
// hold the request, and closing the cache waits for it.
func TestSemanticAddAfterAnswer(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	idx := &fakeIndex{hold: make(chan struct{})}
	h.daemon.pl.Hooks().SetSemantic(idx)
	r := chat(t, h, userRequest("gpt-4o-mini", "What is the capital of Spain?"), rpc.Options{Semantic: rpc.SemanticUserOnly})
	if r.Meta.Cache != rpc.CacheMiss || r.Meta.CacheEntry == "" || idx.Len() != 0 {
		t.Fatalf("meta %+v, %d semantic entries; want a miss answered before its semantic write", r.Meta, idx.Len())
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		h.daemon.pl.Hooks().CloseCache()
	}()
	close(idx.hold)
	<-closed
	if idx.Len() != 1 {
		t.Errorf("%d semantic entries after closing, want the queued one written", idx.Len())
	}
}

func TestSemanticPath(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	idx := &fakeIndex{}
	h.daemon.pl.Hooks().SetSemantic(idx)
	sem := rpc.Options{Semantic: rpc.SemanticUserOnly}
	first := chat(t, h, userRequest("gpt-4o-mini", "What is the capital of France?"), sem)
	settle(h)
	if first.Meta.Cache != rpc.CacheMiss || idx.Len() != 1 || idx.entries[0].Target != first.Meta.CacheEntry || idx.entries[0].Text != "[user]: What is the capital of France?" {
		t.Fatalf("miss did not store a semantic entry: meta %+v, entries %+v", first.Meta, idx.entries)
	}
	hit := chat(t, h, userRequest("gpt-4o-mini", "what is the capital of france?"), sem)
	if hit.Meta.Cache != rpc.CacheSemantic || hit.Meta.Similarity != 0.97 || hit.Meta.SemanticExact || hit.Meta.CacheEntry != idx.entries[0].ID {
		t.Errorf("semantic hit meta = %+v", hit.Meta)
	}
	if !bytes.Equal(hit.Response, first.Response) {
		t.Error("the semantic hit did not answer with the stored answer")
	}
	// Without the option (and no default), the semantic cache is not read.
	if r := chat(t, h, userRequest("gpt-4o-mini", "WHAT IS THE CAPITAL OF FRANCE?"), rpc.Options{NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("no semantic option: %s", r.Meta.Cache)
	}
	// Another model is another partition.
	if r := chat(t, h, userRequest("gpt-4o", "what is the capital of france?"), rpc.Options{Semantic: rpc.SemanticUserOnly, NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("semantic hit across models: %+v", r.Meta)
	}
	// A hit whose answer is gone is a miss, and the entry is forgotten.
	h.client.CacheForget(t.Context(), first.Meta.CacheEntry)
	if r := chat(t, h, userRequest("gpt-4o-mini", "WHAT is the capital of France?"), rpc.Options{Semantic: rpc.SemanticUserOnly, NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("hit on a vanished answer: %+v", r.Meta)
	}
	if idx.Len() != 0 {
		t.Error("the dangling semantic entry was kept")
	}
	// A failing semantic write, after the answer went, is counted.
	idx.setFailAdd(true)
	r := chat(t, h, userRequest("gpt-4o-mini", "Where is Rome?"), sem)
	settle(h)
	if r.Meta.CacheEntry == "" {
		t.Errorf("meta = %+v, want the exact entry", r.Meta)
	}
	if st, _ := h.client.CacheStats(t.Context()); st.WriteErrors != 1 {
		t.Errorf("write errors = %d after a failed semantic write, want 1", st.WriteErrors)
	}
	// forget by a semantic id.
	idx.setFailAdd(false)
	chat(t, h, userRequest("gpt-4o-mini", "Where is Paris?"), sem)
	settle(h)
	if ok, err := h.client.CacheForget(t.Context(), idx.entries[0].ID); !ok || err != nil || idx.Len() != 0 {
		t.Errorf("forget semantic id = %v, %v", ok, err)
	}
	var re *rpc.Error
	if _, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "x"), rpc.Options{Semantic: "fuzzy"}); !errors.As(err, &re) || re.Code != rpc.CodeInvalidParams {
		t.Errorf("unknown semantic encoding: %v", err)
	}
}

func TestBatchCacheHits(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	chat(t, h, userRequest("gpt-4o-mini", "batch item 0"), rpc.Options{})
	reqs := []any{userRequest("gpt-4o-mini", "batch item 0"), userRequest("gpt-4o-mini", "batch item 1")}
	var sum *rpc.BatchSummary
	for ev, err := range h.client.Batch(t.Context(), reqs, rpc.Options{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Result != nil {
			sum = &ev.Result.Summary
		}
	}
	if sum == nil || sum.CacheHits != 1 || sum.OK != 2 {
		t.Errorf("summary = %+v, want 1 cache hit of 2", sum)
	}
}

func TestCacheOff(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\nenabled = false\n")
	req := userRequest("gpt-4o-mini", "uncached")
	chat(t, h, req, rpc.Options{})
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("cache off: %s", r.Meta.Cache)
	}
	if _, err := h.client.CacheStats(t.Context()); err == nil {
		t.Error("cache.stats with the cache off: no error")
	}
	if st, _ := h.client.Status(t.Context()); st.Cache != nil {
		t.Error("status has cache stats with the cache off")
	}
}

// POST /v1/embeddings goes through the same per-input cache.
func TestHTTPEmbeddings(t *testing.T) {
	h := startHTTP(t, oneAccount(), anyModel)
	ctx := t.Context()
	for i, want := range []int{1, 1} {
		resp, err := h.openai.CreateEmbeddings(ctx, openai.EmbeddingRequest{Model: "text-embedding-3-small", Input: []string{"hello", "world"}})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if len(resp.Data) != 2 || len(resp.Data[1].Embedding) == 0 {
			t.Fatalf("call %d: %+v", i, resp)
		}
		n := 0
		for _, r := range h.sim.Log() {
			if strings.HasSuffix(r.Path, "/embeddings") {
				n++
			}
		}
		if n != want {
			t.Errorf("after call %d: %d upstream embeddings requests, want %d (the second is cached)", i, n, want)
		}
	}
}

// A reload applies the cache's ttl at once; its file and cap stay until
// the next start, and the cache keeps answering.
func TestReloadKeepsCacheFile(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "before the reload")
	first := chat(t, h, req, rpc.Options{})
	path := h.daemon.pl.Hooks().Store().Path()
	if err := h.daemon.Reload(loader(t, h, anyModel+"[cache]\nttl = \"1h\"\nmax_bytes = 10\npath = \"/elsewhere/c.db\"\n")); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	c := h.daemon.config().Cache
	if c.TTL.Duration != time.Hour || c.Path != path || c.MaxBytes != config.DefaultCacheMaxBytes {
		t.Errorf("after reload [cache] = %+v: want the new ttl, the old path and cap", c)
	}
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheExact || r.Meta.CacheEntry != first.Meta.CacheEntry {
		t.Errorf("after reload: %+v, want the same exact hit", r.Meta)
	}
	r := chat(t, h, userRequest("gpt-4o-mini", "after the reload"), rpc.Options{})
	if e, _ := h.daemon.pl.Hooks().Store().Get(r.Meta.CacheEntry); e.Expires.Sub(e.Created) != time.Hour {
		t.Errorf("new entry expires after %v, want the reloaded 1h", e.Expires.Sub(e.Created))
	}
	// Status says what waits for the next start, until a reload takes the
	// change back.
	st, err := h.client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.RestartPending) != 1 || !strings.HasPrefix(st.RestartPending[0], "[cache] ") {
		t.Errorf("restart_pending %q, want the [cache] settings", st.RestartPending)
	}
	if err := h.daemon.Reload(loader(t, h, anyModel+fmt.Sprintf("[cache]\nttl = \"1h\"\npath = %q\n", path))); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if st, err = h.client.Status(t.Context()); err != nil || st.RestartPending != nil {
		t.Errorf("restart_pending %q (%v) after the file went back to what runs, want none", st.RestartPending, err)
	}
}

// Identical requests share one call only when each could have been answered
// from the cache: no_cache, or a sampled request under deterministic_only,
// asks for an answer of its own.
func TestWhoCoalesces(t *testing.T) {
	slow := sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 200 * time.Millisecond}}}
	batch := func(t *testing.T, h *harness, req map[string]any, opts rpc.Options) rpc.BatchSummary {
		t.Helper()
		reqs := []any{req, req, req, req, req}
		for ev, err := range h.client.Batch(t.Context(), reqs, opts, 0) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Result != nil {
				return ev.Result.Summary
			}
		}
		t.Fatal("no batch result")
		return rpc.BatchSummary{}
	}
	t.Run("no_cache", func(t *testing.T) {
		h := start(t, slow, anyModel)
		sum := batch(t, h, userRequest("gpt-4o-mini", "five of my own"), rpc.Options{NoCache: true})
		if n := chatCalls(h); n != 5 || sum.Coalesced != 0 {
			t.Errorf("%d upstream calls, %d coalesced; want 5 and 0", n, sum.Coalesced)
		}
	})
	t.Run("sampled under deterministic_only", func(t *testing.T) {
		h := start(t, slow, anyModel+"[cache]\ndeterministic_only = true\n")
		req := userRequest("gpt-4o-mini", "five samples")
		req["temperature"] = 1
		sum := batch(t, h, req, rpc.Options{})
		if n := chatCalls(h); n != 5 || sum.Coalesced != 0 {
			t.Errorf("%d upstream calls, %d coalesced; want 5 and 0", n, sum.Coalesced)
		}
		req["temperature"] = 0
		sum = batch(t, h, req, rpc.Options{})
		if n := chatCalls(h); n != 6 || sum.Coalesced != 4 {
			t.Errorf("greedy: %d upstream calls in all, %d coalesced; want 6 and 4", n, sum.Coalesced)
		}
	})
}

// A coalesced request stores the shared answer even when the request that
// made the call did not (no_store): the paid answer is not lost.
func TestCoalescedStoresWhatTheLeaderDidNot(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 300 * time.Millisecond}}}, anyModel)
	req := userRequest("gpt-4o-mini", "stored by the follower")
	lead := make(chan *rpc.ChatResult, 1)
	go func() {
		res, err := h.client.Chat(t.Context(), req, rpc.Options{NoStore: true})
		if err != nil {
			t.Error(err)
		}
		lead <- res
	}()
	waitFor(t, func() bool { return h.daemon.snapshot().Backends[0].InFlight == 1 })
	follower := chat(t, h, req, rpc.Options{})
	if follower.Meta.Cache != rpc.CacheCoalesced {
		t.Fatalf("follower: cache %q, want coalesced", follower.Meta.Cache)
	}
	<-lead
	again := chat(t, h, req, rpc.Options{})
	if again.Meta.Cache != rpc.CacheExact || chatCalls(h) != 1 {
		t.Errorf("third request: cache %q after %d upstream calls; want an exact hit after 1", again.Meta.Cache, chatCalls(h))
	}
}

// A semantic lookup that takes long (a backend embedder's upstream call)
// holds no lock: a compaction meanwhile goes through, and so would the
// lookups queued behind it.
func TestSlowSemanticLookupBlocksNothing(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	idx := &fakeIndex{lookupIn: make(chan struct{}, 1), lookupHold: make(chan struct{})}
	h.daemon.pl.Hooks().SetSemantic(idx)
	answered := make(chan error, 1)
	go func() {
		_, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "a slow lookup"), rpc.Options{Semantic: rpc.SemanticUserOnly})
		answered <- err
	}()
	<-idx.lookupIn
	compacted := make(chan error, 1)
	go func() { _, err := h.client.CacheCompact(t.Context()); compacted <- err }()
	select {
	case err := <-compacted:
		if err != nil {
			t.Errorf("compact: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the compaction waited for a semantic lookup")
	}
	close(idx.lookupHold)
	if err := <-answered; err != nil {
		t.Error(err)
	}
}

// A cached answer that no longer reads (a damaged file, a team host's bad
// write) is a miss: the request goes upstream, the client gets a good
// answer, and that answer replaces the damaged one.
func TestDamagedEntryIsAMiss(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	req := userRequest("gpt-4o-mini", "an answer that will be damaged")
	chat(t, h, req, rpc.Options{})
	hit := chat(t, h, req, rpc.Options{})
	if hit.Meta.Cache != rpc.CacheExact {
		t.Fatalf("second request: cache %q, want exact", hit.Meta.Cache)
	}
	e, ok := h.daemon.pl.Hooks().Store().Get(hit.Meta.CacheEntry)
	if !ok {
		t.Fatal("the entry is not in the store")
	}
	e.Value = []byte(`{"choices":[{"message":{"content":"cut short"}},"usage":{`)
	if err := h.daemon.pl.Hooks().Store().Put(e); err != nil {
		t.Fatal(err)
	}
	got := chat(t, h, req, rpc.Options{})
	if got.Meta.Cache != rpc.CacheMiss || chatCalls(h) != 2 || !strings.Contains(client.AnswerText(got.Response), "an answer that will be damaged") {
		t.Errorf("after the damage: cache %q, %d upstream calls, answer %q; want a miss answered upstream (2 calls)", got.Meta.Cache, chatCalls(h), client.AnswerText(got.Response))
	}
	if again := chat(t, h, req, rpc.Options{}); again.Meta.Cache != rpc.CacheExact || !json.Valid(again.Response) {
		t.Errorf("then: cache %q, valid %v; want an exact hit on the new answer", again.Meta.Cache, json.Valid(again.Response))
	}
}
