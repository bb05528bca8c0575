// Package rpc defines lbgptd's wire protocol: JSON-RPC 2.0 over a Unix
// socket, one JSON object per line.
//
// Everything here is a promise to other programs (the lbgpt client, Python
// scripts, socat users), so every value is spelled out and nothing depends on
// Go-specific encodings. The package uses only the standard library; the
// protocol is documented method by method in docs/protocol.md.
//
// OpenAI requests and responses travel as raw JSON (json.RawMessage): lbgptd
// accepts a full OpenAI chat completion request and answers with the full
// OpenAI response, so nothing in between has to know every OpenAI field.
package rpc

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Release is lbgpt's version: the daemon's, in its status, and the
// command's.
var Release = "0.1.0-dev"

// Version of the protocol. It changes only when a change would break a
// client written against an earlier version.
const Version = 1

// Methods and notifications, sorted. The daemon's method table (daemon/methods.go)
// is the one place that maps them to handlers.
const (
	// MethodBatch answers a list of chat requests, each on its own, with
	// results in input order. Params BatchParams, result BatchResult. While
	// it runs, NotifyBatchItem carries each finished item and
	// NotifyBatchProgress the counts (at most 10 a second). With
	// BatchParams.SummaryOnly the result leaves the items out: the
	// notifications are then the only copy of each.
	MethodBatch = "batch"
	// MethodCacheCompact rewrites the cache file without its free pages.
	// No params, result CacheCompactResult.
	MethodCacheCompact = "cache.compact"
	// MethodCacheForget removes one cache entry, exact or semantic, by the
	// id a response's metadata named. Params CacheForgetParams, result
	// CacheForgetResult.
	MethodCacheForget = "cache.forget"
	// MethodCachePurge removes the entries of a namespace, or those older
	// than an age, or all. Params CachePurgeParams, result CachePurgeResult.
	MethodCachePurge = "cache.purge"
	// MethodCacheStats reports the caches. No params, result CacheStats.
	MethodCacheStats = "cache.stats"
	// MethodCancel is a notification (no id) that cancels an in-flight
	// request of the same connection: params {"id": <the request's id>}.
	MethodCancel = "cancel"
	// MethodChat answers one chat completion. Params ChatParams, result
	// ChatResult. With "stream": true in the request, every chunk is first
	// sent as a NotifyChatChunk notification.
	MethodChat = "chat"
	// MethodEmbeddings answers one OpenAI embeddings request, each input
	// looked up in the cache on its own: only the inputs not cached go
	// upstream. Params EmbeddingsParams, result EmbeddingsResult.
	MethodEmbeddings = "embeddings"
	// MethodResponses answers one OpenAI Responses API request (POST
	// /v1/responses). Params ChatParams (the request is a Responses
	// request), result ChatResult (the response object). With "stream":
	// true every event is first sent as a NotifyResponsesEvent. A request
	// that continues a previous response goes to the backend that made it.
	MethodResponses = "responses"
	// MethodStatus reports the daemon and its backends. No params, result
	// StatusResult.
	MethodStatus = "status"
	// MethodSpend reports what answers cost and the cache saved, over a
	// period, by backend, model or namespace. Params SpendParams, result
	// SpendResult.
	MethodSpend = "spend"
	// MethodWatch subscribes to the daemon's status: a NotifyWatchStatus
	// with the full StatusResult at once, then again whenever it changes,
	// at most WatchParams.MaxPerSecond times a second, until the call is
	// canceled. It never returns otherwise.
	MethodWatch = "watch"

	// NotifyBatchItem carries one finished item of a batch: BatchItemParams.
	NotifyBatchItem = "batch.item"
	// NotifyBatchProgress carries a batch's counts: BatchProgress.
	NotifyBatchProgress = "batch.progress"

	// NotifyChatChunk carries one streamed chunk of a chat request:
	// params ChunkParams.
	NotifyChatChunk = "chat.chunk"
	// NotifyResponsesEvent carries one event of a streamed Responses
	// request: EventParams.
	NotifyResponsesEvent = "responses.event"
	// NotifyWatchStatus carries one status snapshot of a watch:
	// WatchStatusParams.
	NotifyWatchStatus = "watch.status"
)

// ChatParams are the params of MethodChat.
type ChatParams struct {
	// Request is a full OpenAI chat completion request, exactly as it would
	// be sent to https://api.openai.com/v1/chat/completions.
	Request json.RawMessage `json:"request"`
	// Options are lbgpt's own per-request options; they never go upstream.
	Options Options `json:"options,omitzero"`
}

// Options are lbgpt's per-request options.
type Options struct {
	// Timeout bounds the whole request, retries included. Zero means the
	// daemon's request_timeout. On the wire: a number of seconds (30, 0.5)
	// or a Go duration string ("30s", "1m30s").
	Timeout Duration `json:"timeout,omitzero"`
	// NoCache skips the cache lookups (exact and semantic); the answer is
	// still stored. The original's use_cache=False.
	NoCache bool `json:"no_cache,omitempty"`
	// NoStore keeps the answer out of the caches.
	NoStore bool `json:"no_store,omitempty"`
	// Namespace partitions the caches: entries of one namespace never
	// answer a request of another. "" is the default namespace.
	Namespace string `json:"namespace,omitempty"`
	// Semantic turns the semantic cache on for this request and names the
	// text compared: one of the Semantic constants. "" means the daemon's
	// default (cache.semantic in lbgpt.toml); SemanticOff turns it off.
	Semantic string `json:"semantic,omitempty"`
	// CacheTTL is how long this answer stays cached. Zero means the
	// daemon's cache.ttl.
	CacheTTL Duration `json:"cache_ttl,omitzero"`
	// ModelAlias is the model the cache key names instead of the
	// request's: a request for model X with model_alias Y is answered from
	// (and stored as) Y's entries. It never goes upstream.
	ModelAlias string `json:"model_alias,omitempty"`
}

// Semantic cache encodings in Options.Semantic: the text of a request the
// semantic cache compares. Everything else must match exactly.
const (
	SemanticUserOnly   = "user_only"   // every user message, as "[user]: text", joined by blank lines
	SemanticAll        = "all"         // every message with its role
	SemanticSystemOnly = "system_only" // the system messages
	SemanticOff        = "off"         // no semantic cache for this request, whatever the daemon's default
)

// ChatResult is the result of MethodChat.
type ChatResult struct {
	// Response is the full OpenAI chat completion response. For a streamed
	// request it is assembled from the chunks.
	Response json.RawMessage `json:"response"`
	// Meta says how lbgpt answered.
	Meta Meta `json:"lbgpt"`
}

// Meta says how lbgpt answered a request.
type Meta struct {
	Backend    string `json:"backend"`     // name of the backend that answered
	Model      string `json:"model"`       // model as sent upstream (Azure: the deployment)
	Attempts   int    `json:"attempts"`    // upstream calls made, the successful one included
	Cache      string `json:"cache"`       // one of the Cache constants
	Streamed   bool   `json:"streamed"`    // the answer was streamed as notifications
	UpstreamUS int64  `json:"upstream_us"` // time spent waiting on upstream calls, microseconds
	QueuedUS   int64  `json:"queued_us"`   // time spent waiting for a backend with room under its limits
	DaemonUS   int64  `json:"daemon_us"`   // time spent in the daemon itself: neither upstream nor queued
	// CacheEntry is the id of the cache entry that answered (a hit) or
	// that now holds the answer (a stored miss); cache.forget takes it.
	CacheEntry string `json:"cache_entry,omitempty"`
	// Similarity is a semantic hit's cosine similarity to the stored
	// prompt, 0 to 1.
	Similarity float64 `json:"similarity,omitempty"`
	// SemanticExact says a semantic hit's compared text was identical to
	// the stored one.
	SemanticExact bool `json:"semantic_exact,omitempty"`
	// CacheHost is set on a hit (exact or semantic) whose answer was read
	// from the team's shared cache ([shared]): the host that stored it,
	// as it names itself in the team. The answer is then kept in this
	// host's own cache too, and later hits on it are ordinary ones.
	CacheHost string `json:"cache_host,omitempty"`
	// Warning is set when the answer was good but something around it
	// was not, for instance a cache write that failed.
	Warning string `json:"warning,omitempty"`
	// RequestID is the upstream's x-request-id of the call that answered
	// (absent for a cache hit).
	RequestID string `json:"request_id,omitempty"`
	// Cost is what this answer cost, in USD, from the usage the upstream
	// reported and the model's price: 0 for a cache hit or a coalesced
	// answer (it paid nothing). Absent when the model has no price or the
	// upstream reported no usage.
	Cost *float64 `json:"cost,omitempty"`
	// Saved is, on a hit (exact, semantic or coalesced), what the answer
	// cost when it was paid: what the hit saved. Absent otherwise, or
	// when unpriced.
	Saved *float64 `json:"saved,omitempty"`
}

// Cache outcomes in Meta.Cache.
const (
	CacheMiss      = "miss"      // answered upstream (and stored unless no_store)
	CacheExact     = "exact"     // answered from the exact cache: no upstream call
	CacheSemantic  = "semantic"  // answered from the semantic cache: see Similarity
	CacheCoalesced = "coalesced" // answered by an identical request in flight at the same time
)

// ChunkParams are the params of NotifyChatChunk.
type ChunkParams struct {
	// ID is the JSON-RPC id of the request the chunk belongs to, exactly as
	// the client sent it (a number or a string).
	ID json.RawMessage `json:"id"`
	// Chunk is one OpenAI chat.completion.chunk object.
	Chunk json.RawMessage `json:"chunk"`
}

// EventParams are the params of NotifyResponsesEvent.
type EventParams struct {
	// ID is the JSON-RPC id of the request the event belongs to.
	ID json.RawMessage `json:"id"`
	// Event is the server-sent event's name, such as
	// "response.output_text.delta".
	Event string `json:"event"`
	// Data is its payload, as the upstream sent it.
	Data json.RawMessage `json:"data"`
}

// The bounds of BatchParams.Concurrency.
const (
	DefaultBatchConcurrency = 64
	MaxBatchConcurrency     = 4096
)

// BatchParams are the params of MethodBatch.
type BatchParams struct {
	// Requests are full OpenAI chat completion requests. "stream" is
	// ignored: batch items are answered whole.
	Requests []json.RawMessage `json:"requests"`
	// Options apply to every item; Timeout bounds each item, not the batch.
	Options Options `json:"options,omitzero"`
	// Concurrency bounds the items in flight at once, at most
	// MaxBatchConcurrency; 0 means DefaultBatchConcurrency. Backend limits
	// still apply whatever it is.
	Concurrency int `json:"concurrency,omitempty"`
	// SummaryOnly asks for a result without its items (BatchResult.Items
	// left out), for a client that keeps the NotifyBatchItem notifications:
	// each answer then crosses the socket once instead of twice. Every item
	// is notified exactly once before the result, failed and canceled ones
	// too, whatever happens to the batch. A daemon that does not know the
	// field sends the items anyway, so a client keeps Items when they come.
	SummaryOnly bool `json:"summary_only,omitempty"`
}

// BatchItem is the outcome of one batch request: Result or Error.
type BatchItem struct {
	Index  int         `json:"index"`
	Result *ChatResult `json:"result,omitempty"`
	Error  *Error      `json:"error,omitempty"`
}

// BatchResult is the result of MethodBatch: one item per request, in input
// order, whatever failed; no items (nil, and no "items" on the wire) when
// the batch asked for SummaryOnly.
type BatchResult struct {
	Items   []BatchItem  `json:"items,omitzero"`
	Summary BatchSummary `json:"summary"`
}

// BatchSummary counts a batch's outcomes.
type BatchSummary struct {
	Total     int   `json:"total"`
	OK        int   `json:"ok"`
	Failed    int   `json:"failed"`
	Retries   int   `json:"retries"`    // upstream calls beyond the first, over all items
	Coalesced int   `json:"coalesced"`  // items answered by an identical item in flight
	CacheHits int   `json:"cache_hits"` // items answered from the caches (exact or semantic)
	ElapsedMS int64 `json:"elapsed_ms"`
	// CostUSD is what the batch's answers cost (Meta.Cost summed), SavedUSD
	// what its hits saved (Meta.Saved summed); Unpriced counts the answers
	// whose cost is unknown (a model without a price).
	CostUSD  float64 `json:"cost_usd,omitempty"`
	SavedUSD float64 `json:"saved_usd,omitempty"`
	Unpriced int     `json:"unpriced,omitempty"`
}

// BatchItemParams are the params of NotifyBatchItem.
type BatchItemParams struct {
	ID   json.RawMessage `json:"id"` // the batch request's id
	Item BatchItem       `json:"item"`
}

// BatchProgress are the params of NotifyBatchProgress.
type BatchProgress struct {
	ID           json.RawMessage `json:"id"` // the batch request's id
	BatchSummary                 // the counts so far
	Done         int             `json:"done"`
}

// WatchParams are the params of MethodWatch.
type WatchParams struct {
	// MaxPerSecond bounds the updates; 0 means 4. At most 20.
	MaxPerSecond float64 `json:"max_per_second,omitempty"`
}

// WatchStatusParams are the params of NotifyWatchStatus.
type WatchStatusParams struct {
	ID     json.RawMessage `json:"id"` // the watch request's id
	Status StatusResult    `json:"status"`
}

// CancelParams are the params of MethodCancel.
type CancelParams struct {
	ID json.RawMessage `json:"id"`
}

// StatusResult is the result of MethodStatus.
type StatusResult struct {
	Version   string    `json:"version"`  // lbgptd's version
	Protocol  int       `json:"protocol"` // Version
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
	UptimeS   float64   `json:"uptime_s"`
	Simulated bool      `json:"simulated"` // the backends are lbgpt's built-in simulator (lbgptd --demo)
	Config    string    `json:"config"`    // the config file in use, "" when built from the environment
	// Env stamps the environment variables the daemon's configuration
	// read when it started, so a client can say when its own differ (a
	// key fixed in the shell after the daemon started with the old one).
	Env      *EnvStamps `json:"env,omitempty"`
	Strategy string     `json:"strategy"` // the balancing strategy: "weighted", "max_headroom" or "priority"
	// ReloadedAt is when the configuration was last reloaded (SIGHUP),
	// successfully or not; absent before the first reload.
	ReloadedAt time.Time `json:"reloaded_at,omitzero"`
	// ReloadError says why the last reload was rejected; "" when it was
	// applied or there was none. The previous configuration stays in force.
	ReloadError string `json:"reload_error,omitempty"`
	// RestartPending names the settings that changed in the config file
	// at the last applied reload but apply only when lbgptd starts again
	// (the socket, [http] listen, the cache file, [shared]); until then
	// the values it started with stay.
	RestartPending []string `json:"restart_pending,omitempty"`
	Queue          int      `json:"queue"` // requests waiting for headroom
	// DaemonP50US and DaemonP99US are the time requests spend in the
	// daemon outside upstream calls, over the last 1024 requests.
	DaemonP50US int64           `json:"daemon_p50_us"`
	DaemonP99US int64           `json:"daemon_p99_us"`
	Backends    []BackendStatus `json:"backends"`
	// Cache is the caches' counters; nil when lbgptd runs without a cache.
	Cache *CacheStats `json:"cache,omitempty"`
	// Batches are the batches running now, from any client, oldest first.
	Batches []BatchStatus `json:"batches,omitempty"`
	// Team is the team this daemon shares limits and answers with
	// ([shared]); nil when it shares nothing.
	Team *TeamStatus `json:"team,omitempty"`
	// Spend is what answers cost and the cache saved, today and this
	// month, and the budgets; nil when lbgptd keeps no spend (its state
	// directory could not hold the ledger).
	Spend *SpendStatus `json:"spend,omitempty"`
	// SpendError says why the daemon keeps no spend: its ledger in the
	// state directory did not open (damaged, or held by another lbgptd).
	// Absent when it keeps it.
	SpendError string `json:"spend_error,omitempty"`
}

// SpendStatus is the spend in StatusResult. Amounts are USD; days and
// months are UTC.
type SpendStatus struct {
	Today   SpendTotals `json:"today"`
	Month   SpendTotals `json:"month"`
	Budgets []Budget    `json:"budgets,omitempty"`
	// PricesDate is the date of the built-in price list.
	PricesDate string `json:"prices_date"`

	// Team is set when lbgptd is in a team ([shared] redis). Today and
	// Month stay this host's, from its own ledger (what `lbgpt spend`
	// reports); TeamToday and TeamMonth are every host's, as Redis last
	// told them (at TeamAsOf). Budgets are then team-wide — every host's
	// spend and reservations — unless TeamAsOf is zero: Redis has not
	// answered since lbgptd started, and they are this host's alone.
	Team      bool        `json:"team,omitempty"`
	TeamToday SpendTotals `json:"team_today,omitzero"`
	TeamMonth SpendTotals `json:"team_month,omitzero"`
	TeamHosts int         `json:"team_hosts,omitempty"` // at the last heartbeat
	TeamAsOf  time.Time   `json:"team_as_of,omitzero"`
	// TeamDegradedSince is when Redis stopped answering: each host then
	// admits at most its safe share of what was left of each limit (that
	// over TeamHosts). Absent while Redis answers.
	TeamDegradedSince time.Time `json:"team_degraded_since,omitzero"`
}

// SpendTotals are the totals of a period: what was paid upstream, what
// the cache saved, and how many answers each counts.
type SpendTotals struct {
	CostUSD  float64 `json:"cost_usd"`
	SavedUSD float64 `json:"saved_usd"`
	Requests int64   `json:"requests"` // answers paid upstream
	Hits     int64   `json:"hits"`     // answers from the caches or coalesced
	Unpriced int64   `json:"unpriced"` // of both, those whose model has no price
	// Tokens paid upstream.
	InputTokens       int64 `json:"input_tokens"`
	CachedInputTokens int64 `json:"cached_input_tokens"`
	OutputTokens      int64 `json:"output_tokens"`
	ReasoningTokens   int64 `json:"reasoning_tokens"`
}

// Budget is one limit of [budget] and where it stands.
type Budget struct {
	Namespace   string  `json:"namespace,omitempty"` // absent: the overall limit
	Period      string  `json:"period"`              // "day" or "month" (UTC)
	LimitUSD    float64 `json:"limit_usd"`
	SpentUSD    float64 `json:"spent_usd"`
	ReservedUSD float64 `json:"reserved_usd"` // held by requests in flight
	// Warn is set once the spend passed [budget] warn_at of the limit.
	Warn bool `json:"warn"`
}

// SpendParams are the params of MethodSpend.
type SpendParams struct {
	// Since starts the report: "hour", "day" or "month" (the current UTC
	// one), a duration back from now ("72h", or seconds), or an RFC 3339
	// time. Default "day".
	Since string `json:"since,omitempty"`
	// By groups the rows: "backend", "model", "namespace", or "" for the
	// total only.
	By string `json:"by,omitempty"`
}

// SpendResult is the result of MethodSpend.
type SpendResult struct {
	Since      time.Time   `json:"since"` // the report's start, at the start of its first hour
	By         string      `json:"by,omitempty"`
	Rows       []SpendRow  `json:"rows,omitempty"` // by cost, highest first
	Total      SpendTotals `json:"total"`
	PricesDate string      `json:"prices_date"`
}

// SpendRow is one backend's, model's or namespace's totals.
type SpendRow struct {
	Name string `json:"name"`
	SpendTotals
}

// TeamStatus is the team in StatusResult: the shared Redis as this daemon
// sees it, and each limit scope it spends.
type TeamStatus struct {
	Redis string `json:"redis"` // the server, its password redacted
	Host  string `json:"host"`  // this daemon's name in the team
	// Hosts is how many daemons of the team were alive at the last
	// heartbeat (every 3 s), this one included; a host's safe share
	// while Redis is down is a scope's capacity over this.
	Hosts int `json:"hosts"`
	// DegradedSince is when Redis stopped answering: the hosts spend what
	// they hold, then each its safe share. Absent while Redis answers.
	DegradedSince time.Time     `json:"degraded_since,omitzero"`
	LastError     string        `json:"last_error,omitempty"` // while degraded
	RTTUS         int64         `json:"rtt_us"`               // median Redis round trip, recent calls
	Scopes        []ScopeStatus `json:"scopes"`
}

// ScopeStatus is one shared limit scope in TeamStatus.
type ScopeStatus struct {
	Name     string   `json:"name"`
	Backends []string `json:"backends"` // this daemon's backends that spend it
	Hosts    int      `json:"hosts"`    // hosts active on it at the last exchange
	// LevelRPM and LevelTPM are the shared bucket's level at the last
	// exchange; -1 when the limit is unknown.
	LevelRPM int64 `json:"level_rpm"`
	LevelTPM int64 `json:"level_tpm"`
	// LeaseRPM and LeaseTPM are what this daemon holds of it, unspent.
	LeaseRPM     int64     `json:"lease_rpm"`
	LeaseTPM     int64     `json:"lease_tpm"`
	CoolingUntil time.Time `json:"cooling_until,omitzero"` // a 429 on some host cools every host
	Degraded     bool      `json:"degraded"`               // spending a local safe share
	// ShareRPM and ShareTPM are that safe share (the limit over the team's
	// size), while degraded; absent otherwise.
	ShareRPM int64 `json:"share_rpm,omitempty"`
	ShareTPM int64 `json:"share_tpm,omitempty"`
}

// BatchStatus is one batch running in lbgptd, in StatusResult.
type BatchStatus struct {
	ID           string    `json:"id"` // lbgptd's own id for the batch, unique while it runs
	StartedAt    time.Time `json:"started_at"`
	BatchSummary           // the counts so far (ElapsedMS: since it started)
	Done         int       `json:"done"`
	RatePerS     float64   `json:"rate_per_s"` // items done per second since the start
	ETAS         float64   `json:"eta_s"`      // seconds left at that rate; 0 when unknown
	// Backends counts the items each backend answered.
	Backends map[string]int `json:"backends,omitempty"`
}

// BackendStatus is one backend in StatusResult.
type BackendStatus struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"` // "openai" | "azure" | "openai-compatible"
	BaseURL string   `json:"base_url"`
	Models  []string `json:"models"` // empty: any model
	State   string   `json:"state"`  // one of the State constants
	// Reason says why a saturated backend takes nothing now: "3/3 in
	// flight" (its max_concurrent), "rpm" or "tpm" (no room under that
	// limit now). Absent in the other states.
	Reason    string `json:"reason,omitempty"`
	Requests  int64  `json:"requests"` // upstream calls made
	Errors    int64  `json:"errors"`   // upstream calls that failed, 429s included
	Status429 int64  `json:"status_429"`
	Retries   int64  `json:"retries"` // calls that were a retry of an earlier attempt
	Tokens    int64  `json:"tokens"`  // prompt + completion tokens answered
	InFlight  int64  `json:"in_flight"`
	// Limits and their use over the last minute; a limit of 0 is unknown.
	LimitRPM     int64   `json:"limit_rpm"`
	LimitTPM     int64   `json:"limit_tpm"`
	UsedRPM      int64   `json:"used_rpm"`      // requests in the last 60 s, in flight included
	UsedTPM      int64   `json:"used_tpm"`      // tokens in the last 60 s, reservations included
	RemainingRPM int64   `json:"remaining_rpm"` // -1 when the limit is unknown
	RemainingTPM int64   `json:"remaining_tpm"`
	LatencyP50MS float64 `json:"latency_p50_ms"` // successful calls, last 256
	LatencyP95MS float64 `json:"latency_p95_ms"`
	// CooldownUntil is set while the backend is cooling down after a 429,
	// or resting while down.
	CooldownUntil time.Time `json:"cooldown_until,omitzero"`
	// Traffic is the requests answered in each of the last 60 seconds, oldest first.
	Traffic []int `json:"traffic,omitempty"`
}

// Backend states in BackendStatus.State.
const (
	StateOK        = "ok"
	StateCooling   = "cooling"   // rate limited upstream, waiting for Retry-After
	StateDeadKey   = "dead_key"  // the upstream refused the API key (401/403); re-probed now and then
	StateSaturated = "saturated" // at a limit: no room for another request right now
	StateDown      = "down"      // failing call after call (5xx, refused connections): rests until cooldown_until, then one request probes it
)

// Duration is a time.Duration that reads a number of seconds or a Go
// duration string from JSON and writes a duration string.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// badDuration is the error of a duration that is not one, as an
// UnmarshalTypeError: encoding/json then names the field it was for.
func badDuration(value string) error {
	return &json.UnmarshalTypeError{Value: value, Type: reflect.TypeFor[Duration]()}
}

// UnmarshalJSON reads a number of seconds or a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		v, err := time.ParseDuration(str)
		if err != nil || v < 0 {
			return badDuration(s)
		}
		*d = Duration(v)
		return nil
	}
	secs, err := strconv.ParseFloat(s, 64)
	if err != nil || secs < 0 || secs > 1e9 {
		return badDuration(s)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
