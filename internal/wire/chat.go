package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Key orders of the objects written here (other keys follow, sorted).
var (
	completionOrder = []string{"id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint"}
	chunkOrder      = []string{"id", "object", "created", "model", "service_tier", "system_fingerprint", "choices", "usage"}
	choiceOrder     = []string{"index", "message", "delta", "logprobs", "finish_reason"}
	messageOrder    = []string{"role", "content", "refusal", "tool_calls", "annotations"}
)

// textKeys are the message fields whose text a stream sends in pieces.
var textKeys = []string{"content", "refusal"}

// AssembleChat builds the chat.completion object a plain request would have
// received from the data payloads of a chat completion stream (each one
// chat.completion.chunk JSON object, in order; no "[DONE]").
//
// Top-level fields take the last non-null value any chunk gave them, "object"
// becomes "chat.completion", "usage" comes from the chunk that carries a
// non-null one (absent when none does), and "obfuscation", random padding
// only streams carry, is dropped. Choices are assembled by index, in index
// order:
//
//   - message.role is the first role a delta gave, "assistant" if none;
//   - message.content and message.refusal are the concatenation of the
//     deltas' pieces. When no delta carried text content, content is null
//     if a delta said null or the message has anything else (tool calls, a
//     refusal, audio…), as in OpenAI's plain answers, and "" otherwise;
//   - message.tool_calls are merged by their index (which the message does
//     not keep): id and type from the first delta that has them, strings such
//     as function.name and function.arguments concatenated;
//   - message.annotations arrays are concatenated;
//   - any other delta field (audio, function_call, vendor fields): strings
//     concatenated, objects merged member by member by the same rule (id,
//     type and index keep their first value), anything else the last
//     non-null value;
//   - logprobs: each member's arrays concatenated (content, refusal), null
//     when every chunk had null logprobs;
//   - finish_reason and any other choice field: the last non-null value.
//
// A field no chunk carried is absent from the result; one that chunks carried
// only as null is null.
func AssembleChat(chunks [][]byte) ([]byte, error) {
	if len(chunks) == 0 {
		return nil, errors.New("wire: chat stream has no chunks")
	}
	a := chatAssembler{top: fields{}, choices: map[int]*choiceAcc{}}
	for i, c := range chunks {
		if err := a.add(c); err != nil {
			return nil, fmt.Errorf("wire: chat chunk %d: %w", i, err)
		}
	}
	return a.completion(), nil
}

// chatAssembler accumulates a chat completion stream.
type chatAssembler struct {
	top     fields          // top-level members but object, choices and usage, by ruleLast
	usage   json.RawMessage // the last non-null usage
	choices map[int]*choiceAcc
}

// choiceAcc accumulates one choice of a stream.
type choiceAcc struct {
	delta     fields         // delta members but tool_calls
	toolsSeen bool           // some delta had tool_calls, maybe null
	toolsList bool           // some delta had a tool_calls array
	calls     map[int]*field // the tool calls by index, merged by ruleText
	lastCall  int            // the call a tool_calls entry without index continues
	logprobs  field          // by ruleLogprobs
	other     fields         // other choice members (finish_reason, vendor fields), by ruleLast
}

func (a *chatAssembler) add(chunk []byte) error {
	m, err := parse(chunk)
	if err != nil {
		return err
	}
	for k, v := range m {
		switch k {
		case "object", "obfuscation":
		case "usage":
			if !isNull(v) {
				a.usage = v
			}
		case "choices":
			err = a.addChoices(v)
		default:
			err = a.top.add(k, v, ruleLast)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func (a *chatAssembler) addChoices(v json.RawMessage) error {
	list, err := array(v)
	if err != nil {
		return err
	}
	for i, raw := range list {
		if err := a.addChoice(raw); err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
	}
	return nil
}

func (a *chatAssembler) addChoice(raw json.RawMessage) error {
	m, err := object(raw)
	if err != nil {
		return err
	}
	idx, err := index(m["index"])
	if err != nil {
		return err
	}
	c := a.choices[idx]
	if c == nil {
		c = &choiceAcc{delta: fields{}, calls: map[int]*field{}, other: fields{}}
		a.choices[idx] = c
	}
	for k, v := range m {
		switch k {
		case "index":
		case "delta":
			err = c.addDelta(v)
		case "logprobs":
			err = c.logprobs.add(v, ruleLogprobs)
		default:
			err = c.other.add(k, v, ruleLast)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// index decodes an index member; absent is 0.
func index(v json.RawMessage) (int, error) {
	if v == nil {
		return 0, nil
	}
	i, err := strconv.Atoi(string(v))
	if err != nil {
		return 0, fmt.Errorf("index %.20s is not an integer", v)
	}
	return i, nil
}

func (c *choiceAcc) addDelta(v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	m, err := object(v)
	if err != nil {
		return err
	}
	for k, v := range m {
		switch k {
		case "tool_calls":
			if err := c.addToolCalls(v); err != nil {
				return fmt.Errorf("tool_calls: %w", err)
			}
			continue
		case "role":
			err = c.delta.add(k, v, ruleFirst)
		case "annotations":
			err = c.delta.add(k, v, ruleList)
		default:
			err = c.delta.add(k, v, ruleText)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *choiceAcc) addToolCalls(v json.RawMessage) error {
	c.toolsSeen = true
	list, err := array(v)
	if err != nil || isNull(v) {
		return err
	}
	c.toolsList = true
	for i, raw := range list {
		m, err := object(raw)
		if err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
		idx, err := c.callIndex(m)
		if err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
		delete(m, "index")
		call := c.calls[idx]
		if call == nil {
			call = new(field)
			c.calls[idx] = call
		}
		if err := call.merge(m, ruleText); err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
	}
	return nil
}

// callIndex returns the index of the tool call a tool_calls entry belongs
// to. An entry without one (some OpenAI-compatible servers omit it) starts a
// new call when it has an id, else continues the latest.
func (c *choiceAcc) callIndex(m map[string]json.RawMessage) (int, error) {
	if v, ok := m["index"]; ok {
		i, err := index(v)
		c.lastCall = i
		return i, err
	}
	if !isNull(m["id"]) && len(c.calls) > 0 {
		c.lastCall = slices.Max(slices.Collect(maps.Keys(c.calls))) + 1
	}
	return c.lastCall, nil
}

// completion writes the assembled chat.completion.
func (a *chatAssembler) completion() []byte {
	m := a.top.values()
	m["object"] = quote("chat.completion")
	if a.usage != nil {
		m["usage"] = a.usage
	}
	var choices []json.RawMessage
	for _, idx := range slices.Sorted(maps.Keys(a.choices)) {
		choices = append(choices, a.choices[idx].choice(idx))
	}
	m["choices"] = join(choices...)
	return encode(m, completionOrder...)
}

func (c *choiceAcc) choice(idx int) json.RawMessage {
	m := c.other.values()
	m["index"] = json.RawMessage(strconv.Itoa(idx))
	m["message"] = c.message()
	if c.logprobs.seen {
		m["logprobs"] = c.logprobs.value()
	}
	return encode(m, choiceOrder...)
}

func (c *choiceAcc) message() json.RawMessage {
	m := c.delta.values()
	if !c.delta.given("role") {
		m["role"] = quote("assistant")
	}
	if !c.delta.given("content") {
		// No text: null when the stream said so or the message has
		// something else, as OpenAI's plain answers; else "".
		said := c.delta["content"] != nil || c.toolsList
		for k, f := range c.delta {
			said = said || (k != "role" && f.kind != 0)
		}
		m["content"] = emptyString
		if said {
			m["content"] = null
		}
	}
	if c.toolsSeen {
		m["tool_calls"] = null
		if c.toolsList {
			var calls []json.RawMessage
			for _, idx := range slices.Sorted(maps.Keys(c.calls)) {
				calls = append(calls, c.calls[idx].value())
			}
			m["tool_calls"] = join(calls...)
		}
	}
	return encode(m, messageOrder...)
}

// ChatChunks is the reverse: the chat.completion.chunk payloads a streaming
// request would have received for a chat.completion object. includeUsage
// appends the usage chunk (choices [] and the usage) when the completion has a usage.
//
// Every chunk carries the completion's top-level fields but usage, with
// object "chat.completion.chunk". Each choice is sent in turn as
//
//   - a role chunk: the role, "content": "" (null when the content is null),
//     "refusal" likewise when the message has one, and every field sent in no
//     other chunk (audio, vendor fields…);
//   - the content in pieces: one per token when the choice's logprobs.content
//     tokens spell the content exactly, each chunk with that token's logprobs
//     entry; else pieces of at most 64 bytes cut at rune boundaries, the first
//     carrying the logprobs left over (the whole object when no token carries
//     part of it); then the refusal likewise;
//   - the annotations in one chunk;
//   - each tool call: a chunk with the call and "arguments": "", then its
//     arguments in pieces;
//   - a finish chunk: an empty delta, the finish_reason and every other
//     choice field.
//
// Chunks carry "logprobs" and "finish_reason" (null but where said above)
// when the choice has them.
func ChatChunks(completion []byte, includeUsage bool) ([][]byte, error) {
	top, err := parse(completion)
	if err != nil {
		return nil, fmt.Errorf("wire: chat completion: %w", err)
	}
	choices, err := array(top["choices"])
	if err != nil {
		return nil, fmt.Errorf("wire: chat completion: choices: %w", err)
	}
	w := chunkWriter{head: maps.Clone(top)}
	delete(w.head, "choices")
	delete(w.head, "usage")
	w.head["object"] = quote("chat.completion.chunk")
	for i, raw := range choices {
		if err := w.choice(i, raw); err != nil {
			return nil, fmt.Errorf("wire: chat completion: choice %d: %w", i, err)
		}
	}
	if usage := top["usage"]; includeUsage && !isNull(usage) {
		w.emit(emptyArray, usage)
	}
	if len(w.chunks) == 0 {
		w.emit(emptyArray, nil)
	}
	return w.chunks, nil
}

// chunkWriter writes the chunks of a chat completion.
type chunkWriter struct {
	head   map[string]json.RawMessage // the top-level members every chunk carries
	chunks [][]byte
}

// emit appends a chunk with these choices, and this usage unless nil.
func (w *chunkWriter) emit(choices, usage json.RawMessage) {
	m := maps.Clone(w.head)
	m["choices"] = choices
	if usage != nil {
		m["usage"] = usage
	}
	w.chunks = append(w.chunks, encode(m, chunkOrder...))
}

// choice emits the chunks of one choice, pos being its place in choices.
func (w *chunkWriter) choice(pos int, raw json.RawMessage) error {
	c, err := object(raw)
	if err != nil {
		return err
	}
	msg := map[string]json.RawMessage{}
	if v := c["message"]; !isNull(v) {
		if msg, err = object(v); err != nil {
			return fmt.Errorf("message: %w", err)
		}
	}
	cw := choiceWriter{w: w, index: c["index"]}
	if cw.index == nil {
		cw.index = json.RawMessage(strconv.Itoa(pos))
	} else if _, err := index(cw.index); err != nil {
		return err
	}
	lp, hasLogprobs := c["logprobs"]
	_, cw.hasFinish = c["finish_reason"]
	cw.hasLogprobs = hasLogprobs

	cw.send(roleDelta(msg), nil)
	rest := cw.texts(msg, lp)
	if v := msg["annotations"]; isFilledArray(v) {
		cw.send(map[string]json.RawMessage{"annotations": v}, nil)
	}
	if err := cw.toolCalls(msg["tool_calls"]); err != nil {
		return fmt.Errorf("tool_calls: %w", err)
	}
	// The finish chunk: finish_reason, the other choice members, and the
	// logprobs no chunk carried yet.
	finish := map[string]json.RawMessage{}
	for k, v := range c {
		if !slices.Contains(choiceOrder, k) || k == "finish_reason" {
			finish[k] = v
		}
	}
	cw.send(map[string]json.RawMessage{}, rest, finish)
	return nil
}

// roleDelta returns the delta of a choice's first chunk: the message with
// its texts empty and without what chunks of their own send.
func roleDelta(msg map[string]json.RawMessage) map[string]json.RawMessage {
	delta := map[string]json.RawMessage{}
	for k, v := range msg {
		if _, ok := stringOf(v); ok && slices.Contains(textKeys, k) {
			v = emptyString // the text follows in pieces
		} else if (k == "tool_calls" || k == "annotations") && isFilledArray(v) {
			continue
		}
		delta[k] = v
	}
	return delta
}

// choiceWriter writes the chunks of one choice.
type choiceWriter struct {
	w           *chunkWriter
	index       json.RawMessage
	hasLogprobs bool // chunks carry "logprobs"
	hasFinish   bool // chunks carry "finish_reason"
}

// send emits a chunk of the choice with this delta and logprobs (null when
// nil), and any other choice members given.
func (cw choiceWriter) send(delta map[string]json.RawMessage, logprobs json.RawMessage, members ...map[string]json.RawMessage) {
	m := map[string]json.RawMessage{"index": cw.index, "delta": encode(delta, messageOrder...)}
	if cw.hasLogprobs {
		m["logprobs"] = null
		if logprobs != nil {
			m["logprobs"] = logprobs
		}
	}
	if cw.hasFinish {
		m["finish_reason"] = null
	}
	for _, more := range members {
		maps.Copy(m, more)
	}
	cw.w.emit(join(encode(m, choiceOrder...)), nil)
}

// texts emits the content and refusal of msg in pieces with their logprobs
// (lp), and returns the logprobs left for a later chunk, or nil.
func (cw choiceWriter) texts(msg map[string]json.RawMessage, lp json.RawMessage) (rest json.RawMessage) {
	lpMembers, _ := object(lp) // nil unless logprobs is an object
	pieces := map[string][]piece{}
	byToken := map[string]bool{}
	for _, k := range textKeys {
		if s, ok := stringOf(msg[k]); ok {
			pieces[k], byToken[k] = split(s, lpMembers[k])
		}
	}
	rest = logprobsRest(lp, lpMembers, byToken) // on the first piece that is not a token
	for _, k := range textKeys {
		for _, p := range pieces[k] {
			var l json.RawMessage
			if byToken[k] {
				l = tokenLogprobs(lpMembers, k, p.entry)
			} else {
				l, rest = rest, nil
			}
			cw.send(map[string]json.RawMessage{k: quote(p.text)}, l)
		}
	}
	return rest
}

// toolCalls emits the tool calls, when v is an array of them.
func (cw choiceWriter) toolCalls(v json.RawMessage) error {
	if !isFilledArray(v) {
		return nil // null, [] or not an array: sent in the role chunk
	}
	calls, err := array(v)
	if err != nil {
		return err
	}
	for i, call := range calls {
		deltas, err := toolCallDeltas(i, call)
		if err != nil {
			return fmt.Errorf("%d: %w", i, err)
		}
		for _, d := range deltas {
			cw.send(map[string]json.RawMessage{"tool_calls": join(d)}, nil)
		}
	}
	return nil
}

// logprobsRest returns what of a choice's logprobs the token chunks do not
// carry: lp itself when it is not an object, else lp with the members sent
// by token set to null; nil when there is nothing left to send.
func logprobsRest(lp json.RawMessage, members map[string]json.RawMessage, byToken map[string]bool) json.RawMessage {
	if isNull(lp) {
		return nil
	}
	if members == nil {
		return lp
	}
	rest := maps.Clone(members)
	tokens, left := false, false
	for k, v := range members {
		if byToken[k] {
			rest[k], tokens = null, true
		} else if !isNull(v) {
			left = true
		}
	}
	if tokens && !left {
		return nil
	}
	return encode(rest, memberOrder...)
}

// tokenLogprobs returns the logprobs of a chunk carrying one token of member
// key: the token's entry, and null for the other members.
func tokenLogprobs(members map[string]json.RawMessage, key string, entry json.RawMessage) json.RawMessage {
	m := make(map[string]json.RawMessage, len(members))
	for k := range members {
		m[k] = null
	}
	m[key] = join(entry)
	return encode(m, memberOrder...)
}

// toolCallDeltas cuts the tool call at index i into its stream entries: the
// call with "index" and empty function arguments, then the arguments in
// pieces.
func toolCallDeltas(i int, raw json.RawMessage) ([]json.RawMessage, error) {
	call, err := object(raw)
	if err != nil {
		return nil, err
	}
	idx := json.RawMessage(strconv.Itoa(i))
	call["index"] = idx
	var pieces []piece
	if fn, err := object(call["function"]); err == nil {
		if args, ok := stringOf(fn["arguments"]); ok {
			pieces, _ = split(args, nil)
			fn["arguments"] = emptyString
			call["function"] = encode(fn, memberOrder...)
		}
	}
	out := []json.RawMessage{encode(call, "index", "id", "type", "function")}
	for _, p := range pieces {
		fn := encode(map[string]json.RawMessage{"arguments": quote(p.text)})
		out = append(out, encode(map[string]json.RawMessage{"index": idx, "function": fn}, "index"))
	}
	return out, nil
}
