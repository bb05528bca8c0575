// Package httpapi is lbgptd's OpenAI-compatible HTTP endpoint: OpenAI's
// routes and wire format over the request pipeline (package proxy), so a
// program written for the OpenAI API gets the pool by changing its base
// URL. lbgpt's options travel as X-Lbgpt-* request headers, its metadata as
// X-Lbgpt-* response headers (package rpc names both); its errors are
// OpenAI's error objects, with the status one table (error.go) assigns to
// each protocol code. A Handler is safe for concurrent use.
package httpapi

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// Options configure a Handler.
type Options struct {
	Pipeline *proxy.Pipeline       // required
	Config   func() *config.Config // the configuration in force; required
	// Token is the bearer token every request but /healthz must carry;
	// "" asks for none (the Unix socket, the simulated demo).
	Token string
	// Enter counts a request as active while it runs (a stopping daemon
	// waits for it); ok false refuses it: the daemon is stopping.
	Enter func() (leave func(), ok bool)
	// Status is the daemon's status now, for /metrics.
	Status  func() rpc.StatusResult
	Version string
	Started time.Time
	Logger  *slog.Logger // nil: discard
}

// Handler serves the endpoint for one listener.
type Handler struct {
	pl     *proxy.Pipeline
	config func() *config.Config
	enter  func() (func(), bool)
	status func() rpc.StatusResult
	ver    string
	start  time.Time
	log    *slog.Logger
	// token is the SHA-256 of the bearer token every request but /healthz
	// must carry; nil when the listener needs none.
	token []byte
	mux   *http.ServeMux
}

// New returns the endpoint's handler.
func New(opts Options) *Handler {
	a := &Handler{pl: opts.Pipeline, config: opts.Config, enter: opts.Enter, status: opts.Status,
		ver: opts.Version, start: opts.Started, log: opts.Logger, mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if opts.Token != "" {
		sum := sha256.Sum256([]byte(opts.Token))
		a.token = sum[:]
	}
	// The route table, sorted by path.
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /metrics", a.authed(a.metrics))
	a.mux.HandleFunc("POST /v1/chat/completions", a.authed(a.create(provider.PathChat)))
	a.mux.HandleFunc("POST /v1/embeddings", a.authed(a.embeddings))
	a.mux.HandleFunc("GET /v1/models", a.authed(a.models))
	a.mux.HandleFunc("GET /v1/models/{model...}", a.authed(a.model))
	a.mux.HandleFunc("POST /v1/responses", a.authed(a.create(provider.PathResponses)))
	a.mux.HandleFunc("GET /v1/responses/{id}", a.authed(a.onResponse("")))
	a.mux.HandleFunc("DELETE /v1/responses/{id}", a.authed(a.onResponse("")))
	a.mux.HandleFunc("POST /v1/responses/{id}/cancel", a.authed(a.onResponse("/cancel")))
	a.mux.HandleFunc("GET /v1/responses/{id}/input_items", a.authed(a.onResponse("/input_items")))
	a.mux.HandleFunc("POST /v1/{route...}", a.authed(a.other))
	a.mux.HandleFunc("/", a.authed(a.notFound))
	return a
}

// ServeHTTP counts the request as active (shutdown waits for it, and a
// daemon that is stopping answers 503) and turns a panic into a 500.
func (a *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	leave, ok := a.enter()
	if !ok {
		writeHTTPError(w, proxy.Error(proxy.ErrShuttingDown, nil))
		return
	}
	defer leave()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("http handler panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeHTTPError(w, &rpc.Error{Code: rpc.CodeInternal, Message: fmt.Sprintf("internal error in %s", r.URL.Path)})
		}
	}()
	a.mux.ServeHTTP(w, r)
}

// authed requires the bearer token, compared in constant time, when the
// listener has one.
func (a *Handler) authed(h http.HandlerFunc) http.HandlerFunc {
	if a.token == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(given)))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lbgptd"`)
			// Close rather than read the body it declared: a stranger's
			// connections must not pile up (any local user can connect).
			// net/http drains up to 256 KiB of an unread body before it
			// closes; a read deadline now ends that at once.
			w.Header().Set("Connection", "close")
			http.NewResponseController(w).SetReadDeadline(time.Now())
			writeOpenAIError(w, http.StatusUnauthorized, openAIError{
				Message: "missing or wrong bearer token: send \"Authorization: Bearer TOKEN\" with the token `lbgpt token` prints",
				Type:    "invalid_request_error", Code: "invalid_api_key",
			})
			return
		}
		h(w, r)
	}
}

func (a *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": a.ver, "uptime_s": int64(time.Since(a.start).Seconds())})
}

func (a *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	writeOpenAIError(w, http.StatusNotFound, openAIError{
		Message: fmt.Sprintf("no route %s %s: lbgptd serves POST /v1/chat/completions, /v1/responses (and GET, DELETE /v1/responses/ID), /v1/embeddings, "+
			"other POST /v1/... requests that name a model, GET /v1/models, GET /healthz and GET /metrics", r.Method, r.URL.Path),
		Type: "invalid_request_error", Code: "unknown_url",
	})
}

// body reads a request body of at most [http] max_body_bytes and the
// lbgpt options of its headers; on failure it has answered the request.
func (a *Handler) body(w http.ResponseWriter, r *http.Request) (json.RawMessage, rpc.Options, bool) {
	limit := int64(a.config().HTTP.MaxBodyBytes)
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeHTTPError(w, &rpc.Error{Code: rpc.CodeTooLarge, Message: fmt.Sprintf("request body over %d bytes ([http] max_body_bytes in lbgpt.toml)", limit)})
		return nil, rpc.Options{}, false
	case err != nil:
		writeHTTPError(w, proxy.InvalidParams("", "reading the request body: %v", err))
		return nil, rpc.Options{}, false
	}
	opts, err := headerOptions(r.Header)
	if err != nil {
		writeHTTPError(w, err)
		return nil, rpc.Options{}, false
	}
	return b, opts, true
}

// create answers a request that makes an answer — POST
// /v1/chat/completions, /v1/responses — streamed as server-sent events
// when it says "stream": true.
func (a *Handler) create(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, path)
	}
}

// other forwards any other POST /v1/... request that names a model
// (legacy completions, moderations, images, audio speech) to a backend
// that serves it: admitted by its RPM limit, retried, never cached.
func (a *Handler) other(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeOpenAIError(w, http.StatusBadRequest, openAIError{
			Message: fmt.Sprintf("lbgptd forwards JSON requests; POST %s with %s (a file upload) is not supported", r.URL.Path, ct),
			Type:    "invalid_request_error", Code: "unsupported_content_type",
		})
		return
	}
	a.serve(w, r, r.PathValue("route"))
}

// serve answers one request of the OpenAI API that names a model.
func (a *Handler) serve(w http.ResponseWriter, hr *http.Request, path string) {
	start := time.Now()
	raw, opts, ok := a.body(w, hr)
	if !ok {
		return
	}
	r, err := proxy.Parse(path, raw)
	if err != nil {
		if path != provider.PathChat && path != provider.PathResponses && len(bytes.TrimSpace(raw)) > 0 {
			err = proxy.InvalidParams("model", "lbgptd forwards POST /v1/%s only when it names a model, to route it: %v", path, err.(*rpc.Error).Message)
		}
		writeHTTPError(w, err)
		return
	}
	if r.Sampled() && hr.Header.Get(rpc.HeaderNoCache) == "" {
		// A sampled request from an OpenAI client gets an answer of its
		// own unless it asks for the cache: regenerate must regenerate.
		opts.NoCache = true
	}
	if !r.Stream() {
		res, err := a.pl.Serve(hr.Context(), r, opts, nil, start)
		if err != nil {
			writeHTTPErrorHint(w, err, a.pl.RetryHint)
			return
		}
		writeAnswer(w, res)
		return
	}
	out := newSSE(w, r)
	res, err := a.pl.Serve(hr.Context(), r, opts, out, start)
	if err != nil {
		if !out.started {
			writeHTTPErrorHint(w, err, a.pl.RetryHint) // nothing sent yet: a plain error response
			return
		}
		out.error(err)
		return
	}
	out.done(res.Meta)
}

// onResponse answers a call on a stored response (retrieve, delete,
// cancel, input items) from the backend that holds it.
func (a *Handler) onResponse(suffix string) http.HandlerFunc {
	return func(w http.ResponseWriter, hr *http.Request) {
		var body []byte
		if hr.Method == http.MethodPost {
			raw, _, ok := a.body(w, hr)
			if !ok {
				return
			}
			body = raw
		}
		res, err := a.pl.OnResponse(hr.Context(), hr.Method, hr.PathValue("id"), suffix, hr.URL.RawQuery, body)
		if err != nil {
			writeHTTPErrorHint(w, err, a.pl.RetryHint)
			return
		}
		writeAnswer(w, res)
	}
}

// sse writes one streamed answer as OpenAI does: an event per upstream
// event ("data: CHUNK" for chat, "event: NAME" and "data: ..." for the
// Responses API), then "data: [DONE]" (but for the Responses API, whose
// streams end with their terminal event). The headers (and the 200) leave
// with the first event — once a backend answered with content, so they
// carry lbgpt's metadata known by then — and a failure before it is still
// an ordinary error response.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	r       *proxy.Request
	started bool
	buf     []byte
}

func newSSE(w http.ResponseWriter, r *proxy.Request) *sse {
	return &sse{w: w, rc: http.NewResponseController(w), r: r}
}

// start sends the headers: the upstream's own that a client reads, and
// lbgpt's metadata; the rest of it (times) comes as trailers.
func (s *sse) Start(m rpc.Meta, upstream http.Header) error {
	h := s.w.Header()
	for k, v := range upstream {
		h[k] = v
	}
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	m.UpstreamUS, m.DaemonUS = 0, 0 // not known yet: trailers, and the closing comment, carry them
	setMetaHeaders(h, m)
	h.Set("Trailer", strings.Join(metaHeaders, ", "))
	s.w.WriteHeader(http.StatusOK)
	s.started = true
	return s.rc.Flush()
}

// event sends one event; its error (the client went away) ends the answer.
func (s *sse) Event(ev provider.Event) error {
	s.buf = s.buf[:0]
	if ev.Name != "" {
		s.buf = append(append(append(s.buf, "event: "...), ev.Name...), '\n')
	}
	for line := range bytes.Lines(ev.Data) { // a payload of several lines: a data field each
		s.buf = append(append(append(s.buf, "data: "...), bytes.TrimSuffix(line, []byte("\n"))...), '\n')
	}
	if len(ev.Data) == 0 {
		s.buf = append(s.buf, "data: \n"...)
	}
	s.buf = append(s.buf, '\n')
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	return s.rc.Flush()
}

// done ends a stream: lbgpt's metadata as an SSE comment (which clients
// ignore) and as trailers, then OpenAI's terminator.
func (s *sse) done(m rpc.Meta) {
	if !s.started {
		s.Start(m, nil) // an answer with no event at all
	}
	setMetaHeaders(s.w.Header(), m)
	if b, err := json.Marshal(m); err == nil {
		s.w.Write(append(append([]byte(": lbgpt "), b...), "\n\n"...))
	}
	if s.r.Path() != provider.PathResponses {
		s.Event(provider.Event{Data: []byte("[DONE]")})
	}
	s.rc.Flush()
}

// error ends a stream that broke after its first event with an error event
// and no terminator, as OpenAI does.
func (s *sse) error(err error) {
	_, body := httpError(err)
	if s.r.Path() == provider.PathResponses {
		e := body["error"]
		b, _ := json.Marshal(map[string]any{"type": "error", "code": e.Code, "message": e.Message, "param": e.Param})
		s.Event(provider.Event{Name: "error", Data: b})
		return
	}
	if b, err := json.Marshal(body); err == nil {
		s.Event(provider.Event{Data: b})
	}
}

// embeddings answers POST /v1/embeddings, each input cached on its own.
func (a *Handler) embeddings(w http.ResponseWriter, r *http.Request) {
	raw, opts, ok := a.body(w, r)
	if !ok {
		return
	}
	res, err := a.pl.Embed(r.Context(), raw, opts)
	if err != nil {
		writeHTTPErrorHint(w, err, a.pl.RetryHint)
		return
	}
	writeAnswer(w, proxy.Result{Body: res.Response, Meta: res.Meta})
}

// writeAnswer writes a whole answer: the upstream's headers a client reads,
// lbgpt's metadata as headers, the OpenAI response as the body.
func writeAnswer(w http.ResponseWriter, res proxy.Result) {
	h := w.Header()
	for k, v := range res.Header {
		h[k] = v
	}
	setMetaHeaders(h, res.Meta)
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(cmp.Or(res.Status, http.StatusOK))
	w.Write(res.Body)
}

// modelObject is one entry of GET /v1/models, as OpenAI lists them.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (a *Handler) modelObject(id string) modelObject {
	return modelObject{ID: id, Object: "model", Created: a.start.Unix(), OwnedBy: "lbgpt"}
}

// models answers GET /v1/models.
func (a *Handler) models(w http.ResponseWriter, r *http.Request) {
	data := []modelObject{}
	for _, m := range a.pl.Models(r.Context()) {
		data = append(data, a.modelObject(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// model answers GET /v1/models/{model}: found when some backend serves it.
func (a *Handler) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	if a.pl.Serves(id) {
		writeJSON(w, http.StatusOK, a.modelObject(id))
		return
	}
	writeOpenAIError(w, http.StatusNotFound, openAIError{
		Message: fmt.Sprintf("no backend serves model %q", id), Type: "invalid_request_error", Param: "model", Code: "model_not_found",
	})
}

// headerOptions reads lbgpt's options from the X-Lbgpt-* request headers.
func headerOptions(h http.Header) (rpc.Options, error) {
	var o rpc.Options
	var errs []string
	boolean := func(name string, dst *bool) {
		switch v := strings.ToLower(strings.TrimSpace(h.Get(name))); v {
		case "":
		case "1", "true", "yes":
			*dst = true
		case "0", "false", "no":
			*dst = false
		default:
			errs = append(errs, fmt.Sprintf("%s: want 1, true or yes, or 0, false or no, not %q", name, v))
		}
	}
	duration := func(name string, dst *rpc.Duration) {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			return
		}
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			v = strconv.Quote(v) // a duration string
		}
		if err := dst.UnmarshalJSON([]byte(v)); err != nil {
			errs = append(errs, fmt.Sprintf("%s: want seconds (30) or a duration string (30s), not negative, not %q", name, strings.TrimSpace(h.Get(name))))
		}
	}
	duration(rpc.HeaderTimeout, &o.Timeout)
	duration(rpc.HeaderCacheTTL, &o.CacheTTL)
	boolean(rpc.HeaderNoCache, &o.NoCache)
	boolean(rpc.HeaderNoStore, &o.NoStore)
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache":
				o.NoCache = true
			case "no-store":
				o.NoStore = true
			}
		}
	}
	o.Namespace = h.Get(rpc.HeaderNamespace)
	o.ModelAlias = h.Get(rpc.HeaderModelAlias)
	switch o.Semantic = strings.TrimSpace(h.Get(rpc.HeaderSemantic)); o.Semantic {
	case "", rpc.SemanticUserOnly, rpc.SemanticAll, rpc.SemanticSystemOnly, rpc.SemanticOff:
	default:
		errs = append(errs, fmt.Sprintf("%s: want %s, %s, %s or %s, not %q", rpc.HeaderSemantic,
			rpc.SemanticUserOnly, rpc.SemanticAll, rpc.SemanticSystemOnly, rpc.SemanticOff, o.Semantic))
	}
	if len(errs) > 0 {
		return o, proxy.InvalidParams("", "%s", strings.Join(errs, "; "))
	}
	return o, nil
}

// metaHeaders are the response headers setMetaHeaders may set.
var metaHeaders = []string{
	rpc.HeaderBackend, rpc.HeaderModel, rpc.HeaderAttempts, rpc.HeaderCache,
	rpc.HeaderUpstreamUS, rpc.HeaderQueuedUS, rpc.HeaderDaemonUS,
	rpc.HeaderCacheEntry, rpc.HeaderSimilarity, rpc.HeaderSemanticExact, rpc.HeaderCacheHost, rpc.HeaderWarning,
}

// setMetaHeaders describes how lbgpt answered in X-Lbgpt-* headers.
func setMetaHeaders(h http.Header, m rpc.Meta) {
	set := func(k, v string) {
		if v != "" {
			h[k] = []string{v}
		}
	}
	set(rpc.HeaderBackend, m.Backend)
	set(rpc.HeaderModel, m.Model)
	set(rpc.HeaderAttempts, strconv.Itoa(m.Attempts))
	set(rpc.HeaderCache, m.Cache)
	if m.UpstreamUS > 0 || m.DaemonUS > 0 { // unknown at a stream's start
		set(rpc.HeaderUpstreamUS, strconv.FormatInt(m.UpstreamUS, 10))
		set(rpc.HeaderDaemonUS, strconv.FormatInt(m.DaemonUS, 10))
	}
	set(rpc.HeaderQueuedUS, strconv.FormatInt(m.QueuedUS, 10))
	set(rpc.HeaderCacheEntry, m.CacheEntry)
	if m.Similarity > 0 {
		set(rpc.HeaderSimilarity, strconv.FormatFloat(m.Similarity, 'f', 4, 64))
	}
	if m.SemanticExact {
		set(rpc.HeaderSemanticExact, "1")
	}
	set(rpc.HeaderCacheHost, m.CacheHost)
	set(rpc.HeaderWarning, m.Warning)
	if m.Cost != nil {
		set(rpc.HeaderCost, strconv.FormatFloat(*m.Cost, 'f', -1, 64))
	}
	if m.Saved != nil {
		set(rpc.HeaderSaved, strconv.FormatFloat(*m.Saved, 'f', -1, 64))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":null}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
