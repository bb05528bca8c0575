package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestAssembleChatRecorded assembles a recorded-style OpenAI stream: role
// chunk, content with logprobs, a tool call over several chunks, finish and
// usage chunks, usage: null and obfuscation on the others, service_tier,
// system_fingerprint and a vendor field.
func TestAssembleChatRecorded(t *testing.T) {
	got, err := AssembleChat(payloads(readSSE(t, "chat_stream.sse")))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "chat_completion.golden.json", got)
	for _, s := range []string{`-1.2345678901234567e-05`, `98765432109876543210987654321`, `-8.9e-06`} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("number %s not kept as written in %s", s, got)
		}
	}
	if bytes.Contains(got, []byte("obfuscation")) || bytes.ContainsAny(got, "\n") {
		t.Errorf("obfuscation kept, or not compact: %s", got)
	}
}

// TestChatChunksRecorded streams the recorded completion back: one chunk per
// logprobs token, the tool call, finish and usage chunks, and the same
// completion once assembled.
func TestChatChunksRecorded(t *testing.T) {
	completion, err := os.ReadFile(filepath.Join("testdata", "chat_completion.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := ChatChunks(completion, true)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, completion, chunks)
	// role + 8 tokens + tool call head + arguments + finish + usage
	if len(chunks) != 13 {
		t.Fatalf("%d chunks, want 13:\n%s", len(chunks), bytes.Join(chunks, []byte("\n")))
	}
	want := map[int]string{
		0:  `"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null`,
		1:  `"delta":{"content":"Let"},"logprobs":{"content":[{"token":"Let","logprob":-0.0012341,"bytes":[76,101,116],"top_logprobs":[]}],"refusal":null},"finish_reason":null`,
		9:  `"delta":{"tool_calls":[{"index":0,"id":"call_Q3vJ8gT2mXyZ1aBcD4eF5gH6","type":"function","function":{"name":"get_weather","arguments":""}}]}`,
		10: `"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}`,
		11: `"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]`,
		12: `"choices":[],"usage":{"prompt_tokens":82,`,
	}
	for i, s := range want {
		if !bytes.Contains(chunks[i], []byte(s)) {
			t.Errorf("chunk %d lacks %s:\n%s", i, s, chunks[i])
		}
	}
	got, err := AssembleChat(chunks)
	if err != nil {
		t.Fatal(err)
	}
	if d := jsonDiff(t, completion, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
}

// roundTrips are completions AssembleChat(ChatChunks(c, true)) must give
// back.
var roundTrips = map[string]string{
	"text":               `{"id":"chatcmpl-1","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello <b>world</b> & you","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9},"service_tier":"default","system_fingerprint":"fp_1"}`,
	"empty content":      `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"length"}]}`,
	"null content alone": `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}`,
	"tool calls": `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[
		{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Zürich, 日本 and a long, long, long, long, long, long, long tail\"}"}},
		{"id":"call_b","type":"function","function":{"name":"noop","arguments":""},"x_extra":{"n":1.50}},
		{"id":"call_c","type":"custom","custom":{"name":"grammar","input":"SELECT 1"}}]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
	"text and tool call":             `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`,
	"refusal":                        `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I'm sorry, I can't help with that."},"logprobs":{"content":null,"refusal":[{"token":"I'm","logprob":-0.1,"bytes":[73,39,109],"top_logprobs":[]},{"token":" sorry, I can't help with that.","logprob":-1e-7,"bytes":null,"top_logprobs":[]}]},"finish_reason":"stop"}]}`,
	"empty refusal":                  `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":""},"finish_reason":"stop"}]}`,
	"logprobs by token":              `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"logprobs":{"content":[{"token":"Hi","logprob":-1.2345678901234567e-05,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-1.2345678901234567e-05,"bytes":[72,105]}]},{"token":" there","logprob":-0.5,"bytes":[32,116,104,101,114,101],"top_logprobs":[]}],"refusal":null},"finish_reason":"stop"}]}`,
	"logprobs not spelling the text": `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"caf\u00e9 au lait"},"logprobs":{"content":[{"token":"caf","logprob":-1},{"token":"\\xc3","logprob":-2}],"refusal":null,"x_more":[1]},"finish_reason":"stop"}]}`,
	"logprobs with no text":          `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":""},"logprobs":{"content":[],"refusal":null},"finish_reason":"stop"}]}`,
	"multi choice": `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[
		{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("é😀ab", 30) + `"},"logprobs":null,"finish_reason":"stop","content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}},
		{"index":1,"message":{"role":"assistant","content":"two","annotations":[{"type":"url_citation","url_citation":{"start_index":0,"end_index":3,"title":"t","url":"https://example.com"}}]},"logprobs":null,"finish_reason":"stop","x_choice":null}],
		"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"completion_tokens_details":{"reasoning_tokens":0}},"x_vendor":{"id":"v","big":123456789012345678901234567890}}`,
	"audio and vendor fields": `{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o-audio-preview","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"audio":{"id":"audio_1","data":"UklGRg==","expires_at":1767229200,"transcript":"Hi"},"reasoning_content":"think","x_list":[1,2],"x_null":null},"finish_reason":"stop"}],"system_fingerprint":null}`,
	"no choices":              `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`,
}

func TestChatRoundTrip(t *testing.T) {
	for name, c := range roundTrips {
		t.Run(name, func(t *testing.T) {
			chunks, err := ChatChunks([]byte(c), true)
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, []byte(c), chunks)
			got, err := AssembleChat(chunks)
			if err != nil {
				t.Fatal(err)
			}
			if d := jsonDiff(t, []byte(c), got); d != "" {
				t.Errorf("(-want +got):\n%s\nchunks:\n%s", d, bytes.Join(chunks, []byte("\n")))
			}
		})
	}
}

// TestChatChunksPieces checks how text is cut when no logprobs spell it.
func TestChatChunksPieces(t *testing.T) {
	chunks, err := ChatChunks([]byte(roundTrips["multi choice"]), false)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, c := range chunks {
		if member(t, c, "usage") != nil {
			t.Errorf("usage chunk without includeUsage: %s", c)
		}
		ch := member(t, c, "choices").([]any)[0].(map[string]any)
		if ch["index"].(interface{ String() string }).String() != "0" {
			continue
		}
		if s, ok := ch["delta"].(map[string]any)["content"].(string); ok && s != "" {
			if len(s) > maxPiece || !utf8.ValidString(s) {
				t.Errorf("piece %q: %d bytes", s, len(s))
			}
			text.WriteString(s)
		}
	}
	if want := strings.Repeat("é😀ab", 30); text.String() != want {
		t.Errorf("pieces spell %q, want %q", text.String(), want)
	}

	// Logprobs that do not spell the text ride whole on the first piece.
	chunks, err = ChatChunks([]byte(roundTrips["logprobs not spelling the text"]), false)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(chunks[1]); !strings.Contains(s, `"content":"café au lait"},"logprobs":{"content":[{"token":"caf","logprob":-1},{"token":"\\xc3","logprob":-2}],"refusal":null,"x_more":[1]}`) {
		t.Errorf("first piece: %s", s)
	}
}

// TestAssembleChatRules checks the rules that decide what a stream leaves
// unsaid: nothing is invented.
func TestAssembleChatRules(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{{
		name: "minimal stream invents no created, usage, refusal or logprobs",
		chunks: []string{
			`{"id":"x","choices":[{"index":0,"delta":{"content":"a"}}]}`,
			`{"id":"x","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"usage":null}`,
		},
		want: `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ab"},"finish_reason":"stop"}]}`,
	}, {
		name: "tool calls without content make content null; index-less entries",
		chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":":1}"}}]}}]}`,
			`{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}`,
		},
		want: `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},{"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}`,
	}, {
		name: "nothing said is an empty content; choices sorted; last non-null wins",
		chunks: []string{
			`{"id":"x","created":5,"model":"a","choices":[{"index":1,"delta":{"role":"assistant"}},{"index":0,"delta":{"role":"tool","content":null}}],"x":{"a":1}}`,
			`{"id":"x","created":5,"model":"b","choices":[{"index":1,"delta":{},"finish_reason":"stop","x":1},{"index":0,"delta":{},"finish_reason":null}],"x":null}`,
			`{"choices":[],"usage":{"total_tokens":7}}`,
			`{"choices":[],"usage":null}`,
		},
		want: `{"id":"x","object":"chat.completion","created":5,"model":"b","choices":[{"index":0,"message":{"role":"tool","content":null},"finish_reason":null},{"index":1,"message":{"role":"assistant","content":""},"finish_reason":"stop","x":1}],"usage":{"total_tokens":7},"x":{"a":1}}`,
	}, {
		name: "audio merged member by member, vendor strings concatenated, annotations and logprobs concatenated",
		chunks: []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","audio":{"id":"audio_1","transcript":"He"},"reasoning_content":"th","annotations":[1]},"logprobs":{"content":[{"token":"a"}],"refusal":null}}]}`,
			`{"choices":[{"index":0,"delta":{"audio":{"data":"AAA","transcript":"llo"},"reasoning_content":"ink","annotations":[2]},"logprobs":null}]}`,
			`{"choices":[{"index":0,"delta":{"audio":{"id":"audio_1","data":"BBB","expires_at":17}},"logprobs":{"content":[{"token":"b"}],"refusal":null}}]}`,
		},
		want: `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":null,"annotations":[1,2],"audio":{"id":"audio_1","data":"AAABBB","expires_at":17,"transcript":"Hello"},"reasoning_content":"think"},"logprobs":{"content":[{"token":"a"},{"token":"b"}],"refusal":null}}]}`,
	}, {
		name: "null logprobs stay null",
		chunks: []string{
			`{"choices":[{"index":0,"delta":{"content":""},"logprobs":null}]}`,
		},
		want: `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":""},"logprobs":null}]}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chunks [][]byte
			for _, c := range tt.chunks {
				chunks = append(chunks, []byte(c))
			}
			got, err := AssembleChat(chunks)
			if err != nil {
				t.Fatal(err)
			}
			if d := jsonDiff(t, []byte(tt.want), got); d != "" {
				t.Errorf("(-want +got):\n%s\ngot %s", d, got)
			}
		})
	}
}

func TestChatErrors(t *testing.T) {
	for _, chunks := range [][]string{
		{},
		{`not json`},
		{`{"choices":[]}`, `{"choices":[]`},
		{`null`},
		{`[]`},
		{`{"choices":{}}`},
		{`{"choices":[1]}`},
		{`{"choices":[{"index":"0"}]}`},
		{`{"choices":[{"index":1.5}]}`},
		{`{"choices":[{"index":0,"delta":"x"}]}`},
		{`{"choices":[{"index":0,"delta":{"tool_calls":{}}}]}`},
		{`{"choices":[{"index":0,"delta":{"tool_calls":[null]}}]}`},
		{`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":"a"}]}}]}`},
	} {
		var in [][]byte
		for _, c := range chunks {
			in = append(in, []byte(c))
		}
		if got, err := AssembleChat(in); err == nil {
			t.Errorf("AssembleChat(%q) = %s, want an error", chunks, got)
		}
	}
	for _, c := range []string{``, `x`, `null`, `[]`, `"s"`, `{"choices":{}}`, `{"choices":[1]}`, `{"choices":[{"message":[]}]}`, `{"choices":[{"message":{"tool_calls":[1]}}]}`, `{"choices":[{"index":"0"}]}`} {
		if got, err := ChatChunks([]byte(c), true); err == nil {
			t.Errorf("ChatChunks(%q) = %q, want an error", c, got)
		}
	}
}
