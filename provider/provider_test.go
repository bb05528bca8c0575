package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	openai "github.com/sashabaranov/go-openai"
)

const (
	openaiKey = "sk-proj-TestKey0123456789abcdefghijklmnopqrstuvwxyz"
	azureKey  = "0123456789abcdef0123456789abcdef"
)

// upstream starts a fake upstream serving h.
func upstream(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func openaiBackend(url string) config.Backend {
	return config.Backend{Name: "openai", Type: config.TypeOpenAI, BaseURL: url + "/v1", Key: openaiKey}
}

func newProvider(t *testing.T, b config.Backend) *Provider {
	t.Helper()
	p, err := New(b, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.CloseIdleConnections)
	return p
}

func chatRequest() openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi"}},
	}
}

const chatOK = `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

func apiError(message, typ, code string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "code": code}})
	return string(b)
}

// reply answers with status, headers (name, value pairs) and body.
func reply(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// hijack takes the connection from the server; reset makes closing it send
// a TCP RST.
func hijack(t *testing.T, w http.ResponseWriter, reset bool) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	conn.Close()
}

// hang reads the request and waits for the client to go away. (The server
// notices only once the request body has been read.)
func hang(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	pe, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *provider.Error", err, err)
	}
	return pe
}

func TestChatOK(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+openaiKey {
			t.Errorf("request %s %s auth %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
		}
		if body["stream"] == true {
			t.Errorf("stream sent in a plain chat: %v", body)
		}
		if _, ok := body["stream_options"]; ok {
			t.Errorf("stream_options sent in a plain chat: %v", body)
		}
		w.Header().Set("x-ratelimit-remaining-requests", "42")
		time.Sleep(5 * time.Millisecond)
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	req := chatRequest()
	req.Stream = true // cleared by Chat
	req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	resp, obs, err := p.Chat(t.Context(), req)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if resp.Choices[0].Message.Content != "hello" || resp.Usage.TotalTokens != 2 {
		t.Errorf("response %+v", resp)
	}
	if obs.Status != 200 || obs.RateLimit.RemainingRequests != 42 || obs.RateLimit.RemainingTokens != Unknown || obs.RetryAfter != 0 {
		t.Errorf("observation %+v", obs)
	}
	if obs.Latency < 5*time.Millisecond || obs.Latency > 5*time.Second {
		t.Errorf("latency %v, want about 5ms", obs.Latency)
	}
	if p.Name() != "openai" {
		t.Errorf("Name() = %q", p.Name())
	}
}

// TestStatusKinds: every status, and every kind of broken 2xx, maps to its
// Kind, with the Observation filled.
func TestStatusKinds(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    Kind
		status  int
		code    string
		message string // a substring of Error.Message
	}{
		{"400", reply(400, apiError("Invalid value for 'temperature'", "invalid_request_error", "invalid_value")), KindBadRequest, 400, "invalid_value", "temperature"},
		{"400 model_not_found", reply(400, apiError("The model `x` does not exist", "invalid_request_error", "model_not_found")), KindNotFound, 400, "model_not_found", "does not exist"},
		{"401", reply(401, apiError("Incorrect API key provided", "invalid_request_error", "invalid_api_key")), KindAuth, 401, "invalid_api_key", "Incorrect API key"},
		{"403", reply(403, apiError("Country, region, or territory not supported", "request_forbidden", "unsupported_country_region_territory")), KindAuth, 403, "unsupported_country_region_territory", "territory"},
		{"404", reply(404, apiError("The model `gpt-9` does not exist or you do not have access to it.", "invalid_request_error", "model_not_found")), KindNotFound, 404, "model_not_found", "gpt-9"},
		{"404 azure deployment", reply(404, `{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}`), KindNotFound, 404, "DeploymentNotFound", "deployment"},
		{"404 plain", reply(404, "404 page not found"), KindNotFound, 404, "", "page not found"},
		{"408", reply(408, ""), KindTimeout, 408, "", ""},
		{"409", reply(409, apiError("conflict", "invalid_request_error", "")), KindBadRequest, 409, "", "conflict"},
		{"413", reply(413, "<html>too large</html>"), KindBadRequest, 413, "", "too large"},
		{"422", reply(422, apiError("unprocessable", "invalid_request_error", "")), KindBadRequest, 422, "", "unprocessable"},
		{"429", reply(429, apiError("Rate limit reached for requests", "requests", "rate_limit_exceeded"), "retry-after-ms", "1500"), KindRateLimited, 429, "rate_limit_exceeded", "Rate limit reached"},
		{"429 quota", reply(429, apiError("You exceeded your current quota", "insufficient_quota", "insufficient_quota")), KindAuth, 429, "insufficient_quota", "quota"},
		{"500", reply(500, apiError("The server had an error", "server_error", "")), KindServer, 500, "", "server had an error"},
		{"500 numeric code", reply(500, `{"error":{"message":"boom","type":"server_error","code":500}}`), KindServer, 500, "500", "boom"},
		{"502 html", reply(502, "<html><body>Bad gateway</body></html>"), KindServer, 502, "", "Bad gateway"},
		{"503", reply(503, apiError("overloaded", "server_error", ""), "Retry-After", "2"), KindServer, 503, "", "overloaded"},
		{"504 empty", reply(504, ""), KindServer, 504, "", "Gateway Timeout"},
		{"302 redirect", reply(302, "", "Location", "http://elsewhere.invalid/v1/chat/completions"), KindServer, 302, "", "unexpected status 302"},
		{"200 invalid json", reply(200, "this is not json"), KindServer, 200, "", "malformed"},
		{"200 truncated json", reply(200, chatOK[:40]), KindServer, 200, "", "malformed"},
		{"200 empty body", reply(200, ""), KindServer, 200, "", "malformed"},
		{"200 no choices", reply(200, `{"id":"x","object":"chat.completion","choices":[]}`), KindServer, 200, "", "no choices"},
		{"200 error object", reply(200, apiError("upstream provider failed", "server_error", "")), KindServer, 200, "", "no choices"},
		{"429 body cut", func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", "1000")
			w.Header().Set("retry-after-ms", "300")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":`)
			w.(http.Flusher).Flush()
			hijack(t, w, false)
		}, KindRateLimited, 429, "", "reading response body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, tt.handler)
			p := newProvider(t, openaiBackend(srv.URL))
			_, obs, err := p.Chat(t.Context(), chatRequest())
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.Code != tt.code || pe.Backend != "openai" {
				t.Errorf("got kind %q status %d code %q backend %q, want %q %d %q", pe.Kind, pe.Status, pe.Code, pe.Backend, tt.kind, tt.status, tt.code)
			}
			if !strings.Contains(pe.Message, tt.message) {
				t.Errorf("message %q does not contain %q", pe.Message, tt.message)
			}
			if obs.Status != tt.status {
				t.Errorf("observation status %d, want %d", obs.Status, tt.status)
			}
			if pe.RetryAfter != obs.RetryAfter {
				t.Errorf("error RetryAfter %v, observation %v", pe.RetryAfter, obs.RetryAfter)
			}
			t.Log(err)
		})
	}
}

// TestObservationOnError: the headers of an error response reach the caller
// although go-openai drops them.
func TestObservationOnError(t *testing.T) {
	srv := upstream(t, reply(429, apiError("Rate limit reached", "requests", "rate_limit_exceeded"),
		"retry-after-ms", "2500",
		"Retry-After", "3",
		"x-ratelimit-limit-requests", "60",
		"x-ratelimit-remaining-requests", "0",
		"x-ratelimit-reset-requests", "1m30.5s",
		"x-ratelimit-remaining-tokens", "90000",
	))
	p := newProvider(t, openaiBackend(srv.URL))
	_, obs, err := p.Chat(t.Context(), chatRequest())
	pe := asError(t, err)
	want := RateLimit{60, Unknown, 0, 90000, 90*time.Second + 500*time.Millisecond, Unknown}
	if obs.Status != 429 || obs.RetryAfter != 2500*time.Millisecond || obs.RateLimit != want || obs.Latency <= 0 {
		t.Errorf("observation %+v, want 429, 2.5s, %+v", obs, want)
	}
	if pe.RetryAfter != 2500*time.Millisecond {
		t.Errorf("error RetryAfter %v", pe.RetryAfter)
	}
	if got := pe.Error(); got != "backend openai: rate limited (429 rate_limit_exceeded): Rate limit reached" {
		t.Errorf("Error() = %q", got)
	}
}

// TestRedaction: a 401 that echoes the key (masked, and verbatim) never puts
// it in the error, whichever way the error is printed or unwrapped.
func TestRedaction(t *testing.T) {
	masked := "sk-proj-" + strings.Repeat("*", 40) + "wxyz"
	tests := []struct {
		name string
		b    func(url string) config.Backend
		body string
	}{
		{"openai api error", openaiBackend, apiError("Incorrect API key provided: "+masked+". Also "+openaiKey+" and sk-other1234567890abcdef.", "invalid_request_error", "invalid_api_key")},
		{"openai raw body", openaiBackend, "unauthorized: Bearer " + openaiKey + " " + masked},
		{"azure", func(url string) config.Backend {
			return config.Backend{Name: "azure", Type: config.TypeAzure, BaseURL: url, Key: azureKey, APIVersion: "2024-10-21"}
		}, `{"error":{"code":"401","message":"Access denied: key ` + azureKey + ` is invalid"}}`},
		{"compatible verbatim key", func(url string) config.Backend {
			return config.Backend{Name: "local", Type: config.TypeOpenAICompatible, BaseURL: url + "/v1", Key: "plain-words-key"}
		}, apiError("key plain-words-key rejected", "auth", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, reply(401, tt.body))
			b := tt.b(srv.URL)
			p := newProvider(t, b)
			_, obs, err := p.Chat(t.Context(), chatRequest())
			pe := asError(t, err)
			if pe.Kind != KindAuth {
				t.Errorf("kind %q, want auth", pe.Kind)
			}
			if !strings.Contains(pe.Message, redacted) {
				t.Errorf("message %q has nothing redacted", pe.Message)
			}
			printed := []string{
				err.Error(), fmt.Sprintf("%v|%+v|%#v", err, pe, obs), pe.Message,
			}
			for e := error(pe); e != nil; e = errors.Unwrap(e) {
				printed = append(printed, e.Error())
			}
			if ae, ok := errors.AsType[*openai.APIError](err); ok {
				printed = append(printed, ae.Message)
			}
			if re, ok := errors.AsType[*openai.RequestError](err); ok {
				printed = append(printed, string(re.Body))
			}
			for _, s := range printed {
				for _, secret := range []string{b.Key.Reveal(), masked, "sk-other"} {
					if strings.Contains(s, secret) {
						t.Errorf("%q leaks %q", s, secret)
					}
				}
			}
		})
	}
}

// TestAzureShape: the deployment replaces the model in the path, api-version
// is the configured one, the key goes in api-key and nowhere else.
func TestAzureShape(t *testing.T) {
	type seen struct{ path, version, apiKey, auth string }
	var (
		mu   sync.Mutex
		got  []seen
		body = map[string]string{
			"/openai/deployments/prod-4o/chat/completions":  chatOK,
			"/openai/deployments/emb-small/embeddings":      `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}`,
			"/openai/deployments/unmapped/chat/completions": chatOK,
			"/openai/models": `{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}`,
		}
	)
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.URL.Path, r.URL.Query().Get("api-version"), r.Header.Get("api-key"), r.Header.Get("Authorization")})
		mu.Unlock()
		b, ok := body[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, b)
	})
	p := newProvider(t, config.Backend{
		Name: "azure", Type: config.TypeAzure, BaseURL: srv.URL, Key: azureKey, APIVersion: "2024-12-01-preview",
		ModelMap: map[string]string{"gpt-4o": "prod-4o", "text-embedding-3-small": "emb-small"},
	})
	ctx := t.Context()
	req := chatRequest()
	req.Model = "gpt-4o"
	if _, _, err := p.Chat(ctx, req); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	req.Model = "unmapped"
	if _, _, err := p.Chat(ctx, req); err != nil {
		t.Fatalf("Chat unmapped: %v", err)
	}
	if _, _, err := p.Embeddings(ctx, openai.EmbeddingRequest{Model: openai.SmallEmbedding3, Input: []string{"x"}}); err != nil {
		t.Fatalf("Embeddings: %v", err)
	}
	models, _, err := p.Models(ctx)
	if err != nil || len(models) != 1 || models[0] != "gpt-4o" {
		t.Fatalf("Models = %v, %v", models, err)
	}
	want := []string{
		"/openai/deployments/prod-4o/chat/completions",
		"/openai/deployments/unmapped/chat/completions",
		"/openai/deployments/emb-small/embeddings",
		"/openai/models",
	}
	if len(got) != len(want) {
		t.Fatalf("saw %d requests, want %d", len(got), len(want))
	}
	for i, s := range got {
		if s.path != want[i] || s.version != "2024-12-01-preview" || s.apiKey != azureKey || s.auth != "" {
			t.Errorf("request %d: %+v, want path %s, api-version 2024-12-01-preview, api-key set, no Authorization", i, s, want[i])
		}
	}
}

func TestAzureDefaultAPIVersion(t *testing.T) {
	var version atomic.Value
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		version.Store(r.URL.Query().Get("api-version"))
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, config.Backend{Name: "azure", Type: config.TypeAzure, BaseURL: srv.URL, Key: azureKey})
	if _, _, err := p.Chat(t.Context(), chatRequest()); err != nil {
		t.Fatal(err)
	}
	if v := version.Load(); v != config.DefaultAzureAPIVersion {
		t.Errorf("api-version %v, want %s (go-openai's own default is 2023-05-15)", v, config.DefaultAzureAPIVersion)
	}
}

// TestAuthorizationHeader: an openai-compatible backend without a key sends
// no Authorization header at all.
func TestAuthorizationHeader(t *testing.T) {
	tests := []struct {
		name, key string
		want      []string // the Authorization values sent
	}{
		{"no key", "", nil},
		{"key", "local-key-1234", []string{"Bearer local-key-1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got atomic.Value
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				got.Store(r.Header.Values("Authorization"))
				io.WriteString(w, chatOK)
			})
			p := newProvider(t, config.Backend{Name: "local", Type: config.TypeOpenAICompatible, BaseURL: srv.URL + "/v1", Key: config.Secret(tt.key)})
			if _, _, err := p.Chat(t.Context(), chatRequest()); err != nil {
				t.Fatal(err)
			}
			if v := got.Load().([]string); strings.Join(v, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Authorization %q, want %q", v, tt.want)
			}
		})
	}
}

// TestConcurrentObservations: calls running at once on one Provider each get
// the headers of their own response.
func TestConcurrentObservations(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req openai.ChatCompletionRequest
		json.NewDecoder(r.Body).Decode(&req)
		n, _ := strconv.Atoi(req.User)
		w.Header().Set("x-ratelimit-remaining-requests", strconv.Itoa(n))
		w.Header().Set("retry-after-ms", strconv.Itoa(n))
		time.Sleep(time.Duration(n%5) * time.Millisecond)
		if n%3 == 0 {
			w.WriteHeader(429)
			io.WriteString(w, apiError("slow down", "requests", "rate_limit_exceeded"))
			return
		}
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	var wg sync.WaitGroup
	for n := 1; n <= 48; n++ {
		wg.Go(func() {
			req := chatRequest()
			req.User = strconv.Itoa(n)
			_, obs, err := p.Chat(t.Context(), req)
			wantStatus := 200
			if n%3 == 0 {
				wantStatus = 429
				if pe := asError(t, err); pe.RetryAfter != time.Duration(n)*time.Millisecond {
					t.Errorf("call %d: error RetryAfter %v", n, pe.RetryAfter)
				}
			} else if err != nil {
				t.Errorf("call %d: %v", n, err)
			}
			if obs.Status != wantStatus || obs.RateLimit.RemainingRequests != int64(n) || obs.RetryAfter != time.Duration(n)*time.Millisecond {
				t.Errorf("call %d: observation %+v", n, obs)
			}
		})
	}
	wg.Wait()
}

// TestTransportErrors: failures below HTTP.
func TestTransportErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name    string
		url     func(t *testing.T) string
		timeout time.Duration // 0: no deadline
		cancel  time.Duration // cancel the context after this
		kind    Kind
		status  int
	}{
		{"connection refused", func(*testing.T) string { return closedURL }, 0, 0, KindNetwork, 0},
		{"reset before response", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) { hijack(t, w, true) }).URL
		}, 0, 0, KindNetwork, 0},
		{"closed before response", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) { hijack(t, w, false) }).URL
		}, 0, 0, KindNetwork, 0},
		{"200 body cut", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(chatOK)))
				io.WriteString(w, chatOK[:30])
				w.(http.Flusher).Flush()
				hijack(t, w, false)
			}).URL
		}, 0, 0, KindNetwork, 200},
		{"deadline before headers", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, 50 * time.Millisecond, 0, KindTimeout, 0},
		{"deadline in body", func(t *testing.T) string {
			return upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(chatOK)))
				io.WriteString(w, chatOK[:30])
				w.(http.Flusher).Flush()
				hang(w, r)
			}).URL
		}, 50 * time.Millisecond, 0, KindTimeout, 200},
		{"canceled before headers", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, 0, 30 * time.Millisecond, KindCanceled, 0},
		{"canceled under a deadline", func(t *testing.T) string {
			return upstream(t, hang).URL
		}, time.Minute, 30 * time.Millisecond, KindCanceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, openaiBackend(tt.url(t)))
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			if tt.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tt.cancel, cancel)
			}
			_, obs, err := p.Chat(ctx, chatRequest())
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || obs.Status != tt.status {
				t.Errorf("kind %q status %d (observed %d), want %q %d: %v", pe.Kind, pe.Status, obs.Status, tt.kind, tt.status, err)
			}
			switch tt.kind {
			case KindTimeout:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v is not context.DeadlineExceeded", err)
				}
			case KindCanceled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%v is not context.Canceled", err)
				}
			}
			if tt.status == 0 && obs.RateLimit != unknownRateLimit {
				t.Errorf("no response but rate limit %+v", obs.RateLimit)
			}
			t.Log(err)
		})
	}
}

// TestRefusedBeforeSending: go-openai's own checks are bad requests, with no
// request sent.
func TestRefusedBeforeSending(t *testing.T) {
	var calls atomic.Int32
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.WriteString(w, chatOK)
	})
	p := newProvider(t, openaiBackend(srv.URL))
	tests := []struct {
		name string
		req  openai.ChatCompletionRequest
	}{
		{"max_tokens on a reasoning model", openai.ChatCompletionRequest{Model: "o3-mini", MaxTokens: 10, Messages: chatRequest().Messages}},
		{"content and multi-content", openai.ChatCompletionRequest{Model: "gpt-4o", Messages: []openai.ChatCompletionMessage{{
			Role: "user", Content: "a", MultiContent: []openai.ChatMessagePart{{Type: openai.ChatMessagePartTypeText, Text: "b"}},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, obs, err := p.Chat(t.Context(), tt.req)
			pe := asError(t, err)
			if pe.Kind != KindBadRequest || pe.Status != 0 || obs.Status != 0 {
				t.Errorf("got %q status %d, want bad_request 0: %v", pe.Kind, pe.Status, err)
			}
			s, err := p.ChatStream(t.Context(), tt.req)
			if pe := asError(t, err); pe.Kind != KindBadRequest {
				t.Errorf("stream: got %q, want bad_request", pe.Kind)
			}
			s.Close()
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestNoTransportRetry: a POST the server received and then dropped is not
// sent again by net/http, even on a reused keep-alive connection. (net/http
// only replays a request on a reused connection when nothing of it was
// written, or when it is idempotent: GET, HEAD, or an Idempotency-Key header,
// which go-openai never sets.)
func TestNoTransportRetry(t *testing.T) {
	var calls, conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1) == 2 {
			hijack(t, w, false) // the second request: read, then dropped
			return
		}
		io.WriteString(w, chatOK)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	p := newProvider(t, openaiBackend(srv.URL))
	if _, _, err := p.Chat(t.Context(), chatRequest()); err != nil {
		t.Fatal(err)
	}
	_, _, err := p.Chat(t.Context(), chatRequest())
	if pe := asError(t, err); pe.Kind != KindNetwork {
		t.Errorf("kind %q, want network: %v", pe.Kind, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (no transport retry)", n)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (the second request reused the first's)", n)
	}
}

func TestEmbeddingsAndModels(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ratelimit-remaining-tokens", "7")
		switch r.URL.Path {
		case "/v1/embeddings":
			io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}`)
		case "/v1/models":
			if r.Method != http.MethodGet {
				t.Errorf("models: method %s", r.Method)
			}
			io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model"},{"id":"gpt-4o-mini","object":"model"}]}`)
		default:
			http.NotFound(w, r)
		}
	})
	p := newProvider(t, openaiBackend(srv.URL))
	emb, obs, err := p.Embeddings(t.Context(), openai.EmbeddingRequest{Model: openai.SmallEmbedding3, Input: []string{"x"}})
	if err != nil || len(emb.Data) != 1 || len(emb.Data[0].Embedding) != 2 || obs.RateLimit.RemainingTokens != 7 {
		t.Errorf("Embeddings = %+v, %+v, %v", emb, obs, err)
	}
	models, obs, err := p.Models(t.Context())
	if err != nil || strings.Join(models, ",") != "gpt-4o,gpt-4o-mini" || obs.Status != 200 {
		t.Errorf("Models = %v, %+v, %v", models, obs, err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		b       config.Backend
		wantErr string
	}{
		{"openai", config.Backend{Name: "a", Type: config.TypeOpenAI, Key: openaiKey}, ""},
		{"openai without key", config.Backend{Name: "a", Type: config.TypeOpenAI}, "needs an api key"},
		{"compatible without key", config.Backend{Name: "a", Type: config.TypeOpenAICompatible, BaseURL: "http://localhost:11434/v1"}, ""},
		{"compatible without url", config.Backend{Name: "a", Type: config.TypeOpenAICompatible}, "needs a base_url"},
		{"azure", config.Backend{Name: "a", Type: config.TypeAzure, BaseURL: "https://r.openai.azure.com", Key: azureKey}, ""},
		{"azure without key", config.Backend{Name: "a", Type: config.TypeAzure, BaseURL: "https://r.openai.azure.com"}, "needs an api key"},
		{"azure without url", config.Backend{Name: "a", Type: config.TypeAzure, Key: azureKey}, "needs a base_url"},
		{"relative url", config.Backend{Name: "a", Type: config.TypeOpenAICompatible, BaseURL: "localhost/v1"}, "absolute"},
		{"unknown type", config.Backend{Name: "a", Type: "anthropic", Key: openaiKey}, "unknown type"},
		{"no name", config.Backend{Type: config.TypeOpenAI, Key: openaiKey}, "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.b, nil)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("New error %v, want %q", err, tt.wantErr)
			}
			if tt.b.Key == "" {
				return
			}
			if err != nil && strings.Contains(err.Error(), tt.b.Key.Reveal()) {
				t.Errorf("error %v contains the key", err)
			}
			if p != nil {
				if s := fmt.Sprintf("%v %+v %#v", p, *p, *p); strings.Contains(s, tt.b.Key.Reveal()) {
					t.Errorf("a printed Provider shows the key: %s", s)
				}
			}
		})
	}
}
