package provider

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
)

// simulated starts the simulated upstream with the accounts and returns it
// with its base URL.
func simulated(t *testing.T, accounts ...sim.Account) (*sim.Server, string) {
	t.Helper()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{
		Accounts:    accounts,
		Deployments: map[string]string{"prod-4o": "gpt-4o", "emb": "text-embedding-3-small"},
		Seed:        1,
		Now:         func() time.Time { return now }, // a frozen clock: buckets never refill
	})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close) // runs first: releases hung requests
	return s, ts.URL
}

func simOpenAI(t *testing.T, url, name, key string) *Provider {
	return newProvider(t, config.Backend{Name: name, Type: config.TypeOpenAI, BaseURL: url + "/v1", Key: config.Secret(key)})
}

func simAzure(t *testing.T, url, name, key string) *Provider {
	return newProvider(t, config.Backend{
		Name: name, Type: config.TypeAzure, BaseURL: url, Key: config.Secret(key), APIVersion: "2024-10-21",
		ModelMap: map[string]string{"gpt-4o": "prod-4o", "text-embedding-3-small": "emb"},
	})
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// chatUsage reads a whole chat completion answer.
func chatUsage(t *testing.T, body []byte) (content string, prompt, completion int) {
	t.Helper()
	var resp struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
		t.Fatalf("answer %s: %v", body, err)
	}
	return resp.Choices[0].Message.Content, resp.Usage.PromptTokens, resp.Usage.CompletionTokens
}

func lastRecord(t *testing.T, s *sim.Server) sim.Record {
	t.Helper()
	log := s.Log()
	if len(log) == 0 {
		t.Fatal("the simulator saw no request")
	}
	return log[len(log)-1]
}

func TestSimChat(t *testing.T) {
	s, url := simulated(t,
		sim.Account{Name: "oai", Key: "sk-sim-openai-0123456789"},
		sim.Account{Name: "az", Key: "0123456789abcdef0123456789abcdef"},
	)
	// seen is the part of a sim.Record compared.
	type seen struct {
		Account, Wire, Path, Model string
		Status                     int
	}
	tests := []struct {
		name  string
		p     *Provider
		model string
		want  seen
	}{
		{"openai", simOpenAI(t, url, "o", "sk-sim-openai-0123456789"), "gpt-4o-mini",
			seen{Account: "oai", Wire: sim.WireOpenAI, Path: "/v1/chat/completions", Model: "gpt-4o-mini", Status: 200}},
		{"azure deployment", simAzure(t, url, "a", "0123456789abcdef0123456789abcdef"), "gpt-4o",
			seen{Account: "az", Wire: sim.WireAzure, Path: "/openai/deployments/prod-4o/chat/completions", Model: "gpt-4o", Status: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chatCall(tt.model)
			resp, err := tt.p.Send(t.Context(), c)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			content, prompt, completion := chatUsage(t, resp.Body)
			if resp.Obs.Status != 200 || !strings.HasPrefix(content, "Simulated answer") {
				t.Errorf("answer %s, observation %+v", resp.Body, resp.Obs)
			}
			rec := lastRecord(t, s)
			got := seen{Account: rec.Account, Wire: rec.Wire, Path: rec.Path, Model: rec.Model, Status: rec.Status}
			if got != tt.want {
				t.Errorf("sim saw %+v, want %+v", got, tt.want)
			}
			if rec.CompletionTokens != completion || rec.PromptTokens != prompt {
				t.Errorf("usage %d+%d, sim counted %d+%d", prompt, completion, rec.PromptTokens, rec.CompletionTokens)
			}
			if rec.BodySHA256 != sha(c.Body) {
				t.Errorf("the sim got another body than %s", c.Body)
			}
		})
	}
}

func TestSimStream(t *testing.T) {
	s, url := simulated(t,
		sim.Account{Name: "oai", Key: "sk-sim-openai-0123456789", RPM: 100, TPM: 100000},
		sim.Account{Name: "az", Key: "0123456789abcdef0123456789abcdef"},
	)
	tests := []struct {
		name, model string
		p           *Provider
	}{
		{"openai", "gpt-4o-mini", simOpenAI(t, url, "o", "sk-sim-openai-0123456789")},
		{"azure", "gpt-4o", simAzure(t, url, "a", "0123456789abcdef0123456789abcdef")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := streamCall(tt.model)
			body := c.Body
			st, err := tt.p.Open(t.Context(), c)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer st.Close()
			events, err := drain(st)
			if err != io.EOF {
				t.Fatalf("stream ended with %v, want io.EOF", err)
			}
			cs := chunks(t, events)
			last := cs[len(cs)-1]
			rec := lastRecord(t, s)
			if last.Usage == nil || last.Usage.CompletionTokens != rec.CompletionTokens || last.Usage.PromptTokens != rec.PromptTokens || len(last.Choices) != 0 {
				t.Errorf("last chunk %+v, sim counted %d+%d", last, rec.PromptTokens, rec.CompletionTokens)
			}
			if !rec.Stream || !strings.HasPrefix(text(cs), "Simulated answer") {
				t.Errorf("stream %v, text %q", rec.Stream, text(cs))
			}
			want := `{"stream_options":{"include_usage":true},` + string(body[1:])
			if rec.BodySHA256 != sha([]byte(want)) {
				t.Errorf("the sim got another body than %s", want)
			}
			if st.Observation().Status != 200 {
				t.Errorf("observation %+v", st.Observation())
			}
		})
	}
	if rl := tests[0].p; rl != nil {
		// The limited account's stream reported its headers.
		st, err := openChat(t.Context(), rl)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if obs := st.Observation(); obs.RateLimit.LimitRequests != 100 || obs.RateLimit.RemainingRequests == Unknown {
			t.Errorf("rate limit %+v", obs.RateLimit)
		}
	}
}

func TestSimEmbeddingsAndModels(t *testing.T) {
	s, url := simulated(t,
		sim.Account{Name: "oai", Key: "sk-sim-openai-0123456789"},
		sim.Account{Name: "az", Key: "0123456789abcdef0123456789abcdef"},
	)
	for _, p := range []*Provider{simOpenAI(t, url, "o", "sk-sim-openai-0123456789"), simAzure(t, url, "a", "0123456789abcdef0123456789abcdef")} {
		t.Run(p.Name(), func(t *testing.T) {
			body := []byte(`{"model":"text-embedding-3-small","input":["one","two"]}`)
			resp, err := p.Send(t.Context(), Call{Path: PathEmbeddings, Model: "text-embedding-3-small", Body: body})
			if err != nil {
				t.Fatalf("embeddings: %v", err)
			}
			var emb struct {
				Data []struct {
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
			}
			if err := json.Unmarshal(resp.Body, &emb); err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 1536 || resp.Obs.Status != 200 {
				t.Errorf("%d embeddings, status %d: %v", len(emb.Data), resp.Obs.Status, err)
			}
			if rec := lastRecord(t, s); !strings.HasSuffix(rec.Path, "embeddings") || rec.Model != "text-embedding-3-small" || rec.BodySHA256 != sha(body) {
				t.Errorf("sim saw %+v", rec)
			}
			models, _, err := p.Models(t.Context())
			if err != nil {
				t.Fatalf("Models: %v", err)
			}
			for _, m := range sim.DefaultModels {
				if !slices.Contains(models, m) {
					t.Errorf("models %v lack %s", models, m)
				}
			}
		})
	}
}

// TestSimErrors: the simulator's refusals and injected faults reach the
// caller with the right Kind.
func TestSimErrors(t *testing.T) {
	const key = "sk-sim-good-0123456789"
	s, url := simulated(t,
		sim.Account{Name: "good", Key: key},
		sim.Account{Name: "rpm1", Key: "sk-sim-rpm1-0123456789", RPM: 1},
		sim.Account{Name: "e500", Key: "sk-sim-e500-0123456789", Faults: sim.Faults{Error500: 1}},
		sim.Account{Name: "e502", Key: "sk-sim-e502-0123456789", Faults: sim.Faults{Error502: 1}},
		sim.Account{Name: "e503", Key: "sk-sim-e503-0123456789", Faults: sim.Faults{Error503: 1}},
		sim.Account{Name: "reset", Key: "sk-sim-reset-0123456789", Faults: sim.Faults{Reset: 1}},
		sim.Account{Name: "malformed", Key: "sk-sim-malformed-0123456789", Faults: sim.Faults{Malformed: 1}},
		sim.Account{Name: "hang", Key: "sk-sim-hang-0123456789", Faults: sim.Faults{Hang: 1}},
		sim.Account{Name: "break", Key: "sk-sim-break-0123456789", Faults: sim.Faults{StreamBreak: 1}},
		sim.Account{Name: "az", Key: "0123456789abcdef0123456789abcdef"},
	)
	wrongKey := "sk-sim-WRONG-9876543210zyx"

	// The RPM=1 account: the first call spends the only request.
	rpm1 := simOpenAI(t, url, "rpm1", "sk-sim-rpm1-0123456789")
	if _, err := rpm1.Send(t.Context(), chatCall("gpt-4o-mini")); err != nil {
		t.Fatalf("first call on the RPM=1 account: %v", err)
	}

	tests := []struct {
		name    string
		p       *Provider
		model   string
		stream  bool
		timeout time.Duration
		kind    Kind
		status  int
		fault   string // expected in the sim's record
		check   func(t *testing.T, pe *Error, obs Observation)
	}{
		{name: "wrong key", p: simOpenAI(t, url, "bad", wrongKey), kind: KindAuth, status: 401,
			check: func(t *testing.T, pe *Error, obs Observation) {
				if strings.Contains(pe.Error(), wrongKey) || strings.Contains(pe.Message, "WRONG") {
					t.Errorf("the key leaks: %v", pe)
				}
			}},
		{name: "wrong azure key", p: simAzure(t, url, "badaz", "fedcba9876543210fedcba9876543210"), model: "gpt-4o", kind: KindAuth, status: 401},
		{name: "unknown model", p: simOpenAI(t, url, "good", key), model: "gpt-9", kind: KindNotFound, status: 404},
		{name: "unknown deployment", p: simAzure(t, url, "az", "0123456789abcdef0123456789abcdef"), model: "gpt-4o-mini", kind: KindNotFound, status: 404,
			check: func(t *testing.T, pe *Error, obs Observation) {
				if rec := lastRecord(t, s); rec.Path != "/openai/deployments/gpt-4o-mini/chat/completions" {
					t.Errorf("sim saw %s", rec.Path)
				}
			}},
		{name: "rpm exhausted", p: rpm1, kind: KindRateLimited, status: 429,
			check: func(t *testing.T, pe *Error, obs Observation) {
				if pe.RetryAfter <= 0 || obs.RetryAfter != pe.RetryAfter {
					t.Errorf("RetryAfter %v (observed %v), want > 0", pe.RetryAfter, obs.RetryAfter)
				}
				if obs.RateLimit.RemainingRequests != 0 || obs.RateLimit.LimitRequests != 1 {
					t.Errorf("rate limit %+v, want 0 of 1 requests remaining", obs.RateLimit)
				}
			}},
		{name: "rpm exhausted stream", p: rpm1, stream: true, kind: KindRateLimited, status: 429,
			check: func(t *testing.T, pe *Error, obs Observation) {
				if pe.RetryAfter <= 0 || obs.RateLimit.RemainingRequests != 0 {
					t.Errorf("RetryAfter %v, rate limit %+v", pe.RetryAfter, obs.RateLimit)
				}
			}},
		{name: "500", p: simOpenAI(t, url, "e500", "sk-sim-e500-0123456789"), kind: KindServer, status: 500, fault: sim.Fault500},
		{name: "502", p: simOpenAI(t, url, "e502", "sk-sim-e502-0123456789"), kind: KindServer, status: 502, fault: sim.Fault502},
		{name: "503", p: simOpenAI(t, url, "e503", "sk-sim-e503-0123456789"), kind: KindServer, status: 503, fault: sim.Fault503},
		{name: "reset", p: simOpenAI(t, url, "reset", "sk-sim-reset-0123456789"), kind: KindNetwork, fault: sim.FaultReset},
		{name: "malformed", p: simOpenAI(t, url, "malformed", "sk-sim-malformed-0123456789"), kind: KindServer, status: 200, fault: sim.FaultMalformed},
		{name: "malformed stream", p: simOpenAI(t, url, "malformed", "sk-sim-malformed-0123456789"), stream: true, kind: KindServer, status: 200, fault: sim.FaultMalformed},
		{name: "stream break", p: simOpenAI(t, url, "break", "sk-sim-break-0123456789"), stream: true, kind: KindNetwork, status: 200, fault: sim.FaultStreamBreak},
		{name: "hang", p: simOpenAI(t, url, "hang", "sk-sim-hang-0123456789"), timeout: 100 * time.Millisecond, kind: KindTimeout, fault: sim.FaultHang},
		{name: "hang stream", p: simOpenAI(t, url, "hang", "sk-sim-hang-0123456789"), stream: true, timeout: 100 * time.Millisecond, kind: KindTimeout, fault: sim.FaultHang},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			model := cmp.Or(tt.model, "gpt-4o-mini")
			var (
				obs Observation
				err error
			)
			if tt.stream {
				var st *Stream
				st, err = tt.p.Open(ctx, streamCall(model))
				if err == nil {
					_, err = drain(st)
				}
				obs = st.Observation()
				st.Close()
			} else {
				var body []byte
				body, obs, err = send(ctx, tt.p, chatCall(model))
				if err == nil && !json.Valid(body) {
					// Send passes any 2xx answer on: judging it is the
					// caller's, with Malformed.
					err = tt.p.Malformed(obs, "the answer is not JSON")
				}
			}
			pe := asError(t, err)
			if pe.Kind != tt.kind || pe.Status != tt.status || obs.Status != tt.status {
				t.Errorf("got %q status %d (observed %d), want %q %d: %v", pe.Kind, pe.Status, obs.Status, tt.kind, tt.status, err)
			}
			if tt.fault != "" {
				// A hung request's record may complete after the client gave up.
				rec := lastRecord(t, s)
				for deadline := time.Now().Add(2 * time.Second); rec.Fault != tt.fault && time.Now().Before(deadline); {
					time.Sleep(5 * time.Millisecond)
					rec = lastRecord(t, s)
				}
				if rec.Fault != tt.fault {
					t.Errorf("sim record fault %q, want %q", rec.Fault, tt.fault)
				}
			}
			if tt.check != nil {
				tt.check(t, pe, obs)
			}
			if tt.kind == KindTimeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%v is not context.DeadlineExceeded", err)
			}
			t.Log(err)
		})
	}
}
