package client

import "encoding/json"

// AnswerText is the text of the first choice of an OpenAI chat completion
// response ("" when there is none).
func AnswerText(response json.RawMessage) string {
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(response, &r) != nil || len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}

// DeltaText is the text a chat.completion.chunk adds to its first choice.
func DeltaText(chunk json.RawMessage) string {
	var c struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if json.Unmarshal(chunk, &c) != nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Delta.Content
}
