package proxy

import (
	"testing"

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
