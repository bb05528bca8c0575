package proxy

import "sync"

// estimator guesses the tokens of a request's answer before it is sent: its
// bound (max_tokens, max_output_tokens) or, without one, the running
// average of answers so far. (Admission adds the prompt's.)
type estimator struct {
	mu         sync.Mutex // guards avgAnswer
	avgAnswer  float64
	haveAnswer bool
}

// defaultAnswerTokens is the answer estimate before any answer was seen.
const defaultAnswerTokens = 256

// answer is the answer's part of r's token estimate.
func (e *estimator) answer(r *Request) int {
	if b := r.bound(); b > 0 {
		return b
	}
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
