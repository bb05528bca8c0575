package sim

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
)

// This file generates a deterministic JSON instance of a JSON Schema, the
// content of a structured-output answer or the arguments of a tool call.

// jsonObject is a decoded JSON object that remembers the order of its keys,
// so generated objects list their properties in the schema's order, as
// OpenAI's structured outputs do.
type jsonObject struct {
	keys []string
	vals map[string]any // values: *jsonObject, []any, json.Number, string, bool or nil
}

func (o *jsonObject) get(k string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.vals[k]
	return v, ok
}

// Limits that keep generation finite and small whatever the schema.
const (
	schemaMaxDepth   = 24   // nesting beyond which a value is null
	schemaLeanDepth  = 8    // nesting beyond which arrays are empty and objects keep only required properties
	schemaMaxNodes   = 4096 // values generated beyond which every value is null
	schemaMaxItems   = 16   // items generated for minItems
	schemaMaxString  = 256  // characters generated for minLength
	schemaMaxRefHops = 32   // $ref to $ref chains followed
)

// schemaInstance returns a compact JSON document that conforms to the JSON
// Schema in raw, as far as the simple rules below go: every property of an
// object (required or not), "sim" for a string (or its first enum value, or
// its const), 1 for a number within minimum and maximum, true for a boolean,
// one item for an array, the first branch of anyOf and oneOf, allOf merged,
// local $refs resolved ("#/$defs/x", "#/definitions/x", "#"), and the
// non-null type of a type array. An absent or invalid schema gives "{}". It
// never panics and its output is bounded whatever the schema.
func schemaInstance(raw []byte) []byte {
	root, err := decodeOrdered(raw)
	if err != nil || root == nil {
		return []byte("{}")
	}
	g := schemaGen{root: root}
	return g.value(nil, root, 0)
}

type schemaGen struct {
	root  any
	nodes int
}

func (g *schemaGen) value(o []byte, schema any, depth int) []byte {
	g.nodes++
	if depth > schemaMaxDepth || g.nodes > schemaMaxNodes {
		return append(o, "null"...)
	}
	s := g.resolve(schema)
	switch s := s.(type) {
	case bool:
		if !s {
			return append(o, "null"...) // nothing conforms to false
		}
		return append(o, `"sim"`...)
	case *jsonObject:
		return g.object(o, s, depth)
	}
	return append(o, `"sim"`...) // not a schema: anything goes
}

// resolve follows $ref chains to the schema they point to.
func (g *schemaGen) resolve(schema any) any {
	for range schemaMaxRefHops {
		obj, ok := schema.(*jsonObject)
		if !ok {
			return schema
		}
		ref, ok := obj.vals["$ref"].(string)
		if !ok {
			return schema
		}
		target, ok := g.pointer(ref)
		if !ok {
			// Unresolvable: drop the $ref and keep the rest of the schema.
			return withoutKey(obj, "$ref")
		}
		schema = target
	}
	return true
}

// pointer resolves a local JSON pointer reference ("#", "#/$defs/x").
func (g *schemaGen) pointer(ref string) (any, bool) {
	rest, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, false
	}
	cur := g.root
	if rest == "" {
		return cur, true
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return nil, false
	}
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case *jsonObject:
			v, ok := c.get(tok)
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func withoutKey(o *jsonObject, key string) *jsonObject {
	out := &jsonObject{vals: make(map[string]any, len(o.vals))}
	for _, k := range o.keys {
		if k != key {
			out.keys = append(out.keys, k)
			out.vals[k] = o.vals[k]
		}
	}
	return out
}

func (g *schemaGen) object(o []byte, s *jsonObject, depth int) []byte {
	if v, ok := s.get("const"); ok {
		return appendOrdered(o, v)
	}
	if e, ok := s.vals["enum"].([]any); ok && len(e) > 0 {
		return appendOrdered(o, e[0])
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if branches, ok := s.vals[k].([]any); ok && len(branches) > 0 {
			return g.value(o, mergeSchemas(withoutKey(s, k), branches[:1], g), depth+1)
		}
	}
	if all, ok := s.vals["allOf"].([]any); ok && len(all) > 0 {
		return g.value(o, mergeSchemas(withoutKey(s, "allOf"), all, g), depth+1)
	}
	switch schemaType(s) {
	case "null":
		return append(o, "null"...)
	case "boolean":
		return append(o, "true"...)
	case "integer":
		return appendNumber(o, s, true)
	case "number":
		return appendNumber(o, s, false)
	case "string":
		return appendSchemaString(o, s)
	case "array":
		return g.array(o, s, depth)
	case "object":
		return g.properties(o, s, depth)
	}
	return append(o, `"sim"`...)
}

// mergeSchemas returns base with the keywords of each branch added; the
// properties and required lists of objects are merged, other keywords
// already in base win.
func mergeSchemas(base *jsonObject, branches []any, g *schemaGen) *jsonObject {
	out := withoutKey(base, "")
	for _, b := range branches {
		bo, ok := g.resolve(b).(*jsonObject)
		if !ok {
			continue
		}
		for _, k := range bo.keys {
			v := bo.vals[k]
			old, exists := out.vals[k]
			switch {
			case !exists:
				out.keys = append(out.keys, k)
				out.vals[k] = v
			case k == "properties":
				po, ok1 := old.(*jsonObject)
				pn, ok2 := v.(*jsonObject)
				if ok1 && ok2 {
					merged := withoutKey(po, "")
					for _, pk := range pn.keys {
						if _, dup := merged.vals[pk]; !dup {
							merged.keys = append(merged.keys, pk)
						}
						merged.vals[pk] = pn.vals[pk]
					}
					out.vals[k] = merged
				}
			case k == "required":
				ro, ok1 := old.([]any)
				rn, ok2 := v.([]any)
				if ok1 && ok2 {
					out.vals[k] = append(append([]any(nil), ro...), rn...)
				}
			}
		}
	}
	return out
}

// schemaType returns the type a schema asks for: its type keyword (the first
// non-null one of a type array, or "null" if that is all), else what its
// keywords imply.
func schemaType(s *jsonObject) string {
	switch t := s.vals["type"].(type) {
	case string:
		return t
	case []any:
		null := false
		for _, x := range t {
			if x, ok := x.(string); ok {
				if x != "null" {
					return x
				}
				null = true
			}
		}
		if null {
			return "null"
		}
	}
	for _, k := range []string{"properties", "required", "additionalProperties", "patternProperties"} {
		if _, ok := s.get(k); ok {
			return "object"
		}
	}
	for _, k := range []string{"items", "prefixItems", "minItems", "maxItems"} {
		if _, ok := s.get(k); ok {
			return "array"
		}
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} {
		if _, ok := s.get(k); ok {
			return "number"
		}
	}
	return "string"
}

func (g *schemaGen) properties(o []byte, s *jsonObject, depth int) []byte {
	props, _ := s.vals["properties"].(*jsonObject)
	var required map[string]bool
	if depth >= schemaLeanDepth {
		required = map[string]bool{}
		if r, ok := s.vals["required"].([]any); ok {
			for _, x := range r {
				if x, ok := x.(string); ok {
					required[x] = true
				}
			}
		}
	}
	o = append(o, '{')
	n := 0
	if props != nil {
		for _, k := range props.keys {
			if required != nil && !required[k] {
				continue
			}
			if n > 0 {
				o = append(o, ',')
			}
			n++
			o = appendString(o, k)
			o = append(o, ':')
			o = g.value(o, props.vals[k], depth+1)
		}
	}
	return append(o, '}')
}

func (g *schemaGen) array(o []byte, s *jsonObject, depth int) []byte {
	var tuple []any
	if p, ok := s.vals["prefixItems"].([]any); ok {
		tuple = p
	} else if p, ok := s.vals["items"].([]any); ok { // draft 4 tuples
		tuple = p
	}
	n := 1
	if len(tuple) > 0 {
		n = len(tuple)
	}
	if m, ok := intKeyword(s, "minItems"); ok && m > n {
		n = min(m, schemaMaxItems)
	}
	if m, ok := intKeyword(s, "maxItems"); ok && m < n {
		n = max(m, 0)
	}
	if depth >= schemaLeanDepth {
		n = 0
		if m, ok := intKeyword(s, "minItems"); ok && m > 0 {
			n = min(m, schemaMaxItems)
		}
	}
	item, ok := s.get("items")
	if _, isTuple := item.([]any); !ok || isTuple {
		item = true
	}
	o = append(o, '[')
	for i := range n {
		if i > 0 {
			o = append(o, ',')
		}
		if i < len(tuple) {
			o = g.value(o, tuple[i], depth+1)
		} else {
			o = g.value(o, item, depth+1)
		}
	}
	return append(o, ']')
}

// intKeyword returns a keyword's value as an int, if it is a number.
func intKeyword(s *jsonObject, k string) (int, bool) {
	f, ok := numKeyword(s, k)
	if !ok {
		return 0, false
	}
	return int(max(math.MinInt32, min(math.MaxInt32, f))), true
}

func numKeyword(s *jsonObject, k string) (float64, bool) {
	n, ok := s.vals[k].(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// appendNumber appends 1, moved into [minimum, maximum] when they say so.
func appendNumber(o []byte, s *jsonObject, integer bool) []byte {
	v := 1.0
	if m, ok := numKeyword(s, "minimum"); ok && v < m {
		v = m
	}
	if m, ok := numKeyword(s, "exclusiveMinimum"); ok && v <= m {
		v = m + 1
	}
	if m, ok := numKeyword(s, "maximum"); ok && v > m {
		v = m
	}
	if m, ok := numKeyword(s, "exclusiveMaximum"); ok && v >= m {
		v = m - 1
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		v = 1
	}
	if integer {
		if v != math.Trunc(v) {
			v = math.Ceil(v)
			if m, ok := numKeyword(s, "maximum"); ok && v > m {
				v = math.Floor(m)
			}
		}
		return strconv.AppendFloat(o, v+0, 'f', 0, 64) // +0 turns -0 into 0
	}
	return strconv.AppendFloat(o, v, 'g', -1, 64)
}

// stringFormats are example values for common string formats.
var stringFormats = map[string]string{
	"date-time": "2025-01-02T03:04:05Z",
	"date":      "2025-01-02",
	"time":      "03:04:05Z",
	"duration":  "PT1M",
	"email":     "sim@example.com",
	"hostname":  "sim.example.com",
	"ipv4":      "192.0.2.1",
	"ipv6":      "2001:db8::1",
	"uuid":      "00000000-0000-4000-8000-000000000000",
	"uri":       "https://example.com/sim",
}

func appendSchemaString(o []byte, s *jsonObject) []byte {
	f, _ := s.vals["format"].(string)
	v, ok := stringFormats[f]
	if !ok {
		v = "sim"
		if m, ok := intKeyword(s, "minLength"); ok && m > len(v) {
			v += strings.Repeat("m", min(m, schemaMaxString)-len(v))
		}
		if m, ok := intKeyword(s, "maxLength"); ok && m < len(v) {
			v = v[:max(m, 0)]
		}
	}
	return appendString(o, v)
}

// decodeOrdered decodes one JSON value, keeping the key order of objects;
// numbers stay json.Number. It fails on invalid JSON or trailing data.
func decodeOrdered(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}

var errTrailing = jsonError("trailing data after the schema")

type jsonError string

func (e jsonError) Error() string { return string(e) }

// maxJSONDepth bounds the nesting decodeValue accepts, like encoding/json's.
const maxJSONDepth = 10000

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, jsonError("schema nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &jsonObject{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, jsonError("object key is not a string")
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; !dup {
					o.keys = append(o.keys, k)
				}
				o.vals[k] = v // the last duplicate wins, as in encoding/json
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return a, nil
		}
		return nil, jsonError("unexpected delimiter")
	default:
		return t, nil // json.Number, string, bool or nil
	}
}

// appendOrdered appends a decoded value as compact JSON.
func appendOrdered(o []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(o, "null"...)
	case bool:
		return strconv.AppendBool(o, v)
	case json.Number:
		return append(o, v...)
	case string:
		return appendString(o, v)
	case []any:
		o = append(o, '[')
		for i, x := range v {
			if i > 0 {
				o = append(o, ',')
			}
			o = appendOrdered(o, x)
		}
		return append(o, ']')
	case *jsonObject:
		o = append(o, '{')
		for i, k := range v.keys {
			if i > 0 {
				o = append(o, ',')
			}
			o = appendString(o, k)
			o = append(o, ':')
			o = appendOrdered(o, v.vals[k])
		}
		return append(o, '}')
	}
	return append(o, "null"...)
}
