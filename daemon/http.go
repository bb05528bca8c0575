package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/creachadair/jrpc2"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// The OpenAI-compatible HTTP endpoint: OpenAI's routes and wire format over
// the same answer path as the chat method, so a program written for the
// OpenAI API gets the pool by changing its base URL. lbgpt's options travel
// as X-Lbgpt-* request headers, its metadata as X-Lbgpt-* response headers
// (package rpc names both).

// httpAPI serves the endpoint for one listener.
type httpAPI struct {
	d *Daemon
	// token is the SHA-256 of the bearer token every request but /healthz
	// must carry; nil when the listener needs none (the Unix socket).
	token []byte
	mux   *http.ServeMux
}

// newHTTPAPI returns the endpoint's handler; token "" means no token is
// asked for.
func (d *Daemon) newHTTPAPI(token string) *httpAPI {
	a := &httpAPI{d: d, mux: http.NewServeMux()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
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
func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := a.d
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		writeHTTPError(w, rpcError(errShuttingDown, nil))
		return
	}
	d.active.Add(1) // under mu: never concurrent with shutdown's Wait
	d.mu.Unlock()
	defer d.active.Done()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			d.log.Error("http handler panicked", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeHTTPError(w, &jrpc2.Error{Code: rpc.CodeInternal, Message: fmt.Sprintf("internal error in %s", r.URL.Path)})
		}
	}()
	a.mux.ServeHTTP(w, r)
}

// authed requires the bearer token, compared in constant time, when the
// listener has one.
func (a *httpAPI) authed(h http.HandlerFunc) http.HandlerFunc {
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

func (a *httpAPI) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": Version, "uptime_s": int64(time.Since(a.d.started).Seconds())})
}

func (a *httpAPI) notFound(w http.ResponseWriter, r *http.Request) {
	writeOpenAIError(w, http.StatusNotFound, openAIError{
		Message: fmt.Sprintf("no route %s %s: lbgptd serves POST /v1/chat/completions, /v1/responses (and GET, DELETE /v1/responses/ID), /v1/embeddings, "+
			"other POST /v1/... requests that name a model, GET /v1/models, GET /healthz and GET /metrics", r.Method, r.URL.Path),
		Type: "invalid_request_error", Code: "unknown_url",
	})
}

// body reads a request body of at most [http] max_body_bytes and the
// lbgpt options of its headers; on failure it has answered the request.
func (a *httpAPI) body(w http.ResponseWriter, r *http.Request) (json.RawMessage, rpc.Options, bool) {
	limit := int64(a.d.config().HTTP.MaxBodyBytes)
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeHTTPError(w, &jrpc2.Error{Code: rpc.CodeTooLarge, Message: fmt.Sprintf("request body over %d bytes ([http] max_body_bytes in lbgpt.toml)", limit)})
		return nil, rpc.Options{}, false
	case err != nil:
		writeHTTPError(w, invalidParams("", "reading the request body: %v", err))
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
func (a *httpAPI) create(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.serve(w, r, path)
	}
}

// other forwards any other POST /v1/... request that names a model
// (legacy completions, moderations, images, audio speech) to a backend
// that serves it: admitted by its RPM limit, retried, never cached.
func (a *httpAPI) other(w http.ResponseWriter, r *http.Request) {
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
func (a *httpAPI) serve(w http.ResponseWriter, hr *http.Request, path string) {
	start := time.Now()
	raw, opts, ok := a.body(w, hr)
	if !ok {
		return
	}
	r, err := parseRequest(path, raw)
	if err != nil {
		if path != provider.PathChat && path != provider.PathResponses && len(bytes.TrimSpace(raw)) > 0 {
			err = invalidParams("model", "lbgptd forwards POST /v1/%s only when it names a model, to route it: %v", path, err)
		}
		writeHTTPError(w, err)
		return
	}
	if r.sampled() && hr.Header.Get(rpc.HeaderNoCache) == "" {
		// A sampled request from an OpenAI client gets an answer of its
		// own unless it asks for the cache: regenerate must regenerate.
		opts.NoCache = true
	}
	if !r.view.Stream {
		res, err := a.d.serve(hr.Context(), r, opts, nil, start)
		if err != nil {
			writeHTTPErrorHint(w, err, a.d.retryHint)
			return
		}
		writeAnswer(w, res)
		return
	}
	out := newSSE(w, r)
	res, err := a.d.serve(hr.Context(), r, opts, out, start)
	if err != nil {
		if !out.started {
			writeHTTPErrorHint(w, err, a.d.retryHint) // nothing sent yet: a plain error response
			return
		}
		out.error(err)
		return
	}
	out.done(res.meta)
}

// onResponse answers a call on a stored response (retrieve, delete,
// cancel, input items) from the backend that holds it.
func (a *httpAPI) onResponse(suffix string) http.HandlerFunc {
	return func(w http.ResponseWriter, hr *http.Request) {
		start := time.Now()
		id := hr.PathValue("id")
		backend, err := a.d.holder(id, "")
		if err != nil {
			writeOpenAIError(w, http.StatusNotFound, openAIError{Message: err.Error(), Type: "invalid_request_error", Code: "response_not_found"})
			return
		}
		var body []byte
		if hr.Method == http.MethodPost {
			raw, _, ok := a.body(w, hr)
			if !ok {
				return
			}
			body = raw
		}
		c := provider.Call{Method: hr.Method, Path: provider.PathResponses + "/" + url.PathEscape(id) + suffix, Query: hr.URL.RawQuery, Body: body}
		ctx, cancel := context.WithTimeout(hr.Context(), a.d.timeout(rpc.Options{}))
		defer cancel()
		ans, err := a.d.send(ctx, nil, balance.Request{Backend: backend}, c)
		if err != nil {
			writeHTTPErrorHint(w, rpcError(err, nil), a.d.retryHint)
			return
		}
		writeAnswer(w, served{body: ans.body, header: ans.header, status: ans.status, meta: a.d.meta(ans.rep, "", false, start, ans.rep.Upstream)})
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
	r       *apiRequest
	started bool
	buf     []byte
}

func newSSE(w http.ResponseWriter, r *apiRequest) *sse {
	return &sse{w: w, rc: http.NewResponseController(w), r: r}
}

// start sends the headers: the upstream's own that a client reads, and
// lbgpt's metadata; the rest of it (times) comes as trailers.
func (s *sse) start(m rpc.Meta, upstream http.Header) error {
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
func (s *sse) event(ev provider.Event) error {
	s.buf = s.buf[:0]
	if ev.Name != "" {
		s.buf = append(append(append(s.buf, "event: "...), ev.Name...), '\n')
	}
	s.buf = append(append(append(s.buf, "data: "...), ev.Data...), "\n\n"...)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	return s.rc.Flush()
}

// done ends a stream: lbgpt's metadata as an SSE comment (which clients
// ignore) and as trailers, then OpenAI's terminator.
func (s *sse) done(m rpc.Meta) {
	if !s.started {
		s.start(m, nil) // an answer with no event at all
	}
	setMetaHeaders(s.w.Header(), m)
	if b, err := json.Marshal(m); err == nil {
		s.w.Write(append(append([]byte(": lbgpt "), b...), "\n\n"...))
	}
	if !s.r.responses() {
		s.event(provider.Event{Data: []byte("[DONE]")})
	}
	s.rc.Flush()
}

// error ends a stream that broke after its first event with an error event
// and no terminator, as OpenAI does.
func (s *sse) error(err error) {
	_, body := httpError(err)
	if s.r.responses() {
		e := body["error"]
		b, _ := json.Marshal(map[string]any{"type": "error", "code": e.Code, "message": e.Message, "param": e.Param})
		s.event(provider.Event{Name: "error", Data: b})
		return
	}
	if b, err := json.Marshal(body); err == nil {
		s.event(provider.Event{Data: b})
	}
}

// embeddings answers POST /v1/embeddings, each input cached on its own.
func (a *httpAPI) embeddings(w http.ResponseWriter, r *http.Request) {
	raw, opts, ok := a.body(w, r)
	if !ok {
		return
	}
	res, err := a.d.embed(r.Context(), raw, opts)
	if err != nil {
		writeHTTPErrorHint(w, err, a.d.retryHint)
		return
	}
	writeAnswer(w, served{body: res.Response, meta: res.Meta})
}

// writeAnswer writes a whole answer: the upstream's headers a client reads,
// lbgpt's metadata as headers, the OpenAI response as the body.
func writeAnswer(w http.ResponseWriter, res served) {
	h := w.Header()
	for k, v := range res.header {
		h[k] = v
	}
	setMetaHeaders(h, res.meta)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(cmp.Or(res.status, http.StatusOK))
	w.Write(res.body)
}

// modelObject is one entry of GET /v1/models, as OpenAI lists them.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// servedModels lists the models the pool serves: every backend's models,
// an Azure backend's model_map keys when it lists none, and for a backend
// that names neither, what its own model list said.
func (d *Daemon) servedModels() []string {
	var ms []string
	for _, b := range d.config().Backends {
		ms = append(ms, b.Models...)
		if len(b.Models) == 0 {
			for m := range b.ModelMap {
				ms = append(ms, m)
			}
			if len(b.ModelMap) == 0 {
				ms = append(ms, d.models.get(b.Name)...)
			}
		}
	}
	slices.Sort(ms)
	return slices.Compact(ms)
}

func (a *httpAPI) modelObject(id string) modelObject {
	return modelObject{ID: id, Object: "model", Created: a.d.started.Unix(), OwnedBy: "lbgpt"}
}

// models answers GET /v1/models.
func (a *httpAPI) models(w http.ResponseWriter, r *http.Request) {
	a.d.learnModels(r.Context())
	data := []modelObject{}
	for _, m := range a.d.servedModels() {
		data = append(data, a.modelObject(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// model answers GET /v1/models/{model}: found when some backend serves it.
func (a *httpAPI) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	for _, b := range a.d.config().Backends {
		if b.Serves(id) {
			writeJSON(w, http.StatusOK, a.modelObject(id))
			return
		}
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
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
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
		return o, invalidParams("", "%s", strings.Join(errs, "; "))
	}
	return o, nil
}

// metaHeaders are the response headers setMetaHeaders may set.
var metaHeaders = []string{
	rpc.HeaderBackend, rpc.HeaderModel, rpc.HeaderAttempts, rpc.HeaderCache,
	rpc.HeaderUpstreamUS, rpc.HeaderQueuedUS, rpc.HeaderDaemonUS,
	rpc.HeaderCacheEntry, rpc.HeaderSimilarity, rpc.HeaderSemanticExact, rpc.HeaderWarning,
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
	set(rpc.HeaderWarning, m.Warning)
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
