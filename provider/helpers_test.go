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
	"strings"
	"sync"
	"testing"

	"github.com/lbgpt/lbgpt/config"
)

// Helpers shared by the provider tests: fake upstreams, and the new API
// wrapped in the shapes the table tests use.

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

func azureBackend(url string) config.Backend {
	return config.Backend{
		Name: "azure", Type: config.TypeAzure, BaseURL: url, Key: azureKey, APIVersion: "2024-12-01-preview",
		ModelMap: map[string]string{"gpt-4o": "prod-4o", "text-embedding-3-small": "emb-small"},
	}
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

// chatBody is a minimal chat completion request for model.
func chatBody(model string) []byte {
	return fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"hi"}]}`, model)
}

// chatCall is a chat completion call of chatBody(model).
func chatCall(model string) Call {
	return Call{Path: PathChat, Model: model, Body: chatBody(model)}
}

// streamCall is a streamed chat completion call for model, as a client
// sends it: the body says "stream": true (Open does not add it).
func streamCall(model string) Call {
	return Call{Path: PathChat, Model: model, Stream: true,
		Body: fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"user","content":"hi"}],"stream":true}`, model)}
}

const chatOK = `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// errorBody is an OpenAI error answer.
func errorBody(message, typ, code string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "param": nil, "code": code}})
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

// send makes a whole call the way the old table tests did: the answer's
// body, the Observation, the error. Send returns a Response even on error.
func send(ctx context.Context, p *Provider, c Call) ([]byte, Observation, error) {
	resp, err := p.Send(ctx, c)
	if resp == nil {
		return nil, Observation{}, fmt.Errorf("Send returned a nil Response (error %v)", err)
	}
	return resp.Body, resp.Obs, err
}

// drain reads s to its end, returning the events and the final error.
func drain(s *Stream) ([]Event, error) {
	var events []Event
	for {
		ev, err := s.Next()
		if err != nil {
			return events, err
		}
		events = append(events, ev)
	}
}

// chunk is the part of a chat completion chunk the tests read.
type chunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// chunks decodes the events of a chat completion stream.
func chunks(t *testing.T, events []Event) []chunk {
	t.Helper()
	out := make([]chunk, len(events))
	for i, ev := range events {
		if err := json.Unmarshal(ev.Data, &out[i]); err != nil {
			t.Fatalf("event %d %q: %v", i, ev.Data, err)
		}
	}
	return out
}

// text is the content the chunks carry.
func text(cs []chunk) string {
	var b strings.Builder
	for _, c := range cs {
		for _, ch := range c.Choices {
			b.WriteString(ch.Delta.Content)
		}
	}
	return b.String()
}

// seen is one request an upstream received.
type seen struct {
	Method, Path, RawQuery string // Path as sent, escaped
	Header                 http.Header
	Body                   []byte
}

// recorder is an upstream handler that records every request and answers
// with answer.
type recorder struct {
	mu     sync.Mutex
	seen   []seen
	answer http.HandlerFunc
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.seen = append(rc.seen, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
	rc.mu.Unlock()
	if rc.answer != nil {
		rc.answer(w, r)
		return
	}
	io.WriteString(w, chatOK)
}

// last is the last request the recorder saw.
func (rc *recorder) last(t *testing.T) seen {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.seen) == 0 {
		t.Fatal("the upstream saw no request")
	}
	return rc.seen[len(rc.seen)-1]
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen)
}

// recording starts an upstream that records requests and answers with
// answer (nil: chatOK).
func recording(t *testing.T, answer http.HandlerFunc) (*recorder, *httptest.Server) {
	rc := &recorder{answer: answer}
	return rc, upstream(t, rc.ServeHTTP)
}
