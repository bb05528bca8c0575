package sim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

type chunk struct {
	ID                string `json:"id"`
	Object            string `json:"object"`
	Created           int64  `json:"created"`
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// events splits an event stream into the data of its events, checking the
// framing: every event is exactly "data: ...\n\n".
func events(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body[max(0, len(body)-40):])
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("bad event framing: %q", ev)
		}
		out = append(out, data)
	}
	return out
}

func TestStream(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	const msgs = `"messages":[{"role":"user","content":"Stream me a short answer please"}]`
	_, plain := openaiWire.call(t, ts.URL, "chat/completions", "k", `{"model":"gpt-4o-mini",`+msgs+`}`)
	want := decode[completion](t, plain)

	for _, includeUsage := range []bool{false, true} {
		for _, w := range wires {
			name := w.name
			if includeUsage {
				name += " with usage"
			}
			t.Run(name, func(t *testing.T) {
				body := `{"model":"gpt-4o-mini","stream":true,` + msgs + `}`
				if includeUsage {
					body = `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},` + msgs + `}`
				}
				resp, b := w.call(t, ts.URL, "chat/completions", "k", body)
				if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
					t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				evs := events(t, b)
				if evs[len(evs)-1] != "[DONE]" {
					t.Fatalf("last event %q, want [DONE]", evs[len(evs)-1])
				}
				var chunks []chunk
				for _, ev := range evs[:len(evs)-1] {
					var c chunk
					if err := json.Unmarshal([]byte(ev), &c); err != nil {
						t.Fatalf("chunk %q: %v", ev, err)
					}
					if c.ID != want.ID || c.Object != "chat.completion.chunk" || c.Model != "gpt-4o-mini" || c.SystemFingerprint != "fp_sim" {
						t.Errorf("chunk header %+v", c)
					}
					if got := strings.Contains(ev, `"usage":`); got != includeUsage {
						t.Errorf("chunk %q: usage field present %v, want %v", ev, got, includeUsage)
					}
					chunks = append(chunks, c)
				}
				first := chunks[0].Choices[0]
				if first.Delta.Role == nil || *first.Delta.Role != "assistant" || first.Delta.Content == nil || *first.Delta.Content != "" || first.FinishReason != nil {
					t.Errorf("first chunk %q", evs[0])
				}
				n := len(chunks)
				if includeUsage {
					u := chunks[n-1]
					if len(u.Choices) != 0 || !strings.Contains(evs[n-1], `"choices":[]`) || u.Usage == nil {
						t.Fatalf("usage chunk %q", evs[n-1])
					}
					if diff := cmp.Diff(want.Usage, *u.Usage); diff != "" {
						t.Errorf("usage (-want +got):\n%s", diff)
					}
					n--
				}
				last := chunks[n-1].Choices[0]
				if last.FinishReason == nil || *last.FinishReason != "stop" || last.Delta.Content != nil || last.Delta.Role != nil {
					t.Errorf("final chunk %q", evs[n-1])
				}
				var text strings.Builder
				for i, c := range chunks[1 : n-1] {
					d := c.Choices[0]
					if d.Delta.Content == nil || d.Delta.Role != nil || d.FinishReason != nil {
						t.Fatalf("content chunk %d: %q", i, evs[i+1])
					}
					if k := tokens.Count("gpt-4o-mini", *d.Delta.Content); k < 1 || k > 4 {
						t.Errorf("content chunk %q has %d tokens", *d.Delta.Content, k)
					}
					text.WriteString(*d.Delta.Content)
				}
				if got := text.String(); got != want.Choices[0].Message.Content {
					t.Errorf("streamed text %q\nwant %q", got, want.Choices[0].Message.Content)
				}
			})
		}
	}
}

func TestStreamLength(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	_, b := openaiWire.call(t, ts.URL, "chat/completions", "k",
		`{"model":"gpt-4o","stream":true,"max_tokens":3,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)
	evs := events(t, b)
	if !strings.Contains(evs[len(evs)-3], `"finish_reason":"length"`) || !strings.Contains(evs[len(evs)-2], `"completion_tokens":3`) {
		t.Errorf("events %q", evs)
	}
}

func TestLatency(t *testing.T) {
	const ttft, per = 60 * time.Millisecond, 2 * time.Millisecond
	_, ts := start(t, Options{Accounts: []Account{{Key: "k", TTFT: ttft, PerToken: per}}})
	t.Run("non-stream", func(t *testing.T) {
		begin := time.Now()
		_, b := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
		n := decode[completion](t, b).Usage.CompletionTokens
		if d, want := time.Since(begin), ttft+time.Duration(n-1)*per; d < want {
			t.Errorf("answered after %v, want at least %v", d, want)
		}
	})
	t.Run("stream first token", func(t *testing.T) {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Authorization", "Bearer k")
		begin := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		headers := time.Since(begin)
		buf := make([]byte, 1<<16)
		var got string
		for !strings.Contains(got, `"content":"Sim`) {
			n, err := resp.Body.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += string(buf[:n])
		}
		if first := time.Since(begin); headers >= ttft || first < ttft {
			t.Errorf("headers after %v, first content after %v; want headers before and content after %v", headers, first, ttft)
		}
	})
	t.Run("client goes away", func(t *testing.T) {
		slow := New(Options{Accounts: []Account{{Key: "k", TTFT: time.Hour}}})
		sts := serve(t, slow).URL
		for _, stream := range []string{"false", "true"} {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			req, _ := http.NewRequestWithContext(ctx, "POST", sts+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":`+stream+`,"messages":[{"role":"user","content":"x"}]}`))
			req.Header.Set("Authorization", "Bearer k")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			cancel()
			if err == nil {
				t.Fatalf("stream=%s: request finished despite an hour of TTFT", stream)
			}
		}
		waitFor(t, "handlers to finish", func() bool { return slow.Stats()["account-1"].Requests == 2 })
	})
	t.Run("close cuts latency", func(t *testing.T) {
		slow := New(Options{Accounts: []Account{{Key: "k", TTFT: time.Hour}}})
		sts := serve(t, slow).URL
		done := make(chan int)
		go func() {
			resp, _ := openaiWire.call(t, sts, "chat/completions", "k", hello)
			done <- resp.StatusCode
		}()
		waitFor(t, "the request to arrive", func() bool { return len(slow.Log()) == 1 })
		slow.Close()
		select {
		case code := <-done:
			if code != 200 {
				t.Errorf("status %d after Close, want 200", code)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not cut the latency short")
		}
	})
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
