package proxy

import (
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/provider"
)

// newPipeline is a Pipeline over one simulated backend, with cfgExtra
// appended to its configuration; the daemon's own tests (package daemon)
// run the pipeline behind the real socket.
func newPipeline(t *testing.T, cfgExtra string) (*Pipeline, *sim.Server) {
	t.Helper()
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: "sk-test-pipeline-0001"}}})
	ts := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); ts.Close() })
	text := "version = 1\n" + cfgExtra + "\n[[backend]]\nname = \"a\"\ntype = \"openai\"\nbase_url = \"" + ts.URL + "/v1\"\napi_key_env = \"KEY\"\n"
	cfg, err := config.Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Resolve(func(string) string { return "sk-test-pipeline-0001" }); err != nil {
		t.Fatal(err)
	}
	cfg.Cache.Path = filepath.Join(t.TempDir(), "cache.db")
	p, err := provider.New(cfg.Backends[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := balance.New(cfg.Backends, []*provider.Provider{p}, balance.Options{})
	pl, err := New(Options{Config: func() *config.Config { return cfg }, Pool: pool, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	return pl, s
}

// The backend embedder embeds through the pool and returns unit vectors.
func TestPoolEmbedder(t *testing.T) {
	pl, s := newPipeline(t, "")
	emb := poolEmbedder{pl: pl, model: "text-embedding-3-small"}
	vecs, err := emb.Embed(t.Context(), []string{"one", "two", "one"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != 3 || !cmp.Equal(vecs[0], vecs[2]) || cmp.Equal(vecs[0], vecs[1]) {
		t.Fatalf("vectors not one per text in order")
	}
	for i, v := range vecs {
		var sum float64
		for _, f := range v {
			sum += float64(f) * float64(f)
		}
		if sum < 0.999 || sum > 1.001 {
			t.Errorf("vector %d has squared length %v", i, sum)
		}
	}
	if n := len(s.Log()); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
	if _, err := (poolEmbedder{pl: pl, model: "no-such-model"}).Embed(t.Context(), []string{"x"}); err == nil {
		t.Error("an unknown model embeds")
	}
}
