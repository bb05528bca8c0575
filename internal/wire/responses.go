package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Event is one server-sent event of a Responses API stream.
type Event struct {
	Name string // the SSE "event:" field; may be ""
	Data []byte // the "data:" payload, one JSON object
}

// terminalEvents maps a finished response's status to the event that ends
// its stream.
var terminalEvents = map[string]string{
	"completed":  "response.completed",
	"incomplete": "response.incomplete",
	"failed":     "response.failed",
}

var inProgress = json.RawMessage(`"in_progress"`)

// Key orders of the objects written here (other keys follow, sorted).
var (
	responseOrder = []string{"id", "object", "created_at", "status"}
	itemOrder     = []string{"id", "type", "status", "role"}
	partOrder     = []string{"type"}
)

// AssembleResponse returns the response object a plain Responses API request
// would have received, from a Responses stream's events: the "response" of
// its terminal event (response.completed, response.incomplete or
// response.failed); an error when there is none.
//
// The response is cut from the event's payload byte for byte, not
// re-encoded. An event's type is its payload's "type", else its name.
func AssembleResponse(events []Event) ([]byte, error) {
	var resp []byte
	for i, e := range events {
		m, err := object(e.Data)
		if err != nil {
			return nil, fmt.Errorf("wire: response event %d (%s): %w", i, e.Name, err)
		}
		typ, ok := stringOf(m["type"])
		if !ok {
			typ = e.Name
		}
		switch typ {
		case "response.completed", "response.incomplete", "response.failed":
		default:
			continue
		}
		r := m["response"]
		if len(r) == 0 || r[0] != '{' {
			return nil, fmt.Errorf("wire: response event %d (%s): no response object", i, typ)
		}
		resp = r
	}
	if resp == nil {
		return nil, errors.New("wire: response stream has no terminal event")
	}
	return resp, nil
}

// ResponseEvents is the reverse: the event stream OpenAI sends for a
// response object, ending with its terminal event.
//
// The stream is response.created and response.in_progress (the response
// with status "in_progress", no output, and null usage, error,
// incomplete_details and completed_at where it has them); then for each
// output item response.output_item.added (a message without content, a
// function call without arguments, any other item whole), the item's
// content or arguments, and response.output_item.done with the whole item;
// and last the terminal event for the response's status (completed,
// incomplete or failed; any other status is an error) with the whole
// response. A message's content parts are each sent as
// response.content_part.added, the text in response.output_text.delta (or
// response.refusal.delta) events and response.output_text.done (or
// response.refusal.done), then response.content_part.done. Texts are cut as
// by ChatChunks: one delta per logprobs token when the part's logprobs spell
// the text, else pieces of at most 64 bytes at rune boundaries.
//
// Every event's data has "type", equal to its name, and "sequence_number",
// counting from 0.
func ResponseEvents(response []byte) ([]Event, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, response); err != nil {
		return nil, fmt.Errorf("wire: response: %w", err)
	}
	full := b.Bytes()
	r, err := object(full)
	if err != nil {
		return nil, fmt.Errorf("wire: response: %w", err)
	}
	status, _ := stringOf(r["status"])
	terminal, ok := terminalEvents[status]
	if !ok {
		return nil, fmt.Errorf("wire: response: status %q has no terminal event", status)
	}
	items, err := array(r["output"])
	if err != nil {
		return nil, fmt.Errorf("wire: response: output: %w", err)
	}

	var s responseStream
	snapshot := maps.Clone(r)
	snapshot["status"] = inProgress
	snapshot["output"] = emptyArray
	for _, k := range []string{"usage", "error", "incomplete_details", "completed_at"} {
		if _, ok := snapshot[k]; ok {
			snapshot[k] = null
		}
	}
	early := encode(snapshot, responseOrder...)
	s.emit("response.created", kv{"response", early})
	s.emit("response.in_progress", kv{"response", early})
	for i, item := range items {
		if err := s.item(i, item); err != nil {
			return nil, fmt.Errorf("wire: response: output %d: %w", i, err)
		}
	}
	s.emit(terminal, kv{"response", full})
	return s.events, nil
}

// kv is one member of an event's payload; a nil val leaves it out.
type kv struct {
	key string
	val json.RawMessage
}

// responseStream writes the events of a response.
type responseStream struct {
	events []Event
}

// emit appends an event of type typ with these members after "type" and
// "sequence_number".
func (s *responseStream) emit(typ string, members ...kv) {
	b := fmt.Appendf(nil, `{"type":%s,"sequence_number":%d`, quote(typ), len(s.events))
	for _, m := range members {
		if m.val != nil {
			b = fmt.Appendf(b, ",%s:%s", quote(m.key), m.val)
		}
	}
	s.events = append(s.events, Event{Name: typ, Data: append(b, '}')})
}

// item emits the events of output item i.
func (s *responseStream) item(i int, raw json.RawMessage) error {
	it, err := object(raw)
	if err != nil {
		return err
	}
	at := kv{"output_index", json.RawMessage(strconv.Itoa(i))}
	id := kv{"item_id", it["id"]}
	typ, _ := stringOf(it["type"])
	added := raw
	switch typ {
	case "message":
		added = encode(with(it, kv{"status", inProgress}, kv{"content", emptyArray}), itemOrder...)
	case "function_call":
		added = encode(with(it, kv{"status", inProgress}, kv{"arguments", emptyString}), itemOrder...)
	}
	s.emit("response.output_item.added", at, kv{"item", added})

	switch typ {
	case "message":
		parts, err := array(it["content"])
		if err != nil {
			return fmt.Errorf("content: %w", err)
		}
		for j, p := range parts {
			if err := s.part([]kv{id, at, {"content_index", json.RawMessage(strconv.Itoa(j))}}, p); err != nil {
				return fmt.Errorf("content %d: %w", j, err)
			}
		}
	case "function_call":
		if args, ok := stringOf(it["arguments"]); ok {
			ps, _ := split(args, nil)
			for _, p := range ps {
				s.emit("response.function_call_arguments.delta", id, at, kv{"delta", quote(p.text)})
			}
			s.emit("response.function_call_arguments.done", id, at, kv{"arguments", it["arguments"]})
		}
	}
	s.emit("response.output_item.done", at, kv{"item", raw})
	return nil
}

// part emits the events of a message's content part; loc holds the part's
// item_id, output_index and content_index.
func (s *responseStream) part(loc []kv, raw json.RawMessage) error {
	p, err := object(raw)
	if err != nil {
		return err
	}
	event := func(typ string, members ...kv) { s.emit(typ, slices.Concat(loc, members)...) }
	typ, _ := stringOf(p["type"])
	switch typ {
	case "output_text":
		added := with(p, kv{"text", emptyString}, kv{"annotations", emptyArray})
		if _, ok := p["logprobs"]; ok {
			added["logprobs"] = emptyArray
		}
		event("response.content_part.added", kv{"part", encode(added, partOrder...)})
		text, _ := stringOf(p["text"])
		ps, byToken := split(text, p["logprobs"])
		for i, piece := range ps {
			lp := emptyArray
			if byToken {
				lp = join(piece.entry)
			} else if i == 0 && isFilledArray(p["logprobs"]) {
				lp = p["logprobs"] // the tokens do not spell the text: all on the first
			}
			event("response.output_text.delta", kv{"delta", quote(piece.text)}, kv{"logprobs", lp})
		}
		lps := p["logprobs"]
		if lps == nil {
			lps = emptyArray
		}
		event("response.output_text.done", kv{"text", p["text"]}, kv{"logprobs", lps})
	case "refusal":
		event("response.content_part.added", kv{"part", encode(with(p, kv{"refusal", emptyString}), partOrder...)})
		text, _ := stringOf(p["refusal"])
		ps, _ := split(text, nil)
		for _, piece := range ps {
			event("response.refusal.delta", kv{"delta", quote(piece.text)})
		}
		event("response.refusal.done", kv{"refusal", p["refusal"]})
	default:
		event("response.content_part.added", kv{"part", raw})
	}
	event("response.content_part.done", kv{"part", raw})
	return nil
}

// with returns a copy of m with these members set.
func with(m map[string]json.RawMessage, members ...kv) map[string]json.RawMessage {
	m = maps.Clone(m)
	for _, kv := range members {
		m[kv.key] = kv.val
	}
	return m
}
