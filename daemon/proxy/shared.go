package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/shared"
)

// The team's shared answer cache (package shared) is the caches' second
// tier, when the daemon has a team ([shared] redis), shares answers
// ([shared] cache, the default) and has a cache of its own: a miss in the
// exact store asks it before the semantic index and upstream, and a hit
// is kept in the store; a paid answer goes to it behind the request; the
// semantic entries this host adds are announced with their vectors, and
// the other hosts' are added to this host's index; forgets and purges
// reach every host.

// sharedAdminTimeout bounds what cache.forget waits for the shared tier.
const sharedAdminTimeout = 10 * time.Second

// startShared starts sharing answers with the team, when the daemon does.
func (pl *Pipeline) startShared(cfg *config.Config) {
	if pl.team == nil || !cfg.Shared.Cache || pl.cache.store == nil {
		return
	}
	a := shared.NewAnswers(pl.team, shared.AnswersOptions{Receiver: receiver{pl}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	pl.answers = a
	pl.stopShared = sync.OnceFunc(func() {
		cancel()
		<-done
	})
}

// sharedGet reads key's answer from the team's cache and keeps it in the
// store; host is the host that stored it. err says the read failed (Redis
// down or slow): a miss that does not mean the answer is gone.
func (pl *Pipeline) sharedGet(ctx context.Context, key string) (e cache.Entry, host string, ok bool, err error) {
	if pl.answers == nil {
		return cache.Entry{}, "", false, nil
	}
	a, ok, err := pl.answers.Read(ctx, key)
	if !ok {
		return cache.Entry{}, "", false, err
	}
	e = cache.Entry{Key: key, Value: a.Value, Namespace: a.Namespace, Model: a.Model, Created: a.Created, Expires: a.Expires}
	if err := pl.cache.store.Put(e); err != nil {
		pl.cache.writeErrors.Add(1)
		pl.log.Warn("cache write of a shared answer failed; the answer was delivered", "err", err)
	}
	return e, a.Host, true, nil
}

// sharePut gives a stored answer to the team's cache, behind the request.
func (pl *Pipeline) sharePut(e cache.Entry) {
	if pl.answers == nil {
		return
	}
	pl.answers.Put(shared.Answer{Key: e.Key, Value: e.Value, Namespace: e.Namespace, Model: e.Model, Created: e.Created, Expires: e.Expires})
}

// sharedIndex is a semantic index whose entries can travel between hosts:
// package cache's.
type sharedIndex interface {
	// Vector is the vector the index stores for text.
	Vector(ctx context.Context, text string) ([]float32, error)
	// AddVectors adds entries with their vectors made already.
	AddVectors(ctx context.Context, entries []SemanticEntry, vecs [][]float32) error
	// Embedder identifies the embedder that made the vectors: entries
	// travel only between indexes of one embedder.
	Embedder() string
}

var _ sharedIndex = semanticAdapter{}

// addAndAnnounce adds e to the index and announces it, with its vector, to
// the team.
func (pl *Pipeline) addAndAnnounce(ctx context.Context, si sharedIndex, e SemanticEntry) error {
	vec, err := si.Vector(ctx, e.Text)
	if err != nil {
		return err
	}
	if err := si.AddVectors(ctx, []SemanticEntry{e}, [][]float32{vec}); err != nil {
		return err
	}
	pl.answers.Announce(shared.SemanticEntry{ID: e.ID, Partition: e.Partition, Text: e.Text, Target: e.Target,
		Namespace: e.Namespace, Created: e.Created, Embedder: si.Embedder(), Vector: vec})
	return nil
}

// receiver applies what the other hosts of the team announce to this
// daemon's caches.
type receiver struct{ pl *Pipeline }

var _ shared.Receiver = receiver{}

func (r receiver) Embedder() string {
	if si, ok := r.pl.cache.semanticIndexNow().(sharedIndex); ok {
		return si.Embedder()
	}
	return ""
}

func (r receiver) AddSemantic(entries []shared.SemanticEntry) {
	si, ok := r.pl.cache.semanticIndexNow().(sharedIndex)
	if !ok {
		return
	}
	es := make([]SemanticEntry, len(entries))
	vecs := make([][]float32, len(entries))
	for i, e := range entries {
		es[i] = SemanticEntry{ID: e.ID, Partition: e.Partition, Text: e.Text, Target: e.Target, Namespace: e.Namespace, Created: e.Created}
		vecs[i] = e.Vector
	}
	err := si.AddVectors(context.Background(), es, vecs)
	if err == nil {
		return
	}
	// One bad entry fails its batch: the others go one by one.
	failed := 0
	for i := range es {
		if e := si.AddVectors(context.Background(), es[i:i+1], vecs[i:i+1]); e != nil {
			failed, err = failed+1, e
		}
	}
	if failed > 0 {
		r.pl.cache.writeErrors.Add(int64(failed))
		r.pl.log.Warn("semantic entries of other hosts not added", "entries", failed, "err", err)
	}
}

func (r receiver) Forget(key string) {
	if _, err := r.pl.cache.store.Forget(key); err != nil {
		r.pl.log.Warn("cache forget from another host failed", "err", err)
	}
	if sem := r.pl.cache.semanticIndexNow(); sem != nil {
		if _, err := sem.Forget(key); err != nil {
			r.pl.log.Warn("semantic forget from another host failed", "err", err)
		}
	}
}

func (r receiver) Purge(p shared.Purge) {
	n, err := r.pl.cache.store.Purge(func(i cache.Info) bool { return p.Match(i.Namespace, i.Created) })
	if err != nil {
		r.pl.log.Warn("cache purge from another host failed", "err", err)
	}
	if sem := r.pl.cache.semanticIndexNow(); sem != nil {
		if _, err := sem.Purge(func(e SemanticEntry) bool { return p.Match(e.Namespace, e.Created) }); err != nil {
			r.pl.log.Warn("semantic purge from another host failed", "err", err)
		}
	}
	r.pl.log.Info("cache purged by another host", "removed", n)
}

func (r receiver) Cursor(name string) string { return string(r.pl.cache.store.Mark(name)) }

func (r receiver) SaveCursor(name, id string) {
	if err := r.pl.cache.store.SetMark(name, []byte(id)); err != nil {
		r.pl.log.Warn("saving how far the other hosts' events were read failed", "err", err)
	}
}
