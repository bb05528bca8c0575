package cache

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Excluded are the top-level request fields that never change an answer
// and so stay out of the key:
//
//   - stream, stream_options: a streamed answer is the same answer in
//     chunks; lbgpt stores it whole and replays it either way.
//   - user: an end-user id for the provider's abuse monitoring.
//   - store, metadata: whether and how OpenAI keeps the completion for its
//     dashboards and distillation.
//
// Every other field is in the key, including ones lbgpt does not know:
// an unknown field might change the answer, and a miss costs less than a
// wrong hit.
var Excluded = []string{"metadata", "store", "stream", "stream_options", "user"}

// Kinds of request a key is for: the same JSON never keys a chat answer
// and an embedding alike.
const (
	KindChat      = "chat"
	KindEmbedding = "embedding"
)

// KeyParams are what, besides the request, a key depends on.
type KeyParams struct {
	Kind string // KindChat (the default) or KindEmbedding
	// Namespace partitions the cache: "" is the default namespace.
	Namespace string
	// ModelAlias, when set, stands for the request's model in the key, so
	// requests for different models can share their answers.
	ModelAlias string
}

// keyVersion changes whenever canonical encoding changes, so old entries
// are never read with a new meaning.
const keyVersion = "lbgpt-cache-v1"

// Key is the cache key of an OpenAI request: the hex SHA-256 of its
// canonical JSON (see Canonical) minus the Excluded fields, with the model
// replaced by p.ModelAlias when set, together with p.Kind and p.Namespace.
func Key(raw json.RawMessage, p KeyParams) (string, error) {
	r, err := ParseRequest(raw)
	if err != nil {
		return "", err
	}
	return r.Key(p), nil
}

// Request is a request decoded once for its key, its semantic query and
// its determinism. It is read-only and safe for concurrent use.
type Request struct {
	m map[string]any
}

// ParseRequest decodes a JSON request object, numbers kept as written.
func ParseRequest(raw json.RawMessage) (*Request, error) {
	m, err := decodeRequest(raw)
	if err != nil {
		return nil, err
	}
	return &Request{m: m}, nil
}

// Key is the request's cache key; see the function Key.
func (r *Request) Key(p KeyParams) string { return keyOf(r.m, p) }

// Deterministic reports whether the request asks for greedy sampling: an
// explicit temperature of 0. OpenAI's default temperature is 1.
func (r *Request) Deterministic() bool {
	t, ok := r.m["temperature"].(json.Number)
	return ok && canonicalNumber(string(t)) == "0"
}

// keyOf is the key of an already decoded request object. It does not
// modify req.
func keyOf(req map[string]any, p KeyParams) string {
	var b bytes.Buffer
	b.Grow(512)
	keyHead(&b, p)
	writeKeyed(&b, req, p.ModelAlias)
	b.WriteByte('}')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// keyHead starts what a key hashes: the version, then the canonical form
// of {"kind": kind, "namespace": ns, "request": ...} up to the request,
// written without building that object. The caller writes the request and
// the closing brace.
func keyHead(b *bytes.Buffer, p KeyParams) {
	b.WriteString(keyVersion)
	b.WriteByte('\n')
	b.WriteString(`{"kind":`)
	writeString(b, cmp.Or(p.Kind, KindChat))
	b.WriteString(`,"namespace":`)
	writeString(b, p.Namespace)
	b.WriteString(`,"request":`)
}

// writeKeyed writes req canonically as its key sees it: without the
// excluded fields, with the alias for the model, and every message's text
// without trailing white space.
func writeKeyed(b *bytes.Buffer, req map[string]any, alias string) {
	keep := func(k string) bool { return !slices.Contains(Excluded, k) }
	writeObject(b, req, keep, func(k string, v any) {
		switch msgs, isList := v.([]any); {
		case k == "model" && alias != "":
			writeString(b, alias)
		case k == "messages" && isList:
			b.WriteByte('[')
			for j, m := range msgs {
				if j > 0 {
					b.WriteByte(',')
				}
				writeCanonical(b, trimMessage(m))
			}
			b.WriteByte(']')
		default:
			writeCanonical(b, v)
		}
	})
}

// writeObject writes the members of m that keep accepts (all with a nil
// keep), keys sorted, each value written by value.
func writeObject(b *bytes.Buffer, m map[string]any, keep func(string) bool, value func(k string, v any)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if keep == nil || keep(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, k)
		b.WriteByte(':')
		value(k, m[k])
	}
	b.WriteByte('}')
}

// trimMessage is a message with the trailing white space of its text (a
// string content or the text parts of a content array) trimmed.
func trimMessage(m any) any {
	obj, ok := m.(map[string]any)
	if !ok {
		return m
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	switch c := obj["content"].(type) {
	case string:
		out["content"] = trimText(c)
	case []any:
		parts := make([]any, len(c))
		for i, p := range c {
			parts[i] = p
			if po, ok := p.(map[string]any); ok {
				if t, ok := po["text"].(string); ok {
					np := make(map[string]any, len(po))
					for k, v := range po {
						np[k] = v
					}
					np["text"] = trimText(t)
					parts[i] = np
				}
			}
		}
		out["content"] = parts
	}
	return out
}

func trimText(s string) string { return strings.TrimRight(s, " \t\r\n") }

// decodeRequest decodes a request object, numbers kept as written.
func decodeRequest(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("cache key: %w", err)
	}
	if req == nil {
		return nil, errors.New("cache key: the request is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF { // More() misses a stray '}' or ']'
		return nil, errors.New("cache key: data after the request")
	}
	return req, nil
}

// Canonical is raw re-encoded canonically: object keys sorted, no
// insignificant white space, strings escaped one way, and every number
// written in one exact form (digits without trailing zeros and a power of
// ten: 0, 0.0 and 0e0 are all 0; 1.50 and 15e-1 are both 15e-1), so that
// requests that mean the same encode the same. No float64 round trip is
// involved: a 20-digit seed keeps every digit.
func Canonical(raw json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	var b bytes.Buffer
	writeCanonical(&b, v)
	return b.Bytes(), nil
}

func writeCanonical(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case json.Number:
		b.WriteString(canonicalNumber(string(v)))
	case string:
		writeString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, e)
		}
		b.WriteByte(']')
	case map[string]any:
		writeObject(b, v, nil, func(_ string, e any) { writeCanonical(b, e) })
	default:
		// Only the types above come out of a json.Decoder with UseNumber.
		panic(fmt.Sprintf("cache: canonical of %T", v))
	}
}

// writeString writes s quoted exactly as encoding/json's Marshal does
// (HTML characters, U+2028 and U+2029 escaped; invalid UTF-8 as U+FFFD),
// without its reflection and allocation.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			default:
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(s[start:i])
			b.WriteString(`\ufffd`)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b.WriteString(s[start:i])
			b.WriteString(`\u202`)
			b.WriteByte(hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

// canonicalNumber writes a JSON number (valid, as the decoder checked) as
// its significant digits and a power of ten: "-15e-1" for -1.50. Zero is
// "0" whatever its sign or form.
func canonicalNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expStr, _ := strings.Cut(strings.ToLower(s), "e")
	if strings.Trim(mant, "0.") == "" {
		return "0" // zero, whatever its exponent
	}
	exp := int64(0)
	if expStr != "" {
		e, err := strconv.ParseInt(expStr, 10, 64)
		if err != nil {
			// An exponent beyond int64 is its own number: keep it as
			// written (lower case, still JSON) rather than collide with
			// another; normalised forms never have such an exponent.
			if neg {
				return "-" + strings.ToLower(s)
			}
			return strings.ToLower(s)
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= int64(len(frac))
	if digits == "" {
		return "0"
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	out := trimmed
	if exp != 0 {
		out += "e" + strconv.FormatInt(exp, 10)
	}
	if neg {
		out = "-" + out
	}
	return out
}
