package daemon

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// BenchmarkExactHit is a cache hit's work in the daemon, without the
// socket: the request's decode, the key, the bbolt read, the result.
func BenchmarkExactHit(b *testing.B) {
	h := start(b, oneAccount(), anyModel)
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"cache benchmark question 12345"}]}`)
	if _, err := h.client.Chat(b.Context(), raw, rpc.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		r, err := proxy.Parse(provider.PathChat, raw)
		if err != nil {
			b.Fatal(err)
		}
		res, err := h.daemon.pl.Serve(b.Context(), r, rpc.Options{}, nil, start)
		if err != nil || res.Meta.Cache != rpc.CacheExact {
			b.Fatalf("%v %+v", err, res.Meta)
		}
		if _, err := json.Marshal(rpc.ChatResult{Response: res.Body, Meta: res.Meta}); err != nil {
			b.Fatal(err)
		}
	}
}
