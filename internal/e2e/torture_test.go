//go:build torture

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTortureKill9 kills lbgptd with SIGKILL under load, round after round
// (LBGPT_TORTURE_ROUNDS, default 3): every restart must open the cache file
// cleanly (never set aside as damaged) and serve at once, and the answers
// acknowledged before the kill are read back from the cache — all but those
// still in the write-behind queue (committed every 50 ms), whose share the
// test reports. Run with make torture.
func TestTortureKill9(t *testing.T) {
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("LBGPT_TORTURE_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lbgpt.toml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `version = 1
[http]
listen = "127.0.0.1:0"
[cache]
path = "%s"
[[backend]]
name = "sim"
type = "openai"
base_url = "%s/v1"
api_key_env = "E2E_KEY"
max_concurrent = 64
`, filepath.Join(dir, "cache.db"), simURL), 0o600)
	socket := filepath.Join(dir, "d.sock")
	token := ""
	var acked []string                 // prompts answered before a kill
	answered := map[string]time.Time{} // when each was last answered
	var killedAt time.Time
	// window is how long before a kill an answer may still be only in the
	// write-behind queue (one commit round, 50 ms, and its fsync), with a
	// margin for a loaded machine.
	const window = 500 * time.Millisecond
	kills, lostTotal := 0, 0
	for round := range rounds + 1 { // the last start only reads back
		cmd, _, log := background(t, env, "lbgptd", "--config", cfgPath, "--socket", socket)
		waitSocket(t, env, socket)
		addr := ""
		for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if m := regexp.MustCompile(`"http endpoint listening" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(log.String()); m != nil {
				addr = m[1]
			}
		}
		if token == "" {
			token = strings.TrimSpace(run(t, env, "", "lbgpt", "token").stdout)
		}
		if strings.Contains(log.String(), "cache file damaged") {
			t.Fatalf("round %d: the cache file was set aside after a kill -9:\n%s", round, log)
		}
		ask := func(ctx context.Context, prompt string) (string, error) {
			body := fmt.Sprintf(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":%q}]}`, prompt)
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			var v map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
				return "", fmt.Errorf("status %d: %v", resp.StatusCode, err)
			}
			return resp.Header.Get("X-Lbgpt-Cache"), nil
		}
		// What earlier rounds acknowledged reads back.
		lost := 0
		for _, p := range acked {
			c, err := ask(t.Context(), p)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			if c != "exact" {
				lost++
				if before := killedAt.Sub(answered[p]); before > window {
					t.Errorf("start %d: an answer given %s before the kill was lost", round, before.Round(time.Millisecond))
				}
				answered[p] = time.Now() // paid again, stored again
			}
		}
		lostTotal += lost
		t.Logf("start %d: %d of %d acknowledged answers read back from the cache; %d lost, all given within %s of the kill", round, len(acked)-lost, len(acked), lost, window)
		if round == rounds {
			break
		}
		// Load, then kill -9 in the middle of it.
		ctx, cancel := context.WithCancel(t.Context())
		var mu sync.Mutex
		var n atomic.Int32
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					p := fmt.Sprintf("round %d worker %d question %d", round, w, i)
					if c, err := ask(ctx, p); err == nil && c != "" {
						mu.Lock()
						acked = append(acked, p)
						answered[p] = time.Now()
						mu.Unlock()
						n.Add(1)
					}
				}
			})
		}
		// Long enough that most answers are older than the window.
		loadStart := time.Now()
		for n.Load() < 200 || time.Since(loadStart) < 3*window {
			time.Sleep(5 * time.Millisecond)
		}
		killedAt = time.Now()
		cmd.Process.Kill()
		kills++
		cancel()
		wg.Wait()
		cmd.Wait()
		os.Remove(socket)
	}
	t.Logf("%d kills under load: every restart clean; %d answers lost from the cache, each given within %s of a kill (the write-behind window), none older", kills, lostTotal, window)
}
