package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/shared"
)

// host is one daemon's pipeline in a team: its own upstream and cache
// file, the team's Redis.
type host struct {
	pl   *Pipeline
	sim  *sim.Server
	path string // the cache file
}

// teamHost is a Pipeline named name in the team on srv, with cfgExtra
// appended to its configuration and its cache in path ("" a new one).
// Closing it (close) is idempotent and done when t ends.
func teamHost(t *testing.T, srv *redistest.Server, name, cfgExtra, path string) (h *host, close func()) {
	t.Helper()
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: "sk-test-pipeline-0001"}}})
	ts := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); ts.Close() })
	text := "version = 1\n[shared]\nredis = \"" + srv.URL() + "\"\nkey_prefix = \"test\"\n" + cfgExtra +
		"\n[[backend]]\nname = \"a\"\ntype = \"openai\"\nbase_url = \"" + ts.URL + "/v1\"\napi_key_env = \"KEY\"\n"
	cfg, err := config.Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Resolve(func(string) string { return "sk-test-pipeline-0001" }); err != nil {
		t.Fatal(err)
	}
	if path == "" {
		path = filepath.Join(t.TempDir(), "cache.db")
	}
	cfg.Cache.Path = path
	// go-redis v9.23 races on its options between a subscription (the
	// team's) and a first connection, which -race reports: let the team
	// subscribe first. See the shared package's tests.
	subscribers := srv.Subscribers("test:cool")
	team, err := shared.Open(shared.Options{Config: cfg.Shared, Host: name})
	if err != nil {
		t.Fatal(err)
	}
	srv.WaitSubscribers("test:cool", subscribers+1)
	p, err := provider.New(cfg.Backends[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := balance.New(cfg.Backends, []*provider.Provider{p}, balance.Options{})
	pl, err := New(Options{Config: func() *config.Config { return cfg }, Pool: pool, StateDir: t.TempDir(), Team: team})
	if err != nil {
		t.Fatal(err)
	}
	close = sync.OnceFunc(func() {
		pl.Close()
		team.Close()
	})
	t.Cleanup(close)
	return &host{pl: pl, sim: s, path: path}, close
}

// ask sends a chat request for prompt through h.
func (h *host) ask(t *testing.T, prompt string, opts rpc.Options) Result {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": prompt}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(provider.PathChat, raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.pl.Serve(t.Context(), r, opts, nil, time.Now())
	if err != nil {
		t.Fatalf("%q: %v", prompt, err)
	}
	return res
}

func (h *host) upstreamCalls() int {
	n := 0
	for _, r := range h.sim.Log() {
		if strings.HasSuffix(r.Path, "/chat/completions") {
			n++
		}
	}
	return n
}

func (h *host) shared() rpc.SharedCacheStats {
	st, err := h.pl.CacheStats()
	if err != nil || st.Shared == nil {
		panic(fmt.Sprintf("no shared stats: %+v %v", st, err))
	}
	return *st.Shared
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An answer paid for on one host is an exact hit on another, with no
// upstream call there; the metadata names the host that stored it, the
// answer is kept locally, and the next hit on it is an ordinary one.
func TestSharedAnswer(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", "", "")
	b, _ := teamHost(t, srv, "host-b", "", "")
	paid := a.ask(t, "What is a load balancer?", rpc.Options{})
	if paid.Meta.Cache != rpc.CacheMiss || paid.Meta.CacheHost != "" {
		t.Fatalf("first: %+v", paid.Meta)
	}
	eventually(t, "host-a's put", func() bool { return a.shared().Puts == 1 })
	got := b.ask(t, "What is a load balancer?", rpc.Options{})
	if got.Meta.Cache != rpc.CacheExact || got.Meta.CacheHost != "host-a" || got.Meta.CacheEntry != paid.Meta.CacheEntry || !bytes.Equal(got.Body, paid.Body) {
		t.Fatalf("on host-b: %+v", got.Meta)
	}
	if n := b.upstreamCalls(); n != 0 {
		t.Errorf("host-b made %d upstream calls", n)
	}
	if _, ok := b.pl.Hooks().Store().Get(paid.Meta.CacheEntry); !ok {
		t.Error("the shared answer was not kept in host-b's store")
	}
	again := b.ask(t, "What is a load balancer?", rpc.Options{})
	if again.Meta.Cache != rpc.CacheExact || again.Meta.CacheHost != "" {
		t.Errorf("again on host-b: %+v", again.Meta)
	}
	st, err := b.pl.CacheStats()
	if err != nil || st.Hits.Exact != 2 || st.Shared.Hits != 1 || st.Shared.Host != "host-b" || st.Misses != 0 {
		t.Errorf("host-b's stats = %+v, shared %+v (%v)", st, st.Shared, err)
	}
	// no_cache reads neither tier.
	if r := b.ask(t, "What is a load balancer?", rpc.Options{NoCache: true}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("no_cache on host-b: %+v", r.Meta)
	}
}

// With Redis stopped, answers keep coming, as fast as without it: the
// shared tier misses at once (its breaker open) and its writes are
// dropped, never waited for.
func TestSharedRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", "", "")
	srv.Stop()
	start := time.Now()
	for i := range 20 {
		prompt := fmt.Sprint("Question number ", i)
		if r := a.ask(t, prompt, rpc.Options{}); r.Meta.Cache != rpc.CacheMiss {
			t.Fatalf("%s: %+v", prompt, r.Meta)
		}
		if r := a.ask(t, prompt, rpc.Options{}); r.Meta.Cache != rpc.CacheExact {
			t.Fatalf("%s again: %+v", prompt, r.Meta)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("40 requests took %v with Redis down", took)
	}
	eventually(t, "the writes dropped", func() bool { return a.shared().Drops == 20 })
	if st := a.shared(); st.Puts != 0 || st.Hits != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// cache.forget on one host removes the answer from every host's own cache
// and from Redis; cache.purge too, for what its filter matches.
func TestSharedForgetAndPurge(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", "", "")
	b, _ := teamHost(t, srv, "host-b", "", "")
	paid := a.ask(t, "What is a load balancer?", rpc.Options{})
	key := paid.Meta.CacheEntry
	eventually(t, "host-a's put", func() bool { return a.shared().Puts == 1 })
	res, err := b.pl.CacheForget(t.Context(), key) // host-b never held it
	if err != nil || !res.Removed || res.Warning != "" {
		t.Fatalf("forget on host-b = %+v, %v", res, err)
	}
	eventually(t, "host-a forgets", func() bool {
		_, ok := a.pl.Hooks().Store().Get(key)
		return !ok
	})
	if r := b.ask(t, "What is a load balancer?", rpc.Options{}); r.Meta.Cache != rpc.CacheMiss {
		t.Errorf("after forgetting, host-b: %+v", r.Meta)
	}

	team, other := "team", "other"
	a.ask(t, "In the team namespace", rpc.Options{Namespace: team})
	a.ask(t, "In the other namespace", rpc.Options{Namespace: other})
	eventually(t, "host-a's puts", func() bool { return a.shared().Puts == 3 })
	pr, err := b.pl.CachePurge(t.Context(), rpc.CachePurgeParams{Namespace: &team})
	if err != nil || pr.SharedRemoved != 1 || pr.Warning != "" {
		t.Fatalf("purge on host-b = %+v, %v", pr, err)
	}
	eventually(t, "host-a purges namespace team", func() bool { return a.shared().Removals == 2 })
	if n := a.pl.Hooks().Store().Stats().Entries; n != 1 {
		t.Errorf("host-a has %d entries after the purge, want 1", n)
	}
	if r := a.ask(t, "In the other namespace", rpc.Options{Namespace: other}); r.Meta.Cache != rpc.CacheExact {
		t.Errorf("the other namespace was purged too: %+v", r.Meta)
	}
}

const semanticOn = "[cache]\nsemantic = \"user_only\"\n"

// A semantic entry added on one host is a semantic hit on another: its
// index got the entry with its vector, and the answer comes from Redis.
// A host restarted reads on from where it stopped.
func TestSharedSemantic(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", semanticOn, "")
	b, closeB := teamHost(t, srv, "host-b", semanticOn, "")
	paid := a.ask(t, "How can I learn to play guitar?", rpc.Options{})
	if paid.Meta.Cache != rpc.CacheMiss {
		t.Fatalf("first: %+v", paid.Meta)
	}
	eventually(t, "host-b's index has host-a's entry", func() bool {
		st, _ := b.pl.CacheStats()
		return st.SemanticEntries == 1
	})
	hit := b.ask(t, "How do I learn to play the guitar?", rpc.Options{})
	if hit.Meta.Cache != rpc.CacheSemantic || hit.Meta.CacheHost != "host-a" || !bytes.Equal(hit.Body, paid.Body) {
		t.Fatalf("paraphrase on host-b: %+v", hit.Meta)
	}
	if n := b.upstreamCalls(); n != 0 {
		t.Errorf("host-b made %d upstream calls", n)
	}
	if st := a.shared(); st.SemanticSent != 1 {
		t.Errorf("host-a's stats = %+v", st)
	}

	// host-b restarts on its file: it does not read host-a's entry again,
	// and reads the one added while it was away.
	closeB()
	a.ask(t, "What is the capital of Australia?", rpc.Options{})
	eventually(t, "host-a's second entry sent", func() bool { return a.shared().SemanticSent == 2 })
	b, _ = teamHost(t, srv, "host-b", semanticOn, b.path)
	eventually(t, "host-b's index has both", func() bool {
		st, _ := b.pl.CacheStats()
		return st.SemanticEntries == 2
	})
	if hit := b.ask(t, "Tell me the capital of Australia.", rpc.Options{}); hit.Meta.Cache != rpc.CacheSemantic {
		t.Errorf("second paraphrase on host-b: %+v", hit.Meta)
	}
	// A marker from host-a after its two entries: once host-b has it, it
	// has read everything before, and added only the one it had not.
	a.pl.CacheForget(t.Context(), "marker")
	eventually(t, "host-b reads the marker", func() bool { return b.shared().Removals == 1 })
	if st := b.shared(); st.SemanticReceived != 1 {
		t.Errorf("restarted host-b received %d entries, want 1 (the one added while it was away)", st.SemanticReceived)
	}
}

// Entries made by another embedder are not added: their vectors mean
// nothing to this host's index.
func TestSharedSemanticOtherEmbedder(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", semanticOn, "")
	b, _ := teamHost(t, srv, "host-b", semanticOn+"embedder = \"backend\"\nembedding_model = \"text-embedding-3-small\"\n", "")
	eventually(t, "host-b's index opens", b.pl.Hooks().SemanticOpen)
	a.ask(t, "How can I learn to play guitar?", rpc.Options{})
	eventually(t, "host-b skips host-a's entry", func() bool { return b.shared().SemanticSkipped == 1 })
	st, _ := b.pl.CacheStats()
	if st.SemanticEntries != 0 || st.Shared.SemanticReceived != 0 {
		t.Errorf("host-b's stats = %+v, shared %+v", st, st.Shared)
	}
}

// Without a team, a pipeline shares nothing and says nothing of it.
func TestNoTeamSharesNothing(t *testing.T) {
	pl, _ := newPipeline(t, "")
	if pl.answers != nil {
		t.Fatal("answers without a team")
	}
	st, err := pl.CacheStats()
	if err != nil || st.Shared != nil {
		t.Errorf("stats = %+v, %v", st, err)
	}
	res, err := pl.CacheForget(t.Context(), "nothing")
	if err != nil || res.Removed || res.Warning != "" {
		t.Errorf("forget = %+v, %v", res, err)
	}
}

// [shared] cache = false shares limits only.
func TestSharedCacheOff(t *testing.T) {
	srv := redistest.Start(t)
	a, _ := teamHost(t, srv, "host-a", "cache = false\n", "")
	if a.pl.answers != nil {
		t.Error("answers shared with [shared] cache = false")
	}
}
