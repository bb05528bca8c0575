package cache

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Semantic encodings: which text of a chat request the semantic cache
// compares. The values are rpc's Semantic* constants.
const (
	EncodingUserOnly   = "user_only"   // every user message, as "[user]: text", joined by blank lines
	EncodingAll        = "all"         // every message as "[role]: text", joined by blank lines
	EncodingSystemOnly = "system_only" // the system (and developer) messages
)

// Query is what the semantic cache compares for one chat request.
type Query struct {
	// Text is the fuzzy part: the chosen messages' text, per the encoding.
	Text string
	// Partition is the exact part, hashed: the namespace, the model (or its
	// alias), every parameter but the messages, and all of the messages
	// that are not in Text (role and content), plus the non-text parts
	// (images, audio) of those that are. Only entries of the same partition
	// can answer.
	Partition string
}

// SemanticQuery returns the semantic query of a chat request for an
// encoding. ok is false when the semantic cache must not be used for it at
// all (no read, no write): the chosen text is empty, or the conversation
// has tool calls or tool results, whose meaning no text similarity can
// judge.
func SemanticQuery(raw json.RawMessage, encoding string, p KeyParams) (q Query, ok bool, err error) {
	r, err := ParseRequest(raw)
	if err != nil {
		return Query{}, false, err
	}
	return r.Semantic(encoding, p)
}

// Semantic is the request's semantic query; see SemanticQuery.
func (r *Request) Semantic(encoding string, p KeyParams) (q Query, ok bool, err error) {
	switch encoding {
	case EncodingUserOnly, EncodingAll, EncodingSystemOnly:
	default:
		return Query{}, false, fmt.Errorf("semantic encoding %q: want %q, %q or %q", encoding, EncodingUserOnly, EncodingAll, EncodingSystemOnly)
	}
	req := r.m
	msgs, _ := req["messages"].([]any)
	var texts []string
	var rest []any // what of the messages goes into the partition
	for i, m := range msgs {
		obj, _ := m.(map[string]any)
		role, _ := obj["role"].(string)
		if role == "tool" || role == "function" || obj["tool_calls"] != nil || obj["function_call"] != nil {
			return Query{}, false, nil
		}
		if !chosen(encoding, role) {
			rest = append(rest, map[string]any{"at": json.Number(fmt.Sprint(i)), "message": trimMessage(obj)})
			continue
		}
		text, other := splitContent(obj)
		if text != "" {
			texts = append(texts, "["+role+"]: "+text)
		}
		// Everything but the text of a chosen message must match exactly:
		// its name, its images, and where it stands.
		residue := map[string]any{"at": json.Number(fmt.Sprint(i)), "role": role, "parts": other}
		for k, v := range obj {
			if k != "role" && k != "content" {
				residue[k] = v
			}
		}
		rest = append(rest, residue)
	}
	text := strings.Join(texts, "\n\n")
	if strings.TrimSpace(text) == "" {
		return Query{}, false, nil
	}
	params := make(map[string]any, len(req))
	for k, v := range req {
		if k != "messages" {
			params[k] = v
		}
	}
	params["messages"] = rest
	params["semantic_encoding"] = encoding
	p.Kind = "semantic"
	return Query{Text: text, Partition: keyOf(params, p)}, true, nil
}

func chosen(encoding, role string) bool {
	switch encoding {
	case EncodingUserOnly:
		return role == "user"
	case EncodingSystemOnly:
		return role == "system" || role == "developer"
	}
	return true
}

// splitContent returns a message's text (a string content, or its text
// parts joined by new lines), trailing white space trimmed, and its other
// content parts.
func splitContent(m map[string]any) (text string, other []any) {
	switch c := m["content"].(type) {
	case string:
		return trimText(c), nil
	case []any:
		var parts []string
		for _, p := range c {
			po, _ := p.(map[string]any)
			if t, ok := po["text"].(string); ok && po["type"] == "text" {
				parts = append(parts, trimText(t))
				continue
			}
			other = append(other, p)
		}
		return trimText(strings.Join(parts, "\n")), other
	}
	return "", nil
}
