package sim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage             usage  `json:"usage"`
	SystemFingerprint string `json:"system_fingerprint"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func decode[T any](t testing.TB, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func TestChatBothWires(t *testing.T) {
	clk := newClock()
	s, ts := start(t, Options{
		Accounts: []Account{{Name: "a", Key: "sk-a"}},
		Now:      clk.Now,
	})
	msgs := []tokens.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Name: "bob", Content: "Hello there, how are you today?"}}
	body := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","name":"bob","content":"Hello there, how are you today?"}]}`
	var answers []completion
	for _, w := range wires {
		t.Run(w.name, func(t *testing.T) {
			resp, b := w.call(t, ts.URL, "chat/completions", "sk-a", body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			got := decode[completion](t, b)
			if len(got.Choices) != 1 {
				t.Fatalf("choices: %+v", got.Choices)
			}
			content := got.Choices[0].Message.Content
			if !strings.HasPrefix(content, `Simulated answer to "Hello there, how are you today?".`) {
				t.Errorf("content %q", content)
			}
			if !strings.HasPrefix(got.ID, "chatcmpl-sim-") || got.Object != "chat.completion" ||
				got.Model != "gpt-4o-mini" || got.SystemFingerprint != "fp_sim" ||
				got.Choices[0].Message.Role != "assistant" || got.Choices[0].FinishReason != "stop" ||
				got.Created != clk.Now().Unix() {
				t.Errorf("unexpected completion %+v", got)
			}
			want := usage{PromptTokens: tokens.CountMessages("gpt-4o-mini", msgs), CompletionTokens: tokens.Count("gpt-4o-mini", content)}
			want.TotalTokens = want.PromptTokens + want.CompletionTokens
			if diff := cmp.Diff(want, got.Usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
			if n := got.Usage.CompletionTokens; n < minAnswer || n > maxAnswer {
				t.Errorf("completion tokens %d outside [%d, %d]", n, minAnswer, maxAnswer)
			}
			answers = append(answers, got)
		})
	}
	if len(answers) == 2 && answers[0].Choices[0].Message.Content != answers[1].Choices[0].Message.Content {
		t.Errorf("the wires answer the same messages differently")
	}
	log := s.Log()
	if len(log) != 2 || log[0].Wire != WireOpenAI || log[1].Wire != WireAzure || log[1].Model != "gpt-4o-mini" ||
		log[0].Account != "a" || log[0].Status != 200 || log[0].PromptTokens != answers[0].Usage.PromptTokens {
		t.Errorf("log %+v", log)
	}
}

func TestChatDeterministic(t *testing.T) {
	// One clock for both: a second boundary between the two requests
	// would otherwise change Created (it failed CI so).
	now := func() time.Time { return time.Unix(1_700_000_000, 0) }
	_, ts1 := start(t, Options{Accounts: []Account{{Key: "k"}}, Now: now})
	_, ts2 := start(t, Options{Accounts: []Account{{Key: "k"}}, Now: now})
	ask := func(base, content string) completion {
		body := fmt.Sprintf(`{"model":"gpt-4o","messages":[{"role":"user","content":%q}]}`, content)
		_, b := openaiWire.call(t, base, "chat/completions", "k", body)
		return decode[completion](t, b)
	}
	a1, a2 := ask(ts1.URL, "What is the capital of France?"), ask(ts2.URL, "What is the capital of France?")
	if diff := cmp.Diff(a1, a2); diff != "" {
		t.Errorf("same messages, different answers (-first +second):\n%s", diff)
	}
	b := ask(ts1.URL, "What is the capital of Germany?")
	if b.ID == a1.ID || b.Choices[0].Message.Content == a1.Choices[0].Message.Content {
		t.Errorf("different messages, same answer: %q", b.Choices[0].Message.Content)
	}
	long := ask(ts1.URL, "one two three four five six seven eight nine ten")
	if !strings.HasPrefix(long.Choices[0].Message.Content, `Simulated answer to "one two three four five six seven eight…".`) {
		t.Errorf("long prompt echo: %q", long.Choices[0].Message.Content)
	}
}

func TestChatMaxTokens(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	tests := []struct {
		name       string
		param      string
		max        int
		wantFinish string
	}{
		{"max_tokens 1", "max_tokens", 1, "length"},
		{"max_tokens 5", "max_tokens", 5, "length"},
		{"max_completion_tokens 10", "max_completion_tokens", 10, "length"},
		{"max_tokens above any answer", "max_tokens", 500, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Tell me a story about a dragon"}],%q:%d}`, tt.param, tt.max)
			resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			got := decode[completion](t, b)
			n := got.Usage.CompletionTokens
			if got.Choices[0].FinishReason != tt.wantFinish {
				t.Errorf("finish_reason %q, want %q", got.Choices[0].FinishReason, tt.wantFinish)
			}
			if tt.wantFinish == "length" && n != tt.max {
				t.Errorf("completion tokens %d, want %d", n, tt.max)
			}
			if c := tokens.Count("gpt-4o-mini", got.Choices[0].Message.Content); c != n {
				t.Errorf("content %q counts %d tokens, usage says %d", got.Choices[0].Message.Content, c, n)
			}
		})
	}
}

// TestAnswerTokensAddUp checks that an answer of n tokens really encodes to
// n tokens, for prompts of many shapes and every cap, in both encodings.
func TestAnswerTokensAddUp(t *testing.T) {
	prompts := []string{
		"",
		"hi",
		"What is the capital of France?",
		"Schöne Grüße aus Köln, wie geht's? Ça va très bien, merci!",
		"日本語のテキストを翻訳してください 東京 大阪 京都 名古屋 福岡 札幌 仙台",
		"12345 67.89 0x1F 1e10 3.14159 $100 50% #tag @user a/b/c",
		"can't won't it's they're I'm we've you'll he'd",
		"\"quoted\" (parens) [brackets] {braces} <html> `code` ... !!! ???",
		"emoji 🙂🚀 mixed CamelCaseWords and snake_case_words and ALLCAPS",
		"tabs\tand\nnewlines\r\nand   many    spaces",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 6 {
		var b strings.Builder
		for range 12 {
			b.WriteRune(rune(0x20 + rng.IntN(0x3000)))
			if rng.IntN(4) == 0 {
				b.WriteByte(' ')
			}
		}
		prompts = append(prompts, b.String())
	}
	for _, model := range []string{"gpt-4o-mini", "gpt-4"} {
		for _, p := range prompts {
			rep := newReply(model, []tokens.Message{{Role: "user", Content: p}}, hashMessages([]tokens.Message{{Role: "user", Content: p}}))
			if c := tokens.Count(model, strings.Join(rep.words, " ")); c != rep.total {
				t.Errorf("%s %q: echo counts %d tokens, words add up to %d", model, p, c, rep.total)
			}
			for _, n := range []int{1, 2, 3, 5, 8, 13, rep.total - 1, rep.total, rep.total + 1, rep.total + 2, rep.target} {
				if n < 1 {
					continue
				}
				var text strings.Builder
				sum := 0
				for _, pt := range rep.parts(n) {
					if pt.space {
						text.WriteByte(' ')
					}
					text.WriteString(pt.word)
					sum += pt.tokens
				}
				if got := tokens.Count(model, text.String()); got != n || sum != n {
					t.Errorf("%s %q n=%d: text %q counts %d tokens, parts say %d", model, p, n, text.String(), got, sum)
				}
			}
		}
	}
}

func TestFillerWordsAreOneToken(t *testing.T) {
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		for _, w := range append(filler, ".") {
			if tokens.Count(model, w) != 1 || (w != "." && tokens.Count(model, " "+w) != 1) {
				t.Errorf("%s: filler %q is not one token", model, w)
			}
		}
	}
}

func TestChatErrors(t *testing.T) {
	s, ts := start(t, Options{
		Accounts:    []Account{{Name: "a", Key: "sk-a"}},
		Deployments: map[string]string{"prod": "gpt-4o-mini"},
	})
	tests := []struct {
		name       string
		wire       wire
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string // substring
	}{
		{"unknown model", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404,
			`{"error":{"message":"The model ` + "`gpt-9`" + ` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}`},
		{"bad json", openaiWire, "POST", "/v1/chat/completions", `{"model":`, 400, `"type":"invalid_request_error"`},
		{"missing messages", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini"}`, 400, `"param":"messages"`},
		{"empty messages", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[]}`, 400, `"param":"messages"`},
		{"bad role", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"robot","content":"x"}]}`, 400, `messages[0].role`},
		{"missing model", openaiWire, "POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"x"}]}`, 400, `model parameter`},
		{"max_tokens zero", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, 400, `"param":"max_tokens"`},
		{"embedding model for chat", openaiWire, "POST", "/v1/chat/completions", `{"model":"text-embedding-3-small","messages":[{"role":"user","content":"x"}]}`, 404, `not a chat model`},
		{"stream_options without stream", openaiWire, "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}`, 400, `stream_options`},
		{"no /v1 prefix", openaiWire, "POST", "/chat/completions", hello, 404, `Invalid URL (POST /chat/completions)`},
		{"unknown path", openaiWire, "POST", "/v1/audio/speech", hello, 404, `Invalid URL`},
		{"wrong method", openaiWire, "GET", "/v1/chat/completions", "", 405, `Invalid method`},
		{"azure unknown deployment", azureWire, "POST", "/openai/deployments/staging/chat/completions?api-version=2024-10-21", hello, 404,
			`{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist.`},
		{"azure missing api-version", azureWire, "POST", "/openai/deployments/prod/chat/completions", hello, 400, `api-version`},
		{"azure deployment ok", azureWire, "POST", "/openai/deployments/prod/chat/completions?api-version=2024-10-21", `{"messages":[{"role":"user","content":"x"}]}`, 200, `"model":"gpt-4o-mini"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			tt.wire.auth(h, "sk-a")
			resp, b := do(t, tt.method, ts.URL+tt.path, h, tt.body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(b, tt.wantBody) {
				t.Errorf("got %d %s\nwant %d containing %s", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			if !json.Valid([]byte(b)) {
				t.Errorf("body is not JSON: %s", b)
			}
		})
	}
	if st := s.Stats()["a"]; st.Requests != len(tests) || st.OK != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestUnauthorizedNeverShowsKey(t *testing.T) {
	const key = "sk-very-secret-key-1234567890"
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: key}}})
	tests := []struct {
		name string
		wire wire
		key  string
		hdr  func(h http.Header)
	}{
		{"no key", openaiWire, "", nil},
		{"wrong key", openaiWire, key + "x", nil},
		{"prefix of key", openaiWire, key[:len(key)-3], nil},
		{"azure wrong key", azureWire, "sk-wrong-azure", nil},
		{"bearer on azure", azureWire, "", func(h http.Header) { h.Set("Authorization", "Bearer "+key) }},
		{"api-key on openai", openaiWire, "", func(h http.Header) { h.Set("api-key", key) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.key != "" {
				tt.wire.auth(h, tt.key)
			}
			if tt.hdr != nil {
				tt.hdr(h)
			}
			resp, b := do(t, "POST", tt.wire.url(ts.URL, "chat/completions"), h, hello)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			var e struct {
				Error struct {
					Message, Type, Code string
					Param               *string
				}
			}
			if err := json.Unmarshal([]byte(b), &e); err != nil || e.Error.Code != "invalid_api_key" ||
				e.Error.Type != "invalid_request_error" || !strings.HasPrefix(e.Error.Message, "Incorrect API key provided.") ||
				e.Error.Param != nil {
				t.Errorf("body %s (%v)", b, err)
			}
			secret := []string{key, key[:8], key[len(key)-4:]}
			if tt.key != "" {
				secret = append(secret, tt.key)
			}
			for _, sec := range secret {
				if strings.Contains(b, sec) {
					t.Errorf("body shows key material %q: %s", sec, b)
				}
				for k, v := range resp.Header {
					if strings.Contains(strings.Join(v, " "), sec) {
						t.Errorf("header %s shows key material: %v", k, v)
					}
				}
			}
		})
	}
	logJSON, _ := json.Marshal(s.Log())
	if strings.Contains(string(logJSON), key[:8]) {
		t.Errorf("log shows the key: %s", logJSON)
	}
	if st := s.Stats()[""]; st.Unauthorized != len(tests) || st.Requests != len(tests) {
		t.Errorf("anonymous stats %+v", st)
	}
}
