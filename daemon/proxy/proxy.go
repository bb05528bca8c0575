// Package proxy is lbgptd's request pipeline: what happens to one OpenAI
// API request between the client that sent it (the JSON-RPC socket or the
// HTTP endpoint, package daemon wires both) and the upstream that answers.
//
// A request is read once ([Parse]) for what admission, routing and caching
// need; its bytes go upstream as the client sent them. [Pipeline.Serve]
// answers it from the exact cache, else the semantic cache, else upstream
// through the pool (identical requests in flight sharing one call, streams
// relayed event by event to a [Sink]), stores a paid answer as the
// upstream sent it, and replays a cached one in the form asked for. The
// Responses API's stateful requests are pinned to the backend that holds
// their response (records in the state directory).
//
// Errors come back as *rpc.Error, the one wire form: [Error] assigns a
// protocol code to every failure, in one place; the HTTP endpoint maps
// those codes to statuses.
//
// A Pipeline is safe for concurrent use. Close releases its files.
package proxy

import (
	"context"
	"errors"
	"github.com/lbgpt/lbgpt/internal/workers"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/shared"
)

// Options configure a Pipeline.
type Options struct {
	// Config is the configuration in force; it may change between calls
	// (a reload). Required.
	Config func() *config.Config
	Pool   *balance.Pool // required
	Logger *slog.Logger  // nil: discard
	// StateDir holds the cache file (unless [cache] path names another)
	// and the Responses API's records. Required.
	StateDir string
	// Base ends with the daemon: background work (a backend embedder's
	// calls) stops with it. nil: context.Background().
	Base context.Context
	// Team shares answers with the daemons of other hosts; nil: none.
	Team *shared.Team
}

// Pipeline is the request pipeline. Make it with New.
type Pipeline struct {
	config   func() *config.Config
	pool     *balance.Pool
	log      *slog.Logger
	base     context.Context
	stateDir string
	team     *shared.Team // nil: nothing shared
	// answers is the team's shared answer cache; nil when the daemon
	// shares none. stopShared ends its goroutines.
	answers    *shared.Answers
	stopShared func()

	est       estimator
	calls     flights[answer]
	workers   workers.Pool // the goroutines of the shared upstream calls
	overhead  overhead
	latency   Latencies
	cache     caches
	threshold float64    // the semantic cache's default threshold; 0 without one
	affinity  affinity   // which backend holds each stateful response
	models    modelLists // what the backends' own model lists said
	spend     spending   // what answers cost, and the budgets
}

// New opens the caches the configuration asks for (setting a damaged cache
// file aside) and returns the pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Config == nil || opts.Pool == nil || opts.StateDir == "" {
		return nil, errors.New("proxy: Config, Pool and StateDir are required")
	}
	pl := &Pipeline{config: opts.Config, pool: opts.Pool, log: opts.Logger, base: opts.Base, stateDir: opts.StateDir, team: opts.Team}
	if pl.log == nil {
		pl.log = slog.New(slog.DiscardHandler)
	}
	if pl.base == nil {
		pl.base = context.Background()
	}
	pl.calls.run = pl.workers.Go
	pl.affinity.path = filepath.Join(opts.StateDir, AffinityFile)
	cfg := opts.Config()
	if err := openCache(cfg.Cache, pl); err != nil {
		return nil, err
	}
	pl.openSpend(cfg) // before anything that may pay for an answer starts
	pl.startSemantic(cfg.Cache)
	pl.startShared(cfg)
	return pl, nil
}

// Close flushes and closes the cache file, the affinity records and the
// spend ledger, and ends the idle workers. It is idempotent.
func (pl *Pipeline) Close() {
	pl.workers.Close()
	pl.closeCache()
	pl.affinity.close()
	pl.closeSpend()
}

// Overhead is the p50 and p99 of the time the last requests spent in the
// daemon itself (neither upstream nor queued).
func (pl *Pipeline) Overhead() (p50, p99 time.Duration) { return pl.overhead.percentiles() }

// Latencies are the per-backend latency histograms, for /metrics.
func (pl *Pipeline) Latencies() *Latencies { return &pl.latency }
