package daemon

import (
	"github.com/lbgpt/lbgpt/internal/syncbuf"

	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// harness is a daemon on a simulator, served on a socket in a temp dir.
type harness struct {
	sim    *sim.Server
	url    string
	socket string
	client *client.Client
	logs   *syncbuf.Buffer
	daemon *Daemon
	stop   func() // stops the daemon (once; also at cleanup)
}

// Keys of the test accounts: no test output may ever contain them.
const (
	keyA     = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaa"
	keyB     = "sk-test-bbbbbbbbbbbbbbbbbbbbbbbb"
	keyAzure = "0123456789abcdef0123456789abcdef"
)

// start runs a daemon whose config is cfgText with {{URL}} replaced by the
// simulator's address.
func start(t testing.TB, opts sim.Options, cfgText string) *harness {
	t.Helper()
	return startWith(t, sim.New(opts), cfgText)
}

func startWith(t testing.TB, s *sim.Server, cfgText string) *harness {
	t.Helper()
	return startHandler(t, s, s, cfgText)
}

// startHandler is startWith with upstream requests going to h (which
// passes them on to s).
func startHandler(t testing.TB, s *sim.Server, h http.Handler, cfgText string) *harness {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(func() { s.Close(); hs.Close() })
	cfg, err := config.Parse([]byte(strings.ReplaceAll(cfgText, "{{URL}}", hs.URL)), "test.toml")
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	env := map[string]string{"KEY_A": keyA, "KEY_B": keyB, "KEY_AZURE": keyAzure}
	if _, err := cfg.Resolve(func(k string) string { return env[k] }); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if cfg.Cache.Path == "" {
		cfg.Cache.Path = filepath.Join(t.TempDir(), "cache.db") // every test its own cache
	}
	logs := &syncbuf.Buffer{}
	// Every test its own state directory (the Responses records): the one
	// it set in $STATE_DIRECTORY, else a new one.
	state := cmp.Or(os.Getenv("STATE_DIRECTORY"), t.TempDir())
	d, err := New(Options{Config: cfg, StateDir: state, Getenv: func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	socket := filepath.Join(t.TempDir(), "lbgptd.sock")
	ln, err := Listen(socket)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	c := &client.Client{Socket: socket}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		c.Close()
		stop()
		for _, secret := range []string{keyA, keyB, keyAzure} {
			if strings.Contains(logs.String(), secret) {
				t.Errorf("daemon log contains an API key:\n%s", logs.String())
			}
		}
	})
	return &harness{sim: s, url: hs.URL, socket: socket, client: c, logs: logs, daemon: d, stop: stop}
}

const twoBackends = `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"

[[backend]]
name = "b"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_B"
`

func accounts(faultsA sim.Faults) sim.Options {
	return sim.Options{Accounts: []sim.Account{
		{Name: "a", Key: keyA, Faults: faultsA},
		{Name: "b", Key: keyB},
	}}
}

func userRequest(model, prompt string) map[string]any {
	return map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": prompt}}}
}

func TestChat(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends)
	res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "What is a load balancer?"), rpc.Options{})
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	text := client.AnswerText(res.Response)
	if !strings.Contains(text, "What is a load balancer") {
		t.Errorf("answer %q does not come from the simulator's echo of the prompt", text)
	}
	if res.Meta.Backend != "a" && res.Meta.Backend != "b" {
		t.Errorf("backend = %q", res.Meta.Backend)
	}
	if res.Meta.Attempts != 1 || res.Meta.Cache != rpc.CacheMiss || res.Meta.Model != "gpt-4o-mini" {
		t.Errorf("meta = %+v", res.Meta)
	}
	var resp struct {
		Object string `json:"object"`
		Usage  struct {
			PromptTokens, CompletionTokens int
		} `json:"usage"`
	}
	if err := json.Unmarshal(res.Response, &resp); err != nil || resp.Object != "chat.completion" {
		t.Fatalf("response %s: %v", res.Response, err)
	}
	if log := h.sim.Log(); len(log) != 1 || log[0].Status != 200 {
		t.Errorf("simulator saw %d requests, want exactly 1 answered: %+v", len(log), log)
	}
}

func TestChatSpreadsByWeight(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), strings.Replace(twoBackends, `api_key_env = "KEY_B"`, "api_key_env = \"KEY_B\"\nweight = 3", 1))
	counts := map[string]int{}
	for i := range 8 {
		res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", fmt.Sprintf("question %d", i)), rpc.Options{})
		if err != nil {
			t.Fatalf("Chat: %v", err)
		}
		counts[res.Meta.Backend]++
	}
	if counts["a"] != 2 || counts["b"] != 6 {
		t.Errorf("8 sequential requests over weights 1:3 went %v, want a:2 b:6", counts)
	}
}

func TestChatStream(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends)
	var text strings.Builder
	var chunks int
	var res *rpc.ChatResult
	for ev, err := range h.client.ChatStream(t.Context(), userRequest("gpt-4o", "Stream me an answer"), rpc.Options{}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if ev.Result != nil {
			res = ev.Result
			continue
		}
		chunks++
		var c struct {
			Choices []json.RawMessage `json:"choices"`
		}
		if err := json.Unmarshal(ev.Chunk, &c); err != nil || len(c.Choices) == 0 {
			t.Errorf("chunk without choices forwarded although usage was not asked for: %s", ev.Chunk)
		}
		text.WriteString(client.DeltaText(ev.Chunk))
	}
	if res == nil {
		t.Fatal("no final result")
	}
	if chunks < 3 {
		t.Errorf("only %d chunks", chunks)
	}
	if got := client.AnswerText(res.Response); got != text.String() || got == "" {
		t.Errorf("assembled answer %q != streamed text %q", got, text.String())
	}
	var resp struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	json.Unmarshal(res.Response, &resp)
	if resp.Usage.CompletionTokens == 0 || len(resp.Choices) != 1 || resp.Choices[0].FinishReason != "stop" {
		t.Errorf("assembled response lacks usage or finish reason: %s", res.Response)
	}
	if !res.Meta.Streamed {
		t.Error("meta.streamed = false")
	}
}

func TestAzureDeployment(t *testing.T) {
	h := start(t, sim.Options{
		Accounts:    []sim.Account{{Name: "az", Key: keyAzure}},
		Deployments: map[string]string{"my-4o-mini": "gpt-4o-mini"},
	}, `version = 1
[[backend]]
name = "az"
type = "azure"
base_url = "{{URL}}"
api_key_env = "KEY_AZURE"
api_version = "2024-10-21"
model_map = { "gpt-4o-mini" = "my-4o-mini" }
`)
	res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "hello azure"), rpc.Options{})
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if res.Meta.Model != "my-4o-mini" || res.Meta.Backend != "az" {
		t.Errorf("meta = %+v", res.Meta)
	}
	log := h.sim.Log()
	if len(log) != 1 || log[0].Wire != "azure" || !strings.Contains(log[0].Path, "/openai/deployments/my-4o-mini/") {
		t.Errorf("simulator log = %+v", log)
	}
	_, err = h.client.Chat(t.Context(), userRequest("gpt-4o", "not mapped"), rpc.Options{})
	if !errors.Is(err, rpc.ErrNotFound) || !strings.Contains(err.Error(), "gpt-4o") {
		t.Errorf("unmapped model: err = %v, want not found naming the model", err)
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name      string
		opts      sim.Options
		wantState string
		wantKind  string
	}{
		{"wrong key", sim.Options{Accounts: []sim.Account{{Name: "b", Key: keyB}}}, rpc.StateDeadKey, "auth"},
		{"server errors", accounts(sim.Faults{Error503: 1}), rpc.StateOK, ""},
		{"connection resets", accounts(sim.Faults{Reset: 1}), rpc.StateOK, ""},
		// a's one request a minute is learnt from the simulator's headers:
		// the daemon never sends it a second one, so it never sees a 429.
		{"limit learnt from headers", sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, RPM: 1}, {Name: "b", Key: keyB}}}, rpc.StateSaturated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, tt.opts, twoBackends)
			if tt.wantState == rpc.StateSaturated { // spend a's only request
				if _, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "first"), rpc.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 4 {
				res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", fmt.Sprintf("q%d", i)), rpc.Options{})
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if res.Meta.Backend != "b" {
					t.Errorf("request %d answered by %s, want b", i, res.Meta.Backend)
				}
			}
			st, err := h.client.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Backends[0].State; got != tt.wantState {
				t.Errorf("backend a state = %s, want %s", got, tt.wantState)
			}
			if n := h.sim.Stats()["a"].RateLimited; n != 0 {
				t.Errorf("a answered %d requests with 429", n)
			}
		})
	}
}

// A 200 whose body is unusable was charged: it fails, naming why, and is
// never sent again (it used to be retried elsewhere, and paid twice).
func TestMalformedAnswerNotPaidTwice(t *testing.T) {
	h := start(t, accounts(sim.Faults{Malformed: 1}), strings.Replace(twoBackends, "api_key_env = \"KEY_B\"", "api_key_env = \"KEY_B\"\npriority = 1", 1)+"[balance]\nstrategy = \"priority\"\n")
	_, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "malformed"), rpc.Options{})
	if !errors.Is(err, rpc.ErrUnavailable) || !strings.Contains(err.Error(), "charged") {
		t.Errorf("err = %v, want unavailable saying it was charged", err)
	}
	if n := chatCalls(h); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// TestRetryAfterHonoured: another client spends a's requests behind the
// daemon's back, so the daemon meets a 429. It then sends nothing to a until
// the Retry-After has passed and serves everything from b.
func TestRetryAfterHonoured(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, RPM: 2}, {Name: "b", Key: keyB}}},
		strings.Replace(twoBackends, "api_key_env = \"KEY_B\"", "api_key_env = \"KEY_B\"\npriority = 1", 1)+"[balance]\nstrategy = \"priority\"\n")
	for range 2 { // the other client
		req, _ := http.NewRequest("POST", h.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"elsewhere"}]}`))
		req.Header.Set("Authorization", "Bearer "+keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("direct request: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	for i := range 6 {
		res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", fmt.Sprintf("q%d", i)), rpc.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Meta.Backend != "b" {
			t.Errorf("request %d went to %s", i, res.Meta.Backend)
		}
	}
	var toA []sim.Record
	for _, r := range h.sim.Log() {
		if r.Account == "a" {
			toA = append(toA, r)
		}
	}
	if len(toA) != 3 || toA[2].Status != 429 {
		t.Errorf("a saw %d requests, want the 2 direct ones and one 429: %+v", len(toA), toA)
	}
	st, _ := h.client.Status(t.Context())
	if a := st.Backends[0]; a.State != rpc.StateCooling || time.Until(a.CooldownUntil) < 20*time.Second || a.Status429 != 1 {
		t.Errorf("a = %+v, want cooling for the ~30s Retry-After", a)
	}
}

func TestErrors(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{
		{Name: "a", Key: keyA, Faults: sim.Faults{Hang: 1}},
		{Name: "b", Key: keyB, Faults: sim.Faults{Hang: 1}},
	}}, strings.ReplaceAll(twoBackends, "type = \"openai\"", "type = \"openai\"\nmodels = [\"gpt-4o-mini\", \"gpt-4o\"]"))
	tests := []struct {
		name string
		req  any
		opts rpc.Options
		want error
		msg  string
	}{
		{"no backend serves the model", userRequest("claude-9", "hi"), rpc.Options{}, rpc.ErrNotFound, `no backend serves model "claude-9" (backends: a, b)`},
		{"no model", map[string]any{"messages": []any{map[string]string{"role": "user", "content": "x"}}}, rpc.Options{}, rpc.ErrInvalidParams, "model is required"},
		{"a field lbgpt reads, of the wrong type", map[string]any{"model": "gpt-4o-mini", "messages": "hello"}, rpc.Options{}, rpc.ErrInvalidParams, `"messages"`},
		{"deadline", userRequest("gpt-4o-mini", "hang"), rpc.Options{Timeout: rpc.Duration(300 * time.Millisecond)}, rpc.ErrTimeout, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.Chat(t.Context(), tt.req, tt.opts)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
		})
	}
}

func TestCancelStopsUpstreamCall(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, Faults: sim.Faults{Hang: 1}}}}, `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"
`)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Chat(ctx, userRequest("gpt-4o-mini", "hang"), rpc.Options{})
		errc <- err
	}()
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, rpc.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want canceled", err)
	}
	// The cancel notification reaches the daemon, which abandons the
	// upstream call and frees the backend's slot.
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 0 })
}

// waitFor polls cond: the daemon's state changes on other goroutines.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawConn speaks to the daemon byte by byte, as a socat user would.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t *testing.T, socket string) *rawConn {
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<20)}
}

func (c *rawConn) send(line string) map[string]any {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatal(err)
	}
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("no reply to %.80q: %v", line, err)
	}
	var m map[string]any
	if err := json.Unmarshal(reply, &m); err != nil {
		c.t.Fatalf("reply is not JSON: %s", reply)
	}
	return m
}

func errorCode(m map[string]any) int {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(float64)
	return int(code)
}

func TestBadInputKeepsServing(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends+"\n[daemon]\nmax_message_bytes = 4096\n")
	c := dialRaw(t, h.socket)
	tests := []struct {
		name string
		line string
		code int
	}{
		{"not JSON", `{"jsonrpc":"2.0","id":1,"method":`, rpc.CodeParseError},
		{"not UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":\"\xff\xfe\",\"method\":\"status\"}", rpc.CodeParseError},
		{"not a request", `{"jsonrpc":"2.0","id":7}`, rpc.CodeInvalidRequest},
		{"a string", `"hello"`, rpc.CodeInvalidRequest},
		{"a number", ` 42 `, rpc.CodeInvalidRequest},
		{"null", `null`, rpc.CodeInvalidRequest},
		{"a null id (it would run and never be answered)", `{"jsonrpc":"2.0","id":null,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}}}`, rpc.CodeInvalidRequest},
		{"unknown method", `{"jsonrpc":"2.0","id":2,"method":"chat.completions"}`, rpc.CodeMethodNotFound},
		{"params of the wrong type", `{"jsonrpc":"2.0","id":3,"method":"chat","params":{"request":"hello"}}`, rpc.CodeInvalidParams},
		{"unknown params field", `{"jsonrpc":"2.0","id":4,"method":"chat","params":{"reqest":{}}}`, rpc.CodeInvalidParams},
		{"bad timeout", `{"jsonrpc":"2.0","id":5,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]},"options":{"timeout":"soon"}}}`, rpc.CodeInvalidParams},
		{"negative timeout", `{"jsonrpc":"2.0","id":8,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]},"options":{"timeout":-1}}}`, rpc.CodeInvalidParams},
		{"bad semantic option", `{"jsonrpc":"2.0","id":9,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]},"options":{"semantic":"fuzzy"}}}`, rpc.CodeInvalidParams},
		{"negative cache ttl", `{"jsonrpc":"2.0","id":10,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]},"options":{"cache_ttl":-1}}}`, rpc.CodeInvalidParams},
		{"line too long", `{"jsonrpc":"2.0","id":6,"method":"status","params":"` + strings.Repeat("x", 5000) + `"}`, rpc.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := c.send(tt.line)
			if got := errorCode(reply); got != tt.code {
				t.Errorf("code = %d, want %d", got, tt.code)
			}
			if e, _ := reply["error"].(map[string]any); e != nil && e["data"] != nil {
				if _, ok := e["data"].(map[string]any); !ok {
					t.Errorf("error data %v is not an object", e["data"])
				}
			}
			if strings.Contains(tt.name, "timeout") {
				e, _ := reply["error"].(map[string]any)
				data, _ := e["data"].(map[string]any)
				if data["field"] != "options.timeout" || !strings.Contains(fmt.Sprint(e["message"]), `"options.timeout"`) {
					t.Errorf("a bad duration's error does not name its field: %v", e)
				}
			}
			// An option's error names it as it is in the params, as a
			// decoding error does (options.timeout above).
			if want := map[string]string{"bad semantic option": "options.semantic", "negative cache ttl": "options.cache_ttl"}[tt.name]; want != "" {
				e, _ := reply["error"].(map[string]any)
				if data, _ := e["data"].(map[string]any); data["field"] != want {
					t.Errorf("error %v: field is not %q", e, want)
				}
			}
			if tt.code == rpc.CodeMethodNotFound && !strings.Contains(fmt.Sprint(reply["error"]), "chat, ") {
				t.Errorf("unknown method: %v does not name the methods there are", reply["error"])
			}
			if strings.Contains(tt.name, "null id") && chatCalls(h) != 0 {
				t.Errorf("a request with a null id went upstream")
			}
			if tt.code == rpc.CodeTooLarge && reply["id"] != float64(6) {
				t.Errorf("too-long line answered with id %v, want the request's 6", reply["id"])
			}
			// The same connection still serves the next request.
			reply = c.send(`{"jsonrpc":"2.0","id":"next","method":"status"}`)
			if reply["id"] != "next" || reply["result"] == nil {
				t.Errorf("status after bad input: %v", reply)
			}
		})
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "sub", "lbgptd.sock")
	ln, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{filepath.Dir(socket): 0o700, socket: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode = %o, want %o", filepath.Base(path), got, want)
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(socket); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Listen on a live socket: err = %v, want ErrAlreadyRunning", err)
	}
	// A daemon that died leaves its socket file behind.
	ln.(*ownedSocket).UnixListener.Close()
	if _, err := os.Stat(socket); err != nil {
		t.Fatalf("stale socket file should still exist: %v", err)
	}
	ln2, err := Listen(socket)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
	if _, err := os.Stat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket outlived its listener: %v", err)
	}
	// A socket that another daemon has put at the path since is not
	// removed with this one.
	ln3, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(socket)
	ln4, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	ln3.Close()
	if _, err := os.Stat(socket); err != nil {
		t.Errorf("closing a socket removed its successor's path: %v", err)
	}
	ln4.Close()

	notSocket := filepath.Join(dir, "file")
	os.WriteFile(notSocket, []byte("x"), 0o600)
	if _, err := Listen(notSocket); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: err = %v", err)
	}
}

func TestSecretsNeverLeave(t *testing.T) {
	// b's key is wrong, so the simulator answers 401 to it: the error, the
	// status, the results and the logs must not carry either key.
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, twoBackends)
	var out bytes.Buffer
	for i := range 4 {
		res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", fmt.Sprintf("q%d", i)), rpc.Options{})
		if err != nil {
			t.Fatal(err)
		}
		json.NewEncoder(&out).Encode(res)
	}
	st, _ := h.client.Status(t.Context())
	json.NewEncoder(&out).Encode(st)
	h2 := start(t, sim.Options{Accounts: []sim.Account{{Name: "x", Key: "sk-other"}}}, twoBackends)
	_, err := h2.client.Chat(t.Context(), userRequest("gpt-4o-mini", "q"), rpc.Options{})
	if !errors.Is(err, rpc.ErrAuth) {
		t.Errorf("all keys refused: err = %v, want ErrAuth", err)
	}
	fmt.Fprintln(&out, err)
	for _, secret := range []string{keyA, keyB} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output contains an API key:\n%s", out.String())
		}
	}
}
