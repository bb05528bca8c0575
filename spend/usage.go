package spend

import (
	"strconv"
	"unsafe"

	"github.com/tidwall/gjson"
)

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

// read reads the usage object v in one pass; false when a count is not an
// integer (as encoding/json reads an int: no fraction, no exponent, in
// range) or a details member is not an object. A repeated member counts
// as its last occurrence, as encoding/json and the clients read it.
func (w *wireUsage) read(v gjson.Result) bool {
	ok := true
	count := func(n *int, x gjson.Result) {
		switch x.Type {
		case gjson.Number:
			i, err := strconv.ParseInt(x.Raw, 10, 0)
			if err != nil {
				ok = false
			}
			*n = int(i)
		case gjson.Null:
		default:
			ok = false
		}
	}
	details := func(n *int, name string, x gjson.Result) {
		switch {
		case x.IsObject():
			x.ForEach(func(k, y gjson.Result) bool {
				if k.Str == name {
					count(n, y)
				}
				return ok
			})
		case x.Type != gjson.Null:
			ok = false
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

// member returns the last member named name of the object v (encoding/json's
// and the clients' choice among repeated ones).
func member(v gjson.Result, name string) (m gjson.Result) {
	v.ForEach(func(k, x gjson.Result) bool {
		if k.Str == name {
			m = x
		}
		return true
	})
	return m
}

// ParseUsage reads the usage an answer body reports: a chat completion, a
// chat stream's last chunk, an embeddings list and a Responses response
// have it in "usage"; a streamed Responses event (response.completed) in
// "response.usage". It returns false when body reports none, such as a
// chat chunk before the last ("usage": null) or a body that is not JSON.
// Counts a server got wrong (negative, or more cached than input tokens)
// are bounded so that they never price below zero. body is checked JSON
// (an answer checkAnswer passed, a stream event, a cached answer).
func ParseUsage(body []byte) (Usage, bool) {
	// gjson skips the other members without decoding them: an answer's
	// choices, or a stream's every chunk, are not read into values.
	// body is only read here, and nothing of it is kept: no copy.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body)))
	if !root.IsObject() {
		return Usage{}, false
	}
	v := member(root, "usage")
	if v.Type == gjson.Null { // absent or null: a Responses event's
		if r := member(root, "response"); r.IsObject() {
			v = member(r, "usage")
		}
	}
	if !v.IsObject() {
		return Usage{}, false
	}
	var w wireUsage
	if !w.read(v) {
		return Usage{}, false
	}
	// An API fills one pair of names; the other reads zero. A count past
	// maxTokens is no count a server meant: bounded, so that its price
	// cannot overflow.
	u := Usage{
		Input:       min(max(w.PromptTokens, w.InputTokens, 0), maxTokens),
		CachedInput: max(w.PromptTokensDetails.CachedTokens, w.InputTokensDetails.CachedTokens, 0),
		Output:      min(max(w.CompletionTokens, w.OutputTokens, 0), maxTokens),
		Reasoning:   max(w.CompletionTokensDetails.ReasoningTokens, w.OutputTokensDetails.ReasoningTokens, 0),
	}
	u.CachedInput = min(u.CachedInput, u.Input)
	u.Reasoning = min(u.Reasoning, u.Output)
	return u, true
}

// maxTokens bounds a count: 2^40 tokens at the dearest price per token
// (a few 10^5 Nanos) stays far inside an int64.
const maxTokens = 1 << 40
