package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

// This file serves OpenAI's Responses API: POST /v1/responses and the
// stored-response endpoints under /v1/responses/{id}.

// responsesRequest holds the fields of a create request the simulator uses
// or echoes; others are ignored.
type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       json.RawMessage `json:"instructions"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              *bool           `json:"store"`
	Stream             bool            `json:"stream"`
	Background         bool            `json:"background"`
	Tools              json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Text               json.RawMessage `json:"text"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	Metadata           json.RawMessage `json:"metadata"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	Truncation         *string         `json:"truncation"`
	User               *string         `json:"user"`
}

// responseObject is a response as the API answers it; the field order is
// OpenAI's.
type responseObject struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"`
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"`
	Background         bool               `json:"background"`
	Error              json.RawMessage    `json:"error"` // always null
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       json.RawMessage    `json:"instructions"`
	MaxOutputTokens    *int               `json:"max_output_tokens"`
	Model              string             `json:"model"`
	Output             []any              `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Store              bool               `json:"store"`
	Temperature        float64            `json:"temperature"`
	Text               json.RawMessage    `json:"text"`
	ToolChoice         json.RawMessage    `json:"tool_choice"`
	Tools              json.RawMessage    `json:"tools"`
	TopP               float64            `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *responseUsage     `json:"usage"`
	User               *string            `json:"user"`
	Metadata           json.RawMessage    `json:"metadata"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

type messageItem struct {
	Type    string       `json:"type"`
	ID      string       `json:"id"`
	Status  string       `json:"status"`
	Role    string       `json:"role"`
	Content []outputText `json:"content"`
}

type outputText struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
	Logprobs    []any  `json:"logprobs"`
}

type functionCallItem struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	CallID    string `json:"call_id"`
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
	Status    string `json:"status"`
}

// responseTool is one entry of a Responses API request's tools (function
// tools are flat there, unlike chat's).
type responseTool struct {
	Type       string          `json:"type"`
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

// responseTextFormat is the text.format of a Responses API request.
type responseTextFormat struct {
	Format *struct {
		Type   string          `json:"type"`
		Schema json.RawMessage `json:"schema"`
	} `json:"format"`
}

// Defaults echoed for absent request fields.
var (
	defaultText       = json.RawMessage(`{"format":{"type":"text"}}`)
	defaultToolChoice = json.RawMessage(`"auto"`)
	emptyArray        = json.RawMessage(`[]`)
	emptyObject       = json.RawMessage(`{}`)
)

// minOutputTokens is the smallest max_output_tokens OpenAI accepts.
const minOutputTokens = 16

func (c *call) responses() {
	var req responsesRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	c.rec.Stream = req.Stream
	if c.route.wire == WireAzure {
		// On Azure the body's model is a deployment name.
		if req.Model == "" {
			c.fail(http.StatusBadRequest, "you must provide a model parameter", "invalid_request_error", "", "")
			return
		}
		c.route.deployment = req.Model
	}
	model, ok := c.model(req.Model)
	if !ok {
		return
	}
	if isEmbedding(model) {
		c.fail(http.StatusNotFound, "This is not a chat model and thus not supported in the v1/responses endpoint.", "invalid_request_error", "model", "")
		return
	}
	limit := 0
	if req.MaxOutputTokens != nil {
		if !c.checkRange("max_output_tokens", *req.MaxOutputTokens, minOutputTokens, math.MaxInt) {
			return
		}
		limit = *req.MaxOutputTokens
	}
	in, ok := c.responseInput(req.Input)
	if !ok {
		return
	}
	tool, ok := c.responseTool(req, in.toolOutput)
	if !ok {
		return
	}
	format, schema, ok := c.responseFormat(req.Text)
	if !ok {
		return
	}
	var prev *storedResponse
	if req.PreviousResponseID != nil && *req.PreviousResponseID != "" {
		id := *req.PreviousResponseID
		if prev = c.s.store.get(c.acct.Name, id); prev == nil {
			c.fail(http.StatusBadRequest, "Previous response with id '"+id+"' not found.", "invalid_request_error", "previous_response_id", "previous_response_not_found")
			return
		}
	}
	// The messages an answer depends on: the instructions, then the chain's
	// inputs and outputs, oldest first, then this input.
	var msgs []tokens.Message
	if instr, ok := instructionsText(req.Instructions); ok {
		msgs = append(msgs, tokens.Message{Role: "developer", Content: instr})
	}
	if prev != nil {
		msgs = append(msgs, prev.chain.messages()...)
	}
	msgs = append(msgs, in.msgs...)
	if len(msgs) == 0 {
		c.fail(http.StatusBadRequest, "Missing required parameter: 'input'.", "invalid_request_error", "input", "missing_required_parameter")
		return
	}

	c.drawFault(req.Stream)
	if c.earlyFault() {
		return
	}

	rep := c.s.replies.get(model, msgs)
	var called func() answer
	if tool != nil {
		called = func() answer { return toolAnswer(model, c.s.newID("call_", 12), tool.Name, tool.Parameters) }
	}
	ans, ok := c.admitAnswer(model, rep, called, format, schema, limit)
	if !ok {
		return
	}

	obj := c.responseObject(req, model)
	status := "completed"
	if ans.finish == "length" {
		status = "incomplete"
		obj.IncompleteDetails = &incompleteDetails{Reason: "max_output_tokens"}
	}
	obj.Status = status
	var item any
	var text string
	if ans.call != nil {
		item = functionCallItem{Type: "function_call", ID: c.s.newID("fc_", 24), CallID: ans.call.id, Name: ans.call.name, Arguments: ans.call.args, Status: "completed"}
	} else {
		var b strings.Builder
		for _, p := range ans.parts {
			b.WriteString(p.text())
		}
		text = b.String()
		item = messageItem{Type: "message", ID: c.s.newID("msg_", 24), Status: status, Role: "assistant",
			Content: []outputText{{Type: "output_text", Text: text, Annotations: []any{}, Logprobs: []any{}}}}
	}
	obj.Output = []any{item}
	obj.Usage = &responseUsage{InputTokens: rep.prompt, OutputTokens: ans.n, TotalTokens: rep.prompt + ans.n}

	// What a later response chained to this one sees of it.
	out := tokens.Message{Role: "assistant", Content: text}
	if ans.call != nil {
		out.Content = ans.call.name + " " + ans.call.args
	}
	var stored *storedResponse
	if obj.Store {
		node := &chainNode{prev: nil, msgs: append(in.msgs[:len(in.msgs):len(in.msgs)], out)}
		if prev != nil {
			node.prev = prev.chain
		}
		stored = &storedResponse{id: obj.ID, account: c.acct.Name, model: model, background: req.Background, items: in.items, chain: node}
	}

	if req.Stream {
		c.streamResponse(obj, item, ans, stored)
		return
	}
	c.latency = c.acct.TTFT + time.Duration(max(ans.n-1, 0))*c.acct.PerToken
	if !c.sleep(c.latency) {
		return
	}
	body := marshal(obj)
	if stored != nil {
		stored.body = body
		c.s.store.put(stored)
	}
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		body = body[:len(body)/2]
	}
	c.send(http.StatusOK, body)
}

// responseObject returns the response to req as it is before any output,
// with the request's settings echoed and OpenAI's defaults for the others.
func (c *call) responseObject(req responsesRequest, model string) *responseObject {
	obj := &responseObject{
		ID:                 c.s.newID("resp_", 24),
		Object:             "response",
		CreatedAt:          c.rec.Time.Unix(),
		Status:             "in_progress",
		Background:         req.Background,
		Instructions:       nullIfEmpty(req.Instructions),
		MaxOutputTokens:    req.MaxOutputTokens,
		Model:              model,
		Output:             []any{},
		ParallelToolCalls:  req.ParallelToolCalls == nil || *req.ParallelToolCalls,
		PreviousResponseID: req.PreviousResponseID,
		Store:              req.Store == nil || *req.Store,
		Temperature:        1,
		Text:               orDefault(req.Text, defaultText),
		ToolChoice:         orDefault(req.ToolChoice, defaultToolChoice),
		Tools:              orDefault(req.Tools, emptyArray),
		TopP:               1,
		Truncation:         "disabled",
		User:               req.User,
		Metadata:           orDefault(req.Metadata, emptyObject),
	}
	if obj.PreviousResponseID != nil && *obj.PreviousResponseID == "" {
		obj.PreviousResponseID = nil
	}
	if req.Temperature != nil {
		obj.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		obj.TopP = *req.TopP
	}
	if req.Truncation != nil {
		obj.Truncation = *req.Truncation
	}
	return obj
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func nullIfEmpty(raw json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return nil // marshals as null
	}
	return raw
}

func orDefault(raw, def json.RawMessage) json.RawMessage {
	if isNull(raw) {
		return def
	}
	return raw
}

// instructionsText returns the text of instructions given as a string.
func instructionsText(raw json.RawMessage) (string, bool) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil || s == "" {
		return "", false
	}
	return s, true
}

// responseInput is a request's input: its items as stored (each with an
// id) and the messages they amount to.
type responseInput struct {
	items      []json.RawMessage
	msgs       []tokens.Message
	toolOutput bool // a function_call_output is among the items
}

// responseInput parses input: a string (one user message), or an array of
// input items: messages ({role, content} with or without type "message",
// content a string or an array of parts whose input_text and output_text
// parts count), function_call_output and function_call items; items of
// other types are kept but do not shape the answer.
func (c *call) responseInput(raw json.RawMessage) (responseInput, bool) {
	var in responseInput
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return in, true
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			c.badJSON()
			return in, false
		}
		in.msgs = []tokens.Message{{Role: "user", Content: s}}
		in.items = []json.RawMessage{marshalLine(inputMessage{ID: c.s.newID("msg_", 24), Type: "message", Role: "user",
			Content: marshalLine([]contentPart{{Type: "input_text", Text: s}})})}
		return in, true
	case '[':
	default:
		c.fail(http.StatusBadRequest, "Invalid type for 'input': expected a string or an array of input items.", "invalid_request_error", "input", "invalid_type")
		return in, false
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		c.badJSON()
		return in, false
	}
	for i, itemRaw := range items {
		param := "input[" + strconv.Itoa(i) + "]"
		var it struct {
			Type      string          `json:"type"`
			ID        string          `json:"id"`
			Role      string          `json:"role"`
			Content   json.RawMessage `json:"content"`
			Output    json.RawMessage `json:"output"`
			Name      string          `json:"name"`
			Arguments string          `json:"arguments"`
		}
		if t := bytes.TrimSpace(itemRaw); len(t) == 0 || t[0] != '{' || json.Unmarshal(t, &it) != nil {
			c.fail(http.StatusBadRequest, "Invalid type for '"+param+"': expected an input item object.", "invalid_request_error", param, "invalid_type")
			return in, false
		}
		if it.Type == "" && it.Role != "" {
			it.Type = "message"
		}
		switch it.Type {
		case "":
			c.fail(http.StatusBadRequest, "Missing required parameter: '"+param+".type'.", "invalid_request_error", param+".type", "missing_required_parameter")
			return in, false
		case "message":
			switch it.Role {
			case "user", "assistant", "system", "developer":
			default:
				c.fail(http.StatusBadRequest, "Invalid value: '"+it.Role+"'. Supported values are: 'assistant', 'system', 'developer', and 'user'.", "invalid_request_error", param+".role", "invalid_value")
				return in, false
			}
			text, content, ok := responseContent(it.Content, it.Role)
			if !ok {
				c.fail(http.StatusBadRequest, "Invalid type for '"+param+".content': expected a string or an array of content parts.", "invalid_request_error", param+".content", "invalid_type")
				return in, false
			}
			in.msgs = append(in.msgs, tokens.Message{Role: it.Role, Content: text})
			in.items = append(in.items, marshalLine(inputMessage{ID: cmpOr(it.ID, func() string { return c.s.newID("msg_", 24) }), Type: "message", Role: it.Role, Content: content}))
		case "function_call_output":
			in.toolOutput = true
			in.msgs = append(in.msgs, tokens.Message{Role: "tool", Content: outputString(it.Output)})
			in.items = append(in.items, withID(itemRaw, it.ID, func() string { return c.s.newID("fco_", 24) }))
		case "function_call":
			in.msgs = append(in.msgs, tokens.Message{Role: "assistant", Content: it.Name + " " + it.Arguments})
			in.items = append(in.items, withID(itemRaw, it.ID, func() string { return c.s.newID("fc_", 24) }))
		default:
			in.items = append(in.items, withID(itemRaw, it.ID, func() string { return c.s.newID("item_", 24) }))
		}
	}
	return in, true
}

// inputMessage is a message input item as stored and listed.
type inputMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func cmpOr(s string, def func() string) string {
	if s != "" {
		return s
	}
	return def()
}

// responseContent returns the text of a message's content (a string, or the
// input_text and output_text parts of an array joined by newlines) and the
// content as stored: always an array of parts.
func responseContent(raw json.RawMessage, role string) (string, json.RawMessage, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", nil, false
		}
		typ := "input_text"
		if role == "assistant" {
			typ = "output_text"
		}
		return s, marshalLine([]contentPart{{Type: typ, Text: s}}), true
	case '[':
		var parts []json.RawMessage
		if json.Unmarshal(raw, &parts) != nil {
			return "", nil, false
		}
		var b strings.Builder
		for _, p := range parts {
			var cp contentPart
			if json.Unmarshal(p, &cp) != nil {
				return "", nil, false
			}
			if cp.Type != "input_text" && cp.Type != "output_text" && cp.Type != "text" {
				continue // images, files, audio: no text
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(cp.Text)
		}
		return b.String(), raw, true
	}
	return "", nil, false
}

// outputString returns the text of a function_call_output's output: a
// string, the text parts of an array, or the JSON itself.
func outputString(raw json.RawMessage) string {
	if text, _, ok := responseContent(raw, "user"); ok {
		return text
	}
	return string(bytes.TrimSpace(raw))
}

// withID returns an item object with an "id" field, newID's when it has none.
func withID(raw json.RawMessage, id string, newID func() string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return raw
	}
	if id == "" {
		m["id"] = marshalLine(newID())
	}
	return marshalLine(m)
}

// responseTool validates tools and tool_choice and returns the function
// tool the answer must call, or nil for a text answer: "required" calls the
// first function tool, a named function that one, unless the input holds a
// function_call_output.
func (c *call) responseTool(req responsesRequest, toolOutput bool) (*responseTool, bool) {
	var tools []responseTool
	if !isNull(req.Tools) && json.Unmarshal(req.Tools, &tools) != nil {
		c.fail(http.StatusBadRequest, "Invalid type for 'tools': expected an array of tool objects.", "invalid_request_error", "tools", "invalid_type")
		return nil, false
	}
	choice, ok := parseToolChoice(req.ToolChoice)
	if !ok {
		c.fail(http.StatusBadRequest, "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object naming a tool.", "invalid_request_error", "tool_choice", "invalid_value")
		return nil, false
	}
	var tool *responseTool
	for i := range tools {
		t := &tools[i]
		if t.Type != "function" || t.Name == "" {
			continue
		}
		if (choice.mode == "required" && tool == nil) || (choice.mode == "function" && t.Name == choice.name) {
			tool = t
		}
	}
	if choice.mode == "function" && tool == nil {
		c.fail(http.StatusBadRequest, "Tool choice 'function' not found in 'tools' parameter.", "invalid_request_error", "tool_choice", "")
		return nil, false
	}
	if toolOutput {
		return nil, true
	}
	return tool, true
}

// responseFormat validates text.format and returns the structured format
// asked for ("json_schema", "json_object", or "" for text) and its schema.
func (c *call) responseFormat(raw json.RawMessage) (string, json.RawMessage, bool) {
	if isNull(raw) {
		return "", nil, true
	}
	var t responseTextFormat
	if json.Unmarshal(raw, &t) != nil {
		c.fail(http.StatusBadRequest, "Invalid type for 'text': expected an object.", "invalid_request_error", "text", "invalid_type")
		return "", nil, false
	}
	if t.Format == nil {
		return "", nil, true
	}
	switch t.Format.Type {
	case "text":
		return "", nil, true
	case "json_object", "json_schema":
		return t.Format.Type, t.Format.Schema, true
	}
	c.fail(http.StatusBadRequest, "Invalid value: '"+t.Format.Type+"'. Supported values are: 'text', 'json_object', and 'json_schema'.", "invalid_request_error", "text.format.type", "invalid_value")
	return "", nil, false
}

// streamResponse answers with the Responses API's server-sent events.
func (c *call) streamResponse(obj *responseObject, item any, ans answer, stored *storedResponse) {
	h := c.w.Header()
	h["Content-Type"] = contentStream
	h["Cache-Control"] = noCache
	c.requestID()
	c.latency = c.acct.TTFT
	c.processingMS()
	c.w.WriteHeader(http.StatusOK)
	c.rec.Status = http.StatusOK
	ev := sse{w: c.w, rc: http.NewResponseController(c.w)}

	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		c.finish()
		ev.write([]byte("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\n\n"))
		return
	}
	final := *obj
	pending := *obj
	pending.Status, pending.Output, pending.Usage, pending.IncompleteDetails = "in_progress", []any{}, nil, nil
	if !ev.event("response.created", "response", &pending) || !ev.event("response.in_progress", "response", &pending) {
		return
	}

	var itemID string
	var pendingItem any
	switch it := item.(type) {
	case functionCallItem:
		itemID = it.ID
		it.Arguments, it.Status = "", "in_progress"
		pendingItem = it
	case messageItem:
		itemID = it.ID
		it.Status, it.Content = "in_progress", []outputText{}
		pendingItem = it
	}
	if !ev.event("response.output_item.added", "output_index", 0, "item", pendingItem) {
		return
	}
	if ans.call == nil && !ev.event("response.content_part.added", "item_id", itemID, "output_index", 0, "content_index", 0,
		"part", outputText{Type: "output_text", Annotations: []any{}, Logprobs: []any{}}) {
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
		var ok bool
		if ans.call != nil {
			ok = ev.event("response.function_call_arguments.delta", "item_id", itemID, "output_index", 0, "delta", p.text())
		} else {
			ok = ev.event("response.output_text.delta", "item_id", itemID, "output_index", 0, "content_index", 0, "delta", p.text(), "logprobs", []any{})
		}
		if !ok {
			return
		}
	}
	if ans.call != nil {
		if !ev.event("response.function_call_arguments.done", "item_id", itemID, "output_index", 0, "name", ans.call.name, "arguments", ans.call.args) {
			return
		}
	} else {
		msg := item.(messageItem)
		if !ev.event("response.output_text.done", "item_id", itemID, "output_index", 0, "content_index", 0, "text", msg.Content[0].Text, "logprobs", []any{}) ||
			!ev.event("response.content_part.done", "item_id", itemID, "output_index", 0, "content_index", 0, "part", msg.Content[0]) {
			return
		}
	}
	if !ev.event("response.output_item.done", "output_index", 0, "item", item) {
		return
	}
	if stored != nil {
		stored.body = marshal(&final)
		c.s.store.put(stored)
	}
	c.finish() // before the end is visible, so Log agrees with what the client saw
	typ := "response.completed"
	if final.Status == "incomplete" {
		typ = "response.incomplete"
	}
	ev.event(typ, "response", &final)
}

// sse writes server-sent events in the Responses API's framing:
// "event: TYPE\ndata: {"type":TYPE,"sequence_number":N,...}\n\n".
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	seq int
}

// event sends one event whose data has the fields given as name, value
// pairs after type and sequence_number; it reports false if the client has
// gone away.
func (e *sse) event(typ string, fields ...any) bool {
	o := append([]byte("event: "), typ...)
	o = append(o, "\ndata: {\"type\":"...)
	o = appendString(o, typ)
	o = append(o, `,"sequence_number":`...)
	o = strconv.AppendInt(o, int64(e.seq), 10)
	e.seq++
	for i := 0; i+1 < len(fields); i += 2 {
		o = append(o, ',')
		o = appendString(o, fields[i].(string))
		o = append(o, ':')
		o = append(o, marshalLine(fields[i+1])...)
	}
	return e.write(append(o, "}\n\n"...))
}

func (e *sse) write(o []byte) bool {
	if _, err := e.w.Write(o); err != nil {
		return false
	}
	return e.rc.Flush() == nil
}

// storedResponse is a response kept for the stored-response endpoints and
// for previous_response_id.
type storedResponse struct {
	id, account, model string
	background         bool
	body               []byte            // the response object, as answered
	items              []json.RawMessage // its input items, each with an id
	chain              *chainNode
}

// chainNode is what a response adds to a conversation chained with
// previous_response_id: its input and output as messages. Nodes outlive the
// stored responses they came from while a later response chains to them.
type chainNode struct {
	prev *chainNode
	msgs []tokens.Message
}

// messages returns the messages of the chain ending at n, oldest first.
func (n *chainNode) messages() []tokens.Message {
	var nodes []*chainNode
	total := 0
	for p := n; p != nil; p = p.prev {
		nodes = append(nodes, p)
		total += len(p.msgs)
	}
	out := make([]tokens.Message, 0, total)
	for i := len(nodes) - 1; i >= 0; i-- {
		out = append(out, nodes[i].msgs...)
	}
	return out
}

// maxStoredResponses bounds the responses a Server keeps; the oldest go
// first.
const maxStoredResponses = 100_000

// responseStore keeps stored responses by id, at most limit of them.
type responseStore struct {
	limit int

	mu    sync.Mutex // guards the fields below
	m     map[string]*storedResponse
	order []string // ids in order of storage from head on; may hold deleted ids
	head  int
}

func (st *responseStore) put(r *storedResponse) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil {
		st.m = make(map[string]*storedResponse)
	}
	st.m[r.id] = r
	st.order = append(st.order, r.id)
	for len(st.m) > st.limit && st.head < len(st.order) {
		delete(st.m, st.order[st.head])
		st.order[st.head] = ""
		st.head++
	}
	switch live := len(st.order) - st.head; {
	case live > 2*len(st.m)+1024: // mostly deleted ids: keep the live ones
		kept := make([]string, 0, len(st.m))
		for _, id := range st.order[st.head:] {
			if st.m[id] != nil {
				kept = append(kept, id)
			}
		}
		st.order, st.head = kept, 0
	case st.head > 1024 && st.head > len(st.order)/2:
		st.order, st.head = append([]string(nil), st.order[st.head:]...), 0
	}
}

// get returns the response id stored for account, or nil.
func (st *responseStore) get(account, id string) *storedResponse {
	st.mu.Lock()
	defer st.mu.Unlock()
	if r := st.m[id]; r != nil && r.account == account {
		return r
	}
	return nil
}

func (st *responseStore) remove(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}

// storedResponse serves the endpoints under /v1/responses/{id}. They cost
// nothing against the rate limits.
func (c *call) storedResponse() {
	id := c.route.id
	r := c.s.store.get(c.acct.Name, id)
	if r == nil {
		c.fail(http.StatusNotFound, "Response with id '"+id+"' not found.", "invalid_request_error", "", "")
		return
	}
	c.rec.Model = r.model
	order := c.r.URL.Query().Get("order")
	if c.route.endpoint == endpointInputItems && order != "" && order != "asc" && order != "desc" {
		c.fail(http.StatusBadRequest, "Invalid value: '"+order+"'. Supported values are: 'asc' and 'desc'.", "invalid_request_error", "order", "invalid_value")
		return
	}
	c.drawFault(false)
	if c.earlyFault() {
		return
	}
	switch c.route.endpoint {
	case endpointResponseGet:
		c.sendRaw(r.body)
	case endpointResponseDelete:
		c.s.store.remove(id)
		c.sendJSON(http.StatusOK, struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}{id, "response.deleted", true})
	case endpointResponseCancel:
		if !r.background {
			c.fail(http.StatusBadRequest, "Only responses created with background=true can be cancelled.", "invalid_request_error", "", "")
			return
		}
		c.sendRaw(r.body) // already completed: nothing to cancel
	case endpointInputItems:
		data := make([]json.RawMessage, len(r.items))
		for i, it := range r.items {
			if order == "asc" {
				data[i] = it
			} else {
				data[len(data)-1-i] = it
			}
		}
		list := struct {
			Object  string            `json:"object"`
			Data    []json.RawMessage `json:"data"`
			FirstID *string           `json:"first_id"`
			LastID  *string           `json:"last_id"`
			HasMore bool              `json:"has_more"`
		}{Object: "list", Data: data}
		if len(data) > 0 {
			first, last := itemID(data[0]), itemID(data[len(data)-1])
			list.FirstID, list.LastID = &first, &last
		}
		c.sendJSON(http.StatusOK, list)
	}
}

// sendRaw answers 200 with a stored body, cut in half by a malformed fault.
func (c *call) sendRaw(body []byte) {
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		body = body[:len(body)/2]
	}
	c.send(http.StatusOK, body)
}

func itemID(raw json.RawMessage) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.ID
}
