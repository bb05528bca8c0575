package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/provider"
)

// A stream is held until its first content, and content is anything a
// delta carries but its role: a compatible server's reasoning too, which
// may run for minutes before any text (held, it would be cut at the
// request's deadline and paid again elsewhere).
func TestHasContent(t *testing.T) {
	chat := &Request{path: provider.PathChat}
	for _, tt := range []struct {
		chunk string
		want  bool
	}{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":null}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"content":"Hi"}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c","function":{"name":"f","arguments":""}}]}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"reasoning_content":"Let me think"}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}`, true},
		{`{"choices":[],"usage":{"total_tokens":3}}`, false},
	} {
		if got := hasContent(chat, provider.Event{Data: []byte(tt.chunk)}); got != tt.want {
			t.Errorf("hasContent(%s) = %v, want %v", tt.chunk, got, tt.want)
		}
	}
	other := &Request{path: "images/generations"}
	if !hasContent(other, provider.Event{Name: "image_generation.partial_image", Data: []byte(`{}`)}) {
		t.Error("another route's event is not content: its stream would be held to its end")
	}
	responses := &Request{path: provider.PathResponses}
	for name, want := range map[string]bool{"response.created": false, "response.output_item.added": false, "response.output_text.delta": true, "response.completed": true} {
		if got := hasContent(responses, provider.Event{Name: name, Data: []byte(`{}`)}); got != want {
			t.Errorf("hasContent(%s) = %v, want %v", name, got, want)
		}
	}
}

// checkAnswer refuses a 2xx answer that is not its operation's: not JSON,
// not an object, a chat completion without choices, a response without
// an id; and lets every well-formed answer through, whatever else it has.
func TestCheckAnswer(t *testing.T) {
	p, chat := checkFixture(t)
	resp, err := Parse(provider.PathResponses, json.RawMessage(`{"model":"m","input":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		r    *Request
		body string
		ok   bool
	}{
		{"a chat completion", chat, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"x"}}],"usage":{"prompt_tokens":1}}`, true},
		{"a chat completion with white space and unknown members", chat, " {\"x\":{\"y\":[1,{}]}, \"choices\" : [ {} ] }\n", true},
		{"no choices", chat, `{"id":"c","choices":[]}`, false},
		{"choices missing", chat, `{"id":"c"}`, false},
		{"choices not a list", chat, `{"id":"c","choices":{"0":{}}}`, false},
		{"not JSON", chat, `this is not json`, false},
		{"cut short", chat, `{"id":"c","choices":[{"index":0`, false},
		{"trailing garbage", chat, `{"choices":[{}]} x`, false},
		{"a list", chat, `[{"choices":[{}]}]`, false},
		{"empty", chat, ``, false},
		{"a response", resp, `{"id":"resp_1","object":"response","output":[]}`, true},
		{"a response without an id", resp, `{"object":"response","output":[]}`, false},
		{"a response with an empty id", resp, `{"id":"","object":"response"}`, false},
		{"a response whose id is a number", resp, `{"id":7,"object":"response"}`, false},
		// A member given twice is its last, as the clients read it.
		{"choices, then none", chat, `{"choices":[{}],"choices":[]}`, false},
		{"none, then choices", chat, `{"choices":[],"choices":[{}]}`, true},
		{"an id, then an empty one", resp, `{"id":"r","id":""}`, false},
		{"an empty id, then one", resp, `{"id":"","id":"r"}`, true},
		// Deeper than any stack: refused, not a crash of the daemon.
		{"nested 20 million deep", chat, `{"choices":[` + strings.Repeat("[", 20_000_000) + strings.Repeat("]", 20_000_000) + `]}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAnswer(p, tt.r, &provider.Response{Body: []byte(tt.body)})
			if (err == nil) != tt.ok {
				t.Errorf("checkAnswer = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// BenchmarkCheckAnswer checks a chat answer of a few hundred words, as
// every paid answer is checked.
func BenchmarkCheckAnswer(b *testing.B) {
	p, r := checkFixture(b)
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat(`The quick brown fox jumps over the lazy dog, and \"quotes\" too. `, 40) +
		`","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":400,"total_tokens":520},"system_fingerprint":"fp_1"}`)
	res := &provider.Response{Body: body}
	if err := checkAnswer(p, r, res); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		checkAnswer(p, r, res)
	}
}

// checkFixture is a provider for checkAnswer's errors and a chat request.
func checkFixture(tb testing.TB) (*provider.Provider, *Request) {
	tb.Helper()
	p, err := provider.New(config.Backend{Name: "a", Type: "openai", BaseURL: "http://127.0.0.1:1/v1", Key: "sk-test-check-answer"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	r, err := Parse(provider.PathChat, json.RawMessage(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		tb.Fatal(err)
	}
	return p, r
}
