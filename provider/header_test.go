package provider

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
	}{
		{"none", header(), 0},
		{"retry-after-ms", header("retry-after-ms", "1500"), 1500 * time.Millisecond},
		{"retry-after-ms fractional", header("retry-after-ms", "20.5"), 20500 * time.Microsecond},
		{"x-ms-retry-after-ms", header("x-ms-retry-after-ms", "250"), 250 * time.Millisecond},
		{"seconds", header("Retry-After", "7"), 7 * time.Second},
		{"fractional seconds", header("Retry-After", "0.25"), 250 * time.Millisecond},
		{"http date", header("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), 90 * time.Second},
		{"http date passed", header("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)), 0},
		{"ms beats seconds", header("Retry-After", "2", "retry-after-ms", "1234"), 1234 * time.Millisecond},
		{"ms beats date", header("Retry-After", now.Add(time.Hour).Format(http.TimeFormat), "x-ms-retry-after-ms", "10"), 10 * time.Millisecond},
		{"openai ms beats azure ms", header("x-ms-retry-after-ms", "10", "retry-after-ms", "20"), 20 * time.Millisecond},
		{"all three", header("Retry-After", "3", "x-ms-retry-after-ms", "2500", "retry-after-ms", "2400"), 2400 * time.Millisecond},
		{"unreadable ms falls through", header("retry-after-ms", "soon", "Retry-After", "4"), 4 * time.Second},
		{"negative ignored", header("retry-after-ms", "-5", "Retry-After", "-1"), 0},
		{"garbage", header("Retry-After", "tomorrow"), 0},
		{"NaN", header("retry-after-ms", "NaN"), 0},
		{"huge clamped", header("Retry-After", "1e30"), maxRetryAfter},
		{"spaces", header("Retry-After", " 5 "), 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseRetryAfter(tt.h, now); got != tt.want {
				t.Errorf("ParseRetryAfter(%v) = %v, want %v", tt.h, got, tt.want)
			}
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		name string
		h    http.Header
		want RateLimit
	}{
		{"none", header(), unknownRateLimit},
		{
			"openai full",
			header(
				"x-ratelimit-limit-requests", "10000",
				"x-ratelimit-limit-tokens", "2000000",
				"x-ratelimit-remaining-requests", "9999",
				"x-ratelimit-remaining-tokens", "1999970",
				"x-ratelimit-reset-requests", "6m0s",
				"x-ratelimit-reset-tokens", "20ms",
			),
			RateLimit{10000, 2000000, 9999, 1999970, 6 * time.Minute, 20 * time.Millisecond},
		},
		{
			"zero is not unknown",
			header("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "0s"),
			RateLimit{Unknown, Unknown, 0, Unknown, 0, Unknown},
		},
		{
			"reset formats",
			header("x-ratelimit-reset-requests", "1s", "x-ratelimit-reset-tokens", "1m30.5s"),
			RateLimit{Unknown, Unknown, Unknown, Unknown, time.Second, 90*time.Second + 500*time.Millisecond},
		},
		{
			"reset in plain seconds",
			header("x-ratelimit-reset-requests", "2", "x-ratelimit-reset-tokens", "0.5"),
			RateLimit{Unknown, Unknown, Unknown, Unknown, 2 * time.Second, 500 * time.Millisecond},
		},
		{
			"azure: remaining only",
			header("x-ratelimit-remaining-requests", "59", "x-ratelimit-remaining-tokens", "59000"),
			RateLimit{Unknown, Unknown, 59, 59000, Unknown, Unknown},
		},
		{
			"float counts",
			header("x-ratelimit-remaining-tokens", "1500.0"),
			RateLimit{Unknown, Unknown, Unknown, 1500, Unknown, Unknown},
		},
		{
			"unreadable is unknown",
			header("x-ratelimit-limit-requests", "lots", "x-ratelimit-remaining-requests", "-3", "x-ratelimit-reset-tokens", "soon"),
			unknownRateLimit,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ParseRateLimit(tt.h)); diff != "" {
				t.Errorf("ParseRateLimit mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	const key = "my-compat-key-123"
	tests := []struct {
		name, in, want string
	}{
		{"plain text", "Rate limit reached for gpt-4o in organization org-abc on requests per min", "Rate limit reached for gpt-4o in organization org-abc on requests per min"},
		{"words with sk-", "task-force and risk-free", "task-force and risk-free"},
		{"openai key", "bad key sk-abcdefghijklmnop1234.", "bad key [redacted]."},
		{"masked project key", "Incorrect API key provided: sk-proj-********************************************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.", "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys."},
		{"azure key", "key 0123456789abcdef0123456789ABCDEF refused", "key [redacted] refused"},
		{"bearer", "Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer [redacted]"},
		{"api-key field", `{"api-key": "hunter2hunter2"}`, `{"api-key": "[redacted]"}`},
		{"long token", "token gsk_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEf", "token [redacted]"},
		{"long words kept", "a-very-long-hyphenated-phrase-without-any-digits-at-all", "a-very-long-hyphenated-phrase-without-any-digits-at-all"},
		{"own key verbatim", "you sent my-compat-key-123!", "you sent [redacted]!"},
		{"own key's start echoed", "The key my-compat-ke... is not valid for this resource", "The key [redacted]... is not valid for this resource"},
		{"a shorter start kept", "see my-co for details", "see my-co for details"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.in, key); got != tt.want {
				t.Errorf("redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
	if got := redact("ollama said ollama", "ollama"); got != "ollama said ollama" {
		t.Errorf("a placeholder key shorter than %d bytes was replaced: %q", minKeyLen, got)
	}
}

func TestKindRetryable(t *testing.T) {
	want := map[Kind]bool{
		KindRateLimited: true, KindServer: true, KindNetwork: true, KindTimeout: true,
		KindAuth: false, KindBadRequest: false, KindNotFound: false, KindCanceled: false,
	}
	for k, w := range want {
		if k.Retryable() != w {
			t.Errorf("%s.Retryable() = %v, want %v", k, !w, w)
		}
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		name string
		e    Error
		want string
	}{
		{"status and code", Error{Kind: KindRateLimited, Backend: "openai", Status: 429, Code: "rate_limit_exceeded", Message: "Rate limit reached"}, "backend openai: rate limited (429 rate_limit_exceeded): Rate limit reached"},
		{"status only", Error{Kind: KindServer, Backend: "b", Status: 502, Message: "bad gateway"}, "backend b: server (502): bad gateway"},
		{"code only", Error{Kind: KindServer, Backend: "b", Code: "server_error", Message: "oops"}, "backend b: server (server_error): oops"},
		{"neither", Error{Kind: KindNetwork, Backend: "b", Message: "connection refused"}, "backend b: network: connection refused"},
		{"no backend", Error{Kind: KindCanceled}, "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCodeString(t *testing.T) {
	tests := []struct {
		name string
		code any
		want string
	}{
		{"nil", nil, ""},
		{"null read as 0", 0, ""},
		{"string", "rate_limit_exceeded", "rate_limit_exceeded"},
		{"number", 429, "429"},
		{"float", 1.5, "1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeString(tt.code); got != tt.want {
				t.Errorf("codeString(%v) = %q, want %q", tt.code, got, tt.want)
			}
		})
	}
}
