package daemon

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// BenchmarkExactHit is a cache hit's work in the daemon, without the
// socket: the strict decode, the key, the bbolt read, the result.
func BenchmarkExactHit(b *testing.B) {
	h := start(b, oneAccount(), anyModel)
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"cache benchmark question 12345"}]}`)
	if _, err := h.client.Chat(b.Context(), raw, rpc.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		req, err := parseChatRequest(raw)
		if err != nil {
			b.Fatal(err)
		}
		res, err := h.daemon.answer(b.Context(), req, rpc.Options{}, nil, time.Now())
		if err != nil || res.Meta.Cache != rpc.CacheExact {
			b.Fatalf("%v %+v", err, res.Meta)
		}
		if _, err := json.Marshal(res); err != nil {
			b.Fatal(err)
		}
	}
}
