package spend

import (
	"strings"
	"testing"
)

func TestParseUsage(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Usage
		ok   bool
	}{
		{
			"chat completion",
			`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],
			  "usage":{"prompt_tokens":2000,"completion_tokens":300,"total_tokens":2300,
			           "prompt_tokens_details":{"cached_tokens":1536,"audio_tokens":0},
			           "completion_tokens_details":{"reasoning_tokens":0,"accepted_prediction_tokens":0}}}`,
			Usage{Input: 2000, CachedInput: 1536, Output: 300}, true,
		},
		{
			"chat completion of a reasoning model",
			`{"object":"chat.completion","usage":{"prompt_tokens":50,"completion_tokens":1200,"completion_tokens_details":{"reasoning_tokens":1024}}}`,
			Usage{Input: 50, Output: 1200, Reasoning: 1024}, true,
		},
		{
			"chat without details (an older or compatible server)",
			`{"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`,
			Usage{Input: 12, Output: 7}, true,
		},
		{
			"chat stream's last chunk",
			`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
			Usage{Input: 9, Output: 12}, true,
		},
		{
			"chat stream's other chunks",
			`{"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"x"}}],"usage":null}`,
			Usage{}, false,
		},
		{
			"responses",
			`{"id":"resp_1","object":"response","status":"completed","output":[],
			  "usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},
			           "output_tokens":2500,"output_tokens_details":{"reasoning_tokens":2000},"total_tokens":3700}}`,
			Usage{Input: 1200, CachedInput: 1024, Output: 2500, Reasoning: 2000}, true,
		},
		{
			"responses stream's completed event",
			`{"type":"response.completed","sequence_number":42,"response":{"id":"resp_1","status":"completed",
			  "usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":0},"output_tokens":40,"output_tokens_details":{"reasoning_tokens":16}}}}`,
			Usage{Input: 30, Output: 40, Reasoning: 16}, true,
		},
		{
			"responses stream's created event",
			`{"type":"response.created","response":{"id":"resp_1","status":"in_progress","usage":null}}`,
			Usage{}, false,
		},
		{
			"embeddings",
			`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8000,"total_tokens":8000}}`,
			Usage{Input: 8000}, true,
		},
		{
			"counts a server got wrong",
			`{"usage":{"prompt_tokens":10,"completion_tokens":-5,"prompt_tokens_details":{"cached_tokens":50},"completion_tokens_details":{"reasoning_tokens":3}}}`,
			Usage{Input: 10, CachedInput: 10}, true,
		},
		{"no usage", `{"object":"chat.completion","choices":[]}`, Usage{}, false},
		{
			"usage only in the answer's text and deeper down",
			`{"choices":[{"message":{"content":"\"usage\":{\"prompt_tokens\":5}"},"usage":{"prompt_tokens":6}}],"response":{"usage":{"input_tokens":7}},"usage":{"prompt_tokens":8}}`,
			Usage{Input: 8}, true,
		},
		{"usage nested in a choice only", `{"choices":[{"usage":{"prompt_tokens":6}}]}`, Usage{}, false},
		{"usage given twice: the last, as clients read it", `{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":1000000}}`, Usage{Input: 1000000}, true},
		{"a null usage beside the response's", `{"usage":null,"response":{"usage":{"input_tokens":4}}}`, Usage{Input: 4}, true},
		{"a fraction", `{"usage":{"prompt_tokens":12.7}}`, Usage{}, false},
		{"an exponent", `{"usage":{"prompt_tokens":1e3}}`, Usage{}, false},
		{"out of range", `{"usage":{"prompt_tokens":1e30}}`, Usage{}, false},
		{"a count no server meant, bounded so its price cannot overflow", `{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":1}}`, Usage{Input: 1 << 40, Output: 1}, true},
		{"details that are not an object", `{"usage":{"prompt_tokens":5,"prompt_tokens_details":7}}`, Usage{}, false},
		{"not JSON", `data: [DONE]`, Usage{}, false},
		{"wrong type", `{"usage":{"prompt_tokens":"12"}}`, Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseUsage([]byte(tt.body))
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseUsage = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestCost prices answer bodies, each against a cost worked out by hand
// from the list prices (USD per 1M tokens).
func TestCost(t *testing.T) {
	tests := []struct {
		name  string
		model string
		body  string
		want  Nanos
		str   string
	}{
		{
			// 1000 × $2.50/1M + 500 × $10/1M = $0.0025 + $0.005
			"chat, no cache", "gpt-4o",
			`{"usage":{"prompt_tokens":1000,"completion_tokens":500}}`,
			7_500_000, "$0.0075",
		},
		{
			// (2000 − 1536) × $2.50 + 1536 × $1.25 + 300 × $10, per 1M:
			// $0.00116 + $0.00192 + $0.003
			"chat, cached input", "gpt-4o-2024-08-06",
			`{"usage":{"prompt_tokens":2000,"completion_tokens":300,"prompt_tokens_details":{"cached_tokens":1536}}}`,
			6_080_000, "$0.0061",
		},
		{
			// (1200 − 1024) × $2 + 1024 × $0.50 + 2500 × $8, per 1M, the
			// 2000 reasoning tokens being among the 2500 output tokens:
			// $0.000352 + $0.000512 + $0.02
			"responses, reasoning and cached input", "o3",
			`{"usage":{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},"output_tokens":2500,"output_tokens_details":{"reasoning_tokens":2000}}}`,
			20_864_000, "$0.021",
		},
		{
			// 30 × $0.05 + 40 × $0.40, per 1M: $0.0000015 + $0.000016
			"responses stream event", "gpt-5-nano",
			`{"type":"response.completed","response":{"usage":{"input_tokens":30,"output_tokens":40,"output_tokens_details":{"reasoning_tokens":16}}}}`,
			17_500, "$0.000018",
		},
		{
			// 8000 × $0.02/1M
			"embeddings", "text-embedding-3-small",
			`{"object":"list","usage":{"prompt_tokens":8000,"total_tokens":8000}}`,
			160_000, "$0.00016",
		},
		{
			// 1M × $0.13/1M
			"a million embedding tokens", "text-embedding-3-large",
			`{"usage":{"prompt_tokens":1000000,"total_tokens":1000000}}`,
			130_000_000, "$0.13",
		},
		{
			// (1000 − 500) × $10 + 500 × $10 + 100 × $30, per 1M: no
			// discount for cached input on gpt-4-turbo
			"cached input without a discount", "gpt-4-turbo",
			`{"usage":{"prompt_tokens":1000,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":500}}}`,
			13_000_000, "$0.013",
		},
		{
			// 100k × $1.25 + 20k × $10, per 1M: $0.125 + $0.20
			"chat stream's last chunk", "gpt-5",
			`{"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":100000,"completion_tokens":20000,"completion_tokens_details":{"reasoning_tokens":15000}}}`,
			325_000_000, "$0.33",
		},
	}
	var prices Prices
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := ParseUsage([]byte(tt.body))
			if !ok {
				t.Fatalf("ParseUsage found no usage")
			}
			got, ok := prices.Cost(tt.model, u)
			if !ok || got != tt.want || got.String() != tt.str {
				t.Errorf("Cost(%s, %+v) = %d (%s), %v; want %d (%s)", tt.model, u, got, got, ok, tt.want, tt.str)
			}
		})
	}
}

// BenchmarkParseUsage reads the usage of a chat answer of a few hundred
// words, as every paid answer and every cache hit does.
func BenchmarkParseUsage(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1733000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("The quick brown fox jumps over the lazy dog, and \\\"quotes\\\" too. ", 40) +
		`","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":400,"total_tokens":520,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1"}`)
	if u, ok := ParseUsage(body); !ok || u.Output != 400 {
		b.Fatalf("ParseUsage = %+v, %v", u, ok)
	}
	b.ReportAllocs()
	for b.Loop() {
		ParseUsage(body)
	}
}
