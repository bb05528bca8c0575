package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// httpHarness is a daemon with its HTTP endpoint on a loopback port and a
// Unix socket, on the simulator.
type httpHarness struct {
	*harness
	base   string // http://127.0.0.1:PORT/v1
	token  string
	socket string // the endpoint's Unix socket
	openai *openai.Client
}

const httpBackends = `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"
models = ["gpt-4o-mini", "gpt-4o"]

[[backend]]
name = "b"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_B"
models = ["gpt-4o-mini", "gpt-4o"]

[[backend]]
name = "az"
type = "azure"
base_url = "{{URL}}"
api_key_env = "KEY_AZURE"
model_map = { "gpt-4.1-mini" = "my-41-mini" }
`

func startHTTP(t *testing.T, opts sim.Options, cfgText string) *httpHarness {
	t.Helper()
	opts.Deployments = map[string]string{"my-41-mini": "gpt-4.1-mini"}
	opts.Accounts = append(opts.Accounts, sim.Account{Name: "az", Key: keyAzure})
	state := t.TempDir()
	t.Setenv("STATE_DIRECTORY", state)
	return startHTTPWith(t, sim.New(opts), state, cfgText)
}

// startHTTPWith is startHTTP on the simulator s, with state the daemon's
// state directory ($STATE_DIRECTORY, which the caller set).
func startHTTPWith(t *testing.T, s *sim.Server, state, cfgText string) *httpHarness {
	t.Helper()
	return startHTTPHandler(t, s, s, state, cfgText)
}

// startHTTPHandler is startHTTPWith with upstream requests going to up
// (which may pass them on to s).
func startHTTPHandler(t *testing.T, s *sim.Server, up http.Handler, state, cfgText string) *httpHarness {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "http.sock")
	cfgText = strings.Replace(cfgText, "version = 1\n", "version = 1\n[http]\nlisten = \"127.0.0.1:0\"\nsocket = \""+sock+"\"\n", 1)
	h := startHandler(t, s, up, cfgText)
	addr := h.daemon.HTTPAddr()
	if addr == "" {
		t.Fatal("no HTTP listener")
	}
	b, err := os.ReadFile(filepath.Join(state, rpc.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(state, rpc.TokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %04o, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(b))
	cfg := openai.DefaultConfig(token)
	cfg.BaseURL = "http://" + addr + "/v1"
	hh := &httpHarness{harness: h, base: cfg.BaseURL, token: token, socket: sock, openai: openai.NewClientWithConfig(cfg)}
	t.Cleanup(func() {
		if strings.Contains(h.logs.String(), token) {
			t.Errorf("daemon log contains the HTTP token")
		}
	})
	return hh
}

// do makes a raw request to the endpoint; token "" sends none.
func (h *httpHarness) do(t *testing.T, method, path, token, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, strings.TrimSuffix(h.base, "/v1")+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// openAIError is the error object of OpenAI's error responses, with
// lbgpt's own account of the failure.
type openAIError struct {
	Message string         `json:"message"`
	Type    string         `json:"type"`
	Param   any            `json:"param"`
	Code    any            `json:"code"`
	Lbgpt   *rpc.ErrorData `json:"lbgpt"`
}

// openAIErrorBody decodes OpenAI's error shape, failing the test when the
// body is not in it.
func openAIErrorBody(t *testing.T, resp *http.Response) openAIError {
	t.Helper()
	var body struct {
		Error *openAIError `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || body.Error == nil || body.Error.Message == "" || body.Error.Type == "" {
		t.Fatalf("status %d, body %s is not an OpenAI error", resp.StatusCode, b)
	}
	return *body.Error
}

func oaiRequest(model, prompt string) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{Model: model, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: prompt}}}
}

func TestHTTPChatWithGoOpenAI(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	resp, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "What is a load balancer?"))
	if err != nil {
		t.Fatalf("CreateChatCompletion: %v", err)
	}
	if len(resp.Choices) != 1 || !strings.Contains(resp.Choices[0].Message.Content, "What is a load balancer") || resp.Usage.TotalTokens == 0 {
		t.Errorf("response = %+v", resp)
	}
	hd := resp.Header()
	if b := hd.Get(rpc.HeaderBackend); b != "a" && b != "b" {
		t.Errorf("%s = %q", rpc.HeaderBackend, b)
	}
	if hd.Get(rpc.HeaderAttempts) != "1" || hd.Get(rpc.HeaderCache) != rpc.CacheMiss || hd.Get(rpc.HeaderModel) != "gpt-4o-mini" || hd.Get(rpc.HeaderDaemonUS) == "" {
		t.Errorf("metadata headers = %v", hd)
	}
	wantCost := float64(resp.Usage.PromptTokens)*miniInput + float64(resp.Usage.CompletionTokens)*miniOutput
	if cost, err := strconv.ParseFloat(hd.Get(rpc.HeaderCost), 64); err != nil || !near(cost, wantCost) {
		t.Errorf("%s = %q, want %v", rpc.HeaderCost, hd.Get(rpc.HeaderCost), wantCost)
	}
	// The Azure backend, through its deployment.
	resp, err = h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4.1-mini", "And on Azure?"))
	if err != nil {
		t.Fatalf("CreateChatCompletion: %v", err)
	}
	if hd := resp.Header(); hd.Get(rpc.HeaderBackend) != "az" || hd.Get(rpc.HeaderModel) != "my-41-mini" {
		t.Errorf("azure metadata headers = %v", hd)
	}
}

func TestHTTPChatStreamWithGoOpenAI(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	for _, usage := range []bool{false, true} {
		req := oaiRequest("gpt-4o", "Stream me an answer")
		req.Stream = true
		if usage {
			req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		}
		s, err := h.openai.CreateChatCompletionStream(t.Context(), req)
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		var text strings.Builder
		var chunks []openai.ChatCompletionStreamResponse
		for {
			c, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			chunks = append(chunks, c)
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
		s.Close()
		if len(chunks) < 3 || !strings.Contains(text.String(), "Stream me an answer") {
			t.Fatalf("usage %v: %d chunks, text %q", usage, len(chunks), text.String())
		}
		last := chunks[len(chunks)-1]
		if usage {
			if len(last.Choices) != 0 || last.Usage == nil || last.Usage.CompletionTokens == 0 {
				t.Errorf("last chunk %+v is not the usage chunk", last)
			}
		} else {
			for _, c := range chunks {
				if c.Usage != nil || len(c.Choices) == 0 {
					t.Errorf("chunk %+v: usage sent though not asked for", c)
				}
			}
		}
		if last := chunks[len(chunks)-1-map[bool]int{false: 0, true: 1}[usage]]; last.Choices[0].FinishReason != openai.FinishReasonStop {
			t.Errorf("last content chunk %+v has no finish reason", last)
		}
		for _, c := range chunks {
			if c.Object != "chat.completion.chunk" || c.ID == "" || c.Model == "" {
				t.Errorf("chunk %+v lacks OpenAI's fields", c)
			}
		}
	}
}

// TestHTTPStreamFraming reads the raw event stream: OpenAI's framing, the
// metadata comment and trailers.
func TestHTTPStreamFraming(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	resp := h.do(t, "POST", "/v1/chat/completions", h.token,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"frame it"}],"stream":true,"stream_options":{"include_usage":true}}`, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if events[len(events)-1] != "data: [DONE]" {
		t.Errorf("last event %q, want data: [DONE]", events[len(events)-1])
	}
	meta := events[len(events)-2]
	var m rpc.Meta
	if js, ok := strings.CutPrefix(meta, ": lbgpt "); !ok || json.Unmarshal([]byte(js), &m) != nil || !m.Streamed || m.Backend == "" {
		t.Errorf("metadata comment %q", meta)
	}
	for _, ev := range events[:len(events)-2] {
		js, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(js, "\n") || !json.Valid([]byte(js)) {
			t.Errorf("event %q is not one data line of JSON", ev)
		}
	}
	if resp.Trailer.Get(rpc.HeaderBackend) != m.Backend || resp.Trailer.Get(rpc.HeaderAttempts) != "1" {
		t.Errorf("trailers = %v, want the backend %q", resp.Trailer, m.Backend)
	}
}

func TestHTTPModels(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	list, err := h.openai.ListModels(t.Context())
	if err != nil {
		t.Fatalf("ListModels: %v", err)
	}
	var ids []string
	for _, m := range list.Models {
		ids = append(ids, m.ID)
		if m.Object != "model" || m.OwnedBy == "" || m.CreatedAt == 0 {
			t.Errorf("model %+v", m)
		}
	}
	if strings.Join(ids, ",") != "gpt-4.1-mini,gpt-4o,gpt-4o-mini" {
		t.Errorf("models = %v, want backend b's models and az's model_map keys", ids)
	}
	if m, err := h.openai.GetModel(t.Context(), "gpt-4.1-mini"); err != nil || m.ID != "gpt-4.1-mini" {
		t.Errorf("GetModel = %+v, %v", m, err)
	}
	_, err = h.openai.GetModel(t.Context(), "o3")
	var ae *openai.APIError
	if !errors.As(err, &ae) || ae.HTTPStatusCode != 404 || ae.Code != "model_not_found" {
		t.Errorf("GetModel(o3) = %v, want a 404 model_not_found", err)
	}
}

func TestHTTPErrorsWithGoOpenAI(t *testing.T) {
	rate := accounts(sim.Faults{})
	rate.Accounts[0].RPM, rate.Accounts[1].RPM = 1, 1
	h := startHTTP(t, rate, httpBackends+noCache) // repeats must reach the limits
	tests := []struct {
		name   string
		req    openai.ChatCompletionRequest
		status int
		typ    string
		code   string // "": null
		param  string
	}{
		{"unknown model", oaiRequest("gpt-nonexistent", "hi"), 404, "invalid_request_error", "model_not_found", ""},
		{"no messages", openai.ChatCompletionRequest{Model: "gpt-4o-mini"}, 400, "invalid_request_error", "", "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.openai.CreateChatCompletion(t.Context(), tt.req)
			var ae *openai.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want an *openai.APIError", err)
			}
			if ae.HTTPStatusCode != tt.status || ae.Type != tt.typ || (tt.code != "" && ae.Code != tt.code) || (tt.param != "" && (ae.Param == nil || *ae.Param != tt.param)) {
				t.Errorf("error = %#v (param %v)", ae, ae.Param)
			}
		})
	}

	t.Run("rate limited", func(t *testing.T) {
		// Both accounts allow one request a minute: the third request
		// meets 429s on both and the deadline passes.
		for range 2 {
			if _, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "use the minute up")); err != nil {
				t.Fatal(err)
			}
		}
		resp := h.do(t, "POST", "/v1/chat/completions", h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"one more"}]}`,
			map[string]string{rpc.HeaderTimeout: "0.3"})
		e := openAIErrorBody(t, resp)
		if resp.StatusCode != 429 || e.Type != "rate_limit_error" || e.Code != "rate_limit_exceeded" || e.Lbgpt == nil || e.Lbgpt.Kind != "rate_limited" {
			t.Errorf("status %d, error %+v", resp.StatusCode, e)
		}
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After = %q", ra)
		}
	})

	t.Run("bad option header", func(t *testing.T) {
		resp := h.do(t, "POST", "/v1/chat/completions", h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{rpc.HeaderNoCache: "maybe", rpc.HeaderSemantic: "fuzzy"})
		e := openAIErrorBody(t, resp)
		if resp.StatusCode != 400 || !strings.Contains(e.Message, rpc.HeaderNoCache) || !strings.Contains(e.Message, rpc.HeaderSemantic) {
			t.Errorf("status %d, error %+v", resp.StatusCode, e)
		}
		resp = h.do(t, "POST", "/v1/chat/completions", h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}`,
			map[string]string{rpc.HeaderTimeout: "soon"})
		want := `X-Lbgpt-Timeout: want seconds (30) or a duration string (30s), not negative, not "soon"`
		if e := openAIErrorBody(t, resp); resp.StatusCode != 400 || !strings.Contains(e.Message, want) {
			t.Errorf("status %d, error %+v, want the message to say %s", resp.StatusCode, e, want)
		}
	})
	t.Run("a field lbgpt reads, of the wrong type", func(t *testing.T) {
		resp := h.do(t, "POST", "/v1/chat/completions", h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, nil)
		if e := openAIErrorBody(t, resp); resp.StatusCode != 400 || e.Param != "stream" {
			t.Errorf("status %d, error %+v", resp.StatusCode, e)
		}
	})
	t.Run("not json", func(t *testing.T) {
		resp := h.do(t, "POST", "/v1/chat/completions", h.token, `{"model":`, nil)
		if openAIErrorBody(t, resp); resp.StatusCode != 400 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("unknown route", func(t *testing.T) {
		resp := h.do(t, "GET", "/v1/files", h.token, ``, nil)
		if e := openAIErrorBody(t, resp); resp.StatusCode != 404 || e.Code != "unknown_url" {
			t.Errorf("status %d, error %+v", resp.StatusCode, e)
		}
	})
	t.Run("other route without a model", func(t *testing.T) {
		resp := h.do(t, "POST", "/v1/files", h.token, `{"purpose":"batch"}`, nil)
		if e := openAIErrorBody(t, resp); resp.StatusCode != 400 || e.Param != "model" || !strings.Contains(e.Message, "only when it names a model") {
			t.Errorf("status %d, error %+v", resp.StatusCode, e)
		}
	})
}

// TestHTTPUpstreamAuthIsNotTheCallersProblem: a refused upstream key must
// not read as the caller's token being wrong.
func TestHTTPUpstreamAuthIsNotTheCallersProblem(t *testing.T) {
	opts := sim.Options{Accounts: []sim.Account{{Name: "a", Key: "sk-test-some-other-key-entirely"}}}
	h := startHTTP(t, opts, strings.Split(twoBackends, "\n[[backend]]\nname = \"b\"")[0])
	_, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "hi"))
	var ae *openai.APIError
	if !errors.As(err, &ae) || ae.HTTPStatusCode != 502 || ae.Code != "upstream_auth_failed" {
		t.Fatalf("err = %v, want a 502 upstream_auth_failed", err)
	}
	if strings.Contains(err.Error(), keyA) {
		t.Error("the error names the upstream key")
	}
}

func TestHTTPToken(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	for _, path := range []string{"/v1/models", "/metrics", "/v1/chat/completions", "/nowhere"} {
		for name, token := range map[string]string{"missing": "", "wrong": "lbgpt-wrong", "prefix": h.token[:len(h.token)-1], "longer": h.token + "x"} {
			method := "GET"
			if strings.HasSuffix(path, "completions") {
				method = "POST"
			}
			resp := h.do(t, method, path, token, `{}`, nil)
			if e := openAIErrorBody(t, resp); resp.StatusCode != 401 || e.Code != "invalid_api_key" || strings.Contains(e.Message, h.token) {
				t.Errorf("%s %s, %s token: status %d, error %+v", method, path, name, resp.StatusCode, e)
			}
		}
	}
	// go-openai with a wrong key.
	cfg := openai.DefaultConfig("sk-wrong")
	cfg.BaseURL = h.base
	_, err := openai.NewClientWithConfig(cfg).ListModels(t.Context())
	var ae *openai.APIError
	if !errors.As(err, &ae) || ae.HTTPStatusCode != 401 {
		t.Errorf("ListModels with a wrong key: %v, want a 401", err)
	}
	if resp := h.do(t, "GET", "/healthz", "", "", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz without a token: %d", resp.StatusCode)
	}
	if len(h.sim.Log()) != 0 {
		t.Errorf("unauthenticated requests reached the upstream: %d", len(h.sim.Log()))
	}
}

func TestHTTPUnixSocketNeedsNoToken(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = "http://lbgpt/v1"
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", h.socket)
	}}}
	resp, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "over the socket"))
	if err != nil || !strings.Contains(resp.Choices[0].Message.Content, "over the socket") {
		t.Fatalf("chat over the Unix socket: %+v, %v", resp, err)
	}
	if fi, err := os.Stat(h.socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %v, %v: want mode 0600", fi, err)
	}
	h.stop()
	if _, err := os.Stat(h.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after stop: %v", err)
	}
}

func TestHTTPMetrics(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends+noCache) // three identical requests, three upstream calls
	for range 3 {
		if _, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4.1-mini", "count me")); err != nil {
			t.Fatal(err)
		}
	}
	resp := h.do(t, "GET", "/metrics", h.token, "", nil)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name, backend string) float64 {
		t.Helper()
		f := fams[name]
		if f == nil {
			t.Fatalf("no family %s", name)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "backend" && l.GetValue() == backend {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue()
					case m.Gauge != nil:
						return m.Gauge.GetValue()
					case m.Histogram != nil:
						return float64(m.Histogram.GetSampleCount())
					}
				}
			}
		}
		t.Fatalf("%s has no sample for backend %q", name, backend)
		return 0
	}
	if v := value("lbgpt_backend_requests_total", "az"); v != 3 {
		t.Errorf("requests of az = %v, want 3", v)
	}
	if v := value("lbgpt_backend_tokens_total", "az"); v == 0 {
		t.Error("no tokens counted")
	}
	if v := value("lbgpt_request_duration_seconds", "az"); v != 3 {
		t.Errorf("latency histogram of az counts %v, want 3", v)
	}
	if v := value("lbgpt_upstream_duration_seconds", "a"); v != 0 {
		t.Errorf("latency histogram of a counts %v, want 0", v)
	}
	for _, name := range []string{"lbgpt_backend_rate_limited_total", "lbgpt_backend_retries_total", "lbgpt_backend_in_flight"} {
		value(name, "b")
	}
	if f := fams["lbgpt_backend_state"]; f == nil || len(f.Metric) != 3*5 /* ok, saturated, cooling, down, dead_key */ {
		t.Errorf("lbgpt_backend_state = %v", f)
	}
	if _, ok := fams["lbgpt_cache_hits_total"]; ok {
		t.Error("cache families without a cache")
	}
}

// TestHTTPClientGoesAway: a client that drops a stream cancels the
// upstream call, and the daemon keeps serving.
func TestHTTPClientGoesAway(t *testing.T) {
	opts := accounts(sim.Faults{})
	opts.Accounts[0].PerToken, opts.Accounts[1].PerToken = 50e6, 50e6 // 50 ms a token
	h := startHTTP(t, opts, httpBackends)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", h.base+"/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a long answer please"}],"stream":true}`))
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	waitFor(t, func() bool {
		st := h.daemon.snapshot()
		return st.Backends[0].InFlight+st.Backends[1].InFlight == 0
	})
	if _, err := h.openai.CreateChatCompletion(t.Context(), oaiRequest("gpt-4o-mini", "still there?")); err != nil {
		t.Fatalf("after a dropped stream: %v", err)
	}
}

// TestHTTPShutdownTellsClients: a request still in flight when lbgptd's
// drain ends gets OpenAI's 503 with code shutting_down, not a dropped
// connection.
func TestHTTPShutdownTellsClients(t *testing.T) {
	opts := accounts(sim.Faults{})
	opts.Accounts[0].TTFT, opts.Accounts[1].TTFT = 30e9, 30e9 // 30 s before the first token
	h := startHTTP(t, opts, strings.Replace(httpBackends, "version = 1\n", "version = 1\n[daemon]\ndrain_timeout = \"200ms\"\n", 1))
	errc := make(chan error, 1)
	go func() {
		_, err := h.openai.CreateChatCompletion(context.Background(), oaiRequest("gpt-4o-mini", "slow"))
		errc <- err
	}()
	waitFor(t, func() bool {
		return len(h.sim.Log()) > 0 || h.daemon.snapshot().Backends[0].InFlight+h.daemon.snapshot().Backends[1].InFlight > 0
	})
	h.stop()
	err := <-errc
	var ae *openai.APIError
	if !errors.As(err, &ae) || ae.HTTPStatusCode != 503 || ae.Code != "shutting_down" {
		t.Errorf("err = %v, want a 503 shutting_down", err)
	}
}
