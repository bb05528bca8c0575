package config

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Limits checked by validation.
const (
	maxNameLen         = 64
	maxSocketPath      = 107 // sun_path holds 108 bytes, one for the NUL
	minMaxMessageBytes = 4 << 10
	maxMaxMessageBytes = 1 << 30
	maxMaxAttempts     = 100
)

var (
	validName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	// validEnv is deliberately upper case: an Azure key is 32 lower-case
	// hex digits and would otherwise pass for a variable name, to be
	// printed back in "variable ... is not set".
	validEnv = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	// validGroup is a POSIX-portable group name.
	validGroup = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)
)

// setDefaults fills what the file left out; raw is the file decoded
// generically, to tell an absent key from an explicit zero.
func setDefaults(c *Config, raw map[string]any) {
	d, _ := raw["daemon"].(map[string]any)
	if _, ok := d["request_timeout"]; !ok {
		c.Daemon.RequestTimeout.Duration = DefaultRequestTimeout
	}
	if _, ok := d["max_attempts"]; !ok {
		c.Daemon.MaxAttempts = DefaultMaxAttempts
	}
	if _, ok := d["max_message_bytes"]; !ok {
		c.Daemon.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if _, ok := d["drain_timeout"]; !ok {
		c.Daemon.DrainTimeout.Duration = DefaultDrainTimeout
	}
	if _, ok := d["stream_idle_timeout"]; !ok {
		c.Daemon.StreamIdleTimeout.Duration = DefaultStreamIdle
	}
	if h, _ := raw["http"].(map[string]any); h["max_body_bytes"] == nil {
		c.HTTP.MaxBodyBytes = DefaultMaxBodyBytes
	}
	bal, _ := raw["balance"].(map[string]any)
	c.Balance.setDefaults(bal)
	cache, _ := raw["cache"].(map[string]any)
	c.Cache.setDefaults(cache)
	shared, _ := raw["shared"].(map[string]any)
	c.Shared.setDefaults(shared)
	setSpendDefaults(c, raw)
	for i := range c.Backends {
		m := rawBackend(raw, i)
		b := &c.Backends[i]
		if _, ok := m["weight"]; !ok {
			b.Weight = DefaultWeight
		}
		if _, ok := m["max_concurrent"]; !ok {
			b.MaxConcurrent = DefaultMaxConcurrent
		}
		b.setTypeDefaults()
	}
}

// rawBackend returns the i-th [[backend]] table of raw, the file decoded
// generically; nil when there is none.
func rawBackend(raw map[string]any, i int) map[string]any {
	return rawElem(raw["backend"], i)
}

// rawElem returns the i-th table of an array of tables decoded
// generically; nil when there is none.
func rawElem(array any, i int) map[string]any {
	switch v := array.(type) {
	case []map[string]any:
		if i < len(v) {
			return v[i]
		}
	case []any:
		if i < len(v) {
			m, _ := v[i].(map[string]any)
			return m
		}
	}
	return nil
}

// setDefaults fills the [balance] settings the file leaves out; set holds the
// keys it has.
func (b *Balance) setDefaults(set map[string]any) {
	if _, ok := set["strategy"]; !ok {
		b.Strategy = DefaultStrategy
	}
	if _, ok := set["backoff_base"]; !ok {
		b.BackoffBase.Duration = DefaultBackoffBase
	}
	if _, ok := set["backoff_max"]; !ok {
		b.BackoffMax.Duration = DefaultBackoffMax
	}
	if _, ok := set["reprobe"]; !ok {
		b.Reprobe.Duration = DefaultReprobe
	}
	if _, ok := set["header_timeout"]; !ok {
		b.HeaderTimeout.Duration = DefaultHeaderTimeout
	}
}

// setDefaults fills the [cache] settings the file leaves out; set holds the
// keys it has.
func (c *Cache) setDefaults(set map[string]any) {
	if _, ok := set["enabled"]; !ok {
		c.Enabled = true
	}
	if _, ok := set["max_bytes"]; !ok {
		c.MaxBytes = DefaultCacheMaxBytes
	}
	if c.Embedder == "" {
		c.Embedder = DefaultEmbedder
	}
	if c.EmbeddingModel == "" {
		c.EmbeddingModel = DefaultEmbeddingModel
	}
}

func (ck *checker) validateCache(c *Cache) {
	at := func(key string) []seg { return []seg{{"cache", -1}, {key, -1}} }
	if c.Path != "" && !filepath.IsAbs(c.Path) {
		ck.errorf(at("path"), "cache: path must be an absolute path")
	}
	if c.TTL.Duration < 0 {
		ck.errorf(at("ttl"), "cache: ttl must not be negative (0 keeps answers forever)")
	}
	if c.MaxBytes < 0 {
		ck.errorf(at("max_bytes"), "cache: max_bytes must not be negative (0 is no cap)")
	}
	switch c.Semantic {
	case "", SemanticUserOnly, SemanticAll, SemanticSystemOnly:
	default:
		ck.errorf(at("semantic"), "cache: semantic must be \"\" (off), %q, %q or %q, not %q", SemanticUserOnly, SemanticAll, SemanticSystemOnly, c.Semantic)
	}
	switch c.Embedder {
	case EmbedderLocal, EmbedderBackend:
	default:
		ck.errorf(at("embedder"), "cache: embedder must be %q or %q, not %q", EmbedderLocal, EmbedderBackend, c.Embedder)
	}
}

func (ck *checker) validateBalance(b *Balance) {
	at := func(key string) []seg { return []seg{{"balance", -1}, {key, -1}} }
	switch b.Strategy {
	case StrategyWeighted, StrategyMaxHeadroom, StrategyPriority:
	default:
		ck.errorf(at("strategy"), "balance: strategy must be %q, %q or %q, not %q", StrategyWeighted, StrategyMaxHeadroom, StrategyPriority, b.Strategy)
	}
	if b.BackoffBase.Duration <= 0 {
		ck.errorf(at("backoff_base"), "balance: backoff_base must be positive, not %q", b.BackoffBase.Duration)
	}
	if b.BackoffMax.Duration < b.BackoffBase.Duration {
		ck.errorf(at("backoff_max"), "balance: backoff_max (%s) must not be less than backoff_base (%s)", b.BackoffMax.Duration, b.BackoffBase.Duration)
	}
	if b.Reprobe.Duration <= 0 {
		ck.errorf(at("reprobe"), "balance: reprobe must be positive, not %q", b.Reprobe.Duration)
	}
}

// setTypeDefaults fills BaseURL and APIVersion when the type has a default.
func (b *Backend) setTypeDefaults() {
	if b.Type == TypeOpenAI && b.BaseURL == "" {
		b.BaseURL = DefaultOpenAIBaseURL
	}
	if b.Type == TypeAzure && b.APIVersion == "" {
		b.APIVersion = DefaultAzureAPIVersion
	}
}

// validate checks c after the defaults are set, and trims the trailing
// slash of each base_url.
func (ck *checker) validate(c *Config) {
	ck.validateDaemon(&c.Daemon)
	ck.validateBalance(&c.Balance)
	ck.validateCache(&c.Cache)
	ck.validateHTTP(&c.HTTP, &c.Daemon)
	ck.validateShared(&c.Shared)
	ck.validateBudget(&c.Budget)
	ck.validatePrices(c.Prices)
	if len(c.Backends) == 0 {
		ck.errorf(nil, "no backends: add a [[backend]] table (see lbgpt.toml.example)")
	}
	seen := map[string]int{} // name -> index
	for i := range c.Backends {
		b := &c.Backends[i]
		ck.validateBackend(b, i)
		if b.Name == "" {
			continue
		}
		if j, dup := seen[b.Name]; dup {
			at := fmt.Sprintf("backend #%d", j+1)
			if l := ck.line(seg{"backend", j}); l > 0 {
				at = fmt.Sprintf("the backend at line %d", l)
			}
			ck.errorf(bpath(i, "name"), "backend %q: name is already used by %s", b.Name, at)
			continue
		}
		seen[b.Name] = i
	}
}

func (ck *checker) validateDaemon(d *Daemon) {
	at := func(key string) []seg { return []seg{{"daemon", -1}, {key, -1}} }
	if msg := socketProblem(d.Socket); msg != "" {
		ck.errorf(at("socket"), "daemon: %s", msg)
	}
	if d.RequestTimeout.Duration <= 0 {
		ck.errorf(at("request_timeout"), "daemon: request_timeout must be positive, not %q", d.RequestTimeout.Duration)
	}
	if d.MaxAttempts < 1 || d.MaxAttempts > maxMaxAttempts {
		ck.errorf(at("max_attempts"), "daemon: max_attempts must be from 1 to %d, not %d", maxMaxAttempts, d.MaxAttempts)
	}
	if d.DrainTimeout.Duration < 0 {
		ck.errorf(at("drain_timeout"), "daemon: drain_timeout must not be negative, not %q", d.DrainTimeout.Duration)
	}
	if d.StreamIdleTimeout.Duration < 0 {
		ck.errorf(at("stream_idle_timeout"), "daemon: stream_idle_timeout must not be negative, not %q", d.StreamIdleTimeout.Duration)
	}
	if d.SocketGroup != "" && !validGroup.MatchString(d.SocketGroup) {
		ck.errorf(at("socket_group"), "daemon: socket_group %q is not a group name", d.SocketGroup)
	}
	if d.MaxMessageBytes < minMaxMessageBytes || d.MaxMessageBytes > maxMaxMessageBytes {
		ck.errorf(at("max_message_bytes"), "daemon: max_message_bytes must be from %d (4 KiB) to %d (1 GiB), not %d",
			minMaxMessageBytes, maxMaxMessageBytes, d.MaxMessageBytes)
	}
}

// socketProblem explains what is wrong with a Unix socket path ("" is
// none), or returns "".
func socketProblem(p string) string {
	switch {
	case p == "":
	case !filepath.IsAbs(p):
		return "socket must be an absolute path"
	case len(p) > maxSocketPath:
		return fmt.Sprintf("socket path is %d bytes long; a Unix socket path can have at most %d", len(p), maxSocketPath)
	}
	return ""
}

// bpath is the path of key in the i-th backend.
func bpath(i int, key string) []seg {
	return []seg{{"backend", i}, {key, -1}}
}

// label names a backend in errors: `backend "openai"`, or `backend #2`
// when it has no name.
func (b *Backend) label(i int) string {
	if b.Name == "" {
		return fmt.Sprintf("backend #%d", i+1)
	}
	return fmt.Sprintf("backend %q", b.Name)
}

func (ck *checker) validateBackend(b *Backend, i int) {
	at := func(key string) []seg { return bpath(i, key) }
	bad := func(key, format string, args ...any) {
		ck.errorf(at(key), b.label(i)+": "+format, args...)
	}

	switch {
	case b.Name == "":
		bad("name", "name is required")
	case len(b.Name) > maxNameLen:
		bad("name", "name is longer than %d bytes", maxNameLen)
	case !validName.MatchString(b.Name):
		bad("name", `name must be lower-case letters, digits, ".", "_" and "-", starting with a letter or digit`)
	}

	known := true
	switch b.Type {
	case TypeOpenAI, TypeAzure, TypeOpenAICompatible:
	case "":
		known = false
		bad("type", `type is required: "openai", "azure" or "openai-compatible"`)
	default:
		known = false
		bad("type", `unknown type %q: use "openai", "azure" or "openai-compatible"`, b.Type)
	}

	// The key: by variable, by file or literal; never more than one.
	n := 0
	for _, s := range []string{b.APIKeyEnv, b.APIKeyFile, string(b.APIKey)} {
		if s != "" {
			n++
		}
	}
	switch {
	case n > 1:
		bad("api_key_env", "set only one of api_key_env, api_key_file and api_key")
	case n == 0 && known && b.Type != TypeOpenAICompatible:
		bad("name", "type %q needs an API key: set api_key_env (or api_key_file)", b.Type)
	}
	if b.APIKeyEnv != "" && !validEnv.MatchString(b.APIKeyEnv) {
		// Not quoted back: it may be the key itself, put in the wrong place.
		bad("api_key_env", `api_key_env must be the name of an environment variable (A-Z, 0-9 and _), such as "OPENAI_API_KEY", not the key itself`)
	}
	if b.APIKeyFile != "" && !strings.HasPrefix(b.APIKeyFile, "/") && !strings.HasPrefix(b.APIKeyFile, "~/") {
		bad("api_key_file", `api_key_file must be an absolute path or start with "~/"`)
	}

	// base_url: openai has a default (set already); the others need one.
	switch {
	case b.BaseURL == "" && b.Type == TypeAzure:
		bad("base_url", `base_url is required for type "azure": the resource endpoint, such as "https://RESOURCE.openai.azure.com"`)
	case b.BaseURL == "" && b.Type == TypeOpenAICompatible:
		bad("base_url", `base_url is required for type "openai-compatible", such as "http://localhost:11434/v1"`)
	case b.BaseURL != "":
		if msg := checkURL(b.BaseURL); msg != "" {
			bad("base_url", "base_url %s", msg)
		} else {
			b.BaseURL = strings.TrimRight(b.BaseURL, "/")
		}
	}

	if b.Type != TypeAzure && known {
		if b.APIVersion != "" {
			bad("api_version", `api_version is only valid for type "azure"`)
		}
		if len(b.ModelMap) > 0 {
			bad("model_map", `model_map is only valid for type "azure": other types get the model name as sent`)
		}
	}
	for _, m := range sortedKeys(b.ModelMap) {
		switch {
		case m == "":
			bad("model_map", "model_map has an empty model name")
		case b.ModelMap[m] == "":
			bad("model_map", "model_map entry %q has an empty deployment name", m)
		}
	}
	seen := map[string]bool{}
	for _, m := range b.Models {
		switch {
		case m == "":
			bad("models", "models has an empty model name")
		case seen[m]:
			bad("models", "models lists %q twice", m)
		}
		seen[m] = true
	}

	if !(b.Weight > 0) || math.IsInf(b.Weight, 0) {
		bad("weight", "weight must be a positive number, not %v", b.Weight)
	}
	if b.LimitRPM < 0 {
		bad("limit_rpm", "limit_rpm must be 0 (unknown) or more, not %d", b.LimitRPM)
	}
	if b.LimitTPM < 0 {
		bad("limit_tpm", "limit_tpm must be 0 (unknown) or more, not %d", b.LimitTPM)
	}
	if b.MaxConcurrent < 1 {
		bad("max_concurrent", "max_concurrent must be 1 or more, not %d", b.MaxConcurrent)
	}
	_, scopeSet := rawBackend(ck.raw, i)["limit_scope"]
	ck.validateLimitScope(b, i, scopeSet)
}

// checkURL returns what is wrong with a base URL, or "". It never quotes the
// URL, which may hold a password.
func checkURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
		return `must be an absolute http:// or https:// URL, such as "https://api.openai.com/v1"`
	case u.User != nil:
		return "must not hold a user or password: give the key with api_key_env or api_key_file"
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "must not have a query or a fragment"
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
