package sim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake clock for rate-limit arithmetic.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start serves a new Server on a real listener for the test's duration.
func start(t testing.TB, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	return s, serve(t, s)
}

// serve serves s on a real listener for the test's duration.
func serve(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close) // runs first: releases hung requests so ts.Close returns
	return ts
}

// wire describes how to reach one endpoint kind on one wire.
type wire struct {
	name string
	url  func(base, endpoint string) string // endpoint: "chat/completions", "embeddings", "models"
	auth func(h http.Header, key string)
}

var (
	openaiWire = wire{
		name: WireOpenAI,
		url:  func(base, ep string) string { return base + "/v1/" + ep },
		auth: func(h http.Header, key string) { h.Set("Authorization", "Bearer "+key) },
	}
	azureWire = wire{
		name: WireAzure,
		url: func(base, ep string) string {
			if ep == "models" {
				return base + "/openai/models?api-version=2024-10-21"
			}
			dep := "gpt-4o-mini"
			if ep == "embeddings" {
				dep = "text-embedding-3-small"
			}
			return base + "/openai/deployments/" + dep + "/" + ep + "?api-version=2024-10-21"
		},
		auth: func(h http.Header, key string) { h.Set("api-key", key) },
	}
	wires = []wire{openaiWire, azureWire}
)

// do sends one request and returns the response with its body read.
func do(t testing.TB, method, url string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

// call sends a request for endpoint on w with key.
func (w wire) call(t testing.TB, base, endpoint, key, body string) (*http.Response, string) {
	t.Helper()
	h := http.Header{}
	if key != "" {
		w.auth(h, key)
	}
	method := http.MethodPost
	if endpoint == "models" {
		method = http.MethodGet
	}
	return do(t, method, w.url(base, endpoint), h, body)
}

const hello = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there, how are you today?"}]}`
