package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHTTPWithOpenAINode points the official openai npm package at lbgptd's
// HTTP endpoint (internal/e2e/node/openai.test.mjs), on the simulator.
// It needs node and npm; .ci/run installs them.
func TestHTTPWithOpenAINode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: the HTTP endpoint's test with the openai npm package needs node and npm (.ci/run installs them)")
	}
	dir, _ := filepath.Abs("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai")); err != nil {
		cmd := exec.CommandContext(t.Context(), "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfgPath := filepath.Join(t.TempDir(), "lbgpt.toml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `version = 1
[http]
listen = "127.0.0.1:0"

[[backend]]
name = "sim"
type = "openai"
base_url = "%s/v1"
api_key_env = "E2E_KEY"
models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
`, simURL), 0o600)
	socket := filepath.Join(t.TempDir(), "d.sock")
	_, _, daemonLog := background(t, env, "lbgptd", "--config", cfgPath, "--socket", socket)
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

	cmd := exec.CommandContext(t.Context(), node, "--test", "openai.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(env, "LBGPT_BASE_URL=http://"+addr+"/v1", "LBGPT_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("node --test openai.test.mjs: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "# fail 0") || !strings.Contains(string(out), "# skipped 0") {
		t.Errorf("node test output without \"# fail 0\" and \"# skipped 0\":\n%s", out)
	}
	t.Logf("openai npm package against lbgptd:\n%s", out)
	for _, secret := range []string{token, "sk-e2e-secret-key-0001"} {
		if strings.Contains(daemonLog.String(), secret) {
			t.Errorf("daemon log contains a secret:\n%s", daemonLog)
		}
	}
}
