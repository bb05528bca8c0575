package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// cacheScenario measures the exact cache through the daemon's socket: the
// round trip of a hit, and a batch whose every item is a hit.
func cacheScenario(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	n := fs.Int("n", 5000, "exact hits timed one after another")
	keys := fs.Int("keys", 500, "distinct cached requests the hits cycle through")
	items := fs.Int("batch", 10000, "items of the all-hit batch")
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runCache(ctx, out, *n, *keys, *items)
	}
}

func runCache(ctx context.Context, out io.Writer, n, keys, items int) (map[string]any, error) {
	const key = "sk-bench-cache"
	up, err := startUpstream(sim.Options{Accounts: []sim.Account{{Name: "bench", Key: key}}, LogLimit: 1})
	if err != nil {
		return nil, err
	}
	defer up.close()
	d, err := startDaemonWith(ctx, []benchBackend{{name: "sim", url: up.url, key: key}}, true)
	if err != nil {
		return nil, err
	}
	defer d.close()
	c := &client.Client{Socket: d.socket}
	defer c.Close()

	request := func(i int) map[string]any {
		return map[string]any{"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 16,
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("cache benchmark question %d", i)}}}
	}
	// Fill: every request once (misses), in one batch.
	fill := make([]any, max(keys, items))
	for i := range fill {
		fill[i] = request(i)
	}
	if _, err := cacheBatch(ctx, c, fill); err != nil {
		return nil, fmt.Errorf("fill: %w", err)
	}

	// Exact hits, one at a time over the socket.
	lat := make([]time.Duration, 0, n)
	inDaemon := make([]time.Duration, 0, n) // of each hit, the time in the daemon's handler
	// A status round trip after each hit, as the baseline of the same
	// moment: the socket and jrpc2 without any chat work.
	status := make([]time.Duration, 0, n)
	for i := range n + 200 {
		t := time.Now()
		res, err := c.Chat(ctx, request(i%keys), rpc.Options{})
		if err != nil {
			return nil, err
		}
		if res.Meta.Cache != rpc.CacheExact {
			return nil, fmt.Errorf("request %d: cache %s, want exact", i%keys, res.Meta.Cache)
		}
		if i >= 200 { // the first 200 warm the connection and caches
			lat = append(lat, time.Since(t))
			inDaemon = append(inDaemon, time.Duration(res.Meta.DaemonUS)*time.Microsecond)
			t = time.Now()
			if _, err := c.Status(ctx); err != nil {
				return nil, err
			}
			status = append(status, time.Since(t))
		}
	}
	slices.Sort(lat)
	slices.Sort(inDaemon)
	slices.Sort(status)

	// The all-hit batch.
	hitBatch := fill[:items]
	t := time.Now()
	sum, err := cacheBatch(ctx, c, hitBatch)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(t)
	if sum.CacheHits != items {
		return nil, fmt.Errorf("batch: %d cache hits of %d items", sum.CacheHits, items)
	}
	st, err := c.CacheStats(ctx)
	if err != nil {
		return nil, err
	}
	perS := float64(items) / elapsed.Seconds()
	figures := map[string]any{
		"scenario":           "cache",
		"n":                  n,
		"entries":            st.Entries,
		"file_bytes":         st.Bytes,
		"exact_hit_p50_us":   percentile(lat, 50),
		"exact_hit_p99_us":   percentile(lat, 99),
		"hit_handler_p50_us": percentile(inDaemon, 50),
		"status_p50_us":      percentile(status, 50),
		"batch_items":        items,
		"batch_hits_per_s":   round1(perS),
	}
	fmt.Fprintf(out, "exact hits over the socket: %d, cycling through %d cached requests (%d entries, file %d bytes)\n", n, keys, st.Entries, st.Bytes)
	fmt.Fprintf(out, "  p50 %d µs  p99 %d µs   (target p50 <= 150); in the chat handler p50 %d µs; a status round trip p50 %d µs\n", figures["exact_hit_p50_us"], figures["exact_hit_p99_us"], figures["hit_handler_p50_us"], figures["status_p50_us"])
	fmt.Fprintf(out, "all-hit batch: %d items in %s, %.0f hits/s   (target >= 20000)\n", items, elapsed.Round(time.Millisecond), perS)
	return figures, nil
}

// cacheBatch answers reqs as one batch and returns its summary.
func cacheBatch(ctx context.Context, c *client.Client, reqs []any) (rpc.BatchSummary, error) {
	for ev, err := range c.Batch(ctx, reqs, rpc.Options{}, 256) {
		if err != nil {
			return rpc.BatchSummary{}, err
		}
		if ev.Result != nil {
			if ev.Result.Summary.Failed > 0 {
				return ev.Result.Summary, fmt.Errorf("%d of %d items failed", ev.Result.Summary.Failed, len(reqs))
			}
			return ev.Result.Summary, nil
		}
	}
	return rpc.BatchSummary{}, fmt.Errorf("batch ended without a result")
}
