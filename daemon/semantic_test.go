package daemon

import (
	"bytes"
	"testing"

	"github.com/lbgpt/lbgpt/rpc"
)

// The real semantic index end to end: a paraphrase is answered from the
// stored answer, a trap is not, and compaction keeps the index working.
func TestSemanticEndToEnd(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\nsemantic = \"user_only\"\n")
	if !h.daemon.pl.Hooks().SemanticOpen() {
		t.Fatal("no semantic index with the local embedder")
	}
	first := chat(t, h, userRequest("gpt-4o-mini", "How can I learn to play guitar?"), rpc.Options{})
	if first.Meta.Cache != rpc.CacheMiss {
		t.Fatalf("first: %s", first.Meta.Cache)
	}
	settle(h)
	hit := chat(t, h, userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{})
	if hit.Meta.Cache != rpc.CacheSemantic || hit.Meta.Similarity <= 0 || hit.Meta.CacheEntry == "" || !bytes.Equal(hit.Response, first.Response) {
		t.Fatalf("paraphrase: meta %+v", hit.Meta)
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "How can I learn to play piano?"), rpc.Options{NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("trap (guitar vs piano) answered from the cache: %+v", r.Meta)
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{Semantic: rpc.SemanticOff, NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("semantic off per request: %s", r.Meta.Cache)
	}
	st, err := h.client.CacheStats(t.Context())
	if err != nil || st.SemanticEntries != 1 || st.Hits.Semantic != 1 || st.Embedder != "local" || st.Threshold == 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}
	if _, err := h.client.CacheCompact(t.Context()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{}); r.Meta.Cache != rpc.CacheSemantic {
		t.Errorf("after compaction: %+v", r.Meta)
	}
	chat(t, h, userRequest("gpt-4o-mini", "What causes the seasons on Earth?"), rpc.Options{})
	if ok, err := h.client.CacheForget(t.Context(), hit.Meta.CacheEntry); !ok || err != nil {
		t.Fatalf("forget the semantic entry: %v %v", ok, err)
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{NoStore: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("after forgetting the semantic entry: %+v", r.Meta)
	}
}

// Without a default, the index opens with the first request that asks for
// it, and requests that do not ask never touch it.
func TestSemanticOpensWhenAsked(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	chat(t, h, userRequest("gpt-4o-mini", "What causes the seasons on Earth?"), rpc.Options{})
	if h.daemon.pl.Hooks().SemanticOpen() {
		t.Fatal("the semantic index opened although nothing asked for it")
	}
	sem := rpc.Options{Semantic: rpc.SemanticUserOnly}
	chat(t, h, userRequest("gpt-4o-mini", "What is the square root of 144?"), sem)
	settle(h)
	if !h.daemon.pl.Hooks().SemanticOpen() {
		t.Fatal("a request asking for the semantic cache did not open it")
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "What's the square root of 144?"), sem); r.Meta.Cache != rpc.CacheSemantic {
		t.Errorf("paraphrase: %+v", r.Meta)
	}
}

// settle waits for the semantic writes queued by the requests answered so
// far: they are added after the answer goes.
func settle(h *harness) {
	h.daemon.pl.Hooks().Settle()
}

// A paraphrase sent right after its original is answered from it: the
// lookup waits for the original's semantic write, which runs after the
// answer was delivered (here held back until the lookup waits).
func TestParaphraseRightAfterItsOriginal(t *testing.T) {
	h := start(t, oneAccount(), anyModel+"[cache]\nsemantic = \"user_only\"\n")
	hooks := h.daemon.pl.Hooks()
	release := hooks.HoldSemanticWrites()
	defer release()
	chat(t, h, userRequest("gpt-4o-mini", "How can I learn to play guitar?"), rpc.Options{})
	hit := make(chan *rpc.ChatResult, 1)
	go func() {
		res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "How do I learn to play the guitar?"), rpc.Options{})
		if err != nil {
			t.Error(err)
		}
		hit <- res
	}()
	waitFor(t, func() bool { return hooks.SemanticLookupsWaiting() == 1 })
	release()
	if res := <-hit; res == nil || res.Meta.Cache != rpc.CacheSemantic {
		t.Fatalf("the paraphrase, sent before the original's semantic write: %+v", res)
	}
	if n := chatCalls(h); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}
