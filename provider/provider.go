// Package provider calls one upstream account — OpenAI, Azure OpenAI or an
// OpenAI-compatible server — and tells its caller what every call saw on the
// wire.
//
// A [Provider] is made from one [config.Backend] with [New]. It sends the
// client's own request bytes ([Call.Body]) to the right URL with the
// account's credentials: lbgpt is a proxy, so a field it does not know is
// passed on, never refused or dropped. The only changes it makes to a body
// are those an upstream needs: on Azure's Responses route the model becomes
// the deployment, and a streamed chat request asks for its usage
// (stream_options.include_usage), which lbgpt needs to reconcile its rate
// limits. go-openai's types read what comes back (usage, errors).
//
// Each call returns, besides the answer, an [Observation]: the HTTP status,
// the response headers, the server's Retry-After and x-ratelimit-* readings
// and the latency — filled for failed calls too.
//
// Every failure is a [*Error] whose [Kind] says what went wrong and whether
// another attempt may help ([Kind.Retryable]). The upstream's message is kept
// but redacted: API keys, the backend's own included, never appear in an
// Error.
//
// A Provider does not retry: retrying, cooling down and failing over belong to
// the caller (package balance), so there is exactly one retry layer. net/http
// replays a request only when none of it was written (a stale keep-alive
// connection), so a POST is never sent twice. Deadlines come from the context
// only: there is no client timeout.
//
// A Provider is safe for concurrent use; calls on one Provider share its
// connection pool but each gets its own Observation.
package provider

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/config"
)

// Provider is one upstream account. Make it with [New].
type Provider struct {
	name       string
	typ        string
	base       string  // the base URL without a trailing slash
	key        *string // a pointer, so printing a Provider never shows it
	apiVersion string  // azure only
	backend    config.Backend
	client     *http.Client
	transport  http.RoundTripper // the one New was given or made
}

// New returns a Provider for b. rt carries the HTTP requests; nil means a
// transport of the Provider's own with a keep-alive pool sized for many
// concurrent calls to one host. Redirects are not followed (an API that
// redirects is misconfigured, and following it could carry the Azure api-key
// header to another host): a 3xx answer is a KindServer error.
//
// For an azure backend the model of each request is mapped to its deployment
// with [config.Backend.Deployment] and api-version is b.APIVersion (default
// [config.DefaultAzureAPIVersion]). An openai-compatible backend may have no
// key: then no Authorization header is sent.
func New(b config.Backend, rt http.RoundTripper) (*Provider, error) {
	if b.Name == "" {
		return nil, errors.New("new provider: backend has no name")
	}
	key := b.Key.Reveal()
	base := b.BaseURL
	switch b.Type {
	case config.TypeOpenAI, config.TypeOpenAICompatible:
		if key == "" && b.Type == config.TypeOpenAI {
			return nil, fmt.Errorf("new provider %s: type %s needs an api key", b.Name, b.Type)
		}
		if base == "" {
			if b.Type != config.TypeOpenAI {
				return nil, fmt.Errorf("new provider %s: type %s needs a base_url", b.Name, b.Type)
			}
			base = config.DefaultOpenAIBaseURL
		}
	case config.TypeAzure:
		if key == "" {
			return nil, fmt.Errorf("new provider %s: type azure needs an api key", b.Name)
		}
		if base == "" {
			return nil, fmt.Errorf("new provider %s: type azure needs a base_url", b.Name)
		}
	default:
		return nil, fmt.Errorf("new provider %s: unknown type %q", b.Name, b.Type)
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new provider %s: base_url is not an absolute http(s) URL", b.Name)
	}
	if rt == nil {
		rt = newTransport()
	}
	b.ModelMap = maps.Clone(b.ModelMap) // the mapper must not share the caller's map
	b.Key = ""                          // p.key holds it, behind a pointer: printing p never shows it
	p := &Provider{
		name:       b.Name,
		typ:        b.Type,
		base:       strings.TrimRight(base, "/"),
		key:        &key,
		apiVersion: b.APIVersion,
		backend:    b,
		transport:  rt,
		client: &http.Client{
			Transport: rt,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	if p.typ == config.TypeAzure && p.apiVersion == "" {
		p.apiVersion = config.DefaultAzureAPIVersion
	}
	return p, nil
}

// newTransport is the default transport: the standard one (proxy from the
// environment, dial and TLS handshake timeouts, HTTP/2) with an idle pool
// large enough that hundreds of concurrent calls to one host keep their
// connections, and no response timeout.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no limit across hosts; the per-host limit bounds it
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ForceAttemptHTTP2 = true
	return t
}

// Name is the backend's configured name.
func (p *Provider) Name() string { return p.name }

// CloseIdleConnections closes the idle connections of the Provider's
// transport, when the transport can.
func (p *Provider) CloseIdleConnections() {
	if t, ok := p.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// Routes of the OpenAI API that a Call may name in Path, besides the others
// under /v1 that lbgpt forwards as they are.
const (
	PathChat       = "chat/completions"
	PathEmbeddings = "embeddings"
	PathResponses  = "responses"
	PathModels     = "models"
)

// Call is one upstream request.
type Call struct {
	// Method is the HTTP method; "" is POST.
	Method string
	// Path is the route under the API's /v1, without a leading slash:
	// PathChat, "responses/resp_123/input_items", "moderations".
	Path string
	// Query is the client's query string (without "?"), passed on.
	Query string
	// Model is the request's model: an Azure backend addresses its
	// deployment. "" for a call that names none (GET responses/ID).
	Model string
	// Body is the request body, sent as it is (see the package doc for the
	// two changes a Provider makes); nil for a GET or DELETE.
	Body []byte
	// ContentType is the body's; "" is application/json.
	ContentType string
	// Stream asks for server-sent events: use [Provider.Open].
	Stream bool
	// HeaderTimeout bounds the wait for the response headers; 0 is no
	// bound but the context's. When it passes, the call fails with a
	// KindTimeout error whose Code is CodeNoHeaders.
	HeaderTimeout time.Duration
}

// CodeNoHeaders is the Error.Code of a call whose upstream sent no
// response headers within its Call.HeaderTimeout: it accepted the request
// and said nothing.
const CodeNoHeaders = "no_response_headers"

// errNoHeaders is the cause of a call's context when its HeaderTimeout
// passed.
var errNoHeaders = errors.New("no response headers")

// Response is a whole upstream answer.
type Response struct {
	Obs  Observation
	Body []byte // exactly as the upstream sent it
}

// maxBody bounds an answer read whole; larger ones are a server error.
const maxBody = 256 << 20

// Send makes a call and reads its whole answer. A non-2xx answer is a
// *Error classified by its status and OpenAI error code.
func (p *Provider) Send(ctx context.Context, c Call) (*Response, error) {
	ctx, release := p.bound(ctx, c)
	defer release()
	resp, obs, err := p.do(ctx, c)
	if err != nil {
		return &Response{Obs: obs}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return &Response{Obs: obs}, p.transportError(ctx, obs, err)
	}
	if len(body) > maxBody {
		return &Response{Obs: obs}, p.malformed(obs, "answer larger than 256 MiB")
	}
	return &Response{Obs: obs, Body: body}, nil
}

// bound returns the context of call c: ctx, ended by errNoHeaders when
// c.HeaderTimeout passes before do got the response headers. release must
// be called once the body is read or abandoned.
func (p *Provider) bound(ctx context.Context, c Call) (context.Context, func()) {
	if c.HeaderTimeout <= 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(c.HeaderTimeout, func() { cancel(errNoHeaders) })
	return context.WithValue(ctx, headersKey{}, t), func() { t.Stop(); cancel(nil) }
}

// headersKey carries the header timer of a bounded call to do, which
// stops it once the headers are in.
type headersKey struct{}

// do sends c and returns the response of a 2xx answer, its body unread; any
// other outcome is an error with the response read and closed.
func (p *Provider) do(ctx context.Context, c Call) (*http.Response, Observation, error) {
	obs := Observation{RateLimit: unknownRateLimit}
	req, err := p.request(ctx, c)
	if err != nil {
		return nil, obs, &Error{Kind: KindBadRequest, Backend: p.name, Message: p.redact(err.Error()), Err: err}
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if t, ok := ctx.Value(headersKey{}).(*time.Timer); ok && err == nil && !t.Stop() {
		resp.Body.Close() // the timer fired as the headers came: the call is over
		err = context.Cause(ctx)
	}
	if err != nil {
		return nil, obs, p.transportError(ctx, obs, err)
	}
	now := time.Now()
	obs = Observation{
		Status:     resp.StatusCode,
		Header:     resp.Header,
		RetryAfter: ParseRetryAfter(resp.Header, now),
		RateLimit:  ParseRateLimit(resp.Header),
		Latency:    now.Sub(start),
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp, obs, nil
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if rerr != nil && ctx.Err() != nil {
		return nil, obs, p.transportError(ctx, obs, rerr)
	}
	return nil, obs, p.statusError(obs, body)
}

// request builds the HTTP request of c: its URL on this backend's wire, the
// credentials, and the body with the changes the wire needs.
func (p *Provider) request(ctx context.Context, c Call) (*http.Request, error) {
	method := c.Method
	if method == "" {
		method = http.MethodPost
	}
	body := c.Body
	var err error
	if c.Stream && c.Path == PathChat {
		if body, err = askUsage(body); err != nil {
			return nil, err
		}
	}
	u := p.base + "/" + c.Path
	query := c.Query
	if p.typ == config.TypeAzure {
		u, body, err = p.azureURL(c, body)
		if err != nil {
			return nil, err
		}
		query = joinQuery("api-version="+url.QueryEscape(p.apiVersion), c.Query)
	}
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", cmp.Or(c.ContentType, "application/json"))
	}
	if c.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	switch key := *p.key; {
	case p.typ == config.TypeAzure:
		req.Header.Set("api-key", key)
	case key != "":
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return req, nil
}

// azureURL is c's URL on an Azure resource: deployment routes for the
// classic operations, the resource-wide routes for models and the
// Responses API (whose body then names the deployment as its model).
func (p *Provider) azureURL(c Call, body []byte) (string, []byte, error) {
	dep := p.backend.Deployment(c.Model)
	switch {
	case c.Path == PathModels:
		return p.base + "/openai/models", body, nil
	case c.Path == PathResponses || strings.HasPrefix(c.Path, PathResponses+"/"):
		if body != nil && dep != c.Model {
			var err error
			if body, err = setModel(body, dep); err != nil {
				return "", nil, err
			}
		}
		return p.base + "/openai/" + c.Path, body, nil
	case dep == "":
		return "", nil, fmt.Errorf("%s on Azure needs a model", c.Path)
	}
	return p.base + "/openai/deployments/" + url.PathEscape(dep) + "/" + c.Path, body, nil
}

func joinQuery(a, b string) string {
	if b == "" {
		return a
	}
	return a + "&" + b
}

// Models lists the IDs of the models the upstream reports (GET /models). For
// Azure these are the resource's base models, not its deployments. The GET
// is free: lbgpt uses it to learn what a backend serves and whether it is up.
func (p *Provider) Models(ctx context.Context) ([]string, Observation, error) {
	resp, err := p.Send(ctx, Call{Method: http.MethodGet, Path: PathModels})
	if err != nil {
		return nil, resp.Obs, err
	}
	ids, err := modelIDs(resp.Body)
	if err != nil {
		return nil, resp.Obs, p.malformed(resp.Obs, err.Error())
	}
	return ids, resp.Obs, nil
}

// malformed is the error for a 2xx answer that is unusable.
func (p *Provider) malformed(obs Observation, what string) *Error {
	return &Error{
		Kind:       KindServer,
		Backend:    p.name,
		Status:     obs.Status,
		Message:    "malformed response (the upstream answered, and charged, so it is not sent again): " + p.redact(what),
		RetryAfter: obs.RetryAfter,
		Err:        errMalformed,
	}
}

// Malformed is the error for a 2xx answer obs described whose body is not
// what the operation returns (a caller's check, such as a chat answer
// without choices).
func (p *Provider) Malformed(obs Observation, what string) *Error { return p.malformed(obs, what) }

var errMalformed = errors.New("malformed response")
