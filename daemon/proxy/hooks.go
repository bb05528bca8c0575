package proxy

import "github.com/lbgpt/lbgpt/cache"

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

// CloseCache flushes and closes the caches.
func (h Hooks) CloseCache() { h.pl.closeCache() }

// Holder is the backend recorded as holding response id.
func (h Hooks) Holder(id string) (string, bool) { return h.pl.affinity.get(id) }
