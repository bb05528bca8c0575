package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The changes a Provider makes to a request body are splices: the rest of
// the client's bytes stay as they were, byte for byte.

// member finds the top-level member key of the JSON object body: the byte
// range of its value (the last one, as JSON decoders read a repeated key),
// or ok false when body has no such member.
func member(body []byte, key string) (start, end int, ok bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return 0, 0, false, fmt.Errorf("request body: %w", err)
	}
	if d, isDelim := t.(json.Delim); !isDelim || d != '{' {
		return 0, 0, false, errors.New("request body is not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return 0, 0, false, fmt.Errorf("request body: %w", err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return 0, 0, false, fmt.Errorf("request body: %w", err)
		}
		if k, _ := t.(string); k == key {
			end = int(dec.InputOffset())
			start, ok = end-len(raw), true
		}
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false, fmt.Errorf("request body: %w", err)
	}
	return start, end, ok, nil
}

// splice replaces body[start:end] with v.
func splice(body []byte, start, end int, v []byte) []byte {
	out := make([]byte, 0, len(body)-(end-start)+len(v))
	out = append(out, body[:start]...)
	out = append(out, v...)
	return append(out, body[end:]...)
}

// insert adds the member "key": v at the start of the object body.
func insert(body []byte, key string, v []byte) []byte {
	i := bytes.IndexByte(body, '{')
	k, _ := json.Marshal(key)
	rest := bytes.TrimLeft(body[i+1:], " \t\r\n")
	sep := []byte(",")
	if len(rest) > 0 && rest[0] == '}' {
		sep = nil
	}
	out := make([]byte, 0, len(body)+len(k)+len(v)+2)
	out = append(out, body[:i+1]...)
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, v...)
	out = append(out, sep...)
	return append(out, body[i+1:]...)
}

// askUsage makes a streamed chat request ask for its usage in a last chunk
// (stream_options.include_usage = true), keeping every other option.
func askUsage(body []byte) ([]byte, error) {
	start, end, ok, err := member(body, "stream_options")
	if err != nil {
		return nil, err
	}
	if !ok {
		return insert(body, "stream_options", []byte(`{"include_usage":true}`)), nil
	}
	v := bytes.TrimSpace(body[start:end])
	if string(v) == "null" {
		return splice(body, start, end, []byte(`{"include_usage":true}`)), nil
	}
	var opts map[string]json.RawMessage
	if json.Unmarshal(v, &opts) != nil {
		return body, nil // not an object: the upstream will say so
	}
	if string(opts["include_usage"]) == "true" {
		return body, nil
	}
	opts["include_usage"] = json.RawMessage("true")
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(opts[k])
	}
	b.WriteByte('}')
	return splice(body, start, end, b.Bytes()), nil
}

// setModel replaces the request's model (Azure's Responses API takes the
// deployment there).
func setModel(body []byte, model string) ([]byte, error) {
	start, end, ok, err := member(body, "model")
	if err != nil || !ok {
		return body, err
	}
	v, _ := json.Marshal(model)
	return splice(body, start, end, v), nil
}

// modelIDs reads a model list: {"data":[{"id":...}, ...]}.
func modelIDs(body []byte) ([]string, error) {
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("model list: %w", err)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}
