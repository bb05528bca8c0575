package daemon

import (
	"encoding/json"
	"fmt"

	openai "github.com/sashabaranov/go-openai"
)

// replayPiece is the most content one replayed chunk carries, in bytes
// (cut at a rune boundary).
const replayPiece = 64

// replay sends a cached chat.completion to a streaming client as the
// chunks an upstream would have sent: per choice a role chunk, content
// chunks (and tool calls), a finish chunk, then the usage chunk when the
// request asked for it. Assembling them gives the cached response back.
func replay(raw json.RawMessage, wantUsage bool, emit func(json.RawMessage) error) error {
	var resp openai.ChatCompletionResponse
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("cached answer unreadable: %w", err)
	}
	chunk := func(choices []openai.ChatCompletionStreamChoice, usage *openai.Usage) error {
		c := openai.ChatCompletionStreamResponse{
			ID: resp.ID, Object: "chat.completion.chunk", Created: resp.Created, Model: resp.Model,
			SystemFingerprint: resp.SystemFingerprint, Choices: choices, Usage: usage,
		}
		if choices == nil {
			c.Choices = []openai.ChatCompletionStreamChoice{}
		}
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return emit(b)
	}
	one := func(i int, d openai.ChatCompletionStreamChoiceDelta, finish openai.FinishReason) error {
		return chunk([]openai.ChatCompletionStreamChoice{{Index: i, Delta: d, FinishReason: finish}}, nil)
	}
	for _, ch := range resp.Choices {
		m := ch.Message
		role := m.Role
		if role == "" {
			role = openai.ChatMessageRoleAssistant
		}
		if err := one(ch.Index, openai.ChatCompletionStreamChoiceDelta{Role: role}, ""); err != nil {
			return err
		}
		for _, piece := range pieces(m.Content) {
			if err := one(ch.Index, openai.ChatCompletionStreamChoiceDelta{Content: piece}, ""); err != nil {
				return err
			}
		}
		if m.Refusal != "" {
			if err := one(ch.Index, openai.ChatCompletionStreamChoiceDelta{Refusal: m.Refusal}, ""); err != nil {
				return err
			}
		}
		for j, tc := range m.ToolCalls {
			tc.Index = &j
			if err := one(ch.Index, openai.ChatCompletionStreamChoiceDelta{ToolCalls: []openai.ToolCall{tc}}, ""); err != nil {
				return err
			}
		}
		if err := one(ch.Index, openai.ChatCompletionStreamChoiceDelta{}, ch.FinishReason); err != nil {
			return err
		}
	}
	if wantUsage {
		u := resp.Usage
		return chunk(nil, &u)
	}
	return nil
}

// pieces cuts s into pieces of at most replayPiece bytes, at rune
// boundaries.
func pieces(s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(len(s), replayPiece)
		for n < len(s) && n > 0 && !startsRune(s[n]) {
			n--
		}
		if n == 0 {
			n = len(s)
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func startsRune(b byte) bool { return b&0xC0 != 0x80 }
