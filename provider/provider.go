// Package provider calls one upstream account — OpenAI, Azure OpenAI or an
// OpenAI-compatible server — through go-openai, and tells its caller what
// every call saw on the wire.
//
// A [Provider] is made from one [config.Backend] with [New]. Each call
// returns, besides the answer, an [Observation]: the HTTP status, the
// server's Retry-After and x-ratelimit-* readings and the latency of the
// response the call got, filled for failed calls too (go-openai drops the
// headers of error responses; a Provider records them in its transport).
//
// Every failure is a [*Error] whose [Kind] says what went wrong and whether
// another attempt may help ([Kind.Retryable]). The upstream's message is kept
// but redacted: API keys, the backend's own included, never appear in an
// Error.
//
// A Provider does not retry: retrying, cooling down and failing over belong to
// the caller (package balance), so there is exactly one retry layer. go-openai
// has no retries, and net/http replays a POST only when none of it was
// written (a stale keep-alive connection), so a chat or embeddings request is
// never sent twice; only the free GET of [Provider.Models] may be replayed
// once on a stale connection. Deadlines come from the context only: there is
// no client timeout.
//
// A Provider is safe for concurrent use; calls on one Provider share its
// connection pool but each gets its own Observation.
package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lbgpt/lbgpt/config"
	openai "github.com/sashabaranov/go-openai"
)

// Provider is one upstream account. Make it with [New].
type Provider struct {
	name      string
	typ       string
	key       *string // to redact it from messages; a pointer, so printing a Provider never shows it
	client    *openai.Client
	transport http.RoundTripper // the one New was given or made, unwrapped
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
	var cfg openai.ClientConfig
	switch b.Type {
	case config.TypeOpenAI, config.TypeOpenAICompatible:
		if key == "" && b.Type == config.TypeOpenAI {
			return nil, fmt.Errorf("new provider %s: type %s needs an api key", b.Name, b.Type)
		}
		// go-openai sends no Authorization header when the key is empty.
		cfg = openai.DefaultConfig(key)
		switch {
		case b.BaseURL != "":
			cfg.BaseURL = b.BaseURL
		case b.Type == config.TypeOpenAI:
			cfg.BaseURL = config.DefaultOpenAIBaseURL
		default:
			return nil, fmt.Errorf("new provider %s: type %s needs a base_url", b.Name, b.Type)
		}
	case config.TypeAzure:
		if key == "" {
			return nil, fmt.Errorf("new provider %s: type azure needs an api key", b.Name)
		}
		if b.BaseURL == "" {
			return nil, fmt.Errorf("new provider %s: type azure needs a base_url", b.Name)
		}
		cfg = openai.DefaultAzureConfig(key, b.BaseURL)
		// go-openai's default api-version (2023-05-15) predates most of the
		// API; always send the configured one.
		cfg.APIVersion = b.APIVersion
		if cfg.APIVersion == "" {
			cfg.APIVersion = config.DefaultAzureAPIVersion
		}
		b.ModelMap = maps.Clone(b.ModelMap) // the mapper must not share the caller's map
		cfg.AzureModelMapperFunc = b.Deployment
	default:
		return nil, fmt.Errorf("new provider %s: unknown type %q", b.Name, b.Type)
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new provider %s: base_url is not an absolute http(s) URL", b.Name)
	}
	if rt == nil {
		rt = newTransport()
	}
	cfg.HTTPClient = &http.Client{
		Transport: &recorder{next: rt},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return &Provider{
		name:      b.Name,
		typ:       b.Type,
		key:       &key,
		client:    openai.NewClientWithConfig(cfg),
		transport: rt,
	}, nil
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

// Chat sends a chat completion request and waits for the whole answer.
// req.Stream and req.StreamOptions are cleared: use [Provider.ChatStream] to
// stream. A 200 answer that is not a chat completion (invalid JSON, no
// choices) is a KindServer error.
func (p *Provider) Chat(ctx context.Context, req openai.ChatCompletionRequest) (openai.ChatCompletionResponse, Observation, error) {
	req.Stream = false
	req.StreamOptions = nil
	ctx, c := begin(ctx, false)
	resp, err := p.client.CreateChatCompletion(ctx, req)
	obs, err := p.finish(ctx, c, err)
	if err != nil {
		return openai.ChatCompletionResponse{}, obs, err
	}
	if len(resp.Choices) == 0 {
		return openai.ChatCompletionResponse{}, obs, p.malformed(obs, "no choices")
	}
	return resp, obs, nil
}

// Embeddings sends an embeddings request. A 200 answer without embeddings is
// a KindServer error.
func (p *Provider) Embeddings(ctx context.Context, req openai.EmbeddingRequest) (openai.EmbeddingResponse, Observation, error) {
	ctx, c := begin(ctx, false)
	resp, err := p.client.CreateEmbeddings(ctx, req)
	obs, err := p.finish(ctx, c, err)
	if err != nil {
		return openai.EmbeddingResponse{}, obs, err
	}
	if len(resp.Data) == 0 {
		return openai.EmbeddingResponse{}, obs, p.malformed(obs, "no embeddings")
	}
	return resp, obs, nil
}

// Models lists the IDs of the models the upstream reports (GET /models). For
// Azure these are the resource's base models, not its deployments.
func (p *Provider) Models(ctx context.Context) ([]string, Observation, error) {
	ctx, c := begin(ctx, false)
	list, err := p.client.ListModels(ctx)
	obs, err := p.finish(ctx, c, err)
	if err != nil {
		return nil, obs, err
	}
	ids := make([]string, 0, len(list.Models))
	for _, m := range list.Models {
		ids = append(ids, m.ID)
	}
	return ids, obs, nil
}

// finish returns the Observation of the call c and err classified, or an
// error for a response go-openai accepted but that is not a success.
func (p *Provider) finish(ctx context.Context, c *call, err error) (Observation, error) {
	obs := c.observation()
	if err != nil {
		return obs, p.classify(ctx, c, err)
	}
	if obs.Status < 200 || obs.Status > 299 {
		// go-openai decodes 1xx and 3xx answers as if they were successes.
		return obs, p.classify(ctx, c, fmt.Errorf("unexpected status %d", obs.Status))
	}
	c.mu.Lock()
	obs.Body = bytes.TrimSpace(c.body)
	c.mu.Unlock()
	return obs, nil
}

// malformed is the error for a 2xx answer that decoded but is unusable.
func (p *Provider) malformed(obs Observation, what string) *Error {
	return &Error{
		Kind:       KindServer,
		Backend:    p.name,
		Status:     obs.Status,
		Message:    "malformed response: " + what,
		RetryAfter: obs.RetryAfter,
		Err:        errMalformed,
	}
}

var errMalformed = errors.New("malformed response")

// ChatStream opens a streamed chat completion. It sets req.Stream and
// req.StreamOptions.IncludeUsage, so the last chunk before the end carries
// the usage of the whole request.
//
// When the stream cannot be opened, ChatStream returns a *Error and also a
// non-nil Stream whose Observation describes the refusing response (a 429's
// Retry-After and rate-limit headers, say); its Recv returns the same error
// and its Close does nothing.
func (p *Provider) ChatStream(ctx context.Context, req openai.ChatCompletionRequest) (*Stream, error) {
	req.Stream = true
	opts := openai.StreamOptions{IncludeUsage: true}
	if req.StreamOptions != nil {
		opts = *req.StreamOptions
		opts.IncludeUsage = true
	}
	req.StreamOptions = &opts
	ctx, c := begin(ctx, true)
	s, err := p.client.CreateChatCompletionStream(ctx, req)
	obs, err := p.finish(ctx, c, err)
	if err != nil {
		if s != nil {
			s.Close()
		}
		return &Stream{obs: obs, err: err}, err
	}
	return &Stream{p: p, ctx: ctx, c: c, s: s, obs: obs}, nil
}

// Stream is an open streamed chat completion. Recv is for one goroutine at a
// time; Close may be called from another to abort a blocked Recv. A Stream
// must be closed.
type Stream struct {
	p   *Provider
	ctx context.Context // the request's: tells a cancel from a broken stream
	c   *call
	s   *openai.ChatCompletionStream // nil when the stream did not open
	obs Observation

	err       error // what Recv returns from now on, once set; owned by Recv
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Next is Recv with the chunk's JSON exactly as the upstream sent it:
// passing that on keeps every field, even those go-openai does not know.
func (s *Stream) Next() (openai.ChatCompletionStreamResponse, json.RawMessage, error) {
	var chunk openai.ChatCompletionStreamResponse
	if s.err != nil {
		return chunk, nil, s.err
	}
	raw, err := s.s.RecvRaw()
	if err == nil {
		err = json.Unmarshal(raw, &chunk)
	}
	if err == nil {
		return chunk, bytes.Clone(raw), nil
	}
	switch {
	case err == io.EOF && s.c.sawDone():
		s.err = io.EOF
	case s.closed.Load():
		s.err = &Error{Kind: KindCanceled, Backend: s.p.name, Status: s.obs.Status, Message: "stream closed", Err: err}
	case err == io.EOF:
		// go-openai reports a body that ends without [DONE] as a clean end.
		s.err = s.p.classify(s.ctx, s.c, errBrokenStream)
	default:
		s.err = s.p.classify(s.ctx, s.c, err)
	}
	return openai.ChatCompletionStreamResponse{}, nil, s.err
}

// Recv returns the next chunk, or io.EOF after the upstream's final
// "data: [DONE]". Every other error is a *Error: a stream cut before [DONE]
// is KindNetwork, an error event from the upstream is classified by its
// code, an undecodable chunk is KindServer. After an error or io.EOF, Recv
// keeps returning it.
func (s *Stream) Recv() (openai.ChatCompletionStreamResponse, error) {
	chunk, _, err := s.Next()
	return chunk, err
}

var errBrokenStream = fmt.Errorf("stream ended before [DONE]: %w", io.ErrUnexpectedEOF)

// Observation describes the response that opened the stream.
func (s *Stream) Observation() Observation { return s.obs }

// Close releases the stream's connection. It is safe to call more than once
// and concurrently with Recv.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		if s.s == nil {
			return
		}
		s.closed.Store(true)
		s.closeErr = s.s.Close()
	})
	return s.closeErr
}
