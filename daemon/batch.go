package daemon

import (
	"github.com/lbgpt/lbgpt/internal/pace"

	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

const (
	progressEvery = 100 * time.Millisecond // at most 10 progress notifications a second
)

// batch answers a list of chat requests, each on its own: a bad or failed
// item is that item's error and never fails the batch. Items go through the
// same path as chat requests (limits, retries, coalescing of identical
// items). Canceling the batch cancels the items still running.
func (d *Daemon) batch(ctx context.Context, c *call) (any, error) {
	start := time.Now()
	var p rpc.BatchParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	if err := proxy.CheckOptions(p.Options); err != nil {
		return nil, err
	}
	if p.Concurrency < 0 || p.Concurrency > rpc.MaxBatchConcurrency {
		return nil, proxy.InvalidParams("concurrency", "concurrency must be from 0 (the default, %d) to %d", rpc.DefaultBatchConcurrency, rpc.MaxBatchConcurrency)
	}
	conc := p.Concurrency
	if conc == 0 {
		conc = rpc.DefaultBatchConcurrency
	}

	b := &batchRun{
		d:           d,
		c:           c,
		summaryOnly: p.SummaryOnly,
		start:       start,
	}
	if !p.SummaryOnly {
		b.items = make([]rpc.BatchItem, len(p.Requests))
	}
	b.sum.Total = len(p.Requests)
	d.batches.add(b)
	defer d.batches.remove(b)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, raw := range p.Requests {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			b.finish(ctx, i, rpc.ChatResult{}, proxy.Error(context.Cause(ctx), nil))
			continue
		}
		// Each item is parsed on its own goroutine: in an all-hit batch
		// the strict decode is a good part of the work, and one loop
		// parsing every item would keep the other cores idle.
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			r, err := proxy.Parse(provider.PathChat, raw)
			if err != nil {
				b.finish(ctx, i, rpc.ChatResult{}, err)
				return
			}
			res, err := d.pl.Serve(ctx, r, p.Options, nil, start)
			b.finish(ctx, i, rpc.ChatResult{Response: res.Body, Meta: res.Meta}, err)
		})
	}
	wg.Wait()
	b.progress(ctx, true)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sum.ElapsedMS = time.Since(start).Milliseconds()
	return rpc.BatchResult{Items: b.items, Summary: b.sum}, nil
}

// batchRun is one batch in progress.
type batchRun struct {
	d     *Daemon
	c     *call
	start time.Time
	key   string // the registry's id, set by batchRegistry.add
	// summaryOnly: the client keeps the notified items, so the result
	// leaves them out and every item is notified, even once ctx ended.
	summaryOnly bool

	mu       sync.Mutex      // guards the fields below
	items    []rpc.BatchItem // nil when summaryOnly
	sum      rpc.BatchSummary
	done     int
	lastNote time.Time
	backends map[string]int // items answered, by backend
	pace     pace.Pace      // items done a second, recently: the ETA's rate
}

// finish records item i and tells the client: always when the client
// asked for the summary only (the notification is its only copy), else
// unless ctx ended.
func (b *batchRun) finish(ctx context.Context, i int, res rpc.ChatResult, err error) {
	item := rpc.BatchItem{Index: i}
	if err != nil {
		item.Error = proxy.Error(err, nil)
	} else {
		item.Result = &res
	}
	b.mu.Lock()
	if b.items != nil {
		b.items[i] = item
	}
	b.done++
	b.pace.Add(time.Now(), 1)
	if err != nil {
		b.sum.Failed++
		if item.Error.Data != nil {
			b.sum.Retries += max(item.Error.Data.Attempts-1, 0)
		}
	} else {
		b.sum.OK++
		b.sum.Retries += max(res.Meta.Attempts-1, 0)
		switch {
		case res.Meta.Saved != nil:
			b.sum.SavedUSD += *res.Meta.Saved
		case res.Meta.Cost != nil:
			b.sum.CostUSD += *res.Meta.Cost
		default:
			b.sum.Unpriced++
		}
		switch res.Meta.Cache {
		case rpc.CacheCoalesced:
			b.sum.Coalesced++
		case rpc.CacheExact, rpc.CacheSemantic:
			b.sum.CacheHits++
		}
		if res.Meta.Backend != "" {
			if b.backends == nil {
				b.backends = map[string]int{}
			}
			b.backends[res.Meta.Backend]++
		}
	}
	b.mu.Unlock()
	if ctx.Err() == nil || b.summaryOnly {
		b.c.notify(rpc.NotifyBatchItem, rpc.BatchItemParams{ID: b.c.id, Item: item})
	}
	b.progress(ctx, false)
}

// progress sends the counts, at most every progressEvery unless final.
func (b *batchRun) progress(ctx context.Context, final bool) {
	b.mu.Lock()
	now := time.Now()
	if !final && now.Sub(b.lastNote) < progressEvery {
		b.mu.Unlock()
		return
	}
	b.lastNote = now
	p := rpc.BatchProgress{ID: b.c.id, BatchSummary: b.sum, Done: b.done}
	p.ElapsedMS = now.Sub(b.start).Milliseconds()
	b.mu.Unlock()
	if ctx.Err() == nil {
		b.c.notify(rpc.NotifyBatchProgress, p)
	}
}

// status is the batch as StatusResult lists it, at now.
func (b *batchRun) status(now time.Time) rpc.BatchStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := rpc.BatchStatus{ID: b.key, StartedAt: b.start, BatchSummary: b.sum, Done: b.done}
	elapsed := now.Sub(b.start)
	st.ElapsedMS = elapsed.Milliseconds()
	// The pace of the last seconds, not the average since the start: under
	// rate limits the first burst (full buckets) runs far ahead of the
	// refill the rest of the batch waits for.
	if r := b.pace.Rate(now, b.start); r > 0 {
		st.RatePerS = r
		st.ETAS = float64(b.sum.Total-b.done) / r
	}
	if len(b.backends) > 0 {
		st.Backends = maps.Clone(b.backends)
	}
	return st
}

// batchRegistry holds the batches running now, from every connection, so
// that status and watch can show them. The zero value is ready.
type batchRegistry struct {
	mu      sync.Mutex // guards seq and running
	seq     int
	running []*batchRun // oldest first
}

func (r *batchRegistry) add(b *batchRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	b.key = "b" + strconv.Itoa(r.seq)
	r.running = append(r.running, b)
}

func (r *batchRegistry) remove(b *batchRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = slices.DeleteFunc(r.running, func(x *batchRun) bool { return x == b })
}

// statuses lists the running batches, oldest first; nil when there are none.
func (r *batchRegistry) statuses(now time.Time) []rpc.BatchStatus {
	r.mu.Lock()
	running := slices.Clone(r.running)
	r.mu.Unlock()
	var out []rpc.BatchStatus
	for _, b := range running {
		out = append(out, b.status(now))
	}
	return out
}
