package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

func chunk(content string) string {
	return fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}],"usage":null}`+"\n\n", content)
}

const usageChunk = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}` + "\n\n"

// sse starts an event stream and writes the events, flushing each.
func sse(w http.ResponseWriter, r *http.Request, events ...string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("x-ratelimit-remaining-tokens", "1234")
	for _, e := range events {
		io.WriteString(w, e)
		w.(http.Flusher).Flush()
	}
}

// drain reads s to its end, returning the chunks and the final error.
func drain(s *Stream) ([]openai.ChatCompletionStreamResponse, error) {
	var chunks []openai.ChatCompletionStreamResponse
	for {
		c, err := s.Recv()
		if err != nil {
			return chunks, err
		}
		chunks = append(chunks, c)
	}
}

func TestStreamOK(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		var req openai.ChatCompletionRequest
		json.NewDecoder(r.Body).Decode(&req)
		if !req.Stream || req.StreamOptions == nil || !req.StreamOptions.IncludeUsage {
			t.Errorf("stream %v, stream_options %+v: want include_usage forced", req.Stream, req.StreamOptions)
		}
		if r.Header.Get("Accept") != "text/event-stream" {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
		sse(w, r, chunk("Hel"), chunk("lo"), usageChunk, "data: [DONE]\n\n")
	})
	p := newProvider(t, openaiBackend(srv.URL))
	req := chatRequest()
	opts := &openai.StreamOptions{IncludeUsage: false}
	req.StreamOptions = opts
	s, err := p.ChatStream(t.Context(), req)
	if err != nil {
		t.Fatalf("ChatStream: %v", err)
	}
	defer s.Close()
	if opts.IncludeUsage {
		t.Error("ChatStream changed the caller's StreamOptions")
	}
	chunks, err := drain(s)
	if err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	var text strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if text.String() != "Hello" || len(chunks) != 3 {
		t.Errorf("text %q in %d chunks", text.String(), len(chunks))
	}
	if u := chunks[len(chunks)-1].Usage; u == nil || u.TotalTokens != 5 {
		t.Errorf("last chunk usage %+v", u)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("Recv after the end: %v, want io.EOF again", err)
	}
	if obs := s.Observation(); obs.Status != 200 || obs.RateLimit.RemainingTokens != 1234 {
		t.Errorf("observation %+v", obs)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStreamErrors: how a stream that opened can still fail, and what Recv
// says.
func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration // a context deadline
		cancel  time.Duration // cancel the context after
		close   time.Duration // Close the stream after
		chunks  int           // chunks Recv returns before the error
		kind    Kind
		code    string
	}{
		{"connection cut", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"), chunk("b"))
			hijack(t, w, false)
		}, 0, 0, 0, 2, KindNetwork, ""},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"))
			hijack(t, w, true)
		}, 0, 0, 0, 1, KindNetwork, ""},
		{"ended without done", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"), chunk("b"), usageChunk)
		}, 0, 0, 0, 3, KindNetwork, ""},
		{"error event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"), `data: {"error":{"message":"The server had an error","type":"server_error","code":"server_error"}}`+"\n\n")
		}, 0, 0, 0, 1, KindServer, "server_error"},
		{"rate limit event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, `data: {"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`+"\n\n")
		}, 0, 0, 0, 0, KindRateLimited, "rate_limit_exceeded"},
		{"malformed chunk", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"), "data: {\"id\": nope}\n\n", "data: [DONE]\n\n")
		}, 0, 0, 0, 1, KindServer, ""},
		{"deadline mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"))
			<-r.Context().Done()
		}, 50 * time.Millisecond, 0, 0, 1, KindTimeout, ""},
		{"canceled mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"))
			<-r.Context().Done()
		}, 0, 30 * time.Millisecond, 0, 1, KindCanceled, ""},
		{"closed mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chunk("a"))
			<-r.Context().Done()
		}, 0, 0, 30 * time.Millisecond, 1, KindCanceled, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, tt.handler)
			p := newProvider(t, openaiBackend(srv.URL))
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
			s, err := p.ChatStream(ctx, chatRequest())
			if err != nil {
				t.Fatalf("ChatStream: %v", err)
			}
			defer s.Close()
			if tt.close > 0 {
				time.AfterFunc(tt.close, func() { s.Close() })
			}
			chunks, err := drain(s)
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || len(chunks) != tt.chunks {
				t.Errorf("got %q code %q after %d chunks, want %q %q after %d: %v", pe.Kind, pe.Code, len(chunks), tt.kind, tt.code, tt.chunks, err)
			}
			if _, again := s.Recv(); again != err {
				t.Errorf("Recv after the error: %v, want the same error", again)
			}
			if s.Observation().Status != 200 {
				t.Errorf("observation %+v", s.Observation())
			}
			t.Log(err)
		})
	}
}

// TestStreamRefused: a stream that opens with an error status fails in
// ChatStream, and the Stream still reports the refusing response.
func TestStreamRefused(t *testing.T) {
	tests := []struct {
		name   string
		status int
		kind   Kind
	}{
		{"429", 429, KindRateLimited},
		{"401", 401, KindAuth},
		{"404", 404, KindNotFound},
		{"503", 503, KindServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, reply(tt.status, apiError("no", "t", ""),
				"retry-after-ms", "700", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "700ms"))
			p := newProvider(t, openaiBackend(srv.URL))
			s, err := p.ChatStream(t.Context(), chatRequest())
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.RetryAfter != 700*time.Millisecond {
				t.Errorf("got %q %d retry after %v: %v", pe.Kind, pe.Status, pe.RetryAfter, err)
			}
			if s == nil {
				t.Fatal("no Stream to observe")
			}
			obs := s.Observation()
			if obs.Status != tt.status || obs.RetryAfter != 700*time.Millisecond || obs.RateLimit.RemainingRequests != 0 || obs.RateLimit.ResetRequests != 700*time.Millisecond {
				t.Errorf("observation %+v", obs)
			}
			if _, rerr := s.Recv(); !errors.Is(rerr, err) {
				t.Errorf("Recv: %v, want %v", rerr, err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}
