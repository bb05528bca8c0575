package rpc

import (
	"os"
	"path/filepath"
	"strings"
)

// lbgptd's OpenAI-compatible HTTP endpoint (the [http] table of lbgpt.toml)
// speaks OpenAI's own wire format; these are the names it adds to it. The
// endpoint is described in docs/protocol.md.

// Request headers that carry Options, one per field. Booleans take 1, true
// or yes (0, false or no turn them off); durations take seconds ("30",
// "0.5") or a Go duration ("1m30s").
const (
	HeaderTimeout    = "X-Lbgpt-Timeout"     // Options.Timeout
	HeaderNoCache    = "X-Lbgpt-No-Cache"    // Options.NoCache
	HeaderNoStore    = "X-Lbgpt-No-Store"    // Options.NoStore
	HeaderNamespace  = "X-Lbgpt-Namespace"   // Options.Namespace
	HeaderSemantic   = "X-Lbgpt-Semantic"    // Options.Semantic
	HeaderCacheTTL   = "X-Lbgpt-Cache-Ttl"   // Options.CacheTTL
	HeaderModelAlias = "X-Lbgpt-Model-Alias" // Options.ModelAlias
)

// Response headers that carry Meta, one per field. A streamed answer sends
// them as HTTP trailers (its headers leave before the answer is known).
const (
	HeaderBackend       = "X-Lbgpt-Backend"        // Meta.Backend
	HeaderModel         = "X-Lbgpt-Model"          // Meta.Model
	HeaderAttempts      = "X-Lbgpt-Attempts"       // Meta.Attempts
	HeaderCache         = "X-Lbgpt-Cache"          // Meta.Cache
	HeaderUpstreamUS    = "X-Lbgpt-Upstream-Us"    // Meta.UpstreamUS
	HeaderQueuedUS      = "X-Lbgpt-Queued-Us"      // Meta.QueuedUS
	HeaderDaemonUS      = "X-Lbgpt-Daemon-Us"      // Meta.DaemonUS
	HeaderCacheEntry    = "X-Lbgpt-Cache-Entry"    // Meta.CacheEntry
	HeaderSimilarity    = "X-Lbgpt-Similarity"     // Meta.Similarity
	HeaderSemanticExact = "X-Lbgpt-Semantic-Exact" // Meta.SemanticExact
	HeaderCacheHost     = "X-Lbgpt-Cache-Host"     // Meta.CacheHost
	HeaderWarning       = "X-Lbgpt-Warning"        // Meta.Warning
	HeaderCost          = "X-Lbgpt-Cost"           // Meta.Cost, USD (not on a stream: its usage comes last)
	HeaderSaved         = "X-Lbgpt-Saved"          // Meta.Saved, USD
	HeaderCached        = "X-Lbgpt-Cached"         // embeddings: EmbeddingsResult.Cached as 0s and 1s, "0110"
)

// TokenFile is the name of the file, in lbgptd's state directory, that
// holds the bearer token of the HTTP endpoint's TCP listener.
const TokenFile = "http-token"

// DefaultStateDir is lbgptd's state directory: $STATE_DIRECTORY (set by
// systemd's StateDirectory=; its first entry), else $XDG_STATE_HOME/lbgpt,
// else ~/.local/state/lbgpt.
func DefaultStateDir() string {
	if d, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":"); filepath.IsAbs(d) {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "lbgpt")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".local", "state", "lbgpt")
}
