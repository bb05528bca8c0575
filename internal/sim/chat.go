package sim

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	Logprobs            bool            `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ResponseFormat      *chatFormat     `json:"response_format"`
	Temperature         *float64        `json:"temperature"`
}

// chatTool is one entry of a chat request's tools.
type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// chatFormat is a chat request's response_format.
type chatFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Completion length bounds, in tokens, before any max_tokens cap.
const (
	minAnswer = 16
	maxAnswer = 96
)

// echoWords is how many words of the last user message an answer echoes.
const echoWords = 8

func (c *call) chat() {
	var req chatRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	c.rec.Stream = req.Stream
	model, ok := c.model(req.Model)
	if !ok {
		return
	}
	if isEmbedding(model) {
		c.fail(http.StatusNotFound, "This is not a chat model and thus not supported in the v1/chat/completions endpoint.", "invalid_request_error", "model", "")
		return
	}
	msgs, ok := c.messages(req.Messages)
	if !ok {
		return
	}
	limit := 0
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if p.v == nil {
			continue
		}
		if *p.v < 1 {
			c.fail(http.StatusBadRequest, "Invalid '"+p.name+"': integer below minimum value. Expected a value >= 1, but got "+strconv.Itoa(*p.v)+" instead.", "invalid_request_error", p.name, "integer_below_min_value")
			return
		}
		limit = *p.v // max_completion_tokens wins when both are set
	}
	if req.StreamOptions != nil && !req.Stream {
		c.fail(http.StatusBadRequest, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "invalid_request_error", "stream_options", "")
		return
	}
	topLogprobs := -1 // no logprobs
	if req.Logprobs {
		topLogprobs = 0
		if req.TopLogprobs != nil {
			topLogprobs = *req.TopLogprobs
		}
	}
	if req.TopLogprobs != nil && !c.checkRange("top_logprobs", *req.TopLogprobs, 0, maxTopLogprobs) {
		return
	}
	tool, ok := c.chatTool(req)
	if !ok {
		return
	}
	format, schema, ok := c.chatFormat(req.ResponseFormat)
	if !ok {
		return
	}

	c.drawFault(req.Stream)
	if c.earlyFault() {
		return
	}

	rep := c.s.replies.get(model, msgs)
	if req.Temperature != nil && *req.Temperature > 0 {
		rep = c.s.sampled(model, msgs, rep)
	}
	var called func() answer
	if tool != nil {
		called = func() answer {
			return toolAnswer(model, "call_"+hex.EncodeToString(rep.sum[12:24]), tool.Function.Name, tool.Function.Parameters)
		}
	}
	ans, ok := c.admitAnswer(model, rep, called, format, schema, limit)
	if !ok {
		return
	}
	if req.Stream {
		c.stream(model, rep, ans, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, topLogprobs)
		return
	}
	c.latency = c.acct.TTFT + time.Duration(max(ans.n-1, 0))*c.acct.PerToken
	if !c.sleep(c.latency) {
		return // the client went away
	}
	b := getBuf()
	defer putBuf(b)
	o := append(*b, `{"id":`...)
	o = appendID(o, rep)
	o = append(o, `,"object":"chat.completion","created":`...)
	o = strconv.AppendInt(o, c.rec.Time.Unix(), 10)
	o = append(o, `,"model":`...)
	o = appendString(o, model)
	o = append(o, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if ans.call != nil {
		o = append(o, `null,"tool_calls":[`...)
		o = ans.call.append(o, -1)
		o = append(o, `],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}]`...)
	} else {
		o = append(o, '"')
		for _, p := range ans.parts {
			if p.space {
				o = append(o, ' ')
			}
			o = appendEscaped(o, p.word)
		}
		o = append(o, `","refusal":null},"logprobs":`...)
		if topLogprobs >= 0 {
			o = append(o, `{"content":[`...)
			for i, p := range ans.parts {
				if i > 0 {
					o = append(o, ',')
				}
				o = appendLogprob(o, p.text(), i, topLogprobs)
			}
			o = append(o, `],"refusal":null}`...)
		} else {
			o = append(o, "null"...)
		}
		o = append(o, `,"finish_reason":"`...)
		o = append(o, ans.finish...)
		o = append(o, `"}]`...)
	}
	o = append(o, `,"usage":`...)
	o = appendUsage(o, rep.prompt, ans.n)
	o = append(o, `,"service_tier":"default","system_fingerprint":"fp_sim"}`+"\n"...)
	*b = o
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o = o[:len(o)/2]
	}
	c.send(http.StatusOK, o)
}

// maxTopLogprobs is the largest top_logprobs OpenAI accepts.
const maxTopLogprobs = 20

// checkRange answers 400 and returns false when v is outside [lo, hi].
func (c *call) checkRange(param string, v, lo, hi int) bool {
	switch {
	case v < lo:
		c.fail(http.StatusBadRequest, "Invalid '"+param+"': integer below minimum value. Expected a value >= "+strconv.Itoa(lo)+", but got "+strconv.Itoa(v)+" instead.", "invalid_request_error", param, "integer_below_min_value")
		return false
	case v > hi:
		c.fail(http.StatusBadRequest, "Invalid '"+param+"': integer above maximum value. Expected a value <= "+strconv.Itoa(hi)+", but got "+strconv.Itoa(v)+" instead.", "invalid_request_error", param, "integer_above_max_value")
		return false
	}
	return true
}

// chatTool validates tools and tool_choice and returns the function tool
// the answer must call, or nil for a text answer: tool_choice "required"
// calls the first function tool, a named function that one, unless the
// conversation already holds a tool result.
func (c *call) chatTool(req chatRequest) (*chatTool, bool) {
	choice, ok := parseToolChoice(req.ToolChoice)
	if !ok {
		c.fail(http.StatusBadRequest, "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a function.", "invalid_request_error", "tool_choice", "invalid_value")
		return nil, false
	}
	if choice.set && len(req.Tools) == 0 {
		c.fail(http.StatusBadRequest, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "invalid_request_error", "tool_choice", "")
		return nil, false
	}
	var tool *chatTool
	for i := range req.Tools {
		t := &req.Tools[i]
		if t.Type != "function" || t.Function.Name == "" {
			continue
		}
		if (choice.mode == "required" && tool == nil) || (choice.mode == "function" && t.Function.Name == choice.name) {
			tool = t
		}
	}
	if choice.mode == "function" && tool == nil {
		c.fail(http.StatusBadRequest, "Invalid value for 'tool_choice': no function named '"+choice.name+"' is specified in 'tools'.", "invalid_request_error", "tool_choice", "")
		return nil, false
	}
	for _, m := range req.Messages {
		if m.Role == "tool" || m.Role == "function" {
			return nil, true // a tool has answered: answer with text
		}
	}
	return tool, true
}

// toolChoice is what a tool_choice asks for.
type toolChoice struct {
	set  bool   // present and not null
	mode string // "auto", "none", "required" or "function"
	name string // the function, for mode "function"
}

// parseToolChoice reads a tool_choice of chat ({"type":"function",
// "function":{"name":...}}) or of the Responses API ({"type":"function",
// "name":...}). Objects of other types (hosted tools, allowed_tools) count
// as "auto".
func parseToolChoice(raw json.RawMessage) (toolChoice, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return toolChoice{mode: "auto"}, true
	}
	tc := toolChoice{set: true}
	switch raw[0] {
	case '"':
		if json.Unmarshal(raw, &tc.mode) != nil {
			return tc, false
		}
		switch tc.mode {
		case "auto", "none", "required":
			return tc, true
		}
		return tc, false
	case '{':
		var v struct {
			Type     string `json:"type"`
			Name     string `json:"name"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(raw, &v) != nil {
			return tc, false
		}
		if v.Type != "function" {
			tc.mode = "auto"
			return tc, true
		}
		tc.mode, tc.name = "function", cmp.Or(v.Function.Name, v.Name)
		return tc, tc.name != ""
	}
	return tc, false
}

// chatFormat validates a response_format and returns the structured format
// asked for ("json_schema", "json_object", or "" for text) and its schema.
func (c *call) chatFormat(f *chatFormat) (string, json.RawMessage, bool) {
	if f == nil {
		return "", nil, true
	}
	switch f.Type {
	case "text":
		return "", nil, true
	case "json_object":
		return f.Type, nil, true
	case "json_schema":
		if f.JSONSchema == nil {
			c.fail(http.StatusBadRequest, "Missing required parameter: 'response_format.json_schema'.", "invalid_request_error", "response_format.json_schema", "missing_required_parameter")
			return "", nil, false
		}
		return f.Type, f.JSONSchema.Schema, true
	}
	c.fail(http.StatusBadRequest, "Invalid value: '"+f.Type+"'. Supported values are: 'json_object', 'json_schema', and 'text'.", "invalid_request_error", "response_format.type", "invalid_value")
	return "", nil, false
}

// answer is what a completion says: text parts, or one tool call whose
// arguments the parts carry in pieces.
type answer struct {
	parts  []part
	n      int    // completion tokens
	finish string // "stop", "length" or "tool_calls"
	call   *toolCall
}

type toolCall struct {
	id, name, args string
}

// append appends the call as an entry of a chat tool_calls array; index >= 0
// adds the "index" field of stream deltas and leaves the arguments empty.
func (t *toolCall) append(o []byte, index int) []byte {
	o = append(o, '{')
	if index >= 0 {
		o = append(o, `"index":`...)
		o = strconv.AppendInt(o, int64(index), 10)
		o = append(o, ',')
	}
	o = append(o, `"id":`...)
	o = appendString(o, t.id)
	o = append(o, `,"type":"function","function":{"name":`...)
	o = appendString(o, t.name)
	o = append(o, `,"arguments":`...)
	if index >= 0 {
		o = append(o, `""`...)
	} else {
		o = appendString(o, t.args)
	}
	return append(o, "}}"...)
}

// textAnswer is the reply's text capped at limit tokens (0: no cap).
func textAnswer(rep *reply, limit int) answer {
	n, finish := rep.target, "stop"
	if limit > 0 && limit < n {
		n, finish = limit, "length"
	}
	return answer{parts: rep.parts(n), n: n, finish: finish}
}

// docAnswer answers with doc, cut to limit tokens (0: no cap).
// admitAnswer builds the answer — a tool call when called is not nil, a
// structured document for format, else text — charges its cost to the
// account's limits and records its tokens. false: the request was refused
// (and answered).
func (c *call) admitAnswer(model string, rep *reply, called func() answer, format string, schema json.RawMessage, limit int) (answer, bool) {
	var ans answer
	switch {
	case called != nil:
		ans = called()
	case format != "":
		ans = docAnswer(model, structuredDoc(format, schema, rep), limit)
	default:
		ans = textAnswer(rep, limit)
	}
	cost := rep.prompt + ans.n
	if limit > 0 {
		cost = rep.prompt + limit
	}
	if !c.admitOrRefuse(model, cost) {
		return ans, false
	}
	c.rec.PromptTokens, c.rec.CompletionTokens = rep.prompt, ans.n
	return ans, true
}

func docAnswer(model, doc string, limit int) answer {
	n, finish := tokens.Count(model, doc), "stop"
	if limit > 0 && n > limit {
		doc, n = tokens.Truncate(model, doc, limit)
		finish = "length"
	}
	return answer{parts: docParts(model, doc), n: n, finish: finish}
}

// toolAnswer calls the named function with arguments generated from its
// parameters schema ("{}" without one). Its tokens are those of the name and
// the arguments.
func toolAnswer(model, id, name string, params json.RawMessage) answer {
	args := "{}"
	if len(bytes.TrimSpace(params)) > 0 {
		args = string(schemaInstance(params))
	}
	return answer{
		parts:  docParts(model, args),
		n:      tokens.Count(model, name) + tokens.Count(model, args),
		finish: "tool_calls",
		call:   &toolCall{id: id, name: name, args: args},
	}
}

// structuredDoc returns the document of a structured answer: an instance of
// the schema for "json_schema", else {"answer": the reply's text}.
func structuredDoc(format string, schema json.RawMessage, rep *reply) string {
	if format == "json_schema" {
		if len(bytes.TrimSpace(schema)) == 0 {
			return "{}"
		}
		return string(schemaInstance(schema))
	}
	var text strings.Builder
	for _, p := range rep.parts(rep.target) {
		if p.space {
			text.WriteByte(' ')
		}
		text.WriteString(p.word)
	}
	return string(appendString([]byte(`{"answer":`), text.String())) + "}"
}

// docParts splits a document into stream pieces that concatenate to it: a
// piece ends after "{", "[", ",", ":" and before "}", "]", and a space after
// a non-space starts a new piece, so words keep their leading space. Each
// piece counts its own tokens, at least 1.
func docParts(model, doc string) []part {
	var out []part
	add := func(s string) {
		if s != "" {
			out = append(out, part{word: s, tokens: max(1, tokens.Count(model, s))})
		}
	}
	start := 0
	for i := 0; i < len(doc); i++ {
		switch b := doc[i]; {
		case b == ' ' && i > start && doc[i-1] != ' ', b == '}', b == ']':
			add(doc[start:i])
			start = i
		}
		switch doc[i] {
		case '{', '[', ',', ':':
			add(doc[start : i+1])
			start = i + 1
		}
	}
	add(doc[start:])
	return out
}

// appendLogprob appends the logprobs entry of the i-th content piece, with
// k top_logprobs: the piece itself, then filler words less and less likely.
func appendLogprob(o []byte, tok string, i, k int) []byte {
	o = appendTokenLogprob(o, tok, i, 0)
	o = o[:len(o)-1] // reopen the object
	o = append(o, `,"top_logprobs":[`...)
	for j := range k {
		if j > 0 {
			o = append(o, ',')
		}
		alt := tok
		if j > 0 {
			alt = altToken(tok, i, j)
		}
		o = appendTokenLogprob(o, alt, i, j)
	}
	return append(o, "]}"...)
}

// appendTokenLogprob appends {"token","logprob","bytes"} for the j-th most
// likely token at position i: logprob -(i%7)/100 - j.
func appendTokenLogprob(o []byte, tok string, i, j int) []byte {
	o = append(o, `{"token":`...)
	o = appendString(o, tok)
	o = append(o, `,"logprob":`...)
	o = strconv.AppendFloat(o, float64(-(i%7+100*j))/100, 'g', -1, 64) // not -0
	o = append(o, `,"bytes":[`...)
	for n := 0; n < len(tok); n++ {
		if n > 0 {
			o = append(o, ',')
		}
		o = strconv.AppendInt(o, int64(tok[n]), 10)
	}
	return append(o, "]}"...)
}

// altToken returns the j-th alternative to tok at position i: a filler word,
// with a leading space when tok has one, never tok itself.
func altToken(tok string, i, j int) string {
	k := (i*31 + j) % len(filler)
	w := filler[k]
	sp := strings.HasPrefix(tok, " ")
	if strings.TrimPrefix(tok, " ") == w {
		w = filler[(k+1)%len(filler)]
	}
	if sp {
		return " " + w
	}
	return w
}

func (c *call) badJSON() {
	c.fail(http.StatusBadRequest, "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.", "invalid_request_error", "", "")
}

// messages validates the request's messages and converts them for counting.
func (c *call) messages(in []chatMessage) ([]tokens.Message, bool) {
	if in == nil {
		c.fail(http.StatusBadRequest, "Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter")
		return nil, false
	}
	if len(in) == 0 {
		c.fail(http.StatusBadRequest, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "invalid_request_error", "messages", "empty_array")
		return nil, false
	}
	out := make([]tokens.Message, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			c.fail(http.StatusBadRequest, "Invalid value: '"+m.Role+"'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", "invalid_request_error", "messages["+strconv.Itoa(i)+"].role", "invalid_value")
			return nil, false
		}
		text, ok := contentText(m.Content)
		if !ok {
			c.fail(http.StatusBadRequest, "Invalid type for 'messages["+strconv.Itoa(i)+"].content': expected a string, an array of content parts or null.", "invalid_request_error", "messages["+strconv.Itoa(i)+"].content", "invalid_type")
			return nil, false
		}
		out[i] = tokens.Message{Role: m.Role, Name: m.Name, Content: text}
	}
	return out, true
}

// contentText returns the text of a message content: a string, an array of
// content parts (text parts joined by newlines, other parts ignored) or null.
func contentText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	switch raw[0] {
	case '"':
		var s string
		return s, json.Unmarshal(raw, &s) == nil
	case '[':
		var parts []contentPart
		if json.Unmarshal(raw, &parts) != nil {
			return "", false
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Type != "text" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
		return b.String(), true
	}
	return "", false
}

func isEmbedding(model string) bool { return strings.Contains(tokens.Canonical(model), "embed") }

func appendID(o []byte, rep *reply) []byte {
	o = append(o, `"chatcmpl-sim-`...)
	o = hex.AppendEncode(o, rep.sum[:12])
	return append(o, '"')
}

func appendUsage(o []byte, prompt, completion int) []byte {
	o = append(o, `{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt), 10)
	o = append(o, `,"completion_tokens":`...)
	o = strconv.AppendInt(o, int64(completion), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt+completion), 10)
	return append(o, '}')
}

// stream answers with server-sent events in OpenAI's framing. A text
// answer streams one content chunk per part; a tool call streams its id and
// name with the role, then its arguments piece by piece. topLogprobs >= 0
// adds logprobs to every content chunk.
func (c *call) stream(model string, rep *reply, ans answer, usage bool, topLogprobs int) {
	h := c.w.Header()
	h["Content-Type"] = contentStream
	h["Cache-Control"] = noCache
	c.requestID()
	c.latency = c.acct.TTFT
	c.processingMS()
	c.w.WriteHeader(http.StatusOK)
	c.rec.Status = http.StatusOK
	rc := http.NewResponseController(c.w)
	b := getBuf()
	defer putBuf(b)

	head := append((*b)[:0], `data: {"id":`...)
	head = appendID(head, rep)
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = strconv.AppendInt(head, c.rec.Time.Unix(), 10)
	head = append(head, `,"model":`...)
	head = appendString(head, model)
	head = append(head, `,"service_tier":"default","system_fingerprint":"fp_sim","choices":[`...)
	*b = head
	n := len(head)
	tail := "}\n\n"
	if usage {
		tail = `,"usage":null}` + "\n\n"
	}
	emit := func(o []byte) bool {
		*b = o
		if _, err := c.w.Write(o); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o := append((*b)[:n], `{"index":0,"delta":{"role":`...)
		c.finish()
		emit(append(o, "\n\ndata: [DONE]\n\n"...))
		return
	}
	o := append((*b)[:n], `{"index":0,"delta":{"role":"assistant","content":`...)
	if ans.call != nil {
		o = append(o, `null,"tool_calls":[`...)
		o = ans.call.append(o, 0)
		o = append(o, `],"refusal":null},"logprobs":null,"finish_reason":null}]`...)
	} else {
		o = append(o, `"","refusal":null},"logprobs":null,"finish_reason":null}]`...)
	}
	if !emit(append(o, tail...)) {
		return
	}
	cut := -1
	if c.fault == FaultStreamBreak {
		cut = len(ans.parts) / 2
	}
	for i, p := range ans.parts {
		if !c.pace(i, p, cut) {
			return
		}
		o := (*b)[:n]
		if ans.call != nil {
			o = append(o, `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"`...)
			o = appendEscaped(o, p.word)
			o = append(o, `"}}]},"logprobs":null,"finish_reason":null}]`...)
		} else {
			o = append(o, `{"index":0,"delta":{"content":"`...)
			if p.space {
				o = append(o, ' ')
			}
			o = appendEscaped(o, p.word)
			o = append(o, `"},"logprobs":`...)
			if topLogprobs >= 0 {
				o = append(o, `{"content":[`...)
				o = appendLogprob(o, p.text(), i, topLogprobs)
				o = append(o, `],"refusal":null}`...)
			} else {
				o = append(o, "null"...)
			}
			o = append(o, `,"finish_reason":null}]`...)
		}
		if !emit(append(o, tail...)) {
			return
		}
	}
	c.finish() // before the end is visible, so Log agrees with what the client saw
	o = append((*b)[:n], `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	o = append(o, ans.finish...)
	o = append(o, `"}]`...)
	if !emit(append(o, tail...)) {
		return
	}
	if usage {
		o = append((*b)[:n], `],"usage":`...)
		o = appendUsage(o, rep.prompt, c.rec.CompletionTokens)
		if !emit(append(o, "}\n\n"...)) {
			return
		}
	}
	emit(append((*b)[:0], "data: [DONE]\n\n"...))
}

// reply is the uncapped answer to a list of messages on one encoding.
type reply struct {
	sum    [32]byte // hash of the messages
	prompt int      // prompt tokens
	words  []string // `Simulated answer to "echo…".` split at spaces
	counts []int    // tokens of each word, with its leading space after the first
	total  int      // sum of counts
	target int      // completion tokens when uncapped, in [minAnswer, maxAnswer]
}

// part is one piece of an answer's text, and one content chunk of a stream.
type part struct {
	space  bool // preceded by a space
	word   string
	tokens int
}

// text returns the piece as it appears in the answer, with its space.
func (p part) text() string {
	if p.space {
		return " " + p.word
	}
	return p.word
}

// filler words are one token each, with and without a leading space, in
// every encoding package tokens uses (a test checks), and a space-separated
// word never shares a token with its neighbours, so an answer's tokens add up
// word by word.
var filler = strings.Fields(`the of and to in is that for it as with was on be by this are from or at an
which but not have has more can will one all their there been when what time about also into data
model system value result request answer simple clear first new some other could would than
then them these only over such most well many very just like make each where after before because
through between under while should those both same given level point state order number field
table record token stream cache route limit queue worker server client signal sample vector random
steady quiet bright river stone cloud paper window market letter`)

// parts returns the answer cut or padded to exactly n tokens.
func (r *reply) parts(n int) []part {
	out := make([]part, 0, len(r.words)+max(0, n-r.total)+1)
	rng := rand.NewPCG(binary.LittleEndian.Uint64(r.sum[8:]), binary.LittleEndian.Uint64(r.sum[16:]))
	used := 0
	for i, w := range r.words {
		if used+r.counts[i] > n {
			break
		}
		out = append(out, part{space: i > 0, word: w, tokens: r.counts[i]})
		used += r.counts[i]
	}
	dot := used == r.total && n-used >= 2 // a whole echo and room for a filler: end with a period
	if dot {
		n--
	}
	for ; used < n; used++ {
		out = append(out, part{space: len(out) > 0, word: filler[rng.Uint64()%uint64(len(filler))], tokens: 1})
	}
	if dot {
		out = append(out, part{word: ".", tokens: 1})
	}
	return out
}

func newReply(model string, msgs []tokens.Message, sum [32]byte) *reply {
	r := &reply{
		sum:    sum,
		prompt: tokens.CountMessages(model, msgs),
		target: minAnswer + int(binary.BigEndian.Uint64(sum[:8])%(maxAnswer-minAnswer+1)),
	}
	last := msgs[len(msgs)-1].Content
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			last = msgs[i].Content
			break
		}
	}
	words := firstWords(last, echoWords+1)
	echo := strings.Join(words[:min(len(words), echoWords)], " ")
	if len(words) > echoWords {
		echo += "…"
	}
	r.words = strings.Split(`Simulated answer to "`+echo+`".`, " ")
	r.counts = make([]int, len(r.words))
	for i, w := range r.words {
		if i > 0 {
			w = " " + w
		}
		r.counts[i] = tokens.Count(model, w)
		r.total += r.counts[i]
	}
	return r
}

// firstWords returns up to n leading whitespace-separated words of s.
func firstWords(s string, n int) []string {
	var out []string
	for len(out) < n {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		if s == "" {
			break
		}
		end := strings.IndexFunc(s, unicode.IsSpace)
		if end < 0 {
			end = len(s)
		}
		w := s[:end]
		if !utf8.ValidString(w) {
			w = strings.ToValidUTF8(w, "\uFFFD")
		}
		out = append(out, w)
		s = s[end:]
	}
	return out
}

// hashMessages returns a hash of everything in msgs that shapes an answer.
func hashMessages(msgs []tokens.Message) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, m := range msgs {
		for _, s := range []string{m.Role, m.Name, m.Content} {
			binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// replyCache keeps recent replies, because counting tokens is the costly part
// of an answer and tests and benchmarks repeat prompts.
type replyCache struct {
	mu sync.Mutex // guards m
	m  map[replyKey]*reply
}

type replyKey struct {
	encoding string
	sum      [32]byte
}

const replyCacheSize = 4096

func (rc *replyCache) get(model string, msgs []tokens.Message) *reply {
	key := replyKey{tokens.Encoding(model), hashMessages(msgs)}
	rc.mu.Lock()
	r := rc.m[key]
	rc.mu.Unlock()
	if r != nil {
		return r
	}
	r = newReply(model, msgs, key.sum)
	rc.mu.Lock()
	if rc.m == nil || len(rc.m) >= replyCacheSize {
		rc.m = make(map[replyKey]*reply)
	}
	rc.m[key] = r
	rc.mu.Unlock()
	return r
}

// sampled is another answer to msgs, as a sampling model gives each time:
// the same prompt tokens and echo, other filler words, another length and id.
func (s *Server) sampled(model string, msgs []tokens.Message, r *reply) *reply {
	sum := r.sum
	binary.LittleEndian.PutUint64(sum[24:], s.seq.Add(1))
	sum = sha256.Sum256(sum[:])
	out := *r
	out.sum = sum
	out.target = minAnswer + int(binary.BigEndian.Uint64(sum[:8])%(maxAnswer-minAnswer+1))
	return &out
}

// pace waits before streaming part i of an answer, as the account's
// latency says (TTFT before the first, PerToken a token after), or cuts the
// stream at part cut (a StreamBreak fault). It reports false when the
// stream must end: cut, or the client went away.
func (c *call) pace(i int, p part, cut int) bool {
	if i == cut {
		c.rec.Fault = c.fault
		c.cut(false)
		return false
	}
	delay := time.Duration(p.tokens) * c.acct.PerToken
	if i == 0 {
		delay = c.acct.TTFT + time.Duration(p.tokens-1)*c.acct.PerToken
	}
	return c.sleep(delay)
}
