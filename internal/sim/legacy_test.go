package sim

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

type textCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string          `json:"text"`
		Index        int             `json:"index"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason string          `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

func TestCompletions(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k"}}, Now: clk.Now})
	tests := []struct {
		name        string
		body        string
		prompts     []string
		wantTokens  int // completion tokens of each choice
		wantFinish  string
		wantPrompts int // prompt tokens in all
	}{
		{"default max_tokens is 16", `{"model":"gpt-4o-mini","prompt":"Once upon a time"}`, []string{"Once upon a time"}, 16, "length", tokens.Count("gpt-4o-mini", "Once upon a time")},
		{"max_tokens", `{"model":"gpt-4o-mini","prompt":"Once upon a time","max_tokens":4}`, []string{"Once upon a time"}, 4, "length", tokens.Count("gpt-4o-mini", "Once upon a time")},
		{"two prompts", `{"model":"gpt-4o","prompt":["Say this","Say that"],"max_tokens":5}`, []string{"Say this", "Say that"}, 5, "length", tokens.Count("gpt-4o", "Say this") + tokens.Count("gpt-4o", "Say that")},
		{"token ids", `{"model":"gpt-4o-mini","prompt":[1,2,3],"max_tokens":3,"echo":false,"suffix":null}`, []string{""}, 3, "length", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := openaiWire.call(t, ts.URL, "completions", "k", tt.body)
			if resp.StatusCode != 200 || resp.Header.Get("openai-processing-ms") == "" {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			got := decode[textCompletion](t, b)
			if !strings.HasPrefix(got.ID, "cmpl-") || got.Object != "text_completion" || got.Created != clk.Now().Unix() || len(got.Choices) != len(tt.prompts) {
				t.Fatalf("completion %s", b)
			}
			completion := 0
			for i, ch := range got.Choices {
				if ch.Index != i || string(ch.Logprobs) != "null" || ch.FinishReason != tt.wantFinish || tokens.Count(got.Model, ch.Text) != tt.wantTokens ||
					!strings.HasPrefix(ch.Text, "Simulated answer") {
					t.Errorf("choice %d: %+v", i, ch)
				}
				completion += tt.wantTokens
			}
			if want := (usage{tt.wantPrompts, completion, tt.wantPrompts + completion}); got.Usage != want {
				t.Errorf("usage %+v, want %+v", got.Usage, want)
			}
		})
	}
	for _, tt := range []struct{ name, body, want string }{
		{"stream", `{"model":"gpt-4o-mini","prompt":"x","stream":true}`, `"message":"stream is not supported by the simulator for completions"`},
		{"no prompt", `{"model":"gpt-4o-mini"}`, `"param":"prompt"`},
		{"max_tokens 0", `{"model":"gpt-4o-mini","prompt":"x","max_tokens":0}`, `"param":"max_tokens"`},
	} {
		if resp, b := openaiWire.call(t, ts.URL, "completions", "k", tt.body); resp.StatusCode != 400 || !strings.Contains(b, tt.want) {
			t.Errorf("%s: %d %s", tt.name, resp.StatusCode, b)
		}
	}
	if resp, _ := openaiWire.call(t, ts.URL, "completions", "k", `{"model":"gpt-9","prompt":"x"}`); resp.StatusCode != 404 {
		t.Errorf("unknown model: %d", resp.StatusCode)
	}
	if got := decode[textCompletion](t, completionBody(t, ts.URL, `{"model":"gpt-4o-mini","prompt":"Once upon a time","max_tokens":50}`)); !strings.HasPrefix(got.Choices[0].Text, `Simulated answer to "Once upon a time".`) {
		t.Errorf("text %q", got.Choices[0].Text)
	}
	if r := s.Log()[0]; r.Path != "/v1/completions" || r.Model != "gpt-4o-mini" || r.CompletionTokens != 16 || r.Charged != r.PromptTokens+16 {
		t.Errorf("record %+v", r)
	}
}

func completionBody(t *testing.T, base, req string) string {
	t.Helper()
	_, b := openaiWire.call(t, base, "completions", "k", req)
	return b
}

func TestModerations(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	tests := []struct {
		body      string
		wantModel string
		want      int
	}{
		{`{"input":"I want to hug everyone"}`, "omni-moderation-latest", 1},
		{`{"input":["one","two","three"],"model":"text-moderation-latest"}`, "text-moderation-latest", 3},
		{`{"input":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}`, "omni-moderation-latest", 1},
	}
	for _, tt := range tests {
		resp, b := openaiWire.call(t, ts.URL, "moderations", "k", tt.body)
		var got struct {
			ID      string `json:"id"`
			Model   string `json:"model"`
			Results []struct {
				Flagged        *bool           `json:"flagged"`
				Categories     json.RawMessage `json:"categories"`
				CategoryScores json.RawMessage `json:"category_scores"`
			} `json:"results"`
		}
		if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &got) != nil || !strings.HasPrefix(got.ID, "modr-") || got.Model != tt.wantModel || len(got.Results) != tt.want {
			t.Fatalf("%s: %d %s", tt.body, resp.StatusCode, b)
		}
		for _, r := range got.Results {
			if r.Flagged == nil || *r.Flagged || string(r.Categories) != "{}" || string(r.CategoryScores) != "{}" {
				t.Errorf("%s: result %s", tt.body, b)
			}
		}
	}
	for _, body := range []string{`{}`, `{"input":[]}`, `{"input":7}`} {
		if resp, _ := openaiWire.call(t, ts.URL, "moderations", "k", body); resp.StatusCode != 400 {
			t.Errorf("%s: status %d", body, resp.StatusCode)
		}
	}
}

// TestLegacyRoutesLimited: completions and moderations need a key and count
// against the requests per minute.
func TestLegacyRoutesLimited(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", RPM: 2}}, Now: clk.Now})
	for _, ep := range []struct{ endpoint, body string }{
		{"completions", `{"model":"gpt-4o-mini","prompt":"x"}`},
		{"moderations", `{"input":"x"}`},
	} {
		if resp, b := openaiWire.call(t, ts.URL, ep.endpoint, "", ep.body); resp.StatusCode != 401 || !strings.Contains(b, "invalid_api_key") {
			t.Errorf("%s without a key: %d", ep.endpoint, resp.StatusCode)
		}
	}
	openaiWire.call(t, ts.URL, "completions", "k", `{"model":"gpt-4o-mini","prompt":"x"}`)
	resp, _ := openaiWire.call(t, ts.URL, "moderations", "k", `{"input":"x"}`)
	if resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("remaining %q after two requests", resp.Header.Get("X-Ratelimit-Remaining-Requests"))
	}
	for _, ep := range []struct{ endpoint, body string }{
		{"completions", `{"model":"gpt-4o-mini","prompt":"x"}`},
		{"moderations", `{"input":"x"}`},
	} {
		if resp, b := openaiWire.call(t, ts.URL, ep.endpoint, "k", ep.body); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s over the limit: %d %s", ep.endpoint, resp.StatusCode, b)
		}
	}
	if st := s.Stats()["a"]; st.OK != 2 || st.RateLimited != 2 {
		t.Errorf("stats %+v", st)
	}
}
