package sim

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

// fullCompletion decodes the chat fields the basic completion type leaves out.
type fullCompletion struct {
	ServiceTier string `json:"service_tier"`
	Choices     []struct {
		Message struct {
			Content   *string        `json:"content"`
			ToolCalls []toolCallJSON `json:"tool_calls"`
			Refusal   *string        `json:"refusal"`
		} `json:"message"`
		Logprobs     *logprobs `json:"logprobs"`
		FinishReason string    `json:"finish_reason"`
	} `json:"choices"`
	Usage usage `json:"usage"`
}

type toolCallJSON struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      *string `json:"name"`
		Arguments string  `json:"arguments"`
	} `json:"function"`
}

type logprobs struct {
	Content []logprob `json:"content"`
	Refusal *string   `json:"refusal"`
}

type logprob struct {
	Token       string  `json:"token"`
	Logprob     float64 `json:"logprob"`
	Bytes       []int   `json:"bytes"`
	TopLogprobs []struct {
		Token   string  `json:"token"`
		Logprob float64 `json:"logprob"`
		Bytes   []int   `json:"bytes"`
	} `json:"top_logprobs"`
}

// streamChunk decodes the chat chunk fields the basic chunk type leaves out.
type streamChunk struct {
	ServiceTier *string `json:"service_tier"`
	Choices     []struct {
		Delta struct {
			Role      *string        `json:"role"`
			Content   *string        `json:"content"`
			ToolCalls []toolCallJSON `json:"tool_calls"`
		} `json:"delta"`
		Logprobs     *logprobs `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	} `json:"choices"`
}

// chatStream posts a stream request and returns its chunks, without [DONE].
func chatStream(t *testing.T, base, body string) ([]streamChunk, []string) {
	t.Helper()
	resp, b := openaiWire.call(t, base, "chat/completions", "k", body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	evs := events(t, b)
	if evs[len(evs)-1] != "[DONE]" {
		t.Fatalf("last event %q", evs[len(evs)-1])
	}
	evs = evs[:len(evs)-1]
	out := make([]streamChunk, len(evs))
	for i, ev := range evs {
		out[i] = decode[streamChunk](t, ev)
	}
	return out, evs
}

func TestChatLogprobs(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	const msgs = `"messages":[{"role":"user","content":"Give me probabilities, schön?"}]`
	for _, k := range []int{0, 1, 5, 20} {
		t.Run("top_logprobs "+strconv.Itoa(k), func(t *testing.T) {
			body := `{"model":"gpt-4o-mini","logprobs":true,"top_logprobs":` + strconv.Itoa(k) + `,` + msgs + `}`
			_, b := openaiWire.call(t, ts.URL, "chat/completions", "k", body)
			got := decode[fullCompletion](t, b)
			ch := got.Choices[0]
			if ch.Logprobs == nil || ch.Logprobs.Refusal != nil || !strings.Contains(b, `"refusal":null}`) {
				t.Fatalf("logprobs %s", b)
			}
			var text strings.Builder
			for i, e := range ch.Logprobs.Content {
				text.WriteString(e.Token)
				if want := -float64(i%7) / 100; e.Logprob != want {
					t.Errorf("entry %d logprob %v, want %v", i, e.Logprob, want)
				}
				if !cmp.Equal(e.Bytes, bytesOf(e.Token)) {
					t.Errorf("entry %d bytes %v for %q", i, e.Bytes, e.Token)
				}
				if len(e.TopLogprobs) != k {
					t.Fatalf("entry %d: %d top_logprobs, want %d", i, len(e.TopLogprobs), k)
				}
				for j, alt := range e.TopLogprobs {
					if (j == 0) != (alt.Token == e.Token) || alt.Logprob != e.Logprob-float64(j) || !cmp.Equal(alt.Bytes, bytesOf(alt.Token)) {
						t.Errorf("entry %d alternative %d: %+v", i, j, alt)
					}
				}
			}
			if text.String() != *ch.Message.Content {
				t.Errorf("tokens join to %q, content is %q", text.String(), *ch.Message.Content)
			}
		})
	}
	t.Run("stream", func(t *testing.T) {
		_, plain := openaiWire.call(t, ts.URL, "chat/completions", "k", `{"model":"gpt-4o-mini","logprobs":true,"top_logprobs":2,`+msgs+`}`)
		want := decode[fullCompletion](t, plain).Choices[0].Logprobs.Content
		chunks, evs := chatStream(t, ts.URL, `{"model":"gpt-4o-mini","stream":true,"logprobs":true,"top_logprobs":2,`+msgs+`}`)
		var got []logprob
		for i, c := range chunks {
			d := c.Choices[0]
			isContent := d.Delta.Content != nil && d.Delta.Role == nil
			if isContent != (d.Logprobs != nil) {
				t.Errorf("chunk %d: %s", i, evs[i])
			}
			if isContent {
				if len(d.Logprobs.Content) != 1 || d.Logprobs.Content[0].Token != *d.Delta.Content {
					t.Errorf("chunk %d logprobs: %s", i, evs[i])
				}
				got = append(got, d.Logprobs.Content...)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("streamed logprobs differ from the plain answer's (-plain +stream):\n%s", diff)
		}
	})
	t.Run("off", func(t *testing.T) {
		for _, body := range []string{`{"model":"gpt-4o-mini",` + msgs + `}`, `{"model":"gpt-4o-mini","logprobs":false,"top_logprobs":3,` + msgs + `}`} {
			_, b := openaiWire.call(t, ts.URL, "chat/completions", "k", body)
			if !strings.Contains(b, `"logprobs":null`) {
				t.Errorf("%s: %s", body, b)
			}
		}
	})
	for _, tt := range []struct {
		k    int
		want string
	}{{21, "Expected a value <= 20, but got 21 instead."}, {-1, "Expected a value >= 0, but got -1 instead."}} {
		resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", `{"model":"gpt-4o-mini","logprobs":true,"top_logprobs":`+strconv.Itoa(tt.k)+`,`+msgs+`}`)
		if resp.StatusCode != 400 || !strings.Contains(b, tt.want) || !strings.Contains(b, `"param":"top_logprobs"`) {
			t.Errorf("top_logprobs %d: %d %s", tt.k, resp.StatusCode, b)
		}
	}
}

func bytesOf(s string) []int {
	out := []int{}
	for i := 0; i < len(s); i++ {
		out = append(out, int(s[i]))
	}
	return out
}

const weatherTools = `"tools":[
	{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}},
	{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer","minimum":1}},"required":["city"]}}},
	{"type":"function","function":{"name":"no_params"}}]`

func TestChatToolCalls(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	const user = `{"role":"user","content":"What is the weather in Paris?"}`
	tests := []struct {
		name, choice, messages string
		wantName, wantArgs     string // "" = a text answer
	}{
		{"required calls the first function", `"required"`, user, "get_time", `{}`},
		{"named function", `{"type":"function","function":{"name":"get_weather"}}`, user, "get_weather", `{"city":"sim","unit":"celsius","days":1}`},
		{"no parameters", `{"type":"function","function":{"name":"no_params"}}`, user, "no_params", `{}`},
		{"auto answers with text", `"auto"`, user, "", ""},
		{"absent answers with text", ``, user, "", ""},
		{"none answers with text", `"none"`, user, "", ""},
		{"a tool result gets text", `"required"`, user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}`, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			choice := ""
			if tt.choice != "" {
				choice = `"tool_choice":` + tt.choice + `,`
			}
			body := `{"model":"gpt-4o-mini",` + choice + weatherTools + `,"messages":[` + tt.messages + `]}`
			resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			got := decode[fullCompletion](t, b)
			ch := got.Choices[0]
			if tt.wantName == "" {
				if ch.Message.Content == nil || !strings.HasPrefix(*ch.Message.Content, "Simulated answer") || ch.Message.ToolCalls != nil || ch.FinishReason != "stop" {
					t.Errorf("want a text answer: %s", b)
				}
				return
			}
			if ch.Message.Content != nil || len(ch.Message.ToolCalls) != 1 || ch.FinishReason != "tool_calls" || !strings.Contains(b, `"content":null,"tool_calls":[{"id":"call_`) {
				t.Fatalf("want one tool call: %s", b)
			}
			tc := ch.Message.ToolCalls[0]
			call := toolCall{id: tc.ID, args: tc.Function.Arguments}
			if tc.Function.Name != nil {
				call.name = *tc.Function.Name
			}
			if call.name != tt.wantName || call.args != tt.wantArgs || !strings.HasPrefix(call.id, "call_") || tc.Type != "function" || tc.Index != nil {
				t.Errorf("call %s, want %s(%s)", b, tt.wantName, tt.wantArgs)
			}
			if want := tokens.Count("gpt-4o-mini", call.name) + tokens.Count("gpt-4o-mini", call.args); got.Usage.CompletionTokens != want {
				t.Errorf("completion tokens %d, want %d", got.Usage.CompletionTokens, want)
			}

			// The stream says the same, the OpenAI way.
			chunks, evs := chatStream(t, ts.URL, strings.Replace(body, `{"model":"gpt-4o-mini",`, `{"model":"gpt-4o-mini","stream":true,`, 1))
			first := chunks[0].Choices[0]
			if first.Delta.Role == nil || first.Delta.Content != nil || len(first.Delta.ToolCalls) != 1 || !strings.Contains(evs[0], `"content":null`) {
				t.Fatalf("first chunk %s", evs[0])
			}
			head := first.Delta.ToolCalls[0]
			if head.Index == nil || *head.Index != 0 || head.ID != call.id || head.Type != "function" || head.Function.Name == nil || *head.Function.Name != call.name || head.Function.Arguments != "" {
				t.Errorf("first chunk %s", evs[0])
			}
			var args strings.Builder
			last := chunks[len(chunks)-1].Choices[0]
			for i, c := range chunks[1 : len(chunks)-1] {
				d := c.Choices[0]
				if len(d.Delta.ToolCalls) != 1 || d.Delta.ToolCalls[0].ID != "" || d.Delta.ToolCalls[0].Function.Name != nil || *d.Delta.ToolCalls[0].Index != 0 {
					t.Fatalf("argument chunk %d: %s", i, evs[i+1])
				}
				args.WriteString(d.Delta.ToolCalls[0].Function.Arguments)
			}
			if args.String() != call.args || last.FinishReason == nil || *last.FinishReason != "tool_calls" {
				t.Errorf("streamed arguments %q, final chunk %s", args.String(), evs[len(evs)-1])
			}
		})
	}
}

func TestChatToolErrors(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	tests := []struct{ name, fields, want string }{
		{"tool_choice without tools", `"tool_choice":"required"`, `'tool_choice' is only allowed when 'tools' are specified.`},
		{"unknown function", `"tool_choice":{"type":"function","function":{"name":"nope"}},` + weatherTools, `no function named 'nope'`},
		{"bad tool_choice", `"tool_choice":"sometimes",` + weatherTools, `"param":"tool_choice"`},
		{"bad response_format type", `"response_format":{"type":"xml"}`, `"param":"response_format.type"`},
		{"json_schema without schema object", `"response_format":{"type":"json_schema"}`, `"param":"response_format.json_schema"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", `{"model":"gpt-4o-mini",`+tt.fields+`,"messages":[{"role":"user","content":"x"}]}`)
			if resp.StatusCode != 400 || !strings.Contains(b, tt.want) {
				t.Errorf("got %d %s, want 400 with %s", resp.StatusCode, b, tt.want)
			}
		})
	}
}

func TestChatStructuredOutput(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	const schema = `{"type":"object","properties":{"answer":{"type":"string"},"confidence":{"type":"number","minimum":0,"maximum":1},"sources":{"type":"array","items":{"type":"string","format":"uri"}},"kind":{"anyOf":[{"$ref":"#/$defs/kind"},{"type":"null"}]}},"required":["answer","confidence","sources","kind"],"additionalProperties":false,"$defs":{"kind":{"type":"string","enum":["fact","opinion"]}}}`
	const msgs = `"messages":[{"role":"user","content":"Is the sky blue?"}]`
	tests := []struct {
		name, format string
		maxTokens    int
		check        func(t *testing.T, content string)
	}{
		{"json_schema", `{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":` + schema + `}}`, 0, func(t *testing.T, content string) {
			if want := `{"answer":"sim","confidence":1,"sources":["https://example.com/sim"],"kind":"fact"}`; content != want {
				t.Errorf("content %s, want %s", content, want)
			}
		}},
		{"json_object", `{"type":"json_object"}`, 0, func(t *testing.T, content string) {
			var v map[string]string
			if err := json.Unmarshal([]byte(content), &v); err != nil || len(v) != 1 || !strings.HasPrefix(v["answer"], `Simulated answer to "Is the sky blue?".`) {
				t.Errorf("content %s (%v)", content, err)
			}
		}},
		{"text", `{"type":"text"}`, 0, func(t *testing.T, content string) {
			if !strings.HasPrefix(content, "Simulated answer") {
				t.Errorf("content %s", content)
			}
		}},
		{"json_object capped", `{"type":"json_object"}`, 5, func(t *testing.T, content string) {
			if json.Valid([]byte(content)) || !strings.HasPrefix(content, `{"answer":`) || tokens.Count("gpt-4o-mini", content) != 5 {
				t.Errorf("content %q", content)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := ""
			if tt.maxTokens > 0 {
				max = `"max_tokens":` + strconv.Itoa(tt.maxTokens) + `,`
			}
			body := `{"model":"gpt-4o-mini",` + max + `"response_format":` + tt.format + `,` + msgs + `}`
			resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			got := decode[fullCompletion](t, b)
			content := *got.Choices[0].Message.Content
			tt.check(t, content)
			if n := tokens.Count("gpt-4o-mini", content); got.Usage.CompletionTokens != n {
				t.Errorf("usage says %d completion tokens, content has %d", got.Usage.CompletionTokens, n)
			}
			if wantFinish := map[bool]string{true: "length", false: "stop"}[tt.maxTokens > 0]; got.Choices[0].FinishReason != wantFinish {
				t.Errorf("finish_reason %q, want %q", got.Choices[0].FinishReason, wantFinish)
			}
			chunks, _ := chatStream(t, ts.URL, strings.Replace(body, `{"model":"gpt-4o-mini",`, `{"model":"gpt-4o-mini","stream":true,`, 1))
			var streamed strings.Builder
			for _, c := range chunks {
				if d := c.Choices[0].Delta; d.Content != nil {
					streamed.WriteString(*d.Content)
				}
			}
			if streamed.String() != content {
				t.Errorf("streamed %q, want %q", streamed.String(), content)
			}
		})
	}
}

func TestServiceTierAndProcessingMS(t *testing.T) {
	const ttft, per = 30 * time.Millisecond, time.Millisecond
	_, ts := start(t, Options{Accounts: []Account{{Key: "k", TTFT: ttft, PerToken: per}}})
	resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
	got := decode[fullCompletion](t, b)
	if got.ServiceTier != "default" {
		t.Errorf("plain answer: service_tier %q", got.ServiceTier)
	}
	want := (ttft + time.Duration(got.Usage.CompletionTokens-1)*per).Milliseconds()
	if ms := resp.Header.Get("openai-processing-ms"); ms != strconv.FormatInt(want, 10) || resp.Header.Get("x-request-id") == "" {
		t.Errorf("openai-processing-ms %q, want %d", ms, want)
	}

	resp, b = openaiWire.call(t, ts.URL, "chat/completions", "k", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`)
	if ms := resp.Header.Get("openai-processing-ms"); ms != strconv.FormatInt(ttft.Milliseconds(), 10) {
		t.Errorf("stream: openai-processing-ms %q, want the TTFT", ms)
	}
	evs := events(t, b)
	for _, ev := range evs[:len(evs)-1] {
		if c := decode[streamChunk](t, ev); c.ServiceTier == nil || *c.ServiceTier != "default" {
			t.Errorf("chunk without service_tier: %s", ev)
		}
	}

	for _, tt := range []struct {
		endpoint, body string
		want           time.Duration
	}{
		{"embeddings", `{"model":"text-embedding-3-small","input":"x"}`, ttft},
		{"models", "", 0},
	} {
		for _, w := range wires {
			resp, _ := w.call(t, ts.URL, tt.endpoint, "k", tt.body)
			if ms := resp.Header.Get("openai-processing-ms"); resp.StatusCode != 200 || ms != strconv.FormatInt(tt.want.Milliseconds(), 10) {
				t.Errorf("%s %s: status %d, openai-processing-ms %q", w.name, tt.endpoint, resp.StatusCode, ms)
			}
		}
	}
	// Errors carry no processing time.
	for _, key := range []string{"k", "wrong"} {
		resp, _ := openaiWire.call(t, ts.URL, "chat/completions", key, `{"model":"gpt-9","messages":[]}`)
		if resp.StatusCode < 400 || resp.Header.Get("openai-processing-ms") != "" {
			t.Errorf("status %d with openai-processing-ms %q", resp.StatusCode, resp.Header.Get("openai-processing-ms"))
		}
	}
}
