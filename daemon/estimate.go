package daemon

import (
	"sync"

	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

// imageTokens is what one image part is reserved at: OpenAI's price of a
// low-detail image. High-detail images cost more; the reconciliation with
// the real usage corrects the estimate after the call.
const imageTokens = 85

// estimator guesses a request's total tokens before it is sent: the prompt
// counted with the model's tokenizer, plus the answer's bound (max_tokens)
// or, without one, the running average of answers so far.
type estimator struct {
	mu         sync.Mutex // guards avgAnswer
	avgAnswer  float64
	haveAnswer bool
}

// defaultAnswerTokens is the answer estimate before any answer was seen.
const defaultAnswerTokens = 256

// request is what the pool needs to admit req.
func (e *estimator) request(req *openai.ChatCompletionRequest) balance.Request {
	msgs := make([]tokens.Message, 0, len(req.Messages))
	images := 0
	for _, m := range req.Messages {
		content := m.Content
		for _, part := range m.MultiContent {
			switch part.Type {
			case openai.ChatMessagePartTypeText:
				content += part.Text
			case openai.ChatMessagePartTypeImageURL:
				images++
			}
		}
		for _, tc := range m.ToolCalls {
			content += tc.Function.Name + tc.Function.Arguments
		}
		msgs = append(msgs, tokens.Message{Role: m.Role, Name: m.Name, Content: content})
	}
	prompt := tokens.CountMessages(req.Model, msgs) + images*imageTokens
	answer := bound(req)
	if answer == 0 {
		answer = e.answer()
	}
	return balance.Request{Model: req.Model, Tokens: prompt + answer}
}

// bound is the most answer tokens req allows over all its choices; 0 when
// it sets no max_tokens.
func bound(req *openai.ChatCompletionRequest) int {
	b := req.MaxCompletionTokens
	if b <= 0 {
		b = req.MaxTokens
	}
	return max(b, 0) * max(req.N, 1)
}

// charged is what the upstream counts against its TPM limit for req: like
// OpenAI, the prompt plus the answer's bound when it sets one (a shorter
// answer gives nothing back), else the tokens used.
func charged(req *openai.ChatCompletionRequest, u openai.Usage) int {
	if b := bound(req); b > 0 {
		return u.PromptTokens + b
	}
	return u.TotalTokens
}

func (e *estimator) answer() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.haveAnswer {
		return defaultAnswerTokens
	}
	return int(e.avgAnswer + 0.5)
}

// observe feeds the length of a real answer into the running average.
func (e *estimator) observe(completionTokens int) {
	if completionTokens <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.haveAnswer {
		e.avgAnswer, e.haveAnswer = float64(completionTokens), true
		return
	}
	e.avgAnswer += 0.05 * (float64(completionTokens) - e.avgAnswer)
}
