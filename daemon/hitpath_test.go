package daemon

import (
	"encoding/json"
	"testing"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/rpc"
)

// BenchmarkHitPathParts times the per-request work of a cache hit before
// the lookup: the strict decode, the cache plan (key).
func BenchmarkHitPathParts(b *testing.B) {
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"cache benchmark question 12345"}]}`)
	b.Run("parseChatRequest", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseChatRequest(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	d := &Daemon{cfg: &config.Config{}}
	req, _ := parseChatRequest(raw)
	b.Run("plan", func(b *testing.B) {
		for b.Loop() {
			d.plan(req, rpc.Options{})
		}
	})
}
