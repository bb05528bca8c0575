package proxy

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/spend"
)

// An Request is one OpenAI API request as lbgptd forwards it: the
// client's bytes, which go upstream as they are, and the few things read
// from them that admission, routing and caching need. Nothing else of the
// request is interpreted: a field lbgpt does not know passes through.
type Request struct {
	path string          // provider.PathChat, provider.PathResponses, or another route under /v1
	raw  json.RawMessage // the client's body
	view requestView
}

// requestView is what lbgptd reads of a request body: the model, the
// stream flags, the token bounds, the text the token estimate counts, and
// (for the Responses API) whether the request is stateful.
type requestView struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Temperature         *float64 `json:"temperature"`
	N                   int      `json:"n"`
	MaxTokens           *int64   `json:"max_tokens"`
	MaxCompletionTokens *int64   `json:"max_completion_tokens"`
	Messages            []struct {
		Role      string          `json:"role"`
		Name      string          `json:"name"`
		Content   json.RawMessage `json:"content"`
		ToolCalls json.RawMessage `json:"tool_calls"`
	} `json:"messages"`

	// The Responses API.
	Input              json.RawMessage `json:"input"`
	Instructions       json.RawMessage `json:"instructions"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	Store              *bool           `json:"store"`
	Background         bool            `json:"background"`
	PreviousResponseID string          `json:"previous_response_id"`
	Conversation       json.RawMessage `json:"conversation"`
}

// parseRequest reads a request body for path. Only what lbgpt reads is
// checked: a JSON object with a model; a value of the wrong type in one of
// the fields above is an invalid-params error naming it. Everything else is
// the upstream's to judge.
func Parse(path string, raw json.RawMessage) (*Request, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, InvalidParams("request", "request: want a JSON object: a full OpenAI request, as it would be sent to /v1/%s", path)
	}
	r := &Request{path: path, raw: raw}
	if err := json.Unmarshal(raw, &r.view); err != nil {
		return nil, DecodeError(err, "request")
	}
	v := &r.view
	if v.Model == "" {
		return nil, InvalidParams("model", "request: model is required")
	}
	for _, b := range []struct {
		name string
		v    *int64
	}{{"max_tokens", v.MaxTokens}, {"max_completion_tokens", v.MaxCompletionTokens}, {"max_output_tokens", v.MaxOutputTokens}} {
		if b.v != nil && *b.v < 0 {
			return nil, InvalidParams(b.name, "request: %s must not be negative", b.name)
		}
	}
	return r, nil
}

// Path is the route r goes to, under /v1: provider.PathChat,
// provider.PathResponses or another.
func (r *Request) Path() string { return r.path }

// Stream reports whether r asks for its answer streamed.
func (r *Request) Stream() bool { return r.view.Stream }

// chat reports whether r is a chat completion; responses, a Responses API
// creation.
func (r *Request) chat() bool      { return r.path == provider.PathChat }
func (r *Request) responses() bool { return r.path == provider.PathResponses }

// wantUsage reports whether a streamed chat client asked for the usage
// chunk. lbgpt always asks the upstream for it, and drops it for a client
// that did not.
func (r *Request) wantUsage() bool {
	return r.view.StreamOptions != nil && r.view.StreamOptions.IncludeUsage
}

// Sampled reports whether r samples its answer: a temperature that is not
// 0 (OpenAI's default is 1), so a repeat may rightly differ.
func (r *Request) Sampled() bool {
	return r.view.Temperature == nil || *r.view.Temperature != 0
}

// stateful reports whether a Responses request lives on the account that
// answers it: stored (the default), continuing a previous response, or in
// the background. Stateful requests are not cached, and their ids are
// remembered with their backend.
func (r *Request) stateful() bool {
	v := &r.view
	return r.responses() && (v.Store == nil || *v.Store || v.Background || v.PreviousResponseID != "" || notEmpty(v.Conversation))
}

// cacheKind is the kind of cache entry r's answer is, "" when it is not
// cached at all.
func (r *Request) cacheKind() string {
	switch {
	case r.chat():
		return cache.KindChat
	case r.responses() && !r.stateful():
		return kindResponses
	}
	return ""
}

// kindResponses keys the Responses API's cache entries.
const kindResponses = "responses"

// bound is the most answer tokens r allows over all its choices; 0 when it
// sets no bound.
func (r *Request) bound() int {
	v := &r.view
	b := int64(0)
	for _, p := range []*int64{v.MaxOutputTokens, v.MaxCompletionTokens, v.MaxTokens} {
		if p != nil && *p > 0 {
			b = *p
			break
		}
	}
	return int(min(b, 1<<40)) * max(v.N, 1)
}

// imageTokens is what one image part is reserved at: OpenAI's price of a
// low-detail image. High-detail images cost more; the reconciliation with
// the real usage corrects the estimate after the call.
const imageTokens = 85

// promptBound bounds the tokens of r's prompt (promptTokens) without a
// tokenizer pass: each token spans at least one byte of the text it
// encodes, the text is within the body (JSON escapes only lengthen it),
// and so are the messages' and roles' own few tokens; an image part, whose
// price is flat, has "image" in its type at least.
func (r *Request) promptBound() int {
	return len(r.raw) + bytes.Count(r.raw, []byte("image"))*imageTokens + 3
}

// promptTokens estimates the tokens of r's prompt with the model's
// tokenizer: every message's text (a Responses request's instructions and
// input), and a flat price per image.
func (r *Request) promptTokens() int {
	v := &r.view
	var msgs []tokens.Message
	images := 0
	for _, m := range v.Messages {
		text, n := contentText(m.Content)
		images += n
		if len(m.ToolCalls) > 0 {
			text += string(m.ToolCalls)
		}
		msgs = append(msgs, tokens.Message{Role: m.Role, Name: m.Name, Content: text})
	}
	if len(v.Instructions) > 0 {
		text, n := contentText(v.Instructions)
		images += n
		msgs = append(msgs, tokens.Message{Role: "system", Content: text})
	}
	if len(v.Input) > 0 {
		text, n := inputText(v.Input)
		images += n
		msgs = append(msgs, tokens.Message{Role: "user", Content: text})
	}
	return tokens.EstimateMessages(v.Model, msgs) + images*imageTokens
}

// contentText is the text of a message content — a string, or parts whose
// text it joins — and the number of image parts.
func contentText(raw json.RawMessage) (string, int) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", 0
	}
	switch raw[0] {
	case '"':
		var s string
		json.Unmarshal(raw, &s)
		return s, 0
	case '[':
		var parts []struct {
			Type    string          `json:"type"`
			Text    string          `json:"text"`
			Refusal string          `json:"refusal"`
			Content json.RawMessage `json:"content"`
		}
		json.Unmarshal(raw, &parts)
		var b strings.Builder
		images := 0
		for _, p := range parts {
			switch {
			case strings.Contains(p.Type, "image"):
				images++
			case len(p.Content) > 0:
				t, n := contentText(p.Content)
				b.WriteString(t)
				images += n
			}
			b.WriteString(p.Text)
			b.WriteString(p.Refusal)
		}
		return b.String(), images
	}
	return "", 0
}

// inputText is the text of a Responses input: a string, or items whose
// content, output and arguments it joins.
func inputText(raw json.RawMessage) (string, int) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return contentText(raw)
	}
	var items []struct {
		Content   json.RawMessage `json:"content"`
		Output    json.RawMessage `json:"output"`
		Arguments string          `json:"arguments"`
	}
	json.Unmarshal(raw, &items)
	var b strings.Builder
	images := 0
	for _, it := range items {
		for _, c := range []json.RawMessage{it.Content, it.Output} {
			t, n := contentText(c)
			b.WriteString(t)
			images += n
		}
		b.WriteString(it.Arguments)
	}
	return b.String(), images
}

// charged is what the upstream counts against its TPM limit for r: like
// OpenAI, the prompt plus the answer's bound when it sets one (a shorter
// answer gives nothing back), else the tokens used. 0 when the answer
// reported no usage (a stream its client left, an upstream that ignores
// include_usage): the reservation then stands as it was.
func (r *Request) charged(u spend.Usage) int {
	total := u.Input + u.Output
	if total == 0 {
		return 0
	}
	if b := r.bound(); b > 0 {
		return u.Input + b
	}
	return total
}
