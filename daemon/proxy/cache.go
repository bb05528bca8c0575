package proxy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/shared"
)

// caches are the daemon's exact store and semantic index, and their
// counters. A zero caches (no store) caches nothing.
type caches struct {
	store *cache.Store // nil: caching is off

	// semMu guards sem: compaction holds it while it reopens the index on
	// the new file; lookups and writes take the index under it and let go
	// before using it (one on an index a compaction just replaced fails).
	semMu sync.RWMutex
	sem   SemanticIndex // nil: no semantic cache
	// openSem (re)opens the semantic index on the store's file; nil when
	// the daemon has none.
	openSem func() (SemanticIndex, error)
	opening sync.WaitGroup // the background opening of the index, if any
	// ensureSem opens the semantic index once, when first wanted; nil
	// without a cache.
	ensureSem func()
	// semAdds adds paid answers to the semantic index after they were
	// delivered; nil without a store.
	semAdds *semWriter

	hitsExact, hitsSemantic, coalesced, misses, writeErrors atomic.Int64

	// quarantined says what happened to a cache file that did not open
	// cleanly at start; "" when it did.
	quarantined string
}

// SemanticIndex is what the daemon needs of the semantic cache (package
// cache's Semantic, or a fake in tests).
type SemanticIndex interface {
	Lookup(ctx context.Context, partition, text string) (SemanticHit, bool, error)
	Add(ctx context.Context, e SemanticEntry) error
	Forget(id string) (bool, error)
	Purge(match func(SemanticEntry) bool) (int, error)
	Len() int
}

type SemanticHit struct {
	ID, Target string
	Similarity float64
	Exact      bool
}

type SemanticEntry struct {
	ID, Partition, Text, Target, Namespace string
	Created                                time.Time
}

// openCache opens the exact store as the config says: [cache] path, else
// cache.db in the daemon's state directory.
func openCache(cfg config.Cache, pl *Pipeline) error {
	if !cfg.Enabled {
		return nil
	}
	path := cfg.Path
	if path == "" {
		path = filepath.Join(pl.stateDir, cache.FileName)
	}
	opts := cache.Options{MaxBytes: int64(cfg.MaxBytes), Logger: pl.log}
	s, err := cache.Open(path, opts)
	if err != nil && !errors.Is(err, cache.ErrLocked) && !errors.Is(err, fs.ErrPermission) {
		// A file that does not open cleanly is set aside, kept for whoever
		// wants to look at it, and the daemon starts on an empty one
		// rather than crash or refuse to serve (under Restart=on-failure,
		// a crash would loop forever).
		aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return fmt.Errorf("%w; setting it aside failed too: %w", err, rerr)
		}
		pl.cache.quarantined = fmt.Sprintf("the cache file did not open (%v): it was set aside as %s and lbgptd started with an empty cache", err, aside)
		pl.log.Error("cache file damaged: set aside, starting with an empty cache", "err", err, "set_aside_as", aside)
		s, err = cache.Open(path, opts)
	}
	if err != nil {
		return err
	}
	pl.cache.store = s
	pl.cache.semAdds = newSemWriter(semQueue)
	return nil
}

// semQueue is how many semantic writes may wait before a request that
// adds one waits too.
const semQueue = 256

// KeepCacheFile keeps in cfg, a reloaded configuration, the [cache]
// settings that shape the open cache (its file, cap and embedder): they
// apply at the next start. ttl, deterministic_only and semantic apply at
// once.
func KeepCacheFile(cfg, old *config.Config, log *slog.Logger) (changed bool) {
	n, o := &cfg.Cache, old.Cache
	if n.Enabled != o.Enabled || n.Path != o.Path || n.MaxBytes != o.MaxBytes || n.Embedder != o.Embedder || n.EmbeddingModel != o.EmbeddingModel {
		log.Warn("the cache's enabled, path, max_bytes and embedder settings changed; they apply at the next start")
		n.Enabled, n.Path, n.MaxBytes, n.Embedder, n.EmbeddingModel = o.Enabled, o.Path, o.MaxBytes, o.Embedder, o.EmbeddingModel
		return true
	}
	return false
}

// setSemantic installs the semantic index, unless one is there already
// (a test's fake, installed before the real one opened).
func (c *caches) setSemantic(s SemanticIndex) {
	c.semMu.Lock()
	defer c.semMu.Unlock()
	if c.sem == nil {
		c.sem = s
	}
}

// semanticIndexNow is the semantic index, nil when there is none.
func (c *caches) semanticIndexNow() SemanticIndex {
	c.semMu.RLock()
	defer c.semMu.RUnlock()
	return c.sem
}

// cachePlan is how one request uses the caches.
type cachePlan struct {
	key string // exact key: also the single-flight key
	// coalesce: identical requests in flight share one upstream call.
	// Not when the caller wants an answer of its own: no_cache, or a
	// non-deterministic request under deterministic_only.
	coalesce bool
	read     bool // look the answer up
	write    bool // store a paid answer
	ns       string
	model    string // the model the entry is stored as (the alias when set)
	ttl      time.Duration
	sem      *cache.Query // nil: no semantic cache for this request
}

// plan decides how r uses the caches and single-flight. The key is
// computed even with the cache off, for single-flight. A request whose
// answer is not cached (a stateful response, another route) has no key.
func (pl *Pipeline) plan(r *Request, opts rpc.Options) cachePlan {
	kind := r.cacheKind()
	if kind == "" {
		return cachePlan{}
	}
	kp := cache.KeyParams{Kind: kind, Namespace: opts.Namespace, ModelAlias: opts.ModelAlias}
	key, err := cache.QuickKey(r.raw, kp)
	if err != nil {
		return cachePlan{}
	}
	p := cachePlan{key: key, coalesce: !opts.NoCache && !r.view.Stream, ns: opts.Namespace, model: cmp.Or(opts.ModelAlias, r.view.Model)}
	if pl.cache.store == nil {
		return p
	}
	cc := pl.config().Cache
	enc := cmp.Or(opts.Semantic, cc.Semantic)
	semantic := r.chat() && enc != rpc.SemanticOff && enc != ""
	if semantic && pl.cache.ensureSem != nil {
		pl.cache.ensureSem()
	}
	semantic = semantic && pl.cache.semanticIndexNow() != nil
	if cc.DeterministicOnly && r.Sampled() {
		p.coalesce = false
		return p
	}
	p.read, p.write = !opts.NoCache, !opts.NoStore
	p.ttl = cc.TTL.Duration
	if t := time.Duration(opts.CacheTTL); t > 0 {
		p.ttl = t
	}
	if semantic {
		if cr, err := cache.ParseRequest(r.raw); err == nil {
			if q, ok, err := cr.Semantic(enc, kp); err == nil && ok {
				p.sem = &q
			}
		}
	}
	return p
}

// CheckOptions refuses the options of a socket call that make no sense,
// before anything is done; its errors name the field as it is in the
// params.
func CheckOptions(o rpc.Options) error {
	switch o.Semantic {
	case "", rpc.SemanticOff, rpc.SemanticUserOnly, rpc.SemanticAll, rpc.SemanticSystemOnly:
	default:
		return InvalidParams("options.semantic", "options.semantic must be %q, %q, %q or %q, not %q",
			rpc.SemanticUserOnly, rpc.SemanticAll, rpc.SemanticSystemOnly, rpc.SemanticOff, o.Semantic)
	}
	if o.CacheTTL < 0 {
		return InvalidParams("options.cache_ttl", "options.cache_ttl must not be negative")
	}
	return nil
}

// cached is an answer found in the caches.
type cached struct {
	entry cache.Entry
	meta  rpc.Meta // Cache, CacheEntry, Similarity, SemanticExact, CacheHost
}

// lookup looks p up: the exact cache, then the semantic index.
func (pl *Pipeline) lookup(ctx context.Context, p cachePlan) (cached, bool) {
	if !p.read || p.key == "" {
		return cached{}, false
	}
	if e, ok := pl.cache.store.Get(p.key); ok {
		pl.cache.hitsExact.Add(1)
		return cached{entry: e, meta: rpc.Meta{Cache: rpc.CacheExact, CacheEntry: p.key}}, true
	}
	waiting(ctx) // the team's cache, the embedder
	if e, host, ok, _ := pl.sharedGet(ctx, p.key); ok {
		pl.cache.hitsExact.Add(1)
		return cached{entry: e, meta: rpc.Meta{Cache: rpc.CacheExact, CacheEntry: p.key, CacheHost: host}}, true
	}
	if p.sem == nil {
		return cached{}, false
	}
	// The index as it is now, without holding its lock through the
	// lookup: a backend embedder's upstream call would keep a compaction
	// waiting, and every other lookup behind it. A lookup on the index a
	// compaction just replaced fails, and is a miss.
	sem := pl.cache.semanticIndexNow()
	if sem == nil {
		return cached{}, false
	}
	if pl.cache.semAdds != nil {
		pl.cache.semAdds.settled(ctx, p.sem.Partition)
	}
	hit, ok, err := sem.Lookup(ctx, p.sem.Partition, p.sem.Text)
	if err != nil {
		pl.log.Warn("semantic lookup failed", "err", err)
		return cached{}, false
	}
	if !ok {
		return cached{}, false
	}
	e, ok := pl.cache.store.Get(hit.Target)
	var host string
	if !ok {
		// Another host's entry points at its answer in the team's cache.
		var err error
		if e, host, ok, err = pl.sharedGet(ctx, hit.Target); err != nil {
			return cached{}, false // it may be there: keep the entry
		}
	}
	if !ok {
		// The answer it pointed at is gone (expired, evicted, purged).
		if _, err := sem.Forget(hit.ID); err != nil {
			pl.log.Warn("semantic forget failed", "err", err)
		}
		return cached{}, false
	}
	pl.cache.hitsSemantic.Add(1)
	return cached{entry: e, meta: rpc.Meta{Cache: rpc.CacheSemantic, CacheEntry: hit.ID, Similarity: hit.Similarity, SemanticExact: hit.Exact, CacheHost: host}}, true
}

// hitMeta is the metadata of a request answered from the caches.
func (pl *Pipeline) hitMeta(c cached, streamed bool, start time.Time) rpc.Meta {
	m := pl.meta(balance.Report{}, c.entry.Model, streamed, start, 0)
	m.Cache, m.CacheEntry, m.Similarity, m.SemanticExact, m.CacheHost = c.meta.Cache, c.meta.CacheEntry, c.meta.Similarity, c.meta.SemanticExact, c.meta.CacheHost
	return m
}

// remember counts an answer and, when it was paid for, stores it: exact
// (queued in the store, readable at once), then semantic (queued for the
// semantic writer, so its target is readable before the entry exists). A
// write that fails at once sets the warning, never the answer; one that
// fails later is logged and counted.
func (pl *Pipeline) remember(p cachePlan, ans answer, m *rpc.Meta) {
	if pl.cache.store == nil {
		return
	}
	switch m.Cache {
	case rpc.CacheCoalesced:
		// Stored here too: the request that made the call may not have
		// stored it (no_store, or it stopped waiting), and a second store
		// of the same answer is one queued write.
		pl.cache.coalesced.Add(1)
	case rpc.CacheMiss:
		pl.cache.misses.Add(1)
	default:
		return
	}
	if !p.write || p.key == "" {
		return
	}
	now := time.Now()
	e := cache.Entry{Key: p.key, Value: encodeStored(ans), Namespace: p.ns, Model: p.model, Created: now}
	if p.ttl > 0 {
		e.Expires = now.Add(p.ttl)
	}
	if err := pl.cache.store.Put(e); err != nil {
		pl.cache.writeErrors.Add(1)
		pl.log.Warn("cache write failed; the answer was delivered", "err", err)
		m.Warning = "the answer could not be cached: " + err.Error()
		return
	}
	m.CacheEntry = p.key
	pl.sharePut(e)
	if p.sem == nil || pl.cache.semanticIndexNow() == nil {
		return
	}
	se := SemanticEntry{ID: semanticID(p.sem.Partition, p.sem.Text), Partition: p.sem.Partition, Text: p.sem.Text, Target: p.key, Namespace: p.ns, Created: now}
	if !pl.cache.semAdds.add(se.Partition, func() { pl.addSemantic(se) }) {
		pl.cache.writeErrors.Add(1)
		m.Warning = "the answer could not be added to the semantic cache: the cache is closing"
	}
}

// addSemantic adds e to the semantic index: the semantic writer's job.
// Its context is its own: the request that paid for the answer is over.
// A backend embedder's call ends with the daemon (see poolEmbedder).
func (pl *Pipeline) addSemantic(e SemanticEntry) {
	// Not under the index's lock: a backend embedder's upstream call
	// would hold a compaction, and every lookup queued behind it.
	sem := pl.cache.semanticIndexNow()
	if sem == nil {
		return
	}
	if si, ok := sem.(sharedIndex); ok && pl.answers != nil {
		if err := pl.addAndAnnounce(context.Background(), si, e); err != nil {
			pl.cache.writeErrors.Add(1)
			pl.log.Warn("semantic cache write failed; the answer was delivered", "err", err)
		}
		return
	}
	if err := sem.Add(context.Background(), e); err != nil {
		pl.cache.writeErrors.Add(1)
		pl.log.Warn("semantic cache write failed; the answer was delivered", "err", err)
	}
}

// semanticID names a semantic entry: "s" and 31 hex digits of its
// partition and text, unlike an exact key (64 hex digits).
func semanticID(partition, text string) string {
	sum := sha256.Sum256([]byte(partition + "\x00" + text))
	return "s" + hex.EncodeToString(sum[:])[:31]
}

// errCacheOff answers the cache operations when the cache is off.
var errCacheOff = &rpc.Error{Code: rpc.CodeInternal, Message: "the cache is off ([cache] enabled = false in lbgpt.toml)"}

// CacheStats is the caches' stats now.
func (pl *Pipeline) CacheStats() (*rpc.CacheStats, error) {
	if pl.cache.store == nil {
		return nil, errCacheOff
	}
	return pl.cacheSnapshot(), nil
}

// cacheSnapshot is the caches' stats now; nil with the cache off.
func (pl *Pipeline) cacheSnapshot() *rpc.CacheStats {
	c := &pl.cache
	if c.store == nil {
		return nil
	}
	st := c.store.Stats()
	out := &rpc.CacheStats{
		Path:        c.store.Path(),
		Entries:     st.Entries,
		Bytes:       st.FileBytes,
		MaxBytes:    st.MaxBytes,
		Hits:        rpc.CacheHits{Exact: c.hitsExact.Load(), Semantic: c.hitsSemantic.Load(), Coalesced: c.coalesced.Load()},
		Misses:      c.misses.Load(),
		Evictions:   st.Evictions,
		WriteErrors: c.writeErrors.Load() + st.WriteErrors,
		Embedder:    pl.config().Cache.Embedder,
		Threshold:   pl.threshold,
		Quarantined: c.quarantined,
	}
	if pl.config().Cache.Embedder == config.EmbedderBackend {
		out.Embedder += ":" + pl.config().Cache.EmbeddingModel
	}
	if sem := c.semanticIndexNow(); sem != nil {
		out.SemanticEntries = int64(sem.Len())
	}
	if a := pl.answers; a != nil {
		st := a.Stats()
		out.Shared = &rpc.SharedCacheStats{Host: a.Host(), Hits: st.Hits, Misses: st.Misses, Puts: st.Puts, Drops: st.Drops,
			Errors: st.Errors, Queued: st.Queued, SemanticSent: st.Sent, SemanticReceived: st.Received,
			SemanticSkipped: st.Skipped, Removals: st.Removals}
	}
	hits := out.Hits.Exact + out.Hits.Semantic + out.Hits.Coalesced
	if total := hits + out.Misses; total > 0 {
		out.HitRate = float64(hits) / float64(total)
	}
	return out
}

// CachePurge removes the entries of p.Namespace, or those older than
// p.OlderThan, or every entry: here, in the team's shared cache, and (when
// they read it) on the other hosts of the team.
func (pl *Pipeline) CachePurge(ctx context.Context, p rpc.CachePurgeParams) (*rpc.CachePurgeResult, error) {
	if p.OlderThan < 0 {
		return nil, InvalidParams("older_than", "older_than must not be negative")
	}
	if pl.cache.store == nil {
		return nil, errCacheOff
	}
	cut := time.Now().Add(-time.Duration(p.OlderThan))
	match := func(ns string, created time.Time) bool {
		return (p.Namespace == nil || *p.Namespace == ns) && (p.OlderThan == 0 || created.Before(cut))
	}
	n, err := pl.cache.store.Purge(func(i cache.Info) bool { return match(i.Namespace, i.Created) })
	if err != nil {
		return nil, Internal(err)
	}
	pl.cache.semAdds.wait() // the semantic writes queued go first
	if sem := pl.cache.semanticIndexNow(); sem != nil {
		// Semantic entries whose answers went are forgotten when next
		// found; purge the matching ones now so they do not count.
		if _, err := sem.Purge(func(e SemanticEntry) bool { return match(e.Namespace, e.Created) }); err != nil {
			return nil, Internal(err)
		}
	}
	res := &rpc.CachePurgeResult{Removed: int64(n)}
	if pl.answers != nil {
		sp := shared.Purge{Namespace: p.Namespace}
		if p.OlderThan > 0 {
			sp.Before = cut
		}
		res.SharedRemoved, err = pl.answers.Purge(ctx, sp)
		if err != nil {
			pl.log.Warn("cache purge did not reach the team's shared cache", "err", err)
			res.Warning = "purged here, but not (all of) the team's shared cache, and the other hosts may not know: " + err.Error()
		}
	}
	pl.log.Info("cache purged", "removed", n, "shared_removed", res.SharedRemoved)
	return res, nil
}

// CacheForget removes one entry, exact or semantic, by id: here, in the
// team's shared cache, and (when they read it) on the other hosts.
func (pl *Pipeline) CacheForget(ctx context.Context, id string) (*rpc.CacheForgetResult, error) {
	if id == "" {
		return nil, InvalidParams("id", "cache.forget needs the id of an entry (a response's lbgpt.cache_entry)")
	}
	if pl.cache.store == nil {
		return nil, errCacheOff
	}
	removed, err := pl.cache.store.Forget(id)
	if err == nil && !removed {
		pl.cache.semAdds.wait() // the semantic writes queued go first
		if sem := pl.cache.semanticIndexNow(); sem != nil {
			removed, err = sem.Forget(id)
		}
	}
	if err != nil {
		return nil, Internal(err)
	}
	res := &rpc.CacheForgetResult{Removed: removed}
	if pl.answers != nil {
		ctx, cancel := context.WithTimeout(ctx, sharedAdminTimeout)
		defer cancel()
		there, err := pl.answers.Forget(ctx, id)
		if err != nil {
			pl.log.Warn("cache forget did not reach the team", "err", err)
			res.Warning = "forgotten here, but the team's shared cache and the other hosts could not be told: " + err.Error()
		}
		res.Removed = res.Removed || there
	}
	return res, nil
}

// CacheCompact rewrites the cache file without its free pages. Requests
// go on meanwhile: reads from the old file, writes wait for the new one.
func (pl *Pipeline) CacheCompact() (*rpc.CacheCompactResult, error) {
	if pl.cache.store == nil {
		return nil, errCacheOff
	}
	start := time.Now()
	before, after, err := pl.compact()
	if err != nil {
		return nil, Internal(err)
	}
	took := time.Since(start)
	pl.log.Info("cache compacted", "before", before, "after", after, "took", took)
	return &rpc.CacheCompactResult{BytesBefore: before, BytesAfter: after, TookMS: took.Milliseconds()}, nil
}

// compact compacts the store and reopens the semantic index on the new
// file; semantic lookups wait meanwhile (exact ones do not).
func (pl *Pipeline) compact() (before, after int64, err error) {
	c := &pl.cache
	c.semMu.Lock()
	defer c.semMu.Unlock()
	before, after, err = c.store.Compact()
	if err != nil {
		return 0, 0, err
	}
	if c.openSem != nil {
		sem, err := c.openSem()
		if err != nil {
			c.sem = nil
			return before, after, fmt.Errorf("compacted, but the semantic index did not reopen (semantic cache off until restart): %w", err)
		}
		c.sem = sem
	}
	return before, after, nil
}

// closeCache flushes and closes the store; safe to call more than once.
func (pl *Pipeline) closeCache() {
	if pl.cache.store == nil {
		return
	}
	pl.cache.opening.Wait() // the daemon's end cancels a backend embedder's calls
	pl.cache.semAdds.close()
	if pl.stopShared != nil {
		pl.stopShared() // after the semantic writes that announce, before the store it writes to
	}
	if err := pl.cache.store.Close(); err != nil && !errors.Is(err, cache.ErrClosed) {
		pl.log.Warn("cache close failed", "err", err)
	}
}
