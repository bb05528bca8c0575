package daemon

import (
	"encoding/json"
	"strings"

	openai "github.com/sashabaranov/go-openai"
)

// assembler builds the whole chat.completion from the chunks of a stream,
// so a streamed request has the same result as a plain one.
type assembler struct {
	resp    openai.ChatCompletionResponse
	content []*strings.Builder // by choice index
	seen    bool
}

func (a *assembler) add(c openai.ChatCompletionStreamResponse) {
	if !a.seen {
		a.seen = true
		a.resp.ID = c.ID
		a.resp.Object = "chat.completion"
		a.resp.Created = c.Created
		a.resp.Model = c.Model
		a.resp.SystemFingerprint = c.SystemFingerprint
	}
	if c.Usage != nil {
		a.resp.Usage = *c.Usage
	}
	for _, ch := range c.Choices {
		i := ch.Index
		if i < 0 || i > 1024 {
			continue
		}
		for len(a.resp.Choices) <= i {
			a.resp.Choices = append(a.resp.Choices, openai.ChatCompletionChoice{Index: len(a.resp.Choices)})
			a.content = append(a.content, new(strings.Builder))
		}
		dst := &a.resp.Choices[i]
		if ch.Delta.Role != "" {
			dst.Message.Role = ch.Delta.Role
		}
		a.content[i].WriteString(ch.Delta.Content)
		if ch.Delta.Refusal != "" {
			dst.Message.Refusal += ch.Delta.Refusal
		}
		for _, tc := range ch.Delta.ToolCalls {
			idx := len(dst.Message.ToolCalls)
			if tc.Index != nil {
				idx = *tc.Index
			}
			if idx < 0 || idx > 1024 {
				continue
			}
			for len(dst.Message.ToolCalls) <= idx {
				dst.Message.ToolCalls = append(dst.Message.ToolCalls, openai.ToolCall{})
			}
			t := &dst.Message.ToolCalls[idx]
			if tc.ID != "" {
				t.ID = tc.ID
			}
			if tc.Type != "" {
				t.Type = tc.Type
			}
			t.Function.Name += tc.Function.Name
			t.Function.Arguments += tc.Function.Arguments
		}
		if ch.FinishReason != "" {
			dst.FinishReason = ch.FinishReason
		}
	}
}

// response is the assembled chat.completion.
func (a *assembler) response() openai.ChatCompletionResponse {
	r := a.resp
	r.Choices = append([]openai.ChatCompletionChoice(nil), a.resp.Choices...)
	for i := range r.Choices {
		r.Choices[i].Message.Content = a.content[i].String()
		if r.Choices[i].Message.Role == "" {
			r.Choices[i].Message.Role = openai.ChatMessageRoleAssistant
		}
		for j := range r.Choices[i].Message.ToolCalls {
			r.Choices[i].Message.ToolCalls[j].Index = nil
		}
	}
	return r
}

// partial is what a broken stream had delivered, for the error's data.
func (a *assembler) partial() json.RawMessage {
	if !a.seen {
		return nil
	}
	b, err := json.Marshal(a.response())
	if err != nil {
		return nil
	}
	return b
}
