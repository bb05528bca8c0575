package sim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

// This file serves two more /v1 routes, so that a proxy's pass-through of
// routes it does not know can be tested: legacy text completions and
// moderations.

type completionsRequest struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int            `json:"max_tokens"`
	Stream    bool            `json:"stream"`
}

// defaultCompletionTokens is the legacy completions endpoint's default
// max_tokens.
const defaultCompletionTokens = 16

type completionChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null
	FinishReason string          `json:"finish_reason"`
}

type completionUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// completions answers POST /v1/completions: one choice per prompt, the
// prompt answered as a chat user message would be, capped at max_tokens
// (default 16, as OpenAI's).
func (c *call) completions() {
	var req completionsRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	if req.Stream {
		c.fail(http.StatusBadRequest, "stream is not supported by the simulator for completions", "invalid_request_error", "stream", "")
		return
	}
	model, ok := c.model(req.Model)
	if !ok {
		return
	}
	if isEmbedding(model) {
		c.fail(http.StatusNotFound, "This is not a completions model and thus not supported in the v1/completions endpoint.", "invalid_request_error", "model", "")
		return
	}
	prompts, ok := parseInputs(req.Prompt)
	if !ok {
		c.fail(http.StatusBadRequest, "'prompt' must be a non-empty string, an array of non-empty strings, an array of token ids or an array of arrays of token ids.", "invalid_request_error", "prompt", "")
		return
	}
	limit := defaultCompletionTokens
	if req.MaxTokens != nil {
		if !c.checkRange("max_tokens", *req.MaxTokens, 1, 1<<20) {
			return
		}
		limit = *req.MaxTokens
	}

	c.drawFault(false)
	if c.earlyFault() {
		return
	}
	var u completionUsage
	choices := make([]completionChoice, len(prompts))
	var sum [32]byte
	longest := 0
	for i, p := range prompts {
		text := p.text
		if p.ids != nil {
			u.PromptTokens += len(p.ids)
		} else {
			u.PromptTokens += tokens.Count(model, text)
		}
		msgs := []tokens.Message{{Role: "user", Content: text}}
		rep := c.s.replies.get(model, msgs)
		if i == 0 {
			sum = rep.sum
		}
		ans := textAnswer(rep, limit)
		var b bytes.Buffer
		for _, pt := range ans.parts {
			b.WriteString(pt.text())
		}
		choices[i] = completionChoice{Text: b.String(), Index: i, FinishReason: ans.finish}
		u.CompletionTokens += ans.n
		longest = max(longest, ans.n)
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if !c.admitOrRefuse(model, u.PromptTokens+limit*len(prompts)) {
		return
	}
	c.rec.PromptTokens, c.rec.CompletionTokens = u.PromptTokens, u.CompletionTokens
	c.latency = c.acct.TTFT + time.Duration(max(longest-1, 0))*c.acct.PerToken
	if !c.sleep(c.latency) {
		return
	}
	c.sendJSON(http.StatusOK, struct {
		ID      string             `json:"id"`
		Object  string             `json:"object"`
		Created int64              `json:"created"`
		Model   string             `json:"model"`
		Choices []completionChoice `json:"choices"`
		Usage   completionUsage    `json:"usage"`
	}{"cmpl-sim-" + hex.EncodeToString(sum[:12]), "text_completion", c.rec.Time.Unix(), model, choices, u})
}

type moderationsRequest struct {
	Model string          `json:"model"`
	Input json.RawMessage `json:"input"`
}

// defaultModerationModel is the model moderations report when the request
// names none.
const defaultModerationModel = "omni-moderation-latest"

// moderations answers POST /v1/moderations: nothing is ever flagged. Any
// model name is accepted; the request costs one request and no tokens.
func (c *call) moderations() {
	var req moderationsRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	n, ok := moderationInputs(req.Input)
	if !ok {
		c.fail(http.StatusBadRequest, "'input' must be a non-empty string, an array of strings or an array of multi-modal inputs.", "invalid_request_error", "input", "")
		return
	}
	model := defaultModerationModel
	if req.Model != "" {
		model = req.Model
	}
	c.rec.Model = model

	c.drawFault(false)
	if c.earlyFault() {
		return
	}
	if !c.admitOrRefuse(model, 0) {
		return
	}
	c.latency = c.acct.TTFT
	if !c.sleep(c.latency) {
		return
	}
	type result struct {
		Flagged        bool            `json:"flagged"`
		Categories     json.RawMessage `json:"categories"`
		CategoryScores json.RawMessage `json:"category_scores"`
	}
	results := make([]result, n)
	for i := range results {
		results[i] = result{Categories: emptyObject, CategoryScores: emptyObject}
	}
	sum := hashMessages([]tokens.Message{{Role: "moderation", Content: string(c.body)}})
	c.sendJSON(http.StatusOK, struct {
		ID      string   `json:"id"`
		Model   string   `json:"model"`
		Results []result `json:"results"`
	}{"modr-sim-" + hex.EncodeToString(sum[:12]), model, results})
}

// moderationInputs returns how many results a moderation input gets: one
// for a string, one per string of an array of strings, one for an array of
// multi-modal parts.
func moderationInputs(raw json.RawMessage) (int, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	switch raw[0] {
	case '"':
		var s string
		return 1, json.Unmarshal(raw, &s) == nil
	case '[':
		var ss []string
		if json.Unmarshal(raw, &ss) == nil {
			return len(ss), len(ss) > 0
		}
		var parts []map[string]json.RawMessage
		if json.Unmarshal(raw, &parts) == nil && len(parts) > 0 {
			return 1, true
		}
	}
	return 0, false
}
