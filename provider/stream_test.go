package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func chatChunk(content string) string {
	return fmt.Sprintf(`data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}],"usage":null}`+"\n\n", content)
}

const usageChunk = `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}` + "\n\n"

// sse starts an event stream and writes the events, flushing each.
func sse(w http.ResponseWriter, r *http.Request, events ...string) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("x-ratelimit-remaining-tokens", "1234")
	w.Header().Set("x-request-id", "req-stream")
	for _, e := range events {
		io.WriteString(w, e)
		w.(http.Flusher).Flush()
	}
}

// openChat opens a streamed chat call.
func openChat(ctx context.Context, p *Provider) (*Stream, error) {
	return p.Open(ctx, streamCall("gpt-4o-mini"))
}

// openResponses opens a streamed Responses API call.
func openResponses(ctx context.Context, p *Provider) (*Stream, error) {
	return p.Open(ctx, Call{Path: PathResponses, Model: "gpt-4o-mini", Body: []byte(`{"model":"gpt-4o-mini","input":"hi","stream":true}`)})
}

func TestStreamOK(t *testing.T) {
	rc, srv := recording(t, func(w http.ResponseWriter, r *http.Request) {
		sse(w, r, chatChunk("Hel"), ": keep-alive\n\n", chatChunk("lo"), usageChunk, "data: [DONE]\n\n")
	})
	p := newProvider(t, openaiBackend(srv.URL))
	s, err := openChat(t.Context(), p)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	got := rc.last(t)
	if got.Header.Get("Accept") != "text/event-stream" || got.Path != "/v1/chat/completions" {
		t.Errorf("request %s, Accept %q", got.Path, got.Header.Get("Accept"))
	}
	events, err := drain(s)
	if err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	want := []string{chatChunk("Hel"), chatChunk("lo"), usageChunk}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
	for i, ev := range events {
		if ev.Name != "" || "data: "+string(ev.Data)+"\n\n" != want[i] {
			t.Errorf("event %d: %q %s, want the upstream's data as is", i, ev.Name, ev.Data)
		}
	}
	cs := chunks(t, events)
	if text(cs) != "Hello" {
		t.Errorf("text %q", text(cs))
	}
	if u := cs[len(cs)-1].Usage; u == nil || u.TotalTokens != 5 {
		t.Errorf("last chunk usage %+v", u)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("Next after the end: %v, want io.EOF again", err)
	}
	obs := s.Observation()
	if obs.Status != 200 || obs.RateLimit.RemainingTokens != 1234 || obs.Header.Get("x-request-id") != "req-stream" || obs.Latency <= 0 {
		t.Errorf("observation %+v", obs)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStreamErrors: how a chat stream that opened can still fail, and what
// Next says.
func TestStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		timeout time.Duration // a context deadline
		cancel  time.Duration // cancel the context after
		close   time.Duration // Close the stream after
		events  int           // events Next returns before the error
		kind    Kind
		code    string
	}{
		{"connection cut", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"), chatChunk("b"))
			hijack(t, w, false)
		}, 0, 0, 0, 2, KindNetwork, ""},
		{"connection reset", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"))
			hijack(t, w, true)
		}, 0, 0, 0, 1, KindNetwork, ""},
		{"cut inside an event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"), `data: {"id":"c1","choi`)
			hijack(t, w, false)
		}, 0, 0, 0, 1, KindNetwork, ""},
		{"ended without done", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"), chatChunk("b"), usageChunk)
		}, 0, 0, 0, 3, KindNetwork, ""},
		{"empty", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r)
		}, 0, 0, 0, 0, KindNetwork, ""},
		{"error event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"), `data: {"error":{"message":"The server had an error","type":"server_error","code":"server_error"}}`+"\n\n")
		}, 0, 0, 0, 1, KindServer, "server_error"},
		{"rate limit event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, `data: {"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`+"\n\n")
		}, 0, 0, 0, 0, KindRateLimited, "rate_limit_exceeded"},
		{"rate limit event by type", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, `data: {"error":{"message":"slow down","type":"rate_limit_error"}}`+"\n\n")
		}, 0, 0, 0, 0, KindRateLimited, ""},
		{"quota event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, `data: {"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}`+"\n\n")
		}, 0, 0, 0, 0, KindAuth, "insufficient_quota"},
		{"model not found event", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, `data: {"error":{"message":"no such model","code":"model_not_found"}}`+"\n\n")
		}, 0, 0, 0, 0, KindNotFound, "model_not_found"},
		{"malformed chunk", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"), "data: {\"id\": nope}\n\n", "data: [DONE]\n\n")
		}, 0, 0, 0, 1, KindServer, ""},
		{"deadline mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"))
			<-r.Context().Done()
		}, 50 * time.Millisecond, 0, 0, 1, KindTimeout, ""},
		{"canceled mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"))
			<-r.Context().Done()
		}, 0, 30 * time.Millisecond, 0, 1, KindCanceled, ""},
		{"closed mid-stream", func(w http.ResponseWriter, r *http.Request) {
			sse(w, r, chatChunk("a"))
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
			s, err := openChat(ctx, p)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if tt.close > 0 {
				time.AfterFunc(tt.close, func() { s.Close() })
			}
			events, err := drain(s)
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || len(events) != tt.events || pe.Backend != "openai" {
				t.Errorf("got %q code %q after %d events, want %q %q after %d: %v", pe.Kind, pe.Code, len(events), tt.kind, tt.code, tt.events, err)
			}
			if pe.Status != 200 {
				t.Errorf("error status %d, want 200", pe.Status)
			}
			if _, again := s.Next(); again != err {
				t.Errorf("Next after the error: %v, want the same error", again)
			}
			if s.Observation().Status != 200 {
				t.Errorf("observation %+v", s.Observation())
			}
			switch tt.kind {
			case KindTimeout:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%v is not context.DeadlineExceeded", err)
				}
			case KindCanceled:
				if tt.cancel > 0 && !errors.Is(err, context.Canceled) {
					t.Errorf("%v is not context.Canceled", err)
				}
			}
			t.Log(err)
		})
	}
}

// TestStreamRefused: a stream that opens with an error status fails in
// Open, and the Stream still reports the refusing response.
func TestStreamRefused(t *testing.T) {
	tests := []struct {
		name   string
		status int
		kind   Kind
	}{
		{"429", 429, KindRateLimited},
		{"401", 401, KindAuth},
		{"404", 404, KindNotFound},
		{"400", 400, KindBadRequest},
		{"503", 503, KindServer},
	}
	for _, tt := range tests {
		for _, open := range []struct {
			name string
			f    func(context.Context, *Provider) (*Stream, error)
		}{{"chat", openChat}, {"responses", openResponses}} {
			t.Run(tt.name+"/"+open.name, func(t *testing.T) {
				srv := upstream(t, reply(tt.status, `{"error":{"message":"no","type":"t","param":"input","code":"c"}}`,
					"retry-after-ms", "700", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "700ms", "x-request-id", "req-refused"))
				p := newProvider(t, openaiBackend(srv.URL))
				s, err := open.f(t.Context(), p)
				pe := asError(t, err)
				if pe.Kind != tt.kind || pe.Status != tt.status || pe.RetryAfter != 700*time.Millisecond || pe.Code != "c" || pe.Param != "input" {
					t.Errorf("got %q %d code %q param %q retry after %v: %v", pe.Kind, pe.Status, pe.Code, pe.Param, pe.RetryAfter, err)
				}
				if s == nil {
					t.Fatal("no Stream to observe")
				}
				obs := s.Observation()
				if obs.Status != tt.status || obs.RetryAfter != 700*time.Millisecond || obs.RateLimit.RemainingRequests != 0 ||
					obs.RateLimit.ResetRequests != 700*time.Millisecond || obs.Header.Get("x-request-id") != "req-refused" {
					t.Errorf("observation %+v", obs)
				}
				if _, nerr := s.Next(); !errors.Is(nerr, err) {
					t.Errorf("Next: %v, want %v", nerr, err)
				}
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
	}
}

// TestStreamNotOpened: a stream that gets no response at all.
func TestStreamNotOpened(t *testing.T) {
	closed := upstream(t, http.NotFoundHandler().ServeHTTP)
	closed.Close()
	hung := upstream(t, hang)
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		kind    Kind
	}{
		{"refused", closed.URL, 0, KindNetwork},
		{"deadline before headers", hung.URL, 50 * time.Millisecond, KindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, openaiBackend(tt.url))
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			s, err := openChat(ctx, p)
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != 0 {
				t.Errorf("got %q %d, want %q 0: %v", pe.Kind, pe.Status, tt.kind, err)
			}
			if obs := s.Observation(); obs.Status != 0 || obs.Header != nil || obs.RateLimit != unknownRateLimit {
				t.Errorf("observation %+v", obs)
			}
			if _, nerr := s.Next(); nerr != err {
				t.Errorf("Next: %v, want %v", nerr, err)
			}
			s.Close()
		})
	}
}

// Responses API events, as OpenAI sends them.
const (
	respCreated   = "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n"
	respDelta     = "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\",\"sequence_number\":1}\n\n"
	respCompleted = "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}},\"sequence_number\":2}\n\n"
)

// TestResponsesStream: a stream other than a chat completion's has named
// events and ends with the body after its terminal event.
func TestResponsesStream(t *testing.T) {
	tests := []struct {
		name  string
		body  []string // written and flushed in turn
		cut   bool     // then the connection is cut (else it ends cleanly)
		want  []Event
		kind  Kind // "" = io.EOF
		code  string
		param string
	}{
		{name: "completed",
			body: []string{respCreated, respDelta, respCompleted},
			want: []Event{
				{"response.created", []byte(`{"type":"response.created","sequence_number":0}`)},
				{"response.output_text.delta", []byte(`{"type":"response.output_text.delta","delta":"Hi","sequence_number":1}`)},
				{"response.completed", []byte(`{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":1}},"sequence_number":2}`)},
			}},
		{name: "incomplete",
			body: []string{respCreated, "event: response.incomplete\ndata: {}\n\n"},
			want: []Event{{"response.created", nil}, {"response.incomplete", []byte(`{}`)}}},
		{name: "failed",
			body: []string{"event: response.failed\ndata: {\"response\":{\"error\":{\"code\":\"server_error\"}}}\n\n"},
			want: []Event{{"response.failed", nil}}},
		{name: "ended before the terminal event",
			body: []string{respCreated, respDelta},
			want: []Event{{"response.created", nil}, {"response.output_text.delta", nil}},
			kind: KindNetwork},
		{name: "empty", kind: KindNetwork},
		{name: "cut before the terminal event",
			body: []string{respCreated, respDelta}, cut: true,
			want: []Event{{"response.created", nil}, {"response.output_text.delta", nil}},
			kind: KindNetwork},
		{name: "done",
			body: []string{respCreated, respDelta, "data: [DONE]\n\n", respDelta},
			want: []Event{{"response.created", nil}, {"response.output_text.delta", nil}}},
		{name: "error event",
			body: []string{respCreated, "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"Rate limit reached\",\"param\":null,\"sequence_number\":1}\n\n"},
			want: []Event{{"response.created", nil}},
			kind: KindRateLimited, code: "rate_limit_exceeded"},
		{name: "error event with param",
			body: []string{"event: error\ndata: {\"type\":\"error\",\"code\":\"invalid_value\",\"message\":\"bad tool\",\"param\":\"tools[0]\"}\n\n"},
			kind: KindServer, code: "invalid_value", param: "tools[0]"},
		{name: "wrapped error event",
			body: []string{"event: error\ndata: {\"error\":{\"code\":\"DeploymentNotFound\",\"message\":\"no deployment\"}}\n\n"},
			kind: KindNotFound, code: "DeploymentNotFound"},
		{name: "error event not json",
			body: []string{"event: error\ndata: oops\n\n"},
			kind: KindServer},
		{name: "comments skipped",
			body: []string{": hello\n\n", respCreated, ":\n: keep-alive\n\n", respCompleted, ": bye\n\n"},
			want: []Event{{"response.created", nil}, {"response.completed", nil}}},
		{name: "multi-line data",
			body: []string{"event: x\ndata: a\ndata:b\ndata: \ndata\ndata:  c\n\n", respCompleted},
			want: []Event{{"x", []byte("a\nb\n\n\n c")}, {"response.completed", nil}}},
		{name: "crlf lines",
			body: []string{"event: response.created\r\ndata: {}\r\n\r\n", "event: response.completed\r\ndata: {\"a\":1}\r\n\r\n"},
			want: []Event{{"response.created", []byte(`{}`)}, {"response.completed", []byte(`{"a":1}`)}}},
		{name: "id and retry ignored",
			body: []string{"id: 7\nretry: 100\n\n", "id: 8\nevent: response.completed\ndata: {}\n\n"},
			want: []Event{{"response.completed", []byte(`{}`)}}},
		{name: "event split across writes",
			body: []string{"event: response.comp", "leted\nda", "ta: {\"x\":", "1}\n", "\n"},
			want: []Event{{"response.completed", []byte(`{"x":1}`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				sse(w, r, tt.body...)
				if tt.cut {
					hijack(t, w, false)
				}
			})
			p := newProvider(t, openaiBackend(srv.URL))
			s, err := openResponses(t.Context(), p)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			events, err := drain(s)
			if len(events) != len(tt.want) {
				t.Errorf("%d events %q, want %d", len(events), events, len(tt.want))
			}
			for i := range min(len(events), len(tt.want)) {
				if events[i].Name != tt.want[i].Name || (tt.want[i].Data != nil && string(events[i].Data) != string(tt.want[i].Data)) {
					t.Errorf("event %d: %q %q, want %q %q", i, events[i].Name, events[i].Data, tt.want[i].Name, tt.want[i].Data)
				}
			}
			if tt.kind == "" {
				if err != io.EOF {
					t.Errorf("stream ended with %v, want io.EOF", err)
				}
			} else {
				pe := asError(t, err)
				if pe.Kind != tt.kind || pe.Code != tt.code || pe.Param != tt.param || pe.Status != 200 {
					t.Errorf("got %q %d code %q param %q, want %q 200 %q %q: %v", pe.Kind, pe.Status, pe.Code, pe.Param, tt.kind, tt.code, tt.param, err)
				}
			}
			if _, again := s.Next(); again != err {
				t.Errorf("Next after the end: %v, want %v again", again, err)
			}
			t.Log(err)
		})
	}
}

// TestChatStreamFraming: a chat stream reads the same framing (comments,
// CRLF, multi-line data) and ignores event names.
func TestChatStreamFraming(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		sse(w, r, ": OPENROUTER PROCESSING\n\n", "data: {\"a\":\r\ndata: 1}\r\n\r\n", "event: message\ndata: {\"b\":2}\n\n", "data:[DONE]\n\n")
	})
	p := newProvider(t, openaiBackend(srv.URL))
	s, err := openChat(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events, err := drain(s)
	if err != io.EOF || len(events) != 2 || string(events[0].Data) != "{\"a\":\n1}" || string(events[1].Data) != `{"b":2}` || events[1].Name != "message" {
		t.Errorf("events %q, end %v", events, err)
	}
}

// TestStreamEventTooLarge: an event beyond the limit is an error as soon as
// it is, whether or not the upstream would go on.
func TestStreamEventTooLarge(t *testing.T) {
	for _, open := range []struct {
		name string
		f    func(context.Context, *Provider) (*Stream, error)
	}{{"chat", openChat}, {"responses", openResponses}} {
		for _, shape := range []struct {
			name  string
			line  string // repeated beyond the limit, never followed by a blank line
			first string // written once before
		}{
			{"one line", strings.Repeat("x", 64<<10), "data: "},
			{"many data lines", "data: " + strings.Repeat("x", 1000) + "\n", ""},
		} {
			t.Run(open.name+"/"+shape.name, func(t *testing.T) {
				srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, chatChunk("a"))
					io.WriteString(w, shape.first)
					for n := 0; n <= maxEvent+len(shape.line); n += len(shape.line) {
						if _, err := io.WriteString(w, shape.line); err != nil {
							return
						}
					}
					w.(http.Flusher).Flush()
					<-r.Context().Done() // only the limit ends the read
				})
				p := newProvider(t, openaiBackend(srv.URL))
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				s, err := open.f(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if _, err := s.Next(); err != nil {
					t.Fatalf("first event: %v", err)
				}
				_, err = s.Next()
				pe := asError(t, err)
				if pe.Kind != KindServer || !strings.Contains(pe.Message, "larger than") {
					t.Errorf("got %q: %v, want a server error for the size", pe.Kind, err)
				}
			})
		}
	}
}

// TestStreamCloseConcurrent: Close from another goroutine ends a Next that
// waits for the upstream.
func TestStreamCloseConcurrent(t *testing.T) {
	srv := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		sse(w, r, respCreated)
		<-r.Context().Done()
	})
	p := newProvider(t, openaiBackend(srv.URL))
	s, err := openResponses(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if pe := asError(t, err); pe.Kind != KindCanceled {
			t.Errorf("got %q: %v, want canceled", pe.Kind, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next still blocked after Close")
	}
}

func TestTerminal(t *testing.T) {
	for name, want := range map[string]bool{
		"response.completed": true, "response.incomplete": true, "response.failed": true,
		"response.created": false, "response.output_text.delta": false, "error": false, "": false,
	} {
		if Terminal(name) != want {
			t.Errorf("Terminal(%q) = %v", name, !want)
		}
	}
}
