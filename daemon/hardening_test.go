package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// One request no backend's limit can ever admit fails at once, naming the
// numbers, and the small requests around it are served as if it had not
// come (it used to hold the head of the queue, and every refill, until its
// deadline).
func TestOversizedRequestHarmsNobody(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TPM: 3000}}},
		anyModel+"limit_tpm = 3000\n")
	warm := userRequest("gpt-4o-mini", "warm up: the first estimate waits for the tokenizer to load")
	warm["max_tokens"] = 20
	chat(t, h, warm, rpc.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			req := userRequest("gpt-4o-mini", "small request "+strings.Repeat("x", i))
			req["max_tokens"] = 20
			_, err := h.client.Chat(t.Context(), req, rpc.Options{Timeout: rpc.Duration(20 * time.Second)})
			errs <- err
		})
	}
	big := userRequest("gpt-4o-mini", "a huge answer please")
	big["max_tokens"] = 10_000_000
	start := time.Now()
	_, err := h.client.Chat(t.Context(), big, rpc.Options{})
	if !errors.Is(err, rpc.ErrBadRequest) || !strings.Contains(err.Error(), "a: 3000") || time.Since(start) > time.Second {
		t.Errorf("oversized request after %s: %v", time.Since(start), err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a small request failed beside the oversized one: %v", err)
		}
	}
	for _, r := range h.sim.Log() {
		if r.Status == 429 {
			t.Errorf("the upstream answered 429: %+v", r)
		}
	}
}

// A listener that is not a Unix socket (a socket unit with
// ListenStream=127.0.0.1:…) has no peer credentials: every connection on it
// is refused with -32009, never served.
func TestNonUnixPeerRefused(t *testing.T) {
	cfg, err := config.Parse([]byte(strings.ReplaceAll(anyModel, "{{URL}}", "http://127.0.0.1:9")), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolve(func(string) string { return keyA })
	cfg.Cache.Enabled = false
	d, err := New(Options{Config: cfg, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, `{"jsonrpc":"2.0","id":1,"method":"status"}`)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpc.Error      `json:"error"`
	}
	json.Unmarshal([]byte(line), &resp)
	if resp.Error == nil || resp.Error.Code != rpc.CodePermission || resp.Result != nil || !strings.Contains(resp.Error.Message, "Unix sockets only") {
		t.Errorf("a TCP peer got %s", line)
	}
}

// A connection without the token that declares a body it never sends is
// answered 401 and closed at once, not kept reading: strangers' connections
// must not pile up until the daemon runs out of file descriptors.
func TestHTTPUnauthenticatedBodyNotRead(t *testing.T) {
	h := startHTTP(t, accounts(sim.Faults{}), httpBackends)
	c, err := net.Dial("tcp", h.daemon.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{")
	c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	b, err := io.ReadAll(c) // ends when the daemon closes the connection
	if err != nil {
		t.Fatalf("after %s: %v (read %q)", time.Since(start), err, b)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 401") {
		t.Errorf("got %q", b)
	}
}

// A cache file that does not open is set aside and the daemon starts on an
// empty one, saying so in status, rather than crash at every start.
func TestDamagedCacheQuarantined(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cache.db")
	noise := make([]byte, 64<<10)
	for i := range noise {
		noise[i] = byte(i*7 + i/13)
	}
	if err := os.WriteFile(path, noise, 0o600); err != nil {
		t.Fatal(err)
	}
	h := start(t, oneAccount(), anyModel+"\n[cache]\npath = \""+path+"\"\n")
	st, err := h.client.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Cache == nil || !strings.Contains(st.Cache.Quarantined, "set aside as "+path+".damaged-") {
		t.Fatalf("status does not say the cache was set aside: %+v", st.Cache)
	}
	aside, _ := filepath.Glob(path + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("set-aside files: %v", aside)
	}
	if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, noise) {
		t.Error("the damaged file was not kept as it was")
	}
	req := userRequest("gpt-4o-mini", "served after a quarantine")
	req["temperature"] = 0
	chat(t, h, req, rpc.Options{})
	if r := chat(t, h, req, rpc.Options{}); r.Meta.Cache != rpc.CacheExact {
		t.Errorf("the new cache does not work: %s", r.Meta.Cache)
	}
}

// A backend that accepts requests and never answers is routed around: the
// first stream sent there waits the header timeout and moves on, the
// backend rests, and no request waits its deadline.
func TestHangingBackendRoutedAround(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{
		{Name: "a", Key: keyA, Faults: sim.Faults{Hang: 1}},
		{Name: "b", Key: keyB},
	}}, strings.Replace(twoBackends, "version = 1\n", "version = 1\n[balance]\nstrategy = \"weighted\"\nheader_timeout = \"300ms\"\n", 1))
	var worst time.Duration
	for i := range 8 {
		req := userRequest("gpt-4o-mini", fmt.Sprintf("stream %d", i))
		req["stream"] = true
		start := time.Now()
		st, err := streamAll(t, h, req)
		took := time.Since(start)
		worst = max(worst, took)
		if err != nil {
			t.Fatalf("request %d after %s: %v", i, took, err)
		}
		if st.res.Meta.Backend != "b" {
			t.Errorf("request %d answered by %s", i, st.res.Meta.Backend)
		}
	}
	if worst > 5*time.Second {
		t.Errorf("a request waited %s beside a hanging backend (deadline 120s, header timeout 300ms)", worst)
	}
	hung := 0
	for _, r := range h.sim.Log() {
		if r.Account == "a" {
			hung++
		}
	}
	// The first request found it hanging; it then rests 1 s, 2 s, … and a
	// request after each rest tries it once more (more of them under the
	// race detector's slowness).
	if hung < 1 || hung > 3 {
		t.Errorf("%d requests were sent to the hanging backend, want 1 to 3 (then it rests)", hung)
	}
	t.Logf("slowest request %s", worst)
}

// A stream that breaks after its role chunk, before its first content,
// fails over without the client seeing any of it.
func TestStreamBrokenBeforeContentFailsOverInvisibly(t *testing.T) {
	s := sim.New(accounts(sim.Faults{}))
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+keyA {
			s.ServeHTTP(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n")
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	})
	h := startHandler(t, s, up, strings.Replace(twoBackends, "api_key_env = \"KEY_B\"", "api_key_env = \"KEY_B\"\npriority = 1", 1)+"[balance]\nstrategy = \"priority\"\n")
	req := userRequest("gpt-4o-mini", "break before the first token")
	req["stream"] = true
	st, err := streamAll(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.chunks {
		if strings.Contains(string(c), "chatcmpl-broken") {
			t.Errorf("the client saw the broken stream's chunk: %s", c)
		}
	}
	if st.res.Meta.Backend != "b" || st.res.Meta.Attempts != 2 || !strings.Contains(st.text, "break before the first token") {
		t.Errorf("meta %+v, text %q", st.res.Meta, st.text)
	}
}

// An answer acknowledged just before the daemon stops is on disk when it
// starts again: the write-behind queue is committed at close.
func TestAnswerBeforeStopSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	cfg := anyModel + "\n[cache]\npath = \"" + path + "\"\n"
	h := start(t, oneAccount(), cfg)
	req := userRequest("gpt-4o-mini", "remember me across a restart")
	req["temperature"] = 0
	first := chat(t, h, req, rpc.Options{})
	h.stop()
	h = start(t, oneAccount(), cfg)
	again := chat(t, h, req, rpc.Options{})
	if again.Meta.Cache != rpc.CacheExact || !bytes.Equal(again.Response, first.Response) {
		t.Errorf("after a restart: %+v", again.Meta)
	}
}

// The daemon hands each request's token estimate to the pool: a TPM limit
// binds through the daemon (two requests of 400 tokens fit a limit of
// 1000, the third waits for room).
func TestTPMLimitBindsThroughDaemon(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: time.Second}}}, anyModel+"limit_tpm = 1000\n")
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			req := userRequest("gpt-4o-mini", fmt.Sprintf("four hundred tokens at most %d", i))
			req["max_tokens"] = 400
			h.client.Chat(ctx, req, rpc.Options{})
		})
	}
	waitFor(t, func() bool { return h.daemon.pool.QueueLen() == 1 })
	if st := h.daemon.pool.State()[0]; st.InFlight != 2 {
		t.Errorf("%d in flight under a TPM limit of 1000 with 400-token requests, want 2", st.InFlight)
	}
	cancel() // the third would wait about a minute for the refill
	wg.Wait()
}

// Health is learnt from a free probe (the backend's model list), not by
// spending users' requests: a backend that went down is back in service
// once a probe finds it answering, and no request was sent to it meanwhile.
func TestDownBackendProbedForFree(t *testing.T) {
	h := start(t, accounts(sim.Faults{Error503: 1}), strings.Replace(twoBackends, "api_key_env = \"KEY_B\"", "api_key_env = \"KEY_B\"\npriority = 1", 1)+"[balance]\nstrategy = \"priority\"\nbackoff_base = \"1ms\"\nbackoff_max = \"2ms\"\n")
	state := func() string { st, _ := h.client.Status(t.Context()); return st.Backends[0].State }
	for i := 0; state() != rpc.StateDown; i++ {
		if i == 10 {
			t.Fatalf("a is %s after 10 requests to a failing backend", state())
		}
		chat(t, h, userRequest("gpt-4o-mini", fmt.Sprintf("while a fails %d", i)), rpc.Options{NoStore: true})
	}
	chatsTo := func(account string) int {
		n := 0
		for _, r := range h.sim.Log() {
			if r.Account == account && strings.HasSuffix(r.Path, "/chat/completions") {
				n++
			}
		}
		return n
	}
	before := chatsTo("a")
	h.sim.SetFaults("a", sim.Faults{})
	waitFor(t, func() bool { return state() == rpc.StateOK })
	if n := chatsTo("a"); n != before {
		t.Errorf("%d user requests were spent on the down backend to learn it was back", n-before)
	}
	probes := 0
	for _, r := range h.sim.Log() {
		if r.Account == "a" && r.Path == "/v1/models" {
			probes++
		}
	}
	if probes == 0 {
		t.Error("no probe of the model list")
	}
	if r := chat(t, h, userRequest("gpt-4o-mini", "a is back"), rpc.Options{NoStore: true}); r.Meta.Backend != "a" {
		t.Errorf("after the probe, answered by %s, want a (priority)", r.Meta.Backend)
	}
}

// Clients that connect while the daemon stops each get an answer: a
// result, -32010, or a connect that fails at once (no socket any more).
// None is accepted and then reset when the socket closes.
func TestStopAnswersEveryConnect(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, oneBackend)
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
	)
	stopped := make(chan struct{})
	ask := func() string {
		nc, err := net.Dial("unix", h.socket)
		if err != nil {
			if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
				return "refused connect"
			}
			return "dial: " + err.Error()
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(nc, `{"jsonrpc":"2.0","id":1,"method":"status"}`+"\n"); err != nil {
			return "write: " + err.Error()
		}
		line, err := bufio.NewReader(nc).ReadBytes('\n')
		if err != nil {
			return "read: " + err.Error()
		}
		var resp struct {
			Result json.RawMessage `json:"result"`
			Error  *rpc.Error      `json:"error"`
		}
		switch {
		case json.Unmarshal(line, &resp) != nil:
			return "bad line: " + string(line)
		case resp.Error != nil && resp.Error.Code == rpc.CodeShuttingDown:
			return "-32010"
		case resp.Error != nil:
			return fmt.Sprintf("error %d", resp.Error.Code)
		default:
			return "result"
		}
	}
	for range 4 {
		wg.Go(func() {
			for after := 0; after < 20; {
				o := ask()
				mu.Lock()
				outcomes[o]++
				mu.Unlock()
				select {
				case <-stopped:
					after++
				default:
				}
			}
		})
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return outcomes["result"] >= 20 })
	h.stop()
	close(stopped)
	wg.Wait()
	for o, n := range outcomes {
		switch o {
		case "result", "-32010", "refused connect":
		default:
			t.Errorf("%d connections ended %q", n, o)
		}
	}
	if outcomes["refused connect"] == 0 {
		t.Errorf("no connect was refused after the stop: %v", outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}
