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
// # Routes
//
// OpenAI: POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models,
// POST /v1/responses, GET and DELETE /v1/responses/{id}, POST
// /v1/responses/{id}/cancel, GET /v1/responses/{id}/input_items, and the
// legacy POST /v1/completions and POST /v1/moderations. Azure: POST
// /openai/deployments/{deployment}/chat/completions and .../embeddings, GET
// /openai/models, and the Responses API twice: under /openai/v1/responses
// (api-version optional) and under /openai/responses (api-version
// required), each with the same {id} routes as OpenAI's. On Azure a
// Responses request's body names a deployment in its model field, resolved
// like the deployment of a chat path.
//
// # What it answers
//
// Chat completions are deterministic, unless they ask for an explicit
// temperature above 0: then, as a sampling model's, each answer has other
// filler words, length and id. The text is derived from a hash of the
// messages, starts with an echo of the last user message
// (`Simulated answer to "first eight words…".`) and goes on with filler words
// to a length between 16 and 96 completion tokens, capped by max_tokens or
// max_completion_tokens (then finish_reason is "length"). Token counts come
// from package tokens and match the text exactly. Streaming follows OpenAI's
// server-sent-event framing, including the usage chunk and "data: [DONE]".
// Every chat answer, plain or chunk, carries "service_tier":"default".
// Embeddings are deterministic unit vectors, one per input (a string, an
// array of strings, or token ids), 1536 dimensions (3072 for
// text-embedding-3-large) unless dimensions asks for fewer; encoding_format
// "base64" is honoured. A model whose name contains "embed" is an embeddings
// model: chat, Responses and completions refuse it with 404 and embeddings
// refuse any other with 400. Only one choice is returned whatever n asks;
// only role, name and content count as prompt tokens (tools and schemas are
// free). Timestamps ("created", "created_at") come from Options.Now.
//
// Chat options:
//
//   - logprobs: true (top_logprobs 0 to 20, else 400) gives each choice
//     "logprobs":{"content":[...],"refusal":null} with one entry per content
//     piece (a stream chunk's piece: a word with its leading space, or a
//     piece of a JSON document), whose token is the piece's exact text (the
//     tokens concatenate to the content), logprob -(i%7)/100 for the i-th
//     piece, bytes its UTF-8 bytes, and top_logprobs k entries: the piece
//     itself, then filler words each 1 less likely. In a stream each content
//     chunk carries the entry of its piece; role and finish chunks have
//     "logprobs":null, as do tool calls.
//   - tools with tool_choice "required" (the first function tool) or
//     {"type":"function","function":{"name":...}} answer with one call:
//     content null, tool_calls [{id "call_…", type "function", function
//     {name, arguments}}], finish_reason "tool_calls"; the arguments are an
//     instance of the function's parameters schema (below), "{}" without
//     one; completion tokens are those of the name and the arguments, never
//     capped. A stream sends the call's id, type and name with the role,
//     then the arguments in pieces, then the finish chunk. Once the messages
//     hold a tool (or function) message, the answer is text. tool_choice
//     without tools, or naming a function not among them, is a 400.
//   - response_format {"type":"json_schema","json_schema":{"schema":...}}
//     makes the content an instance of the schema; {"type":"json_object"}
//     makes it {"answer":"<the text>"}. Either is cut at the token cap like
//     text (and is then not valid JSON, as OpenAI's is not).
//
// Schema instances are deterministic: every property of an object, required
// or not, in the schema's order; "sim" for a string (or an example value for
// a date, date-time, email, uuid, uri… format, padded or cut to minLength
// and maxLength); the first enum value or the const; 1 for a number or
// integer, moved within minimum and maximum; true for a boolean; one item
// for an array (or its tuple, or minItems); the first branch of anyOf and
// oneOf; allOf merged; local $refs ("#/$defs/…", "#/definitions/…", "#")
// resolved; the non-null type of a nullable type array. Recursion is cut
// short (past a few levels arrays are empty and objects keep only their
// required properties; deeper still values are null), so any schema gives a
// bounded document, and nothing panics.
//
// The legacy POST /v1/completions answers {id "cmpl-…", object
// "text_completion", created, model, choices [{text, index, logprobs null,
// finish_reason}], usage} with one choice per prompt (a string, strings, or
// token ids), each the chat answer to that prompt as a user message, capped
// at max_tokens (default 16, as OpenAI's); any served chat model is
// accepted; stream: true is a 400. POST /v1/moderations answers {id
// "modr-…", model (the request's, default "omni-moderation-latest"), results
// [{flagged false, categories {}, category_scores {}}]}, one result per
// input string (one for an array of multi-modal parts), whatever the model.
//
// # Responses API
//
// POST /v1/responses takes model, input (a string, or an array of items:
// {role, content} messages with or without "type":"message", whose content
// is a string or parts of which input_text and output_text count and
// input_image and input_file are ignored; function_call_output and
// function_call items; items of other types are kept but ignored),
// instructions, max_output_tokens (below 16 is a 400, as OpenAI's),
// previous_response_id, store (default true), stream, background, tools,
// tool_choice, text, temperature, top_p, metadata, parallel_tool_calls,
// truncation, user; other fields are ignored. It answers a "response" object
// shaped like OpenAI's: id "resp_…", status "completed" (or "incomplete"
// with incomplete_details {reason "max_output_tokens"} when capped),
// created_at, model, output (one message item with one output_text part, or
// one function_call item), usage {input_tokens, input_tokens_details
// {cached_tokens 0}, output_tokens, output_tokens_details {reasoning_tokens
// 0}, total_tokens}, error null, and the request's settings echoed with
// OpenAI's defaults (text {"format":{"type":"text"}}, tool_choice "auto",
// tools [], temperature and top_p 1, truncation "disabled", metadata {},
// parallel_tool_calls true). There is no output_text field: SDKs compute it.
// background is accepted, answered at once, and shown as background: true.
//
// The text is made as a chat answer's, from the messages: the instructions
// (as a developer message), then the inputs and outputs of every earlier
// response of the previous_response_id chain, oldest first, then this
// input. Function call items count as assistant messages of their name and
// arguments, function_call_output items as tool messages. So answers differ
// turn by turn and depend on the chain, and input_tokens covers it all, as
// OpenAI bills it. Function tools ({"type":"function", name, parameters})
// with tool_choice "required" or {"type":"function","name":...} answer with
// a function_call item {id "fc_…", call_id "call_…", name, arguments,
// status}, unless the input holds a function_call_output; a tool_choice
// naming a function not among the tools is a 400. text.format json_schema
// and json_object work as chat's response_format.
//
// With stream: true the events are OpenAI's, each framed as "event:
// TYPE\ndata: JSON\n\n" with the type and a sequence_number counting from 0
// in the JSON, and no [DONE]: response.created and response.in_progress (the
// response in_progress, output empty, usage null), response.output_item.added,
// response.content_part.added, one response.output_text.delta per piece,
// response.output_text.done, response.content_part.done,
// response.output_item.done and response.completed with the whole response
// (response.incomplete when capped). A function call streams
// response.output_item.added, response.function_call_arguments.delta per
// piece, response.function_call_arguments.done and response.output_item.done
// instead.
//
// Unless store is false, a response is kept for its account when its answer
// is complete, before the client sees its end (a stream cut short, or a
// client gone before the answer, keeps nothing): GET
// /v1/responses/{id} returns it as it was answered; DELETE answers {"id",
// "object":"response.deleted","deleted":true} and forgets it; POST
// .../cancel answers 400 "Only responses created with background=true can
// be cancelled." except for a background response, which is returned as it
// is (already completed); GET .../input_items lists the request's input
// items, each with an id, newest first ({"object":"list","data",
// "first_id","last_id","has_more":false}; ?order=asc for oldest first). An
// id unknown to the account (another account's, deleted, or dropped) is a
// 404 "Response with id '…' not found."; an unknown previous_response_id a
// 400 with code "previous_response_not_found". A Server keeps at most
// 100,000 responses, dropping the oldest; what a chain needs of a dropped
// or deleted response stays as long as later responses chain to it. These
// endpoints cost nothing against the rate limits.
//
// # Errors
//
// Errors use OpenAI's body shape {"error":{"message","type","param","code"}}
// on both wires, including 401 for a missing or unknown key, except the
// Azure-only answers (missing api-version: 400, unknown deployment: 404),
// which use Azure's {"error":{"code","message"}}. Order of checks: path
// (404, or 405 for a wrong method), key (401), api-version (400), request
// body (400 when it is not JSON), model or deployment (404; for a stored
// response, its id), request fields (400), fault, rate limits (429).
//
// # Latency
//
// A non-stream chat, Responses or completions answer waits TTFT +
// (n-1)×PerToken for n completion tokens (the longest choice's, for
// completions). A stream sends its first chunk (the assistant role; for
// Responses, the events before the first delta) at once, the first content
// chunk after TTFT, and each later content chunk after PerToken for every
// token it carries (chunks are words or pieces of a JSON document, one to a
// few tokens). Embeddings and moderations wait TTFT; model listings and the
// stored-response endpoints do not wait. A wait ends at once when the client
// goes away (the handler returns) or when Close is called (the answer is
// then sent without further delay). Every 2xx answer has an
// openai-processing-ms header with its simulated latency in milliseconds
// (for a stream, the TTFT) as well as an x-request-id.
//
// # Rate limits
//
// Each account has two token buckets, requests and tokens, of capacity RPM
// and TPM, refilling continuously at a full bucket per minute (tracked to the
// millisecond, read from Options.Now so tests can drive a fake clock). A chat
// or Responses request costs 1 request and prompt tokens plus
// max_completion_tokens (or max_tokens, or max_output_tokens, or the real
// completion length when none is set), charged at admission and never
// refunded; a completions request likewise with its max_tokens (default 16)
// for every prompt; an embeddings request costs its input tokens; a
// moderations request 1 request and no tokens; model listings and stored
// responses cost nothing. A request that does not fit gets 429 with
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
// faults happen to an admitted, charged answer. Malformed cuts a JSON answer
// in half; a chat stream gets a bad first chunk then [DONE], a Responses
// stream a bad first event and nothing more. StreamBreak only affects
// streaming chat and Responses requests, which are cut after about half
// their content pieces. With concurrent requests, which request draws which
// number depends on arrival order.
//
// # Records
//
// Log returns every request in order of arrival, including requests still in
// progress (with Status 0 until they finish). It keeps the last
// Options.LogLimit records (default 1,000,000). Status 0 in a finished record
// means no HTTP response was sent: a reset, a hang, or a client that went away
// before the answer. A record is complete before its answer reaches the
// client, so a test may read Log as soon as it has a response. A record
// holds the path and, in Query, the raw query string (so a test can check
// an Azure api-version). With Options.KeepBodies a record also keeps the
// exact request body (Body, never marshalled to JSON) and Content-Type. A
// record takes about 250 bytes, plus its body when kept. Keys never appear
// in records, logs or responses: a query parameter named like a key
// (api-key, key, …) or whose value is an account's key is recorded as
// REDACTED.
//
// A Server is safe for concurrent use; its zero value is not usable, call New.
package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
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
	// KeepBodies keeps in each Record the exact bytes of the request body
	// (Record.Body) and its Content-Type header (Record.ContentType), for
	// tests that check what a proxy forwarded. Bodies are held as long as
	// their record, so bound LogLimit when bodies are large.
	KeepBodies bool
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
	Query            string    `json:"query"` // raw query string ("api-version=..."), key-like values redacted
	Model            string    `json:"model"` // the model served (on Azure, the deployment's model)
	Status           int       `json:"status"`
	Stream           bool      `json:"stream"`
	PromptTokens     int       `json:"prompt_tokens"`
	CompletionTokens int       `json:"completion_tokens"`
	Charged          int       `json:"charged"`     // tokens charged to the TPM bucket at admission, limited or not
	BodySHA256       string    `json:"body_sha256"` // hex SHA-256 of the request body
	Fault            string    `json:"fault"`       // "" or one of the Fault* values
	// With Options.KeepBodies only: the request's Content-Type header and
	// its exact body (never nil then, empty for no body). Body is not
	// marshalled, so the lbgpt-sim control endpoint does not dump it.
	ContentType string `json:"content_type,omitempty"`
	Body        []byte `json:"-"`
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
	store       responseStore // stored Responses API objects
	keepBodies  bool
	idSalt      uint64        // makes generated ids unique to this server
	ids         atomic.Uint64 // generated ids
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
		keepBodies:  opts.KeepBodies,
		idSalt:      rand.Uint64(),
		done:        make(chan struct{}),
	}
	s.store.limit = maxStoredResponses
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
	wire            string
	endpoint        string // one of the endpoint* values, or ""
	method          string
	deployment      string // Azure chat and embeddings: the deployment in the path
	id              string // a response id, for the endpointResponse* values
	versionOptional bool   // Azure /openai/v1/ paths: api-version may be omitted
}

const (
	endpointChat           = "chat"
	endpointEmbed          = "embeddings"
	endpointModels         = "models"
	endpointCompletions    = "completions"
	endpointModerations    = "moderations"
	endpointResponses      = "responses"
	endpointResponseGet    = "responses.get"
	endpointResponseDelete = "responses.delete"
	endpointResponseCancel = "responses.cancel"
	endpointInputItems     = "responses.input_items"
)

// parseRoute maps a request to its route. The method only tells apart the
// endpoints that share a path; a method an endpoint does not take is
// answered 405 later.
func parseRoute(method, path string) route {
	if rest, ok := strings.CutPrefix(path, "/v1/"); ok {
		r := route{wire: WireOpenAI}
		switch rest {
		case "chat/completions":
			r.endpoint, r.method = endpointChat, http.MethodPost
		case "embeddings":
			r.endpoint, r.method = endpointEmbed, http.MethodPost
		case "models":
			r.endpoint, r.method = endpointModels, http.MethodGet
		case "completions":
			r.endpoint, r.method = endpointCompletions, http.MethodPost
		case "moderations":
			r.endpoint, r.method = endpointModerations, http.MethodPost
		default:
			r.responsesRoute(method, rest)
		}
		return r
	}
	rest, ok := strings.CutPrefix(path, "/openai/")
	if !ok {
		return route{}
	}
	r := route{wire: WireAzure}
	if v1, ok := strings.CutPrefix(rest, "v1/"); ok {
		r.versionOptional = true
		r.responsesRoute(method, v1)
		return r
	}
	if rest == "models" {
		r.endpoint, r.method = endpointModels, http.MethodGet
		return r
	}
	if r.responsesRoute(method, rest) {
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

// responsesRoute sets r for a Responses API path, given relative to the API
// root ("responses", "responses/{id}", "responses/{id}/cancel",
// "responses/{id}/input_items"), and reports whether it is one.
func (r *route) responsesRoute(method, rest string) bool {
	rest, ok := strings.CutPrefix(rest, "responses")
	if !ok {
		return false
	}
	if rest == "" {
		r.endpoint, r.method = endpointResponses, http.MethodPost
		return true
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return false
	}
	id, op, hasOp := strings.Cut(rest, "/")
	if id == "" {
		return false
	}
	switch {
	case !hasOp && method == http.MethodDelete:
		r.endpoint, r.method = endpointResponseDelete, http.MethodDelete
	case !hasOp:
		r.endpoint, r.method = endpointResponseGet, http.MethodGet
	case op == "cancel":
		r.endpoint, r.method = endpointResponseCancel, http.MethodPost
	case op == "input_items":
		r.endpoint, r.method = endpointInputItems, http.MethodGet
	default:
		return false
	}
	r.id = id
	return true
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

	limitsSent bool          // the x-ratelimit-* headers are set
	latency    time.Duration // simulated latency, for the openai-processing-ms header
	start      time.Time
}

const maxBody = 32 << 20

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP answers one request; see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{s: s, w: w, r: r, route: parseRoute(r.Method, r.URL.Path), start: time.Now()}
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
		Query:      s.redactQuery(r.URL.RawQuery),
		BodySHA256: hex.EncodeToString(sum[:]),
	}
	if s.keepBodies {
		c.rec.Body = append([]byte{}, c.body...)
		c.rec.ContentType = r.Header.Get("Content-Type")
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
	case c.route.wire == WireAzure && !c.route.versionOptional && r.URL.Query().Get("api-version") == "":
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
	case endpointCompletions:
		c.completions()
	case endpointModerations:
		c.moderations()
	case endpointResponses:
		c.responses()
	default:
		c.storedResponse()
	}
}

// keyParams are query parameter names whose values Record.Query redacts.
var keyParams = map[string]bool{"api-key": true, "api_key": true, "apikey": true, "key": true, "subscription-key": true, "access_token": true}

// redactQuery returns the raw query q with the value of every key-like
// parameter, and of every parameter whose value is an account's key,
// replaced by "REDACTED".
func (s *Server) redactQuery(q string) string {
	if q == "" {
		return ""
	}
	params := strings.Split(q, "&")
	changed := false
	for i, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			v = v[7:]
		}
		if keyParams[strings.ToLower(k)] || s.byKey[v] != nil {
			name, _, _ := strings.Cut(p, "=")
			params[i] = name + "=REDACTED"
			changed = true
		}
	}
	if !changed {
		return q
	}
	return strings.Join(params, "&")
}

// newID returns a prefix and 2n hex digits unique to this server.
func (s *Server) newID(prefix string, n int) string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], s.idSalt)
	binary.LittleEndian.PutUint64(b[8:], s.ids.Add(1))
	sum := sha256.Sum256(b[:])
	return prefix + hex.EncodeToString(sum[:min(n, len(sum))])
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
