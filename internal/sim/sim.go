// Package sim is a simulated upstream: a real HTTP handler that speaks the
// OpenAI and Azure OpenAI wire formats well enough to stand in for them in
// tests, demos and benchmarks. It is not an API and answers no real question.
//
// Use it with httptest for unit tests:
//
//	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: "sk-a", RPM: 60}}})
//	ts := httptest.NewServer(s)
//	t.Cleanup(ts.Close)
//	t.Cleanup(s.Close) // runs first: releases hung requests so ts.Close can return
//
// The OpenAI base URL is ts.URL+"/v1" (key sent as "Authorization: Bearer
// KEY"); the Azure endpoint is ts.URL (paths under /openai/deployments/...,
// "?api-version=" required, key sent as "api-key: KEY").
//
// # What it answers
//
// Chat completions are deterministic: the text is derived from a hash of the
// messages, starts with an echo of the last user message
// (`Simulated answer to "first eight words…".`) and goes on with filler words
// to a length between 16 and 96 completion tokens, capped by max_tokens or
// max_completion_tokens (then finish_reason is "length"). Token counts come
// from package tokens and match the text exactly. Streaming follows OpenAI's
// server-sent-event framing, including the usage chunk and "data: [DONE]".
// Embeddings are deterministic unit vectors, one per input (a string, an
// array of strings, or token ids), 1536 dimensions (3072 for
// text-embedding-3-large) unless dimensions asks for fewer; encoding_format
// "base64" is honoured. A model whose name contains "embed" is an embeddings
// model: chat refuses it with 404 and embeddings refuse any other with 400.
// Only one choice is returned whatever n asks; tools are accepted and
// answered with text; only role, name and content count as prompt tokens.
// Timestamps ("created") come from Options.Now.
//
// Errors use OpenAI's body shape {"error":{"message","type","param","code"}}
// on both wires, including 401 for a missing or unknown key, except the
// Azure-only answers (missing api-version: 400, unknown deployment: 404),
// which use Azure's {"error":{"code","message"}}. Order of checks: path
// (404, or 405 for a wrong method), key (401), api-version (400), request
// body (400), model or deployment (404), fault, rate limits (429).
//
// # Latency
//
// A non-stream chat answer waits TTFT + (n-1)×PerToken for n completion
// tokens. A stream sends its first chunk (the assistant role) at once, the
// first content chunk after TTFT, and each later content chunk after
// PerToken for every token it carries (chunks are words, one to a few
// tokens). Embeddings wait TTFT; model listings do not wait. A wait ends at
// once when the client goes away (the handler returns) or when Close is
// called (the answer is then sent without further delay).
//
// # Rate limits
//
// Each account has two token buckets, requests and tokens, of capacity RPM
// and TPM, refilling continuously at a full bucket per minute (tracked to the
// millisecond, read from Options.Now so tests can drive a fake clock). A chat
// request costs 1 request and prompt tokens plus max_completion_tokens (or
// max_tokens, or the real completion length when neither is set), charged at
// admission and never refunded; an embeddings request costs its input tokens;
// model listings cost nothing. A request that does not fit gets 429 with
// OpenAI's body and Retry-After, retry-after-ms (and x-ms-retry-after-ms on
// Azure paths), and charges nothing. A request costing more tokens than the
// whole TPM capacity can never succeed: it gets 429 "Request too large" (as
// OpenAI answers) without any Retry-After header, since waiting cannot help.
// Responses to a valid key on a limited account carry the x-ratelimit-*
// headers of each limited dimension.
//
// # Faults
//
// Faults are drawn per request, after authentication and request validation,
// from a PRNG per account seeded with Options.Seed: one uniform draw is
// compared against the cumulative probabilities in the order Error500,
// Error502, Error503, Reset, Hang, Malformed, StreamBreak (so if they add up
// to more than 1 the later ones are starved). 5xx, reset and hang faults
// happen before rate limiting and charge nothing; malformed and stream-break
// faults happen to an admitted, charged answer. StreamBreak only affects
// streaming chat requests. With concurrent requests, which request draws
// which number depends on arrival order.
//
// # Records
//
// Log returns every request in order of arrival, including requests still in
// progress (with Status 0 until they finish). It keeps the last
// Options.LogLimit records (default 1,000,000). Status 0 in a finished record
// means no HTTP response was sent: a reset, a hang, or a client that went away
// before the answer. A record is complete before its answer reaches the
// client, so a test may read Log as soon as it has a response. A record
// takes about 250 bytes. Keys never appear in records, logs or responses.
//
// A Server is safe for concurrent use; its zero value is not usable, call New.
package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Faults are per-request probabilities, each in [0, 1], of injected failures.
// The zero value injects none. The JSON and TOML names are those of the
// lbgpt-sim control endpoint and config file.
type Faults struct {
	// Error500, Error502 and Error503 answer that status with an
	// OpenAI-style error body of type "server_error".
	Error500 float64 `json:"error_500" toml:"error_500"`
	Error502 float64 `json:"error_502" toml:"error_502"`
	Error503 float64 `json:"error_503" toml:"error_503"`
	// Reset closes the connection without answering, with a TCP reset.
	Reset float64 `json:"reset" toml:"reset"`
	// Hang never answers: the handler blocks until the client goes away or
	// Close is called, which closes the connection.
	Hang float64 `json:"hang" toml:"hang"`
	// Malformed answers 200 with a body that is not valid JSON (for a
	// stream, a first event whose data is not valid JSON, then [DONE]).
	Malformed float64 `json:"malformed" toml:"malformed"`
	// StreamBreak, for stream=true chat requests only, sends about half the
	// content chunks and then closes the connection, without [DONE].
	StreamBreak float64 `json:"stream_break" toml:"stream_break"`
}

// Account is one simulated API account.
type Account struct {
	Name     string        // shows in records and logs; never the key. Empty: "account-N", N counting from 1
	Key      string        // accepted as "Authorization: Bearer KEY" (OpenAI) or "api-key: KEY" (Azure)
	RPM, TPM int           // requests and tokens per minute; 0 = unlimited
	TTFT     time.Duration // time to first token
	PerToken time.Duration // per completion token after the first
	Faults   Faults
}

// Options configure a Server. The zero value serves DefaultModels with no
// accounts, so every request is unauthorized.
type Options struct {
	Accounts    []Account
	Models      []string          // models served; nil = DefaultModels
	Deployments map[string]string // Azure deployment name -> model; nil = a deployment is named after the served model it runs
	Seed        int64             // PRNG seed for faults
	Now         func() time.Time  // clock for rate limits and records; nil = time.Now
	LogLimit    int               // records kept by Log; 0 = 1,000,000, negative = unbounded
	Logger      *slog.Logger      // one debug line per request; nil = no logging
}

// DefaultModels are the models served when Options.Models is nil.
var DefaultModels = []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "text-embedding-3-small"}

const defaultLogLimit = 1_000_000

// Wire values of Record.Wire.
const (
	WireOpenAI = "openai"
	WireAzure  = "azure"
)

// Fault values of Record.Fault.
const (
	Fault500         = "500"
	Fault502         = "502"
	Fault503         = "503"
	FaultReset       = "reset"
	FaultHang        = "hang"
	FaultMalformed   = "malformed"
	FaultStreamBreak = "stream_break"
)

// Record is what the server saw of one request and how it answered.
type Record struct {
	Time             time.Time `json:"time"`
	Account          string    `json:"account"` // account name; "" for no or unknown key
	Wire             string    `json:"wire"`    // "openai" | "azure" ("" for a path under neither)
	Path             string    `json:"path"`
	Model            string    `json:"model"` // the model served (on Azure, the deployment's model)
	Status           int       `json:"status"`
	Stream           bool      `json:"stream"`
	PromptTokens     int       `json:"prompt_tokens"`
	CompletionTokens int       `json:"completion_tokens"`
	Charged          int       `json:"charged"`     // tokens charged to the TPM bucket at admission, limited or not
	BodySHA256       string    `json:"body_sha256"` // hex SHA-256 of the request body
	Fault            string    `json:"fault"`       // "" or one of the Fault* values
}

// AccountStats are counters for one account.
type AccountStats struct {
	Requests         int `json:"requests"`
	OK               int `json:"ok"` // 2xx answers without an injected fault
	RateLimited      int `json:"rate_limited"`
	Unauthorized     int `json:"unauthorized"`
	Faults           int `json:"faults"`
	PromptTokens     int `json:"prompt_tokens"`     // of OK answers
	CompletionTokens int `json:"completion_tokens"` // of OK answers
}

// Server is the simulated upstream, an http.Handler.
type Server struct {
	now         func() time.Time
	logger      *slog.Logger
	byKey       map[string]*account
	byName      map[string]*account
	models      map[string]bool
	modelList   []byte // body of the model listing
	deployments map[string]string
	anon        counters // requests with no or unknown key
	journal     journal
	replies     replyCache
	done        chan struct{} // closed by Close
	closeOnce   sync.Once
	seq         atomic.Uint64 // request ids
}

var _ http.Handler = (*Server)(nil)

type account struct {
	Account
	faults atomic.Pointer[Faults]
	stats  counters

	mu  sync.Mutex // guards rng and lim
	rng *rand.Rand
	lim limits
}

type counters struct {
	requests, ok, rateLimited, unauthorized, faults, prompt, completion atomic.Int64
}

// Validate reports whether o can make a Server: every account needs a key,
// names (after defaulting) and keys must be unique, limits and latencies must
// not be negative and fault probabilities must lie in [0, 1].
func (o Options) Validate() error {
	names := map[string]bool{}
	keys := map[string]bool{}
	for i, a := range o.Accounts {
		name := accountName(a.Name, i)
		switch {
		case names[name]:
			return fmt.Errorf("account %q: duplicate name", name)
		case a.Key == "":
			return fmt.Errorf("account %q: empty key", name)
		case keys[a.Key]:
			return fmt.Errorf("account %q: key already used by another account", name)
		case a.RPM < 0 || a.TPM < 0:
			return fmt.Errorf("account %q: negative rate limit", name)
		case a.TTFT < 0 || a.PerToken < 0:
			return fmt.Errorf("account %q: negative latency", name)
		}
		if err := a.Faults.validate(); err != nil {
			return fmt.Errorf("account %q: %w", name, err)
		}
		names[name], keys[a.Key] = true, true
	}
	for d, m := range o.Deployments {
		if d == "" || m == "" || strings.Contains(d, "/") {
			return fmt.Errorf("deployment %q -> %q: empty name or model, or a slash in the name", d, m)
		}
	}
	return nil
}

func accountName(name string, i int) string {
	if name == "" {
		return "account-" + strconv.Itoa(i+1)
	}
	return name
}

func (f Faults) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"error_500", f.Error500}, {"error_502", f.Error502}, {"error_503", f.Error503},
		{"reset", f.Reset}, {"hang", f.Hang}, {"malformed", f.Malformed}, {"stream_break", f.StreamBreak},
	} {
		if !(p.v >= 0 && p.v <= 1) { // also rejects NaN
			return fmt.Errorf("fault %s: probability %v outside [0, 1]", p.name, p.v)
		}
	}
	return nil
}

func (f *Faults) any() bool {
	return f.Error500+f.Error502+f.Error503+f.Reset+f.Hang+f.Malformed+f.StreamBreak > 0
}

// New returns a Server for opts. It panics if opts.Validate fails: options
// are written by programmers, and callers reading them from a file should
// call Validate first.
func New(opts Options) *Server {
	if err := opts.Validate(); err != nil {
		panic("sim: invalid options: " + err.Error())
	}
	s := &Server{
		now:         opts.Now,
		logger:      opts.Logger,
		byKey:       make(map[string]*account, len(opts.Accounts)),
		byName:      make(map[string]*account, len(opts.Accounts)),
		models:      map[string]bool{},
		deployments: opts.Deployments,
		done:        make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.journal.limit = opts.LogLimit
	if s.journal.limit == 0 {
		s.journal.limit = defaultLogLimit
	}
	for i, a := range opts.Accounts {
		a.Name = accountName(a.Name, i)
		acct := &account{
			Account: a,
			rng:     rand.New(rand.NewPCG(uint64(opts.Seed), fnv64(a.Name))),
			lim:     limits{req: bucket{max: int64(a.RPM)}, tok: bucket{max: int64(a.TPM)}},
		}
		f := a.Faults
		acct.faults.Store(&f)
		s.byKey[a.Key] = acct
		s.byName[a.Name] = acct
	}
	models := opts.Models
	if models == nil {
		models = DefaultModels
	}
	for _, m := range models {
		if m != "" {
			s.models[m] = true
		}
	}
	s.modelList = modelListBody(models)
	return s
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// SetFaults replaces the fault probabilities of the named account; requests
// already past their draw are not affected.
func (s *Server) SetFaults(accountName string, f Faults) error {
	a, ok := s.byName[accountName]
	if !ok {
		return fmt.Errorf("set faults: unknown account %q", accountName)
	}
	if err := f.validate(); err != nil {
		return fmt.Errorf("set faults for %q: %w", accountName, err)
	}
	a.faults.Store(&f)
	return nil
}

// Log returns a copy of the records of the requests received, oldest first,
// at most Options.LogLimit of them (the most recent).
func (s *Server) Log() []Record { return s.journal.records() }

// Stats returns the counters of every account by name, and under "" those of
// requests with no or an unknown key.
func (s *Server) Stats() map[string]AccountStats {
	m := make(map[string]AccountStats, len(s.byName)+1)
	for name, a := range s.byName {
		m[name] = a.stats.snapshot()
	}
	m[""] = s.anon.snapshot()
	return m
}

func (c *counters) snapshot() AccountStats {
	return AccountStats{
		Requests:         int(c.requests.Load()),
		OK:               int(c.ok.Load()),
		RateLimited:      int(c.rateLimited.Load()),
		Unauthorized:     int(c.unauthorized.Load()),
		Faults:           int(c.faults.Load()),
		PromptTokens:     int(c.prompt.Load()),
		CompletionTokens: int(c.completion.Load()),
	}
}

// Close releases every hung request (their connections are closed without an
// answer) and cuts short the simulated latency of requests in flight, which
// then answer at once. Requests arriving after Close are still served, except
// that hangs end at once. Close does not close any listener and is safe to
// call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// route is what a request path asks for.
type route struct {
	wire       string
	endpoint   string // endpointChat, endpointEmbed, endpointModels or ""
	method     string
	deployment string // Azure only
}

const (
	endpointChat   = "chat"
	endpointEmbed  = "embeddings"
	endpointModels = "models"
)

func parseRoute(path string) route {
	if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
		r := route{wire: WireOpenAI}
		switch rest {
		case "chat/completions":
			r.endpoint, r.method = endpointChat, http.MethodPost
		case "embeddings":
			r.endpoint, r.method = endpointEmbed, http.MethodPost
		case "models":
			r.endpoint, r.method = endpointModels, http.MethodGet
		}
		return r
	}
	rest, ok := strings.CutPrefix(path, "/openai/")
	if !ok {
		return route{}
	}
	r := route{wire: WireAzure}
	if rest == "models" {
		r.endpoint, r.method = endpointModels, http.MethodGet
		return r
	}
	rest, ok = strings.CutPrefix(rest, "deployments/")
	if !ok {
		return r
	}
	dep, op, ok := strings.Cut(rest, "/")
	if !ok || dep == "" {
		return r
	}
	r.deployment = dep
	switch op {
	case "chat/completions":
		r.endpoint, r.method = endpointChat, http.MethodPost
	case "embeddings":
		r.endpoint, r.method = endpointEmbed, http.MethodPost
	}
	return r
}

// call is the state of one request as it is served.
type call struct {
	s     *Server
	w     http.ResponseWriter
	r     *http.Request
	route route
	acct  *account // nil for no or unknown key
	rec   Record
	seq   int64 // position in the journal
	body  []byte
	fault string // drawn fault, acted on at its stage

	limitsSent bool // the x-ratelimit-* headers are set
	start      time.Time
}

const maxBody = 32 << 20

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP answers one request; see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: w, r: r, route: parseRoute(r.URL.Path), start: time.Now()}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bodyPool.Put(buf)
		}
	}()
	_, readErr := buf.ReadFrom(io.LimitReader(r.Body, maxBody+1))
	c.body = buf.Bytes()
	sum := sha256.Sum256(c.body)

	c.acct = s.authenticate(r, c.route.wire)
	c.rec = Record{
		Time:       s.now(),
		Wire:       c.route.wire,
		Path:       r.URL.Path,
		BodySHA256: hex.EncodeToString(sum[:]),
	}
	if c.acct != nil {
		c.rec.Account = c.acct.Name
	}
	c.seq = s.journal.add(c.rec)
	defer c.finish()

	switch {
	case c.route.endpoint == "":
		c.fail(http.StatusNotFound, "Invalid URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
		return
	case r.Method != c.route.method:
		c.fail(http.StatusMethodNotAllowed, "Invalid method for URL ("+r.Method+" "+r.URL.Path+")", "invalid_request_error", "", "")
		return
	case c.acct == nil:
		c.fail(http.StatusUnauthorized, "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", "invalid_request_error", "", "invalid_api_key")
		return
	case c.route.wire == WireAzure && r.URL.Query().Get("api-version") == "":
		c.failAzure(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return
	case readErr != nil:
		c.fail(http.StatusBadRequest, "could not read the request body", "invalid_request_error", "", "")
		return
	case len(c.body) > maxBody:
		c.fail(http.StatusRequestEntityTooLarge, "request body larger than 32 MiB", "invalid_request_error", "", "")
		return
	}
	switch c.route.endpoint {
	case endpointChat:
		c.chat()
	case endpointEmbed:
		c.embeddings()
	case endpointModels:
		c.listModels()
	}
}

// authenticate returns the account whose key the request carries in the
// header of its wire, or nil.
func (s *Server) authenticate(r *http.Request, wire string) *account {
	var key string
	if wire == WireAzure {
		key = r.Header.Get("Api-Key")
	} else {
		h := r.Header.Get("Authorization")
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			key = h[7:]
		}
	}
	if key == "" {
		return nil
	}
	return s.byKey[key]
}

// model resolves the model of a request: on Azure from the deployment in the
// path, on OpenAI from the body's model field. It answers the request and
// returns false when the model is missing or not served.
func (c *call) model(bodyModel string) (string, bool) {
	s := c.s
	if c.route.wire == WireAzure {
		m := c.route.deployment
		if s.deployments != nil {
			m = s.deployments[c.route.deployment]
		} else if !s.models[m] {
			m = ""
		}
		if m == "" {
			c.failAzure(http.StatusNotFound, "DeploymentNotFound", "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.")
			return "", false
		}
		c.rec.Model = m
		return m, true
	}
	if bodyModel == "" {
		c.fail(http.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", "", "")
		return "", false
	}
	c.rec.Model = bodyModel
	if !s.models[bodyModel] {
		c.fail(http.StatusNotFound, "The model `"+bodyModel+"` does not exist or you do not have access to it.", "invalid_request_error", "", "model_not_found")
		return "", false
	}
	return bodyModel, true
}

// drawFault draws this request's fault from the account's PRNG.
func (c *call) drawFault(stream bool) {
	a := c.acct
	f := a.faults.Load()
	if !f.any() {
		return
	}
	a.mu.Lock()
	u := a.rng.Float64()
	a.mu.Unlock()
	for _, p := range [...]struct {
		p     float64
		fault string
	}{
		{f.Error500, Fault500}, {f.Error502, Fault502}, {f.Error503, Fault503},
		{f.Reset, FaultReset}, {f.Hang, FaultHang}, {f.Malformed, FaultMalformed},
		{f.StreamBreak, FaultStreamBreak},
	} {
		if u < p.p {
			if p.fault != FaultStreamBreak || stream {
				c.fault = p.fault
			}
			return
		}
		u -= p.p
	}
}

// earlyFault acts on a drawn 5xx, reset or hang fault, before admission, and
// reports whether it did (the request is then over).
func (c *call) earlyFault() bool {
	switch c.fault {
	case Fault500:
		c.rec.Fault = c.fault
		c.fail(http.StatusInternalServerError, "The server had an error while processing your request. Sorry about that!", "server_error", "", "")
	case Fault502:
		c.rec.Fault = c.fault
		c.fail(http.StatusBadGateway, "Bad gateway.", "server_error", "", "")
	case Fault503:
		c.rec.Fault = c.fault
		c.fail(http.StatusServiceUnavailable, "The server is overloaded or not ready yet.", "server_error", "", "")
	case FaultReset:
		c.rec.Fault = c.fault
		c.cut(true)
	case FaultHang:
		c.rec.Fault = c.fault
		select {
		case <-c.r.Context().Done():
			return true // the client went away: nothing left to answer
		case <-c.s.done:
		}
		c.cut(false)
	default:
		return false
	}
	return true
}

// cut ends the request without a complete answer by closing its connection:
// with a TCP reset when reset is set and the connection allows, else with a
// plain close. Anything already written and flushed reaches the client.
func (c *call) cut(reset bool) {
	c.finish() // record before the panic below unwinds
	conn, _, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2, a recorder): let net/http abort it.
		panic(http.ErrAbortHandler)
	}
	if reset {
		if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = conn.Close()
}

// sleep waits d, or less if Close is called; it reports false if the client
// went away first.
func (c *call) sleep(d time.Duration) bool {
	if d <= 0 {
		return c.r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.s.done:
		return true
	case <-c.r.Context().Done():
		return false
	}
}

// finish records the outcome of the request, once.
func (c *call) finish() {
	if c.seq < 0 {
		return
	}
	s := c.s
	s.journal.set(c.seq, c.rec)
	c.seq = -1
	st := &s.anon
	if c.acct != nil {
		st = &c.acct.stats
	}
	st.requests.Add(1)
	switch {
	case c.rec.Fault != "":
		st.faults.Add(1)
	case c.rec.Status >= 200 && c.rec.Status < 300:
		st.ok.Add(1)
		st.prompt.Add(int64(c.rec.PromptTokens))
		st.completion.Add(int64(c.rec.CompletionTokens))
	case c.rec.Status == http.StatusTooManyRequests:
		st.rateLimited.Add(1)
	case c.rec.Status == http.StatusUnauthorized:
		st.unauthorized.Add(1)
	}
	if s.logger != nil {
		s.logger.Debug("request",
			"account", c.rec.Account, "wire", c.rec.Wire, "path", c.rec.Path, "model", c.rec.Model,
			"status", c.rec.Status, "stream", c.rec.Stream, "fault", c.rec.Fault,
			"prompt_tokens", c.rec.PromptTokens, "completion_tokens", c.rec.CompletionTokens,
			"duration", time.Since(c.start))
	}
}

// journal keeps the records, the last limit of them, in a ring.
type journal struct {
	limit int // 0 < limit, or negative for unbounded

	mu    sync.Mutex // guards recs and total
	recs  []Record   // ring once len(recs) == limit: record n is at n % limit
	total int64      // records ever added
}

func (j *journal) add(r Record) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := j.total
	j.total++
	if j.limit < 0 || len(j.recs) < j.limit {
		j.recs = append(j.recs, r)
	} else {
		j.recs[n%int64(j.limit)] = r
	}
	return n
}

func (j *journal) set(n int64, r Record) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if n < j.total-int64(len(j.recs)) {
		return // already dropped from the ring
	}
	if j.limit < 0 || len(j.recs) < j.limit {
		j.recs[n] = r
	} else {
		j.recs[n%int64(j.limit)] = r
	}
}

func (j *journal) records() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Record, 0, len(j.recs))
	if j.limit < 0 || len(j.recs) < j.limit {
		return append(out, j.recs...)
	}
	i := int(j.total % int64(j.limit)) // oldest
	out = append(out, j.recs[i:]...)
	return append(out, j.recs[:i]...)
}

// ceilDiv returns ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
