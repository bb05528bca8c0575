// Package config reads lbgpt.toml, the one configuration file of lbgpt: the
// daemon's settings and the upstream accounts ("backends") it balances over.
//
// A program loads the file with [Load], which decodes it strictly, applies the
// defaults, validates it and resolves every API key:
//
//	cfg, warnings, err := config.Load(config.DefaultPath(), os.Getenv)
//
// Without a file, [FromEnv] builds the same [Config] from OPENAI_API_KEY and
// AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT, the variables the OpenAI SDKs
// read. [Parse] is the decoding half alone: it never reads files or the
// environment.
//
// Decoding is strict: an unknown or misspelt key, a value of the wrong type or
// an invalid setting is an error naming the file, the line and the key, and
// every such problem is reported at once (the error is an [errors.Join] of
// [*Error] values). A file states its format with "version = 1".
//
// API keys are [Secret] values. They are referenced by environment variable
// (api_key_env) or file (api_key_file); a literal api_key is accepted but
// warned about when the file is readable by others. A Secret prints, logs and
// marshals as "[redacted]", and no error or warning from this package ever
// contains a key. The [shared] Redis password is given and kept the same
// way, and errors show a redis URL only with its password redacted.
//
// A Config is plain data: after loading, it is safe for concurrent reads.
package config

import (
	"log/slog"
	"net/url"
	"path/filepath"
	"slices"
	"time"
)

// Version is the only format version this package reads: a file must say
// "version = 1".
const Version = 1

// Backend types.
const (
	TypeOpenAI           = "openai"
	TypeAzure            = "azure"
	TypeOpenAICompatible = "openai-compatible"
)

// Defaults applied by [Parse] and [FromEnv] to settings the file leaves out.
const (
	DefaultRequestTimeout  = 120 * time.Second
	DefaultMaxAttempts     = 10 // the original LBGPT's
	DefaultMaxMessageBytes = 8 << 20
	DefaultDrainTimeout    = 30 * time.Second
	DefaultStreamIdle      = 60 * time.Second
	DefaultMaxBodyBytes    = 32 << 20 // a large image, base64-encoded
	DefaultOpenAIBaseURL   = "https://api.openai.com/v1"
	DefaultAzureAPIVersion = "2024-10-21"
	DefaultWeight          = 1.0
	DefaultMaxConcurrent   = 5 // the original LBGPT's
	DefaultStrategy        = StrategyMaxHeadroom
	DefaultBackoffBase     = 200 * time.Millisecond
	DefaultBackoffMax      = 10 * time.Second
	DefaultReprobe         = 5 * time.Minute
	DefaultHeaderTimeout   = 30 * time.Second
	DefaultCacheMaxBytes   = 1 << 30 // 1 GiB
	DefaultEmbedder        = EmbedderLocal
	DefaultEmbeddingModel  = "text-embedding-3-small"
	DefaultKeyPrefix       = "lbgpt"
	DefaultWarnAt          = 0.8
)

// Semantic cache settings ([cache] semantic and embedder).
const (
	SemanticUserOnly   = "user_only"
	SemanticAll        = "all"
	SemanticSystemOnly = "system_only"
	EmbedderLocal      = "local"   // built in, offline
	EmbedderBackend    = "backend" // embedding_model through the backends
)

// Balancing strategies ([balance] strategy).
const (
	StrategyWeighted    = "weighted"     // smooth weighted round-robin by weight
	StrategyMaxHeadroom = "max_headroom" // the backend with the most room left; ties by weight
	StrategyPriority    = "priority"     // the lowest priority tier with room, max_headroom within it
)

// Config is a decoded, validated lbgpt.toml.
type Config struct {
	Version  int       `toml:"version"`
	Daemon   Daemon    `toml:"daemon"`
	Balance  Balance   `toml:"balance"`
	Cache    Cache     `toml:"cache"`
	HTTP     HTTP      `toml:"http"`
	Shared   Shared    `toml:"shared"`
	Budget   Budget    `toml:"budget"`
	Prices   []Price   `toml:"price"`
	Backends []Backend `toml:"backend"`

	// Path is the file the config was loaded from; "" when it was built from
	// the environment or by Parse.
	Path string `toml:"-"`
	// secretLines are the lines of the keys Resolve reads secrets by
	// ("backend.0.api_key_env", "shared.password_env"), for its errors.
	// Line numbers only: never the file's text.
	secretLines map[string]int
}

// Balance holds how requests are spread over the backends: the [balance]
// table.
type Balance struct {
	// Strategy picks among the backends that have room for a request:
	// "weighted", "max_headroom" or "priority". Default "max_headroom".
	Strategy string `toml:"strategy"`
	// Overallocate sends a request to the best backend even when every
	// backend is at its limits, instead of waiting for room (the original
	// LBGPT's escape hatch; it invites 429s). Default false.
	Overallocate bool `toml:"overallocate"`
	// BackoffBase and BackoffMax bound the exponential backoff, with full
	// jitter, after server, network and timeout errors. Defaults 200ms, 10s.
	BackoffBase Duration `toml:"backoff_base"`
	BackoffMax  Duration `toml:"backoff_max"`
	// Reprobe is the longest a backend whose key was refused rests between
	// two free probes of its model list. Default 5m.
	Reprobe Duration `toml:"reprobe"`
	// HeaderTimeout bounds how long one attempt of a streamed request waits
	// for the upstream's response headers, which a working server sends at
	// once: a backend that accepts the connection and then says nothing is
	// given up on, taken out for a while, and the request goes elsewhere.
	// (A whole answer's headers come only with the answer, so plain
	// requests are bounded by their deadline alone.) 0 means no bound.
	// Default 30s.
	HeaderTimeout Duration `toml:"header_timeout"`
}

// Cache holds the answer caches' settings: the [cache] table.
type Cache struct {
	// Enabled turns the caches on. Default true.
	Enabled bool `toml:"enabled"`
	// Path is the absolute path of the cache file; "" (the default) is
	// cache.db in $STATE_DIRECTORY, else $XDG_STATE_HOME/lbgpt, else
	// ~/.local/state/lbgpt.
	Path string `toml:"path"`
	// TTL is how long an answer stays cached; 0 (the default) is forever.
	// A request's cache_ttl option overrides it.
	TTL Duration `toml:"ttl"`
	// MaxBytes caps the cached entries' total size; past it the least
	// recently used go. 0 is no cap. Default 1 GiB.
	MaxBytes int `toml:"max_bytes"`
	// DeterministicOnly caches only requests with an explicit temperature
	// of 0. Default false: like the original LBGPT, every request is
	// cached, sampled or not.
	DeterministicOnly bool `toml:"deterministic_only"`
	// Semantic is the semantic cache's default encoding: "" (off, the
	// default), "user_only", "all" or "system_only". A request's semantic
	// option overrides it.
	Semantic string `toml:"semantic"`
	// Embedder is "local" (the default: built in, offline) or "backend"
	// (EmbeddingModel through the backends).
	Embedder string `toml:"embedder"`
	// EmbeddingModel is the backend embedder's model. Default
	// text-embedding-3-small.
	EmbeddingModel string `toml:"embedding_model"`
}

// Daemon holds the settings of lbgptd itself: the [daemon] table.
type Daemon struct {
	// Socket is the absolute path of the daemon's Unix socket; "" means the
	// client's default socket path.
	Socket string `toml:"socket"`
	// RequestTimeout is the total deadline of one request, retries included.
	// Default 120s.
	RequestTimeout Duration `toml:"request_timeout"`
	// MaxAttempts is the number of upstream attempts one request may make,
	// across all backends, 1 to 100. Default 10.
	MaxAttempts int `toml:"max_attempts"`
	// MaxMessageBytes is the longest JSON-RPC line the daemon accepts.
	// Default 8 MiB.
	MaxMessageBytes int `toml:"max_message_bytes"`
	// DrainTimeout is how long a stopping daemon lets the requests in
	// flight finish before it cancels them. Default 30s.
	DrainTimeout Duration `toml:"drain_timeout"`
	// StreamIdleTimeout ends a streamed answer that sends nothing for this
	// long once its first token came; request_timeout bounds a stream only
	// until then, so a long answer that keeps coming is never cut. 0 means
	// no idle limit. Default 60s.
	StreamIdleTimeout Duration `toml:"stream_idle_timeout"`
	// SocketGroup names a group whose members may use the daemon too (a
	// shared team daemon); "" (the default) admits only the daemon's own
	// user. The socket is then made group-accessible (0660) with that group.
	SocketGroup string `toml:"socket_group"`
}

// HTTP is lbgptd's OpenAI-compatible HTTP endpoint: the [http] table. It is
// off unless Listen or Socket is set (both may be).
type HTTP struct {
	// Listen is a loopback TCP address, "127.0.0.1:8088", "[::1]:8088" or
	// "localhost:8088"; "" means no TCP listener. Requests on it need the
	// bearer token lbgptd keeps in its state directory (lbgpt token).
	Listen string `toml:"listen"`
	// Socket is the absolute path of a Unix socket serving the same
	// endpoint, 0600 and for the daemon's own user only; "" means none.
	Socket string `toml:"socket"`
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// Default 32 MiB (a large image, base64-encoded).
	MaxBodyBytes int `toml:"max_body_bytes"`
}

// Enabled reports whether the HTTP endpoint has a listener.
func (h HTTP) Enabled() bool { return h.Listen != "" || h.Socket != "" }

// Shared is the [shared] table: the daemons of a team, on several hosts,
// share one rate-limit budget per limit scope and one answer cache through
// a stock Redis (>= 7). Without Redis set, nothing is shared.
type Shared struct {
	// Redis is the server: redis://[user@]host[:port][/db], rediss://...
	// (TLS) or unix:///path/to/redis.sock[?db=N]. "" (the default) shares
	// nothing.
	Redis string `toml:"redis"`
	// At most one of PasswordEnv, PasswordFile and Password is set, as for
	// a backend's API key: an environment variable, an absolute path ("~/"
	// allowed) or the password itself. A password in the URL is also
	// accepted, but not together with one of these.
	PasswordEnv  string `toml:"password_env"`
	PasswordFile string `toml:"password_file"`
	Password     Secret `toml:"password"`
	// TLSCAFile is the absolute path ("~/" allowed; [Load] and
	// [Config.Resolve] expand it) of a PEM file of the CAs that sign the
	// server's certificate; rediss:// only. "" uses the system's.
	TLSCAFile string `toml:"tls_ca_file"`
	// KeyPrefix starts every key lbgpt writes, so that teams can share one
	// Redis: not empty, without white space or braces (Redis Cluster hash
	// tags). Default "lbgpt".
	KeyPrefix string `toml:"key_prefix"`
	// Cache shares answers (exact and semantic) as well as rate limits;
	// default true.
	Cache bool `toml:"cache"`

	// Secret is the resolved password, filled by [Load] and
	// [Config.Resolve]; "" when there is none.
	Secret Secret `toml:"-"`
}

// Enabled reports whether the daemon shares its limits and answers.
func (s Shared) Enabled() bool { return s.Redis != "" }

// Backend is one upstream account: a [[backend]] table.
type Backend struct {
	// Name identifies the backend in logs, stats and responses: required,
	// unique, [a-z0-9][a-z0-9._-]* and at most 64 bytes.
	Name string `toml:"name"`
	// Type is TypeOpenAI, TypeAzure or TypeOpenAICompatible.
	Type string `toml:"type"`
	// BaseURL is the API's absolute http(s) URL, without a trailing slash.
	// OpenAI: default https://api.openai.com/v1. Azure: required, the
	// resource endpoint https://RESOURCE.openai.azure.com. OpenAI-compatible:
	// required, for example http://localhost:11434/v1.
	BaseURL string `toml:"base_url"`

	// At most one of APIKeyEnv, APIKeyFile and APIKey is set. The openai and
	// azure types need one; openai-compatible may have none.

	// APIKeyEnv names the environment variable holding the key.
	APIKeyEnv string `toml:"api_key_env"`
	// APIKeyFile is the absolute path ("~/" allowed) of a file holding the key.
	APIKeyFile string `toml:"api_key_file"`
	// APIKey is a key written in the file itself.
	APIKey Secret `toml:"api_key"`

	// APIVersion is the Azure api-version; azure only, default 2024-10-21.
	APIVersion string `toml:"api_version"`
	// ModelMap maps OpenAI model names to Azure deployment names; azure only.
	ModelMap map[string]string `toml:"model_map"`
	// Models lists the models the backend serves; empty means any model
	// (azure: the ModelMap keys, when ModelMap is not empty).
	Models []string `toml:"models"`

	// Weight is the backend's share of traffic relative to the others of its
	// priority tier; > 0, default 1.
	Weight float64 `toml:"weight"`
	// Priority is the backend's tier: the priority strategy tries lower tiers
	// first. Default 0.
	Priority int `toml:"priority"`
	// LimitRPM and LimitTPM are the account's requests and tokens per minute;
	// 0 means unknown or unlimited.
	LimitRPM int `toml:"limit_rpm"`
	LimitTPM int `toml:"limit_tpm"`
	// MaxConcurrent caps the requests in flight to this backend; >= 1,
	// default 5.
	MaxConcurrent int `toml:"max_concurrent"`
	// LimitScope names the rate limit this backend spends when the daemon
	// shares limits ([shared]): backends of every host with the same scope
	// share one budget. Default: the base URL, the key and the models, as
	// OpenAI limits a project per model and Azure a deployment. When set,
	// 1 to 128 bytes without white space or braces.
	LimitScope string `toml:"limit_scope"`

	// Key is the resolved API key, filled by [Load], [FromEnv] and
	// [Config.Resolve]; "" for a backend without a key.
	Key Secret `toml:"-"`
}

// Serves reports whether b serves model: a model listed in Models or, for an
// azure backend with an empty Models and a non-empty ModelMap, a ModelMap
// key; any model when both are empty.
func (b Backend) Serves(model string) bool {
	if len(b.Models) > 0 {
		return slices.Contains(b.Models, model)
	}
	if b.Type == TypeAzure && len(b.ModelMap) > 0 {
		_, ok := b.ModelMap[model]
		return ok
	}
	return true
}

// Deployment returns the name to send upstream for model: for an azure
// backend the ModelMap entry when there is one, otherwise model itself. It
// reads only Type and ModelMap (a pointer receiver, so that a call does not
// copy, and so read, the fields a reload retunes on a live backend).
func (b *Backend) Deployment(model string) string {
	if b.Type == TypeAzure {
		if d, ok := b.ModelMap[model]; ok {
			return d
		}
	}
	return model
}

// KeySource says where b's key comes from, for display: "env NAME",
// "file PATH", "api_key" or "none". It never contains the key.
func (b Backend) KeySource() string {
	switch {
	case b.APIKeyEnv != "":
		return "env " + b.APIKeyEnv
	case b.APIKeyFile != "":
		return "file " + b.APIKeyFile
	case b.APIKey != "":
		return "api_key"
	}
	return "none"
}

// LogValue shows b in logs by name, type, URL and key source: never the
// key, nor the model lists.
func (b Backend) LogValue() slog.Value {
	u := b.BaseURL
	if p, err := url.Parse(u); err == nil && p.User != nil {
		u = p.Redacted()
	}
	return slog.GroupValue(
		slog.String("name", b.Name),
		slog.String("type", b.Type),
		slog.String("base_url", u),
		slog.String("key", b.KeySource()),
	)
}

// Backend returns the backend called name.
func (c *Config) Backend(name string) (*Backend, bool) {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i], true
		}
	}
	return nil, false
}

// DefaultPath returns the default config file:
// $XDG_CONFIG_HOME/lbgpt/lbgpt.toml, else ~/.config/lbgpt/lbgpt.toml.
func DefaultPath() string {
	return defaultPath(getenv(nil))
}

func defaultPath(env func(string) string) string {
	if x := env("XDG_CONFIG_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "lbgpt", "lbgpt.toml")
	}
	if h := env("HOME"); h != "" {
		return filepath.Join(h, ".config", "lbgpt", "lbgpt.toml")
	}
	return filepath.Join("~", ".config", "lbgpt", "lbgpt.toml")
}
