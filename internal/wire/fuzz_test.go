package wire

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// gen draws test values from fuzz input; an exhausted input gives zeros.
type gen struct{ data []byte }

func (g *gen) byte() byte {
	if len(g.data) == 0 {
		return 0
	}
	b := g.data[0]
	g.data = g.data[1:]
	return b
}

func (g *gen) n(k int) int          { return int(g.byte()) % k }
func (g *gen) coin() bool           { return g.byte()&1 == 1 }
func pick[T any](g *gen, xs ...T) T { return xs[g.n(len(xs))] }

// text is a string of awkward fragments, now and then raw (maybe not UTF-8)
// input bytes.
func (g *gen) text() string {
	var b []byte
	for range g.n(12) {
		if g.n(8) == 0 {
			n := min(g.n(8), len(g.data))
			b = append(b, g.data[:n]...)
			g.data = g.data[n:]
			continue
		}
		b = append(b, pick(g, "a", "Hello", " ", "é", "日本", "😀", "\n", `"`, `\`, "<&>", "\u2028", "{\"x\":", strings64)...)
	}
	return string(b)
}

var strings64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdé"

func (g *gen) number() json.Number {
	return json.Number(pick(g, "0", "1", "-1.2345678901234567e-05", "123456789012345678901234567890", "1.0", "1E+2", "-0", "0.1"))
}

// value is any JSON value.
func (g *gen) value(depth int) any {
	switch k := g.n(7); {
	case k == 0:
		return nil
	case k == 1:
		return g.coin()
	case k == 2:
		return g.number()
	case k == 3 || depth == 0:
		return g.text()
	case k == 4:
		var a []any
		for range g.n(3) {
			a = append(a, g.value(depth-1))
		}
		return a
	default:
		m := map[string]any{}
		for range g.n(4) {
			m[pick(g, "a", "id", "type", "index", "name", "data", "text")] = g.value(depth - 1)
		}
		return m
	}
}

// tokenLogprobs is a logprobs list for text: tokens spelling it (cut at
// random bytes, so maybe not at rune boundaries) or not.
func (g *gen) tokenLogprobs(text string) []any {
	var out []any
	for len(text) > 0 || (out == nil && g.coin()) {
		n := min(len(text), 1+g.n(8))
		if g.n(16) == 15 { // an empty token (an exhausted input gives none)
			n = 0
		}
		var bs []int
		for _, b := range []byte(text[:n]) {
			bs = append(bs, int(b))
		}
		out = append(out, map[string]any{"token": text[:n], "logprob": g.number(), "bytes": bs, "top_logprobs": []any{}})
		text = text[n:]
	}
	if g.n(8) == 0 {
		out = append(out, map[string]any{"token": "x"})
	}
	return out
}

// completion is a chat.completion with every kind of field.
func (g *gen) completion() []byte {
	c := map[string]any{"id": "chatcmpl-" + g.text(), "object": "chat.completion", "created": g.number(), "model": g.text()}
	if g.coin() {
		c["service_tier"] = pick[any](g, "default", nil)
	}
	if g.coin() {
		c["system_fingerprint"] = pick[any](g, "fp_1", nil)
	}
	if g.coin() {
		c["x_vendor"] = g.value(2)
	}
	choices := []any{}
	for i := range g.n(4) {
		choices = append(choices, g.choice(i))
	}
	c["choices"] = choices
	if g.coin() {
		c["usage"] = map[string]any{"prompt_tokens": g.number(), "completion_tokens": 1, "total_tokens": 2, "completion_tokens_details": map[string]any{"reasoning_tokens": 0}}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func (g *gen) choice(i int) map[string]any {
	msg := map[string]any{"role": pick(g, "assistant", "assistant", "tool")}
	var texts [2]any
	for j, k := range textKeys {
		switch g.n(4) {
		case 0:
			if k == "refusal" {
				continue // absent
			}
			texts[j] = ""
		case 1:
			texts[j] = nil
		default:
			texts[j] = g.text()
		}
		msg[k] = texts[j]
	}
	switch g.n(4) {
	case 0:
		var calls []any
		for range 1 + g.n(3) {
			if g.n(4) == 0 {
				calls = append(calls, map[string]any{"id": "ct_" + g.text(), "type": "custom", "custom": map[string]any{"name": g.text(), "input": g.text()}})
				continue
			}
			call := map[string]any{"id": "call_" + g.text(), "type": "function", "function": map[string]any{"name": g.text(), "arguments": g.text()}}
			if g.coin() {
				call["x_call"] = g.value(1)
			}
			calls = append(calls, call)
		}
		msg["tool_calls"] = calls
	case 1:
		msg["tool_calls"] = pick[any](g, nil, []any{})
	}
	if g.coin() {
		msg["annotations"] = pick[any](g, []any{}, []any{g.value(2), g.value(2)}, nil)
	}
	if g.coin() {
		msg[pick(g, "audio", "reasoning_content", "x_msg")] = g.value(3)
	}
	choice := map[string]any{"index": i, "message": msg, "finish_reason": pick[any](g, "stop", "length", "tool_calls", nil)}
	switch g.n(3) {
	case 0:
		choice["logprobs"] = nil
	case 1:
		lp := map[string]any{}
		for j, k := range textKeys {
			switch s, _ := texts[j].(string); g.n(4) {
			case 0:
				lp[k] = nil
			case 1:
				lp[k] = []any{g.value(1)}
			default:
				lp[k] = g.tokenLogprobs(s)
			}
		}
		if g.n(4) == 0 {
			lp["x_lp"] = g.value(1)
		}
		choice["logprobs"] = lp
	}
	if g.coin() {
		choice["content_filter_results"] = g.value(2)
	}
	return choice
}

// response is a Responses API response with every kind of output.
func (g *gen) response() []byte {
	r := map[string]any{"id": "resp_" + g.text(), "object": "response", "created_at": g.number(), "status": pick(g, "completed", "incomplete", "failed"),
		"error": nil, "incomplete_details": nil, "model": g.text(), "x_vendor": g.value(2)}
	if g.coin() {
		r["usage"] = map[string]any{"input_tokens": g.number(), "output_tokens": 1, "total_tokens": 2}
	}
	if g.coin() {
		r["completed_at"] = g.number()
	}
	output := []any{}
	for i := range g.n(5) {
		id := pick(g, "x_", "msg_", "fc_") + string(rune('a'+i))
		switch g.n(4) {
		case 0:
			var parts []any
			for range g.n(4) {
				switch g.n(3) {
				case 0:
					parts = append(parts, map[string]any{"type": "refusal", "refusal": g.text()})
				case 1:
					parts = append(parts, map[string]any{"type": "x_part", "data": g.value(2)})
				default:
					text := g.text()
					p := map[string]any{"type": "output_text", "text": text, "annotations": []any{g.value(1)}}
					if g.coin() {
						p["logprobs"] = g.tokenLogprobs(text)
					}
					parts = append(parts, p)
				}
			}
			output = append(output, map[string]any{"id": id, "type": "message", "status": "completed", "role": "assistant", "content": parts})
		case 1:
			output = append(output, map[string]any{"id": id, "type": "function_call", "status": "completed", "arguments": g.text(), "call_id": "call_" + g.text(), "name": g.text()})
		case 2:
			output = append(output, map[string]any{"id": id, "type": "reasoning", "summary": []any{map[string]any{"type": "summary_text", "text": g.text()}}})
		default:
			output = append(output, map[string]any{"type": "x_item", "data": g.value(3)})
		}
	}
	r["output"] = output
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

// seeds returns fuzz seeds: a few fixed byte strings and the fixtures.
func seeds(t *testing.F) [][]byte {
	out := [][]byte{nil, []byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"), bytes.Repeat([]byte{0xff, 0x7f, 0x3c}, 40), []byte("0123456789abcdefghijklmnopqrstuvwxyz!?")}
	for _, name := range []string{"chat_stream.sse", "response_stream.sse", "chat_completion.golden.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzChatRoundTrip checks AssembleChat(ChatChunks(c, true)) == c for
// generated completions.
func FuzzChatRoundTrip(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := gen{data}
		c := g.completion()
		chunks, err := ChatChunks(c, true)
		if err != nil {
			t.Fatalf("%v: %s", err, c)
		}
		checkChunks(t, c, chunks)
		got, err := AssembleChat(chunks)
		if err != nil {
			t.Fatalf("%v: %s", err, c)
		}
		if d := jsonDiff(t, c, got); d != "" {
			t.Fatalf("(-want +got):\n%s\nwant %s\nchunks:\n%s", d, c, bytes.Join(chunks, []byte("\n")))
		}
	})
}

// FuzzAssembleChat feeds arbitrary chunks (the input's lines): no panic, and
// what assembles is a completion that streams and assembles back to itself.
func FuzzAssembleChat(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	for _, s := range roundTrips {
		chunks, _ := ChatChunks([]byte(s), true)
		f.Add(bytes.Join(chunks, []byte("\n")))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in [][]byte // the input's lines, read as SSE data
		for line := range bytes.Lines(data) {
			line = bytes.TrimPrefix(bytes.TrimSpace(line), []byte("data: "))
			if len(line) > 0 && string(line) != "[DONE]" {
				in = append(in, line)
			}
		}
		c, err := AssembleChat(in)
		if err != nil {
			return
		}
		if !json.Valid(c) || c[0] != '{' || bytes.ContainsAny(c, "\r\n") {
			t.Fatalf("not one line of JSON object: %q", c)
		}
		chunks, err := ChatChunks(c, true)
		if err != nil {
			t.Fatalf("%v: %s", err, c)
		}
		checkChunks(t, c, chunks)
		again, err := AssembleChat(chunks)
		if err != nil {
			t.Fatalf("%v: %s", err, c)
		}
		if d := jsonDiff(t, c, again); d != "" {
			t.Fatalf("(-want +got):\n%s\nwant %s\nchunks:\n%s", d, c, bytes.Join(chunks, []byte("\n")))
		}
	})
}

// FuzzResponseRoundTrip checks AssembleResponse(ResponseEvents(r)) == r for
// generated responses, and that the events spell the texts.
func FuzzResponseRoundTrip(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := gen{data}
		r := g.response()
		events, err := ResponseEvents(r)
		if err != nil {
			t.Fatalf("%v: %s", err, r)
		}
		checkEvents(t, r, events)
		got, err := AssembleResponse(events)
		if err != nil {
			t.Fatalf("%v: %s", err, r)
		}
		if d := jsonDiff(t, r, got); d != "" {
			t.Fatalf("(-want +got):\n%s", d)
		}
	})
}

// FuzzConvert feeds arbitrary bytes to the conversions from one payload: an
// answer or an error, never a panic.
func FuzzConvert(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	for _, s := range roundTrips {
		f.Add([]byte(s))
	}
	for _, s := range responseRoundTrips {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if chunks, err := ChatChunks(data, true); err == nil {
			if _, err := AssembleChat(chunks); err != nil {
				t.Fatalf("chunks of %s do not assemble: %v", data, err)
			}
		}
		if events, err := ResponseEvents(data); err == nil {
			if _, err := AssembleResponse(events); err != nil {
				t.Fatalf("events of %s do not assemble: %v", data, err)
			}
		}
		_, _ = AssembleResponse([]Event{{Data: data}})
	})
}
