package proxy

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/config"
)

// semanticAdapter is package cache's semantic index as the daemon's
// SemanticIndex; embedder names the configured embedder ("local",
// "backend:MODEL").
type semanticAdapter struct {
	s        *cache.Semantic
	embedder string
}

var _ SemanticIndex = semanticAdapter{}

func (a semanticAdapter) Lookup(ctx context.Context, partition, text string) (SemanticHit, bool, error) {
	h, ok, err := a.s.Lookup(ctx, partition, text)
	return SemanticHit(h), ok, err
}

func (a semanticAdapter) Add(ctx context.Context, e SemanticEntry) error {
	return a.s.Add(ctx, cache.SemanticEntry(e))
}

func (a semanticAdapter) Forget(id string) (bool, error) { return a.s.Forget(id) }

func (a semanticAdapter) Purge(match func(SemanticEntry) bool) (int, error) {
	return a.s.Purge(func(e cache.SemanticEntry) bool { return match(SemanticEntry(e)) })
}

func (a semanticAdapter) Len() int { return a.s.Len() }

func (a semanticAdapter) Vector(ctx context.Context, text string) ([]float32, error) {
	return a.s.Vector(ctx, text)
}

func (a semanticAdapter) AddVectors(ctx context.Context, entries []SemanticEntry, vecs [][]float32) error {
	es := make([]cache.SemanticEntry, len(entries))
	for i, e := range entries {
		es[i] = cache.SemanticEntry(e)
	}
	return a.s.AddVectors(ctx, es, vecs)
}

// Embedder is the configured embedder and its fingerprint: two hosts with
// the local embedder of one build, or the same backend model, agree.
func (a semanticAdapter) Embedder() string { return a.embedder + "/" + a.s.Fingerprint() }

// startSemantic prepares the semantic index on the cache file with the
// configured embedder, and opens it now when it will be wanted: the config
// turns the semantic cache on by default, or the file already has semantic
// entries. Otherwise the first request that asks for it opens it (loading
// the embedder and the verifier's tables costs about 120 ms and their
// memory, which a daemon never asked for semantics should not pay). With
// the local embedder the index opens at once; with the backend one, whose
// first call goes upstream, in the background, the semantic cache off
// until then. A failure is logged and leaves it off.
func (pl *Pipeline) startSemantic(cfg config.Cache) {
	if pl.cache.store == nil {
		return
	}
	var emb cache.Embedder
	switch cfg.Embedder {
	case config.EmbedderBackend:
		emb = poolEmbedder{pl: pl, model: cfg.EmbeddingModel}
	default:
		emb = cache.NewLocalEmbedder()
	}
	pl.threshold = cache.DefaultThreshold
	pl.cache.openSem = func() (SemanticIndex, error) {
		var s *cache.Semantic
		open := func() (err error) {
			s, err = cache.OpenSemantic(pl.cache.store.DB(), emb, cache.SemanticOptions{Logger: pl.log})
			return err
		}
		err := cache.Guard(open)
		if errors.Is(err, cache.ErrDamaged) {
			// The exact entries opened; only the semantic index is
			// damaged: it starts again empty.
			pl.log.Error("semantic index damaged: dropped, starting it empty", "err", err)
			err = cache.Guard(func() error {
				if err := pl.cache.store.DB().Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(semanticBucket)) }); err != nil {
					return err
				}
				return open()
			})
		}
		if err != nil {
			return nil, err
		}
		name := cmp.Or(cfg.Embedder, config.EmbedderLocal)
		if cfg.Embedder == config.EmbedderBackend {
			name += ":" + cfg.EmbeddingModel
		}
		return semanticAdapter{s: s, embedder: name}, nil
	}
	open := func() {
		start := time.Now()
		sem, err := pl.cache.openSem()
		if err != nil {
			pl.log.Warn("semantic cache unavailable", "embedder", cfg.Embedder, "err", err)
			return
		}
		pl.cache.setSemantic(sem)
		pl.log.Info("semantic cache ready", "entries", sem.Len(), "embedder", cfg.Embedder, "took", time.Since(start).Round(time.Millisecond))
	}
	pl.cache.ensureSem = sync.OnceFunc(func() {
		if cfg.Embedder == config.EmbedderBackend {
			pl.cache.opening.Go(open)
			return
		}
		open()
	})
	if cfg.Semantic != "" || hasBucket(pl.cache.store.DB(), semanticBucket) {
		pl.cache.ensureSem()
	}
}

// semanticBucket is the semantic index's bucket in the cache file.
const semanticBucket = "semantic"

func hasBucket(db *bolt.DB, name string) bool {
	found := false
	db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket([]byte(name)) != nil
		return nil
	})
	return found
}
