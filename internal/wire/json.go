package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// JSON values this package writes.
var (
	null        = json.RawMessage("null")
	emptyString = json.RawMessage(`""`)
	emptyArray  = json.RawMessage("[]")
)

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
)

// parse validates and compacts a whole payload, then splits it into its
// members. Compacting first makes every member value compact too, so values
// can be copied into output that must fit on one SSE line.
func parse(data []byte) (map[string]json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		return nil, err
	}
	return object(b.Bytes())
}

// object splits a JSON object into its members, each value kept byte for
// byte as written.
func object(data []byte) (map[string]json.RawMessage, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return nil, errNotObject
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// array splits a JSON array into its elements; null or an absent value (nil)
// is an empty array.
func array(data json.RawMessage) ([]json.RawMessage, error) {
	if isNull(data) {
		return nil, nil
	}
	if data[0] != '[' {
		return nil, errNotArray
	}
	var a []json.RawMessage
	err := json.Unmarshal(data, &a)
	return a, err
}

// isNull reports whether a compact value is null or absent.
func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// isFilledArray reports whether a compact value is an array with elements.
func isFilledArray(v json.RawMessage) bool { return len(v) > 2 && v[0] == '[' }

// stringOf decodes a JSON string; ok is false when v is not one.
func stringOf(v json.RawMessage) (s string, ok bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// quote encodes s as a JSON string, leaving <, > and & as they are.
func quote(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// join writes compact values as a JSON array.
func join(vs ...json.RawMessage) json.RawMessage {
	b := []byte{'['}
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, ']')
}

// encode writes m as a compact JSON object: the keys named in order first
// (those m has), then the others sorted, so that output is deterministic.
func encode(m map[string]json.RawMessage, order ...string) json.RawMessage {
	rest := make([]string, 0, len(m))
	for k := range m {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	b := []byte{'{'}
	for _, k := range slices.Concat(order, rest) {
		v, ok := m[k]
		if !ok {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, quote(k)...)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// memberOrder orders the members of objects merged from deltas: tool calls,
// their function, logprobs, audio.
var memberOrder = []string{"id", "type", "function", "name", "arguments", "content", "refusal"}

// A rule says how a field accumulates the values it takes across the chunks
// of a stream.
type rule uint8

const (
	ruleLast     rule = iota // the last non-null value wins
	ruleFirst                // the first non-null value wins
	ruleText                 // strings concatenated, objects merged member by member (id, type and index by ruleFirst, the others by ruleText); anything else: the last
	ruleList                 // arrays concatenated; anything else: the last
	ruleLogprobs             // objects merged member by member, each by ruleList; anything else: the last
)

// A field accumulates the values one member takes across a stream's chunks.
type field struct {
	seen bool // present in some chunk, maybe only as null
	kind byte // kind of the value so far: 0 none (null), 's' string, 'a' array, 'o' object, 'v' other
	str  strings.Builder
	arr  []json.RawMessage
	obj  fields
	val  json.RawMessage
}

// fields accumulates the members of an object across chunks, by name.
type fields map[string]*field

// add accumulates value v of member key by rule r.
func (fs fields) add(key string, v json.RawMessage, r rule) error {
	f := fs[key]
	if f == nil {
		f = new(field)
		fs[key] = f
	}
	if err := f.add(v, r); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// values returns the accumulated value of every member.
func (fs fields) values() map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(fs))
	for k, f := range fs {
		m[k] = f.value()
	}
	return m
}

// given reports whether member key had a non-null value.
func (fs fields) given(key string) bool { return fs[key] != nil && fs[key].kind != 0 }

// add accumulates one value (compact JSON) by rule r.
func (f *field) add(v json.RawMessage, r rule) error {
	f.seen = true
	switch {
	case isNull(v), r == ruleFirst && f.kind != 0:
	case r == ruleText && v[0] == '"':
		s, ok := stringOf(v)
		if !ok {
			return fmt.Errorf("bad string %.40s", v)
		}
		if f.kind != 's' {
			f.kind = 's'
			f.str.Reset()
		}
		f.str.WriteString(s)
	case (r == ruleText || r == ruleLogprobs) && v[0] == '{':
		m, err := object(v)
		if err != nil {
			return err
		}
		return f.merge(m, r)
	case r == ruleList && v[0] == '[':
		a, err := array(v)
		if err != nil {
			return err
		}
		if f.kind != 'a' {
			f.kind = 'a'
			f.arr = nil
		}
		f.arr = append(f.arr, a...)
	default:
		f.kind, f.val = 'v', v
	}
	return nil
}

// merge accumulates the members of an object value, each by the member rule
// of r.
func (f *field) merge(m map[string]json.RawMessage, r rule) error {
	f.seen = true
	if f.kind != 'o' {
		f.kind = 'o'
		f.obj = fields{}
	}
	for k, v := range m {
		mr := ruleText
		switch {
		case r == ruleLogprobs:
			mr = ruleList
		case k == "id" || k == "type" || k == "index":
			mr = ruleFirst
		}
		if err := f.obj.add(k, v, mr); err != nil {
			return err
		}
	}
	return nil
}

// value returns the accumulated value: null when only nulls came.
func (f *field) value() json.RawMessage {
	switch f.kind {
	case 's':
		return quote(f.str.String())
	case 'a':
		return join(f.arr...)
	case 'o':
		return encode(f.obj.values(), memberOrder...)
	case 'v':
		return f.val
	}
	return null
}

// maxPiece is the size in bytes of the text pieces a stream is cut into when
// no logprobs tell the tokens.
const maxPiece = 64

// A piece is one delta of a streamed text.
type piece struct {
	text  string
	entry json.RawMessage // the piece's logprobs entry when it is a token, else nil
}

// split cuts text into the deltas of a stream: one per entry of logprobs (a
// JSON array of token logprobs) when the entries' tokens spell text exactly,
// else pieces of at most maxPiece bytes cut at rune boundaries. byToken
// reports which.
func split(text string, logprobs json.RawMessage) (ps []piece, byToken bool) {
	if ps := tokens(text, logprobs); ps != nil {
		return ps, true
	}
	for len(text) > 0 {
		n := min(len(text), maxPiece)
		for n > 0 && n < len(text) && !utf8.RuneStart(text[n]) {
			n--
		}
		if n == 0 { // not UTF-8: cut anywhere
			n = min(len(text), maxPiece)
		}
		ps = append(ps, piece{text: text[:n]})
		text = text[n:]
	}
	return ps, false
}

// tokens returns one piece per entry of logprobs when it is a non-empty
// array of objects whose "token" strings concatenate to text; else nil.
func tokens(text string, logprobs json.RawMessage) []piece {
	entries, err := array(logprobs)
	if err != nil || len(entries) == 0 {
		return nil
	}
	ps := make([]piece, len(entries))
	rest := text
	for i, e := range entries {
		m, err := object(e)
		if err != nil {
			return nil
		}
		tok, ok := stringOf(m["token"])
		if !ok || !strings.HasPrefix(rest, tok) {
			return nil
		}
		rest = rest[len(tok):]
		ps[i] = piece{tok, e}
	}
	if rest != "" {
		return nil
	}
	return ps
}
