package tui

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

// fakeDaemon answers every chat with the chunks of answer, then hold (if
// set) blocks the stream until it is canceled; Watch blocks until its ctx
// ends unless down is set. It records every chat request.
type fakeDaemon struct {
	answer []string
	meta   rpc.Meta
	hold   bool
	down   error

	mu   sync.Mutex // guards reqs and opts
	reqs []map[string]any
	opts []rpc.Options
}

var _ Daemon = (*fakeDaemon)(nil)

func (f *fakeDaemon) ChatStream(ctx context.Context, req any, opts rpc.Options) iter.Seq2[client.Event, error] {
	return func(yield func(client.Event, error) bool) {
		f.mu.Lock()
		f.reqs = append(f.reqs, req.(map[string]any))
		f.opts = append(f.opts, opts)
		f.mu.Unlock()
		var text string
		for _, a := range f.answer {
			text += a
			chunk, _ := json.Marshal(map[string]any{"choices": []any{map[string]any{"delta": map[string]string{"content": a}}}})
			if !yield(client.Event{Chunk: chunk}, nil) {
				return
			}
		}
		if f.hold {
			<-ctx.Done()
			yield(client.Event{}, ctx.Err())
			return
		}
		resp, _ := json.Marshal(map[string]any{
			"choices": []any{map[string]any{"message": map[string]string{"role": "assistant", "content": text}}},
			"usage":   map[string]int{"prompt_tokens": 7, "completion_tokens": 3},
		})
		yield(client.Event{Result: &rpc.ChatResult{Response: resp, Meta: f.meta}}, nil)
	}
}

func (f *fakeDaemon) Batch(ctx context.Context, reqs []any, opts rpc.Options, concurrency int) iter.Seq2[client.BatchEvent, error] {
	return func(yield func(client.BatchEvent, error) bool) {
		if !yield(client.BatchEvent{Progress: &rpc.BatchProgress{Done: 1, BatchSummary: rpc.BatchSummary{Total: len(reqs)}}}, nil) {
			return
		}
		items := make([]rpc.BatchItem, len(reqs))
		for i := range items {
			items[i] = rpc.BatchItem{Index: i, Result: &rpc.ChatResult{Meta: f.meta}}
		}
		yield(client.BatchEvent{Result: &rpc.BatchResult{Items: items, Summary: rpc.BatchSummary{Total: len(reqs), OK: len(reqs), ElapsedMS: 1500}}}, nil)
	}
}

func (f *fakeDaemon) Watch(ctx context.Context, maxPerSecond float64) (Watcher, error) {
	if f.down != nil {
		return nil, f.down
	}
	return blockingWatcher{ctx}, nil
}

func (f *fakeDaemon) requests() ([]map[string]any, []rpc.Options) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs, f.opts
}

// blockingWatcher never has a snapshot: tests send statusMsg themselves.
type blockingWatcher struct{ ctx context.Context }

func (w blockingWatcher) Next(ctx context.Context) (*rpc.StatusResult, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.ctx.Done():
		return nil, w.ctx.Err()
	}
}

func (w blockingWatcher) Close() error { return nil }

// t0 is the tests' fixed clock.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// demoStatus is a status like lbgptd --demo's, at t0: one backend cooling
// down for 12 more seconds, a batch under way.
func demoStatus() *rpc.StatusResult {
	traffic := func(base int) []int {
		t := make([]int, 60)
		for i := range t {
			t[i] = (base * (i%7 + 1)) % 9
		}
		return t
	}
	return &rpc.StatusResult{
		Version: "0.1.0", Protocol: 1, Simulated: true, Strategy: "weighted", UptimeS: 75, Queue: 2,
		DaemonP50US: 410, DaemonP99US: 1830,
		Backends: []rpc.BackendStatus{
			{Name: "sim-openai", Type: "openai", State: rpc.StateOK, LimitRPM: 600, LimitTPM: 60000, UsedRPM: 150, UsedTPM: 12000,
				RemainingRPM: 450, RemainingTPM: 48000, InFlight: 2, LatencyP50MS: 412, Status429: 0, Retries: 1, Traffic: traffic(3)},
			{Name: "sim-azure", Type: "azure", State: rpc.StateCooling, LimitRPM: 1200, LimitTPM: 120000, UsedRPM: 1200, UsedTPM: 90000,
				RemainingRPM: 0, RemainingTPM: 30000, InFlight: 0, LatencyP50MS: 188, Status429: 4, Retries: 3,
				CooldownUntil: t0.Add(12 * time.Second), Traffic: traffic(5)},
			{Name: "sim-local", Type: "openai-compatible", State: rpc.StateOK, LimitRPM: 120, LimitTPM: 20000, UsedRPM: 30,
				UsedTPM: 4000, RemainingRPM: 90, RemainingTPM: 16000, InFlight: 1, LatencyP50MS: 1240, Traffic: traffic(2)},
		},
		Batches: []rpc.BatchStatus{{ID: "b1", StartedAt: t0.Add(-10 * time.Second), Done: 240,
			BatchSummary: rpc.BatchSummary{Total: 600, OK: 238, Failed: 2, CacheHits: 12}, RatePerS: 24, ETAS: 15,
			Backends: map[string]int{"sim-azure": 150, "sim-openai": 60, "sim-local": 30}}},
	}
}

var errDown = &client.NotRunningError{Socket: "/run/user/1000/lbgpt/lbgptd.sock", Err: errors.New("connect: no such file or directory")}
