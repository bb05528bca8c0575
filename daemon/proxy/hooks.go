package proxy

import (
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/cache"
)

// Hooks reach into a Pipeline, for the tests of the package that wires it
// (package daemon's tests drive it through the real socket and need to see
// and replace what is behind it). Nothing else should use them.
type Hooks struct{ pl *Pipeline }

// Hooks returns pl's hooks.
func (pl *Pipeline) Hooks() Hooks { return Hooks{pl} }

// Store is the exact cache's store; nil with the cache off.
func (h Hooks) Store() *cache.Store { return h.pl.cache.store }

// SetSemantic installs idx as the semantic index, unless one is open.
func (h Hooks) SetSemantic(idx SemanticIndex) { h.pl.cache.setSemantic(idx) }

// SemanticOpen reports whether the semantic index is open.
func (h Hooks) SemanticOpen() bool { return h.pl.cache.semanticIndexNow() != nil }

// Settle waits for the semantic writes queued so far.
func (h Hooks) Settle() { h.pl.cache.semAdds.wait() }

// HoldSemanticWrites stops the semantic writer until release is called
// (the writes queue meanwhile), and lets a lookup wait up to a minute for
// the writes of its partition.
func (h Hooks) HoldSemanticWrites() (release func()) {
	w := h.pl.cache.semAdds
	w.pmu.Lock()
	w.maxSettle = time.Minute
	w.pmu.Unlock()
	held := make(chan struct{})
	w.do(func() { <-held })
	return sync.OnceFunc(func() { close(held) })
}

// SemanticLookupsWaiting is how many lookups wait for their partition's
// semantic writes.
func (h Hooks) SemanticLookupsWaiting() int {
	w := h.pl.cache.semAdds
	w.pmu.Lock()
	defer w.pmu.Unlock()
	return w.settling
}

// CloseCache flushes and closes the caches.
func (h Hooks) CloseCache() { h.pl.closeCache() }

// Holder is the backend recorded as holding response id.
func (h Hooks) Holder(id string) (string, bool) { return h.pl.affinity.get(id) }
