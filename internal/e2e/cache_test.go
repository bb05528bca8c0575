package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCacheCommands: a repeat is answered from the cache, and lbgpt cache
// stats, forget, purge and compact work against the real daemon.
func TestCacheCommands(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	socket := filepath.Join(t.TempDir(), "d.sock")
	background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)
	lbgpt := func(args ...string) result {
		// The socket flag right after the command: flags end at the prompt.
		n := 1
		if args[0] == "cache" {
			n = 2
		}
		full := append(append(append([]string{}, args[:n]...), "--socket", socket), args[n:]...)
		return run(t, env, "", "lbgpt", full...)
	}
	ask := func(args ...string) (cache, entry string) {
		t.Helper()
		r := lbgpt(append([]string{"ask", "--json"}, args...)...)
		var res struct {
			Lbgpt struct {
				Cache      string `json:"cache"`
				CacheEntry string `json:"cache_entry"`
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("ask %v: code %d %v\n%s", args, r.code, err, r.stderr)
		}
		return res.Lbgpt.Cache, res.Lbgpt.CacheEntry
	}

	if c, _ := ask("What is a cache?"); c != "miss" {
		t.Fatalf("first ask: %s", c)
	}
	c, entry := ask("What is a cache?")
	if c != "exact" || entry == "" {
		t.Fatalf("repeat: cache %s entry %q, want an exact hit", c, entry)
	}
	if c, _ := ask("--no-cache", "What is a cache?"); c != "miss" {
		t.Errorf("--no-cache: %s", c)
	}
	if c, _ := ask("--namespace", "other", "What is a cache?"); c != "miss" {
		t.Errorf("--namespace other: %s", c)
	}
	if c, _ := ask("--no-store", "Never stored"); c != "miss" {
		t.Errorf("--no-store: %s", c)
	}
	if c, _ := ask("Never stored"); c != "miss" {
		t.Errorf("after --no-store: %s, want a miss", c)
	}
	if r := lbgpt("ask", "--semantic", "fuzzy", "x"); r.code != 2 {
		t.Errorf("--semantic fuzzy: code %d", r.code)
	}

	r := lbgpt("cache", "stats")
	if r.code != 0 || !regexp.MustCompile(`entries\s+3 exact`).MatchString(r.stdout) || !regexp.MustCompile(`hits\s+1 exact`).MatchString(r.stdout) {
		t.Errorf("cache stats: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := lbgpt("cache", "forget", entry); r.code != 0 || !strings.Contains(r.stdout, "forgotten") {
		t.Errorf("cache forget: code %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := lbgpt("cache", "forget", entry); r.code != 1 {
		t.Errorf("cache forget twice: code %d, want 1", r.code)
	}
	if r := lbgpt("cache", "purge", "--namespace", "other"); r.code != 0 || !strings.Contains(r.stdout, "removed 1 entry") {
		t.Errorf("cache purge --namespace: %s%s", r.stdout, r.stderr)
	}
	if r := lbgpt("cache", "purge", "--older-than", "7d"); r.code != 0 || !strings.Contains(r.stdout, "removed 0 entries") {
		t.Errorf("cache purge --older-than 7d: %s%s", r.stdout, r.stderr)
	}
	if r := lbgpt("cache", "compact"); r.code != 0 || !strings.Contains(r.stdout, "compacted:") {
		t.Errorf("cache compact: %s%s", r.stdout, r.stderr)
	}
	if r := lbgpt("cache", "purge"); r.code != 0 || !strings.Contains(r.stdout, "removed 1 entry") {
		t.Errorf("cache purge: %s%s", r.stdout, r.stderr)
	}
	r = lbgpt("cache", "stats", "--json")
	var st struct {
		Entries int64
		Path    string
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.Entries != 0 {
		t.Errorf("cache stats --json: %v %s", err, r.stdout)
	}
	// The file is where the state directory says, and private.
	if fi, err := os.Stat(st.Path); err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(st.Path, "/state/lbgpt/") {
		t.Errorf("cache file %s: %v %v", st.Path, fi, err)
	}
	if r := lbgpt("cache", "frob"); r.code != 2 {
		t.Errorf("cache frob: code %d", r.code)
	}

	// A second daemon on another socket but the same state directory
	// fails clearly instead of sharing the file.
	r = run(t, env, "", "lbgptd", "--config", cfg, "--socket", filepath.Join(t.TempDir(), "second.sock"))
	if r.code == 0 || !strings.Contains(r.stderr, "in use by another process") {
		t.Errorf("second daemon: code %d, stderr %s", r.code, r.stderr)
	}
}
