package e2e

import (
	"github.com/lbgpt/lbgpt/internal/syncbuf"

	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

// notifySocket is a fake systemd notify socket: it records every message.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	return n
}

// firsts is the first line of every message so far.
func (n *notifySocket) firsts() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, m := range n.msgs {
		first, _, _ := strings.Cut(m, "\n")
		out = append(out, first)
	}
	return out
}

func (n *notifySocket) all() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.msgs, "\n--\n")
}

func (n *notifySocket) wait(t *testing.T, what string, cond func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(n.firsts()) {
		if time.Now().After(deadline) {
			t.Fatalf("notify socket: %s not seen; got:\n%s", what, n.all())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(ss []string, s string) int {
	c := 0
	for _, x := range ss {
		if x == s {
			c++
		}
	}
	return c
}

const slowSimConfig = `
[[account]]
name = "main"
key = "sk-e2e-secret-key-0001"
ttft = "100ms"

[[account]]
name = "second"
key = "sk-e2e-secret-key-0002"
ttft = "100ms"
`

// TestSocketActivated runs lbgptd as systemd would: socket-activated by
// systemd-socket-activate, with a notify socket and a watchdog. It checks
// READY, STATUS and WATCHDOG, a request through the activated socket, a
// reload by SIGHUP (accepted, then rejected), and SIGTERM in the middle of
// a batch: every item answered or cleanly failed, STOPPING, exit 0, and the
// socket (systemd's) left in place.
func TestSocketActivated(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatalf("systemd-socket-activate is needed (apt-get install systemd): %v", err)
	}
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001", "E2E_KEY2=sk-e2e-secret-key-0002")
	simURL := startSim(t, env, slowSimConfig)
	cfg := writeConfig(t, simURL)
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "version = 1\n", "version = 1\n[daemon]\ndrain_timeout = \"300ms\"\n", 1)), 0o600)
	notify := listenNotify(t)
	socket := filepath.Join(t.TempDir(), "lbgptd.sock")

	args := []string{"--listen=" + socket, "--fdname=lbgptd",
		"-E", "NOTIFY_SOCKET=" + notify.path, "-E", "WATCHDOG_USEC=400000"}
	for _, kv := range env {
		args = append(args, "-E", kv)
	}
	args = append(args, filepath.Join(bin, "lbgptd"), "--config", cfg, "--log-level", "debug")
	cmd := exec.Command(activate, args...)
	cmd.Env = env
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate made no socket:\n%s", stderr.String())
		}
	}
	// The first connection starts lbgptd (systemd-socket-activate execs
	// it in its own place: same pid).
	c := &client.Client{Socket: socket}
	ctx := t.Context()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("status through the activated socket: %v\n%s", err, stderr.String())
	}
	if st.PID != cmd.Process.Pid {
		t.Errorf("status pid %d, want %d (the activated process)", st.PID, cmd.Process.Pid)
	}
	if !strings.Contains(stderr.String(), "socket-activated") {
		t.Errorf("lbgptd did not say it was socket-activated:\n%s", stderr.String())
	}
	res, err := c.Chat(ctx, map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "activated"}}}, rpc.Options{})
	if err != nil || res.Meta.Backend != "sim" {
		t.Fatalf("chat through the activated socket: %+v, %v", res, err)
	}
	notify.wait(t, "READY=1 then 3 WATCHDOG=1", func(f []string) bool {
		return len(f) > 0 && f[0] == "READY=1" && count(f, "WATCHDOG=1") >= 3
	})
	if !strings.Contains(notify.all(), "STATUS=1/1 backends up") {
		t.Errorf("no useful STATUS=:\n%s", notify.all())
	}

	// SIGHUP with a second backend: both serve, RELOADING=1 then READY=1.
	two := mustRead(t, cfg) + fmt.Sprintf("\n[[backend]]\nname = \"second\"\ntype = \"openai\"\nbase_url = \"%s/v1\"\napi_key_env = \"E2E_KEY2\"\n", simURL)
	os.WriteFile(cfg, []byte(two), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	notify.wait(t, "RELOADING=1, READY=1", func(f []string) bool { return count(f, "RELOADING=1") == 1 && count(f, "READY=1") == 2 })
	if st, err = c.Status(ctx); err != nil || len(st.Backends) != 2 || st.ReloadError != "" {
		t.Fatalf("status after reload: %+v, %v", st, err)
	}
	// SIGHUP with a broken file: rejected, reason in status, both stay.
	os.WriteFile(cfg, []byte(two+"\nbogus_key = 1\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	notify.wait(t, "second RELOADING=1", func(f []string) bool { return count(f, "RELOADING=1") == 2 && count(f, "READY=1") == 3 })
	if st, err = c.Status(ctx); err != nil || len(st.Backends) != 2 || !strings.Contains(st.ReloadError, "bogus_key") {
		t.Fatalf("status after a rejected reload: reload_error %q, %d backends, %v", st.ReloadError, len(st.Backends), err)
	}

	// SIGTERM in the middle of a batch.
	const n = 60
	reqs := make([]any, n)
	for i := range reqs {
		reqs[i] = map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("item %d", i)}}}
	}
	batchDone := make(chan *rpc.BatchResult, 1)
	items := make(chan struct{}, n)
	go func() {
		defer close(batchDone)
		for ev, err := range c.Batch(context.Background(), reqs, rpc.Options{}, 4) {
			if err != nil {
				t.Errorf("batch: %v", err)
				return
			}
			if ev.Item != nil {
				items <- struct{}{}
			}
			if ev.Result != nil {
				batchDone <- ev.Result
			}
		}
	}()
	<-items // running
	cmd.Process.Signal(syscall.SIGTERM)
	br := <-batchDone
	if br == nil {
		t.Fatal("no batch result after SIGTERM")
	}
	answered, failed := 0, 0
	for i, it := range br.Items {
		switch {
		case it.Result != nil:
			answered++
		case it.Error != nil && it.Error.Code == rpc.CodeShuttingDown:
			failed++
		default:
			t.Errorf("item %d neither answered nor cleanly failed: %+v", i, it)
		}
	}
	if len(br.Items) != n || answered == 0 || failed == 0 {
		t.Errorf("batch at SIGTERM: %d items, %d answered, %d failed with shutting down", len(br.Items), answered, failed)
	}
	t.Logf("SIGTERM mid-batch: %d answered, %d cleanly failed", answered, failed)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("lbgptd exit: %v, want 0\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("lbgptd did not exit after SIGTERM")
	}
	exited <- nil // for the cleanup
	f := notify.firsts()
	if f[len(f)-1] != "STOPPING=1" {
		t.Errorf("last notification %q, want STOPPING=1; all: %v", f[len(f)-1], f)
	}
	if fi, err := os.Lstat(socket); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("the activated socket was removed at exit (it is systemd's): %v", err)
	}
	if strings.Contains(stderr.String(), "sk-e2e-secret") {
		t.Errorf("a key in the daemon's log")
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSharedGroupSocket: with [daemon] socket_group, lbgptd serves the
// group's members besides its own user, and still refuses everyone else.
// (A raw client: lbgpt itself trusts only a daemon of its own user or
// root, which a socket-activated shared daemon is, as its socket is
// systemd's.)
func TestSharedGroupSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run clients as other users (CI runs as root)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv is needed (.ci/run installs util-linux)")
	}
	// The system's python: one under root's home is out of nobody's reach.
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Fatal("/usr/bin/python3 is needed (.ci/run installs python3)")
	}
	grp, err := user.LookupGroupId("65534")
	if err != nil {
		t.Fatalf("group 65534: %v", err)
	}
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "version = 1\n", "version = 1\n[daemon]\nsocket_group = \""+grp.Name+"\"\n", 1)), 0o600)
	dir, err := os.MkdirTemp("", "lbgpt-e2e-group-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	socket := filepath.Join(dir, "shared", "lbgptd.sock")
	background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("shared socket: %v, mode %v; want 0660", err, fi.Mode().Perm())
	}

	const script = `import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
try:
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"status"}\n')
except BrokenPipeError:
    pass  # refused: the daemon wrote its error and closed
print(s.makefile().readline(), end="")`
	as := func(uid, gid string) string {
		out, err := exec.CommandContext(t.Context(), setpriv, "--reuid="+uid, "--regid="+gid, "--clear-groups",
			python, "-c", script, socket).CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %s: %v\n%s", uid, err, out)
		}
		return string(out)
	}
	if got := as("65534", "65534"); !strings.Contains(got, `"result":{`) {
		t.Errorf("a member of %s was not served: %s", grp.Name, got)
	}
	// The modes (directory 0750, socket 0660, both of the group) let only
	// the group in; past them (as if someone chmodded them), lbgptd's own
	// check still refuses a non-member.
	os.Chmod(filepath.Dir(socket), 0o755)
	os.Chmod(socket, 0o666)
	if got := as("65533", "65533"); !strings.Contains(got, "-32009") || !strings.Contains(got, "members of group "+grp.Name) {
		t.Errorf("a non-member was not refused: %s", got)
	}
}
