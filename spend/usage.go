package spend

import "encoding/json"

// Usage is the tokens one answer used, as the upstream reports them.
type Usage struct {
	Input       int `json:"input,omitempty"`        // input (prompt) tokens, CachedInput included
	CachedInput int `json:"cached_input,omitempty"` // of Input, those read from the prompt cache
	Output      int `json:"output,omitempty"`       // output (completion) tokens, Reasoning included
	Reasoning   int `json:"reasoning,omitempty"`    // of Output, the reasoning tokens: reported, not charged again
}

func (u *Usage) add(v Usage) {
	u.Input += v.Input
	u.CachedInput += v.CachedInput
	u.Output += v.Output
	u.Reasoning += v.Reasoning
}

// wireUsage is a usage object of either API: chat completions and
// embeddings say prompt and completion tokens, the Responses API input and
// output tokens.
type wireUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	InputTokens         int `json:"input_tokens"`
	OutputTokens        int `json:"output_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

// ParseUsage reads the usage an answer body reports: a chat completion, a
// chat stream's last chunk, an embeddings list and a Responses response
// have it in "usage"; a streamed Responses event (response.completed) in
// "response.usage". It returns false when body reports none, such as a
// chat chunk before the last ("usage": null) or a body that is not JSON.
// Counts a server got wrong (negative, or more cached than input tokens)
// are bounded so that they never price below zero.
func ParseUsage(body []byte) (Usage, bool) {
	var a struct {
		Usage    *wireUsage `json:"usage"`
		Response *struct {
			Usage *wireUsage `json:"usage"`
		} `json:"response"`
	}
	if json.Unmarshal(body, &a) != nil {
		return Usage{}, false
	}
	w := a.Usage
	if w == nil && a.Response != nil {
		w = a.Response.Usage
	}
	if w == nil {
		return Usage{}, false
	}
	// An API fills one pair of names; the other reads zero.
	u := Usage{
		Input:       max(w.PromptTokens, w.InputTokens, 0),
		CachedInput: max(w.PromptTokensDetails.CachedTokens, w.InputTokensDetails.CachedTokens, 0),
		Output:      max(w.CompletionTokens, w.OutputTokens, 0),
		Reasoning:   max(w.CompletionTokensDetails.ReasoningTokens, w.OutputTokensDetails.ReasoningTokens, 0),
	}
	u.CachedInput = min(u.CachedInput, u.Input)
	u.Reasoning = min(u.Reasoning, u.Output)
	return u, true
}
