package rpc

import "encoding/json"

// CacheStats is the result of MethodCacheStats, and StatusResult.Cache.
type CacheStats struct {
	Path            string `json:"path"`             // the cache file
	Entries         int64  `json:"entries"`          // exact entries
	SemanticEntries int64  `json:"semantic_entries"` // entries in the semantic index
	Bytes           int64  `json:"bytes"`            // size of the cache file
	MaxBytes        int64  `json:"max_bytes"`        // the size cap; 0 is none
	// Counters since lbgptd started.
	Hits      CacheHits `json:"hits"`
	Misses    int64     `json:"misses"`   // requests answered upstream
	HitRate   float64   `json:"hit_rate"` // hits (all kinds) / (hits + misses), 0 when there were none
	Evictions int64     `json:"evictions"`
	// WriteErrors counts answers that could not be stored (each answer
	// still reached its client).
	WriteErrors int64 `json:"write_errors"`
	// Embedder is the semantic cache's embedder: "local" or "backend:<model>".
	Embedder string `json:"embedder"`
	// Threshold is the semantic cache's default similarity threshold.
	Threshold float64 `json:"threshold"`
	// Quarantined says that the cache file did not open cleanly at start
	// and where it was set aside; absent when it opened.
	Quarantined string `json:"quarantined,omitempty"`
	// Shared is the team's shared answer cache; absent when the daemon
	// shares none ([shared] redis unset, or cache = false).
	Shared *SharedCacheStats `json:"shared,omitempty"`
}

// SharedCacheStats is CacheStats.Shared: the answer cache the daemons of
// a team share in Redis, second to each one's own. Counters since lbgptd
// started.
type SharedCacheStats struct {
	Host string `json:"host"` // this daemon's name in the team
	// Hits counts answers read from the shared cache after a miss in this
	// host's own (each also counted in CacheStats.Hits, as exact or
	// semantic); Misses the reads that found none.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Puts   int64 `json:"puts"` // answers written to it
	// Drops counts answers and semantic entries not shared: larger than
	// the cap (1 MiB), the write queue full, or Redis down. Each stayed
	// in this host's cache.
	Drops  int64 `json:"drops"`
	Errors int64 `json:"errors"` // Redis calls that failed
	Queued int64 `json:"queued"` // writes waiting
	// Semantic entries announced to the other hosts, added from theirs,
	// and skipped because another embedder made them.
	SemanticSent     int64 `json:"semantic_sent"`
	SemanticReceived int64 `json:"semantic_received"`
	SemanticSkipped  int64 `json:"semantic_skipped"`
	// Removals counts the forgets and purges received from other hosts.
	Removals int64 `json:"removals"`
}

// CacheHits counts hits by kind.
type CacheHits struct {
	Exact     int64 `json:"exact"`
	Semantic  int64 `json:"semantic"`
	Coalesced int64 `json:"coalesced"`
}

// CachePurgeParams are the params of MethodCachePurge. With neither field
// set, every entry goes.
type CachePurgeParams struct {
	Namespace *string  `json:"namespace,omitempty"` // only this namespace ("" is the default one)
	OlderThan Duration `json:"older_than,omitzero"` // only entries stored longer ago than this
}

// CachePurgeResult is the result of MethodCachePurge.
type CachePurgeResult struct {
	Removed int64 `json:"removed"` // this host's exact entries
	// SharedRemoved counts the answers removed from the team's shared
	// cache; absent without one. The other hosts purge their own caches
	// when they read the purge.
	SharedRemoved int64 `json:"shared_removed,omitempty"`
	// Warning says the purge reached this host but not (all of) the
	// team's shared cache: Redis did not answer.
	Warning string `json:"warning,omitempty"`
}

// CacheForgetParams are the params of MethodCacheForget.
type CacheForgetParams struct {
	ID string `json:"id"` // Meta.CacheEntry of the answer to forget
}

// CacheForgetResult is the result of MethodCacheForget.
type CacheForgetResult struct {
	// Removed is false when neither this host nor the team's shared
	// cache held the entry (the other hosts forget it too, when they
	// read the forget).
	Removed bool `json:"removed"`
	// Warning says the entry was forgotten here but the team could not be
	// told: Redis did not answer.
	Warning string `json:"warning,omitempty"`
}

// CacheCompactResult is the result of MethodCacheCompact.
type CacheCompactResult struct {
	BytesBefore int64 `json:"bytes_before"`
	BytesAfter  int64 `json:"bytes_after"`
	TookMS      int64 `json:"took_ms"`
}

// EmbeddingsParams are the params of MethodEmbeddings.
type EmbeddingsParams struct {
	// Request is a full OpenAI embeddings request, exactly as it would be
	// sent to https://api.openai.com/v1/embeddings.
	Request json.RawMessage `json:"request"`
	// Options: Timeout, NoCache, NoStore, Namespace and CacheTTL apply.
	Options Options `json:"options,omitzero"`
}

// EmbeddingsResult is the result of MethodEmbeddings.
type EmbeddingsResult struct {
	// Response is the full OpenAI embeddings response, one embedding per
	// input in input order, whichever came from the cache.
	Response json.RawMessage `json:"response"`
	// Cached says, per input, whether its embedding came from the cache.
	Cached []bool `json:"cached"`
	// Meta says how lbgpt answered the inputs that went upstream (Backend
	// is empty when every input was cached).
	Meta Meta `json:"lbgpt"`
}
