package proxy

import (
	"sync"

	"github.com/lbgpt/lbgpt/balance"
)

// estimator guesses a request's total tokens before it is sent: the prompt
// counted with the model's tokenizer, plus the answer's bound (max_tokens,
// max_output_tokens) or, without one, the running average of answers so far.
type estimator struct {
	mu         sync.Mutex // guards avgAnswer
	avgAnswer  float64
	haveAnswer bool
}

// defaultAnswerTokens is the answer estimate before any answer was seen.
const defaultAnswerTokens = 256

// request is what the pool needs to admit r.
func (e *estimator) request(r *Request) balance.Request {
	answer := r.bound()
	if answer == 0 {
		answer = e.answer()
	}
	return balance.Request{Model: r.view.Model, Tokens: r.promptTokens() + answer}
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
