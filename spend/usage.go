package spend

import "github.com/tidwall/gjson"

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
	PromptTokens, CompletionTokens, InputTokens, OutputTokens int
	PromptTokensDetails, InputTokensDetails                   struct{ CachedTokens int }
	CompletionTokensDetails, OutputTokensDetails              struct{ ReasoningTokens int }
}

// read reads the usage object v in one pass; false when a count is not a
// number.
func (w *wireUsage) read(v gjson.Result) bool {
	ok := true
	count := func(n *int, x gjson.Result) {
		switch x.Type {
		case gjson.Number:
			*n = int(x.Int())
		case gjson.Null:
		default:
			ok = false
		}
	}
	details := func(n *int, name string, x gjson.Result) {
		if x.IsObject() {
			count(n, x.Get(name))
		}
	}
	v.ForEach(func(k, x gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens":
			count(&w.PromptTokens, x)
		case "completion_tokens":
			count(&w.CompletionTokens, x)
		case "input_tokens":
			count(&w.InputTokens, x)
		case "output_tokens":
			count(&w.OutputTokens, x)
		case "prompt_tokens_details":
			details(&w.PromptTokensDetails.CachedTokens, "cached_tokens", x)
		case "input_tokens_details":
			details(&w.InputTokensDetails.CachedTokens, "cached_tokens", x)
		case "completion_tokens_details":
			details(&w.CompletionTokensDetails.ReasoningTokens, "reasoning_tokens", x)
		case "output_tokens_details":
			details(&w.OutputTokensDetails.ReasoningTokens, "reasoning_tokens", x)
		}
		return ok
	})
	return ok
}

// ParseUsage reads the usage an answer body reports: a chat completion, a
// chat stream's last chunk, an embeddings list and a Responses response
// have it in "usage"; a streamed Responses event (response.completed) in
// "response.usage". It returns false when body reports none, such as a
// chat chunk before the last ("usage": null) or a body that is not JSON.
// Counts a server got wrong (negative, or more cached than input tokens)
// are bounded so that they never price below zero.
func ParseUsage(body []byte) (Usage, bool) {
	// gjson skips to the member without decoding the rest: an answer's
	// choices, or a stream's every chunk, are not read into values.
	v := gjson.GetBytes(body, "usage")
	if !v.Exists() {
		v = gjson.GetBytes(body, "response.usage")
	}
	if !v.IsObject() {
		return Usage{}, false
	}
	var w wireUsage
	if !w.read(v) {
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
