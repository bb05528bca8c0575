package cache

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"
)

// QuickKey is Key computed straight from the bytes, without decoding the
// request into maps first: the hot path of every request. It returns the
// same key as Key for every valid request (a fuzz test holds it to that).
func QuickKey(raw json.RawMessage, p KeyParams) (string, error) {
	kind := cmp.Or(p.Kind, KindChat)
	var b bytes.Buffer
	b.Grow(len(raw) + 128)
	b.WriteString(keyVersion)
	b.WriteByte('\n')
	b.WriteString(`{"kind":`)
	writeString(&b, kind)
	b.WriteString(`,"namespace":`)
	writeString(&b, p.Namespace)
	b.WriteString(`,"request":`)
	s := scanner{in: raw}
	s.space()
	if s.peek() != '{' {
		return "", errors.New("cache key: the request is not a JSON object")
	}
	s.object(&b, modeRequest, p.ModelAlias)
	s.space()
	if s.err == nil && s.i != len(s.in) {
		s.err = errors.New("data after the request")
	}
	if s.err != nil {
		return "", errors.Join(errors.New("cache key"), s.err)
	}
	b.WriteByte('}')
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:]), nil
}

// Where a value stands decides what of it the key trims or leaves out.
type mode int

const (
	modeAny      mode = iota
	modeRequest       // the request object: excluded fields, the alias
	modeMessages      // the messages array
	modeMessage       // one message: its content's trailing white space
	modeParts         // a content array
	modePart          // one content part: its text's trailing white space
)

// scanner reads JSON and writes it canonically, as writeCanonical does.
type scanner struct {
	in    []byte
	i     int
	depth int
	err   error
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

func (s *scanner) fail(msg string) {
	if s.err == nil {
		s.err = errors.New(msg)
	}
	s.i = len(s.in)
}

func (s *scanner) space() {
	for s.i < len(s.in) {
		switch s.in[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.in) {
		return s.in[s.i]
	}
	return 0
}

// value writes the value at s.i canonically; in mode m.
func (s *scanner) value(b *bytes.Buffer, m mode) {
	s.depth++
	defer func() { s.depth-- }()
	if s.depth > maxDepth {
		s.fail("nested too deeply")
		return
	}
	s.space()
	switch c := s.peek(); {
	case c == '{':
		s.object(b, m, "")
	case c == '[':
		s.array(b, m)
	case c == '"':
		str, ok := s.str()
		if ok {
			writeString(b, str)
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if n, ok := s.number(); ok {
			b.WriteString(canonicalNumber(n))
		}
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.in[s.i:], []byte(lit)) {
				s.i += len(lit)
				b.WriteString(lit)
				return
			}
		}
		s.fail("invalid JSON value")
	}
}

// member is one object member: its key and its value written canonically.
type member struct {
	key string
	val []byte
}

func (s *scanner) object(b *bytes.Buffer, m mode, alias string) {
	s.i++ // '{'
	var members []member
	s.space()
	if s.peek() == '}' {
		s.i++
	} else {
		for s.err == nil {
			s.space()
			key, ok := s.str()
			if !ok {
				s.fail("invalid object key")
				return
			}
			s.space()
			if s.peek() != ':' {
				s.fail("missing colon")
				return
			}
			s.i++
			var v bytes.Buffer
			s.member(&v, m, key, alias)
			members = append(members, member{key, v.Bytes()})
			s.space()
			if c := s.peek(); c == ',' {
				s.i++
				continue
			} else if c == '}' {
				s.i++
				break
			}
			s.fail("missing comma or closing brace")
			return
		}
	}
	if s.err != nil {
		return
	}
	// Sorted by key; of duplicate keys the last wins, as in a decoded map.
	slices.SortStableFunc(members, func(a, b member) int { return cmp.Compare(a.key, b.key) })
	b.WriteByte('{')
	first := true
	for i, mb := range members {
		if i+1 < len(members) && members[i+1].key == mb.key {
			continue
		}
		if mb.val == nil { // left out of the key
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(b, mb.key)
		b.WriteByte(':')
		b.Write(mb.val)
	}
	b.WriteByte('}')
}

// member writes the value of the member key of an object in mode m; it
// writes nothing (and the member is left out) for an excluded field.
func (s *scanner) member(v *bytes.Buffer, m mode, key, alias string) {
	switch m {
	case modeRequest:
		switch {
		case slices.Contains(Excluded, key):
			s.value(&bytes.Buffer{}, modeAny) // read and drop
			return
		case key == "model" && alias != "":
			s.value(&bytes.Buffer{}, modeAny)
			writeString(v, alias)
			return
		case key == "messages":
			s.value(v, modeMessages)
			return
		}
	case modeMessage:
		if key == "content" {
			s.textOr(v, modeParts)
			return
		}
	case modePart:
		if key == "text" {
			s.textOr(v, modeAny)
			return
		}
	}
	s.value(v, modeAny)
}

// textOr writes a string value with its trailing white space trimmed, or
// any other value in mode m.
func (s *scanner) textOr(v *bytes.Buffer, m mode) {
	s.space()
	if s.peek() == '"' {
		if str, ok := s.str(); ok {
			writeString(v, trimText(str))
		}
		return
	}
	s.value(v, m)
}

func (s *scanner) array(b *bytes.Buffer, m mode) {
	s.i++ // '['
	elem := modeAny
	switch m {
	case modeMessages:
		elem = modeMessage
	case modeParts:
		elem = modePart
	}
	b.WriteByte('[')
	s.space()
	if s.peek() == ']' {
		s.i++
		b.WriteByte(']')
		return
	}
	for i := 0; s.err == nil; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		s.space()
		if s.peek() == '{' && elem != modeAny {
			s.object(b, elem, "")
		} else {
			s.value(b, modeAny)
		}
		s.space()
		if c := s.peek(); c == ',' {
			s.i++
			continue
		} else if c == ']' {
			s.i++
			b.WriteByte(']')
			return
		}
		s.fail("missing comma or closing bracket")
	}
}

// str reads a JSON string. One without escapes, in valid UTF-8, is taken
// as it is; any other goes through encoding/json, for its exact rules.
func (s *scanner) str() (string, bool) {
	if s.peek() != '"' {
		s.fail("want a string")
		return "", false
	}
	start := s.i
	simple := true
	for j := s.i + 1; j < len(s.in); j++ {
		switch c := s.in[j]; {
		case c == '"':
			s.i = j + 1
			tok := s.in[start:s.i]
			if simple && utf8.Valid(tok) {
				return string(tok[1 : len(tok)-1]), true
			}
			var out string
			if err := json.Unmarshal(tok, &out); err != nil {
				s.fail("invalid string")
				return "", false
			}
			return out, true
		case c == '\\':
			simple = false
			j++ // the escaped byte cannot end the string
		case c < 0x20:
			s.fail("control character in a string")
			return "", false
		}
	}
	s.fail("unterminated string")
	return "", false
}

// number reads a JSON number and returns it as written.
func (s *scanner) number() (string, bool) {
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.in) && s.in[s.i] >= '0' && s.in[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.peek() == '-' {
		s.i++
	}
	if s.peek() == '0' {
		s.i++
	} else if digits() == 0 {
		s.fail("invalid number")
		return "", false
	}
	if s.peek() == '.' {
		s.i++
		if digits() == 0 {
			s.fail("invalid number")
			return "", false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if digits() == 0 {
			s.fail("invalid number")
			return "", false
		}
	}
	return string(s.in[start:s.i]), true
}
