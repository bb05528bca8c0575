//go:build torture

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	cfgPath := tortureConfig(t, dir, simURL, filepath.Join(dir, "cache.db"))
	socket := filepath.Join(dir, "d.sock")
	var acked []string                 // prompts answered before a kill
	answered := map[string]time.Time{} // when each was last answered
	var killedAt time.Time
	// window is how long before a kill an answer may still be only in the
	// write-behind queue (one commit round, 50 ms, and its fsync), with a
	// margin for a loaded machine.
	const window = 500 * time.Millisecond
	kills, lostTotal := 0, 0
	for round := range rounds + 1 { // the last start only reads back
		d := startHTTPDaemonAt(t, env, cfgPath, socket)
		cmd, log, ask := d.cmd, d.log, d.ask
		if strings.Contains(log.String(), "cache file damaged") {
			t.Fatalf("round %d: the cache file was set aside after a kill -9:\n%s", round, log)
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

// tortureConfig writes a config in dir: the HTTP endpoint on a loopback
// port, the cache at cachePath, one backend on the simulator at simURL.
func tortureConfig(t *testing.T, dir, simURL, cachePath string) string {
	t.Helper()
	path := filepath.Join(dir, "lbgpt.toml")
	err := os.WriteFile(path, fmt.Appendf(nil, `version = 1
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
`, cachePath, simURL), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// askN sends prompt as a chat request (with n choices, to make the answer
// larger) and returns the answer's X-Lbgpt-Cache header.
func (d *httpDaemon) askN(ctx context.Context, prompt string, n int) (string, error) {
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":96,"n":%d,"messages":[{"role":"user","content":%q}]}`, n, prompt)
	req, _ := http.NewRequestWithContext(ctx, "POST", d.baseURL+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.token)
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

func (d *httpDaemon) ask(ctx context.Context, prompt string) (string, error) {
	return d.askN(ctx, prompt, 1)
}

// rssKB is the resident set of process pid, in KiB.
func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestTortureFullDisk puts the cache file on a small tmpfs and fills it
// under load: every request is still answered, the daemon's memory stays
// bounded while its commits fail, the answers stored before the disk filled
// still read back, and once space is freed the cache stores again and
// keeps what it stored across a restart. Needs root (to mount the tmpfs).
func TestTortureFullDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs (CI runs as root)")
	}
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk")
	os.Mkdir(disk, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", disk).Run() })
	cfgPath := tortureConfig(t, dir, simURL, filepath.Join(disk, "cache.db"))
	socket := filepath.Join(dir, "d.sock")
	d := startHTTPDaemonAt(t, env, cfgPath, socket)
	pid := d.cmd.Process.Pid

	// Before: answers stored while there is room.
	var before []string
	for i := range 100 {
		p := fmt.Sprintf("stored before the disk filled %d", i)
		if _, err := d.askN(t.Context(), p, 8); err != nil {
			t.Fatal(err)
		}
		before = append(before, p)
	}
	waitForLong(t, 10*time.Second, func() bool {
		c, err := d.askN(t.Context(), before[len(before)-1], 8)
		return err == nil && c == "exact"
	})
	// Leave a little room, then fill it under load and go on past full.
	filler := filepath.Join(disk, "filler")
	fillUntil(t, filler, 1<<20)
	var (
		answered, failed atomic.Int32
		peakKB           atomic.Int64
		wg               sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(t.Context())
	wg.Go(func() {
		for ctx.Err() == nil {
			if kb := int64(rssKB(pid)); kb > peakKB.Load() {
				peakKB.Store(kb)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	startKB := rssKB(pid)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := d.askN(ctx, fmt.Sprintf("while the disk is full, worker %d question %d", w, i), 8); err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
						t.Errorf("a request failed while the disk was full: %v", err)
					}
					continue
				}
				answered.Add(1)
			}
		})
	}
	full := func() bool { return strings.Contains(d.log.String(), "cache commit failed") }
	waitForLong(t, 60*time.Second, full)
	fullAt := answered.Load()
	waitForLong(t, 60*time.Second, func() bool { return answered.Load() >= fullAt+3000 })
	cancel()
	wg.Wait()
	t.Logf("disk full: %d requests answered (%d after the first failed commit), %d failed; RSS %d MB at the start of the load, peak %d MB",
		answered.Load(), answered.Load()-fullAt, failed.Load(), startKB/1024, peakKB.Load()/1024)
	if peak := peakKB.Load() / 1024; peak > 200 {
		t.Errorf("RSS peaked at %d MB while the disk was full (bound: 200 MB; the write queue is bounded at 64 MiB)", peak)
	}
	// What was stored before reads back, now and after space is freed and
	// the daemon restarted.
	readBack := func(when string) {
		for _, p := range before {
			if c, err := d.askN(t.Context(), p, 8); err != nil || c != "exact" {
				t.Fatalf("%s: %q came back %q, %v; want an exact hit", when, p, c, err)
			}
		}
	}
	readBack("disk full")
	os.Remove(filler)
	p := "asked after space was freed"
	d.askN(t.Context(), p, 8)
	waitForLong(t, 30*time.Second, func() bool {
		c, err := d.askN(t.Context(), p, 8)
		return err == nil && c == "exact"
	})
	d.cmd.Process.Signal(os.Interrupt)
	d.cmd.Wait()
	d = startHTTPDaemonAt(t, env, cfgPath, socket)
	before = append(before, p)
	readBack("after the restart")
}

// fillUntil grows a file at path until the filesystem has at most room
// bytes free.
func fillUntil(t *testing.T, path string, room uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
			t.Fatal(err)
		}
		if st.Bavail*uint64(st.Bsize) <= room {
			return
		}
		if _, err := f.Write(chunk); err != nil {
			return
		}
	}
}

// waitForLong polls cond every 20 ms until it holds or timeout passes.
func waitForLong(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
	}
}

// TestTortureStrangersLowFDLimit: with lbgptd limited to 256 file
// descriptors, a stranger opens 1,000 connections to the HTTP port and
// sends half a request's headers on each, then nothing; the owner's
// commands over the socket are still answered at once.
func TestTortureStrangersLowFDLimit(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatal("prlimit is needed (.ci/run installs util-linux)")
	}
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "lbgpt.toml")
	os.WriteFile(cfgPath, fmt.Appendf(nil, `version = 1
[http]
listen = "127.0.0.1:0"
[[backend]]
name = "sim"
type = "openai"
base_url = "%s/v1"
api_key_env = "E2E_KEY"
`, simURL), 0o600)
	socket := filepath.Join(dir, "d.sock")
	d := startHTTPDaemonAt(t, env, cfgPath, socket, prlimit, "--nofile=256:256", "--")
	addr := strings.TrimSuffix(strings.TrimPrefix(d.baseURL, "http://"), "/v1")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 1000 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Le")
	}
	for i := range 20 {
		start := time.Now()
		r := run(t, env, "", "lbgpt", "status", "--socket", socket, "--no-autostart")
		if r.code != 0 {
			t.Fatalf("status %d with 1,000 strangers connected: code %d: %s", i, r.code, r.stderr)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("status %d took %s", i, took)
		}
	}
	if strings.Contains(d.log.String(), "too many open files") {
		t.Errorf("the daemon ran out of file descriptors:\n%s", d.log)
	}
}
