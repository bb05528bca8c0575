// Package e2e runs the real binaries (lbgpt-sim, lbgptd, lbgpt) together,
// as a user would on a fresh machine.
package e2e

import (
	"github.com/lbgpt/lbgpt/internal/syncbuf"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// bin holds the binaries, built once for the package. It is world-readable
// so that a test can run them as another user.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lbgpt-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755)
	cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/lbgptd", "../../cmd/lbgpt", "../../cmd/lbgpt-sim")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bin = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// baseEnv is a minimal environment: no API keys, no user config, nothing
// from the machine running the tests.
func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	return []string{
		"PATH=" + bin + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
		"XDG_STATE_HOME=" + filepath.Join(home, "state"),
	}
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs a binary to completion.
func run(t *testing.T, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, name), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// background starts a long-running binary (one of the project's, or any
// program by its absolute path), stopped (SIGINT) at cleanup.
func background(t *testing.T, env []string, name string, args ...string) (*exec.Cmd, *bufio.Reader, *syncbuf.Buffer) {
	t.Helper()
	if !filepath.IsAbs(name) {
		name = filepath.Join(bin, name)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s did not stop on SIGINT within 10s", name)
		}
	})
	return cmd, bufio.NewReader(stdout), stderr
}

// startSim runs lbgpt-sim with config text and returns its URL.
func startSim(t *testing.T, env []string, cfg string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sim.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	_, out, _ := background(t, env, "lbgpt-sim", "-addr", "127.0.0.1:0", "-config", path)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("lbgpt-sim printed no address: %v", err)
	}
	m := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
	if m == "" {
		t.Fatalf("lbgpt-sim said %q", line)
	}
	return m
}

// waitSocket waits until a daemon answers on socket.
func waitSocket(t *testing.T, env []string, socket string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := run(t, env, "", "lbgpt", "status", "--socket", socket, "--no-autostart")
		if r.code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon on %s not answering: %s", socket, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const simConfig = `
[[account]]
name = "main"
key = "sk-e2e-secret-key-0001"
`

func writeConfig(t *testing.T, simURL string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lbgpt.toml")
	cfg := fmt.Sprintf(`version = 1

[[backend]]
name = "sim"
type = "openai"
base_url = "%s/v1"
api_key_env = "E2E_KEY"
`, simURL)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAskThroughDaemon(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	socket := filepath.Join(t.TempDir(), "d.sock")
	_, _, daemonLog := background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)

	r := run(t, env, "", "lbgpt", "ask", "--socket", socket, "What", "is", "lbgpt?")
	if r.code != 0 || !strings.Contains(r.stdout, "What is lbgpt?") {
		t.Errorf("ask: code %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	r = run(t, env, "Prompt from stdin\n", "lbgpt", "ask", "--socket", socket, "--json", "--max-tokens", "20", "--temperature", "0.5")
	var res struct {
		Response struct {
			Choices []struct {
				Message      struct{ Content string }
				FinishReason string `json:"finish_reason"`
			}
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		Lbgpt struct {
			Backend  string
			Attempts int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
		t.Fatalf("ask --json: code %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	if res.Lbgpt.Backend != "sim" || res.Lbgpt.Attempts != 1 || !strings.Contains(res.Response.Choices[0].Message.Content, "Prompt from stdin") {
		t.Errorf("ask --json = %+v", res)
	}
	if res.Response.Usage.CompletionTokens > 20 {
		t.Errorf("--max-tokens 20 gave %d completion tokens", res.Response.Usage.CompletionTokens)
	}

	r = run(t, env, "", "lbgpt", "ask", "--socket", socket, "--stream", "always", "Stream", "this")
	if r.code != 0 || !strings.Contains(r.stdout, "Stream this") || !strings.Contains(r.stderr, "[sim · 1 attempt") {
		t.Errorf("ask --stream always: code %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	r = run(t, env, "", "lbgpt", "ask", "--socket", socket, "--model", "no-such-model", "hi")
	if r.code != 1 || !strings.Contains(r.stderr, "The model `no-such-model` does not exist") {
		t.Errorf("unknown model: code %d, stderr %s", r.code, r.stderr)
	}

	r = run(t, env, "", "lbgpt", "status", "--socket", socket)
	// BACKEND STATE RPM TPM FLIGHT REQUESTS 429 RETRIES ERRORS P50, then BACKEND TYPE MODELS.
	if r.code != 0 || !regexp.MustCompile(`sim\s+ok\s+\d+/-\s+\d+/-\s+0\s+4\s+0\s+0\s+1\s`).MatchString(r.stdout) ||
		!regexp.MustCompile(`sim\s+openai\s+any`).MatchString(r.stdout) {
		t.Errorf("status: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if strings.Contains(daemonLog.String(), "sk-e2e-secret-key-0001") {
		t.Errorf("daemon log contains the API key:\n%s", daemonLog)
	}
}

func TestAskStartsDaemon(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	socket := filepath.Join(t.TempDir(), "auto", "d.sock")

	r := run(t, env, "", "lbgpt", "ask", "--socket", socket, "--config", cfg, "hello")
	if r.code != 0 || !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stderr, "started lbgptd in the background") {
		t.Fatalf("ask without a daemon: code %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "", "lbgpt", "status", "--json", "--socket", socket, "--no-autostart")
	var st struct{ PID int }
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.PID == 0 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	p, _ := os.FindProcess(st.PID)
	t.Cleanup(func() { p.Kill() })
	// The daemon outlives the command that started it and serves the next.
	r = run(t, env, "", "lbgpt", "ask", "--socket", socket, "again")
	if r.code != 0 || strings.Contains(r.stderr, "started lbgptd") {
		t.Errorf("second ask: code %d, stderr %s", r.code, r.stderr)
	}
}

func TestNoDaemonNoKeys(t *testing.T) {
	env := baseEnv(t)
	socket := filepath.Join(t.TempDir(), "d.sock")

	r := run(t, env, "", "lbgpt", "ask", "--socket", socket, "--no-autostart", "hi")
	if r.code != 3 || !strings.Contains(r.stderr, "lbgptd is not running") || !strings.Contains(r.stderr, "start it with `lbgptd`") {
		t.Errorf("no daemon, no autostart: code %d, stderr %s", r.code, r.stderr)
	}
	// Autostart fails too (no keys), and says why.
	r = run(t, env, "", "lbgpt", "ask", "--socket", socket, "hi")
	if r.code != 3 || !strings.Contains(r.stderr, "OPENAI_API_KEY") || !strings.Contains(r.stderr, "lbgpt demo") {
		t.Errorf("autostart without keys: code %d, stderr %s", r.code, r.stderr)
	}

	r = run(t, env, "", "lbgptd", "--socket", socket)
	if r.code != 2 {
		t.Errorf("lbgptd without keys: exit %d, want 2", r.code)
	}
	for _, want := range []string{"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "lbgpt demo"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("lbgptd without keys does not mention %s:\n%s", want, r.stderr)
		}
	}
}

func TestBadConfig(t *testing.T) {
	env := baseEnv(t)
	path := filepath.Join(t.TempDir(), "lbgpt.toml")
	os.WriteFile(path, []byte("version = 1\n\n[[backend]]\nname = \"x\"\ntype = \"openai\"\napi_key = \"sk-literal-secret-123\"\nmodle = [\"gpt-4o\"]\n"), 0o600)
	r := run(t, env, "", "lbgptd", "--config", path, "--socket", filepath.Join(t.TempDir(), "s"))
	if r.code != 2 || !strings.Contains(r.stderr, `lbgpt.toml:7`) || !strings.Contains(r.stderr, `"modle"`) {
		t.Errorf("misspelt key: code %d, stderr %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "sk-literal-secret-123") {
		t.Errorf("error output contains the key: %s", r.stderr)
	}
}

func TestSecondDaemonRefused(t *testing.T) {
	env := baseEnv(t)
	socket := filepath.Join(t.TempDir(), "d.sock")
	background(t, env, "lbgptd", "--demo", "--socket", socket)
	waitSocket(t, env, socket)
	r := run(t, env, "", "lbgptd", "--demo", "--socket", socket)
	if r.code != 1 || !strings.Contains(r.stderr, "another lbgptd is already serving") {
		t.Errorf("second daemon: code %d, stderr %s", r.code, r.stderr)
	}
	// The first one still serves.
	waitSocket(t, env, socket)
}

func TestDemo(t *testing.T) {
	r := run(t, baseEnv(t), "", "lbgpt", "demo")
	if r.code != 0 {
		t.Fatalf("lbgpt demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"SIMULATED", "sim-openai", "sim-azure", "sim-local", "streamed token by token", "Answered by:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAILED") {
		t.Errorf("demo had failures:\n%s", r.stdout)
	}
	// The repeats: an exact hit, a semantic hit, and a changed number that
	// the semantic cache refuses.
	for _, want := range []*regexp.Regexp{
		// The whole entry id, the one lbgpt cache forget takes.
		regexp.MustCompile(`What is a load balancer, in one sentence\? +\[cache exact · entry [0-9a-f]{64} `),
		regexp.MustCompile(`In one sentence, what is a load balancer\? +\[cache semantic `),
		regexp.MustCompile(`greater than 200\. +\[sim-\w+ · 1 attempt · cache miss `),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("demo output lacks %s:\n%s", want, r.stdout)
		}
	}
}

// demoEnv is baseEnv with a temporary directory of the test's own: the
// demo's private daemon keeps its socket and state there, so demoLeft can
// tell whether anything of it outlived lbgpt.
func demoEnv(t *testing.T) (env []string, tmp string) {
	tmp = t.TempDir()
	t.Cleanup(func() { // a daemon left behind would outlive the test
		for _, pid := range demoLeft(t, tmp) {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	})
	return append(baseEnv(t), "TMPDIR="+tmp), tmp
}

// demoLeft returns the processes whose command line names tmp: a demo
// daemon still running.
func demoLeft(t *testing.T, tmp string) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(tmp)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(f, "/proc/%d/cmdline", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// startDemo starts lbgpt demo with its output on a pipe, and returns once
// it printed a line containing until: the command, the pipe and a reader
// of the rest of it.
func startDemo(t *testing.T, env []string, until string) (*exec.Cmd, io.Closer, *bufio.Reader, *syncbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "lbgpt"), "demo")
	cmd.Env = env
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Wait()
			t.Fatalf("lbgpt demo ended before printing %q: %v; stderr: %s", until, err, stderr.String())
		}
		if strings.Contains(line, until) {
			return cmd, out, r, &stderr
		}
	}
}

// exitStatus is how cmd ended: its exit code, or the signal that killed it.
func exitStatus(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	err := cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String() // "exit status 1", "signal: broken pipe"
	default:
		t.Fatal(err)
		return ""
	}
}

// TestDemoReaderGoesAway: lbgpt demo | head. The reader closing the pipe
// stops the demo with an error — it does not kill lbgpt, whose private
// daemon and directories would then outlive it.
func TestDemoReaderGoesAway(t *testing.T) {
	env, tmp := demoEnv(t)
	cmd, pipe, _, stderr := startDemo(t, env, "SIMULATED")
	pipe.Close()
	if got := exitStatus(t, cmd); got != "exit status 1" {
		t.Errorf("lbgpt demo with its reader gone: %s, want exit status 1; stderr: %s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), "demo stopped: its output was closed") {
		t.Errorf("stderr does not say why the demo stopped: %s", stderr.String())
	}
	if left := demoLeft(t, tmp); len(left) > 0 {
		t.Errorf("processes of the demo outlived it: %v", left)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("the demo left %d entries in its temporary directory, first %s", len(entries), entries[0].Name())
	}
}

// TestDemoInterrupted: Ctrl-C in the middle of the demo stops it at once
// with exit code 130, its daemon stopped.
func TestDemoInterrupted(t *testing.T) {
	env, tmp := demoEnv(t)
	cmd, _, out, stderr := startDemo(t, env, "Sending")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(out) // to its end: lbgpt exited
	if err != nil {
		t.Fatal(err)
	}
	if got := exitStatus(t, cmd); got != "exit status 130" {
		t.Errorf("lbgpt demo after Ctrl-C: %s, want exit status 130; stderr: %s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), "lbgpt: interrupted") {
		t.Errorf("stderr does not say it was interrupted: %s", stderr.String())
	}
	if strings.Contains(string(rest), "FAILED") {
		t.Errorf("the demo went on after Ctrl-C, failing step after step:\n%s", rest)
	}
	if left := demoLeft(t, tmp); len(left) > 0 {
		t.Errorf("processes of the demo outlived it: %v", left)
	}
}

// TestDemoInterruptedWhileStarting: Ctrl-C as the demo's daemon starts
// (lbgpt kills it before it could clean up) leaves nothing behind either.
func TestDemoInterruptedWhileStarting(t *testing.T) {
	env, tmp := demoEnv(t)
	cmd := exec.Command(filepath.Join(bin, "lbgpt"), "demo")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// As soon as its lbgptd exists, before it serves.
	for deadline := time.Now().Add(30 * time.Second); len(demoLeft(t, tmp)) == 0; {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("lbgpt demo started no lbgptd within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if got := exitStatus(t, cmd); got != "exit status 130" {
		t.Errorf("lbgpt demo after Ctrl-C: %s, want exit status 130", got)
	}
	// Its lbgptd may take a moment to die of the kill.
	for deadline := time.Now().Add(10 * time.Second); len(demoLeft(t, tmp)) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if left := demoLeft(t, tmp); len(left) > 0 {
		t.Errorf("processes of the demo outlived it: %v", left)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) > 0 {
		t.Errorf("the demo left %d entries in its temporary directory, first %s", len(entries), entries[0].Name())
	}
}

// TestProtocolDocPython runs the Python example of docs/protocol.md, as
// written there, against a live daemon.
func TestProtocolDocPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is needed to check docs/protocol.md (.ci/run installs it)")
	}
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/protocol.md has no python example")
	}
	env := baseEnv(t)
	socket := filepath.Join(t.TempDir(), "d.sock")
	background(t, env, "lbgptd", "--demo", "--socket", socket)
	waitSocket(t, env, socket)

	cmd := exec.CommandContext(t.Context(), python, "-")
	cmd.Env = append(env, "LBGPT_SOCKET="+socket)
	cmd.Stdin = bytes.NewReader(m[1])
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the documented Python example failed: %v\n%s", err, out)
	}
	for _, want := range []string{"simulated: True", "answer: Simulated answer", "served by: sim-", "streamed: Simulated answer"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("python output lacks %q:\n%s", want, out)
		}
	}
}

// TestOtherUserRefused connects as nobody. The socket's 0600 mode already
// stops other users; to check the second line of defence (SO_PEERCRED) the
// test opens the mode up first.
func TestOtherUserRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user (CI runs as root)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("setpriv is needed (.ci/run installs util-linux)")
	}
	dir, err := os.MkdirTemp("", "lbgpt-e2e-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	socket := filepath.Join(dir, "d.sock")
	env := baseEnv(t)
	background(t, env, "lbgptd", "--demo", "--socket", socket)
	waitSocket(t, env, socket)

	asNobody := func() result {
		cmd := exec.CommandContext(t.Context(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			filepath.Join(bin, "lbgpt"), "status", "--socket", socket, "--no-autostart")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}
	r := asNobody()
	if r.code == 0 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("nobody on a 0600 socket: code %d, stderr %s", r.code, r.stderr)
	}
	os.Chmod(socket, 0o666)
	r = asNobody()
	if r.code != 3 || !strings.Contains(r.stderr, "serves only that user; uid 65534 was refused") {
		t.Errorf("nobody past the file mode: code %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
	}
	// The owner is still served.
	waitSocket(t, env, socket)
}

// lbgpt stop stops the daemon it talks to, after its drain; the next
// command finds none (and would start a new one with its own environment).
func TestStop(t *testing.T) {
	env := append(baseEnv(t), "E2E_KEY=sk-e2e-secret-key-0001")
	simURL := startSim(t, env, simConfig)
	cfg := writeConfig(t, simURL)
	socket := filepath.Join(t.TempDir(), "d.sock")
	background(t, env, "lbgptd", "--config", cfg, "--socket", socket)
	waitSocket(t, env, socket)
	r := run(t, env, "", "lbgpt", "stop", "--socket", socket)
	if r.code != 0 || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("lbgpt stop: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, env, "", "lbgpt", "status", "--socket", socket, "--no-autostart"); r.code != 3 {
		t.Errorf("status after stop: exit %d, %s", r.code, r.stderr)
	}
	if r := run(t, env, "", "lbgpt", "stop", "--socket", socket); r.code != 0 || !strings.Contains(r.stderr, "no lbgptd is running") {
		t.Errorf("stop with none running: exit %d, %s", r.code, r.stderr)
	}
}

// The case: lbgpt autostarts lbgptd with a wrong key; the user
// fixes the key in the shell, and lbgpt says the daemon still has the old
// one and how to restart it; after lbgpt stop, the next ask works.
func TestDaemonWithAnotherEnvironment(t *testing.T) {
	env := baseEnv(t)
	simURL := startSim(t, env, "[[account]]\nname = \"a\"\nkey = \"sk-right-key-000000000000\"\n")
	base := append(env, "OPENAI_BASE_URL="+simURL+"/v1")
	wrong := append(append([]string{}, base...), "OPENAI_API_KEY=sk-wrong-key-000000000000")
	right := append(append([]string{}, base...), "OPENAI_API_KEY=sk-right-key-000000000000")
	t.Cleanup(func() { // the daemon lbgpt started, if the test left it running
		cmd := exec.Command(filepath.Join(bin, "lbgpt"), "stop")
		cmd.Env = right
		cmd.Run()
	})
	if r := run(t, wrong, "", "lbgpt", "ask", "hi"); r.code != 1 || strings.Contains(r.stderr, "lbgpt stop") {
		t.Fatalf("with the wrong key: exit %d, %s", r.code, r.stderr)
	}
	r := run(t, right, "", "lbgpt", "ask", "hi")
	if r.code != 1 || !strings.Contains(r.stderr, "started with another OPENAI_API_KEY") || !strings.Contains(r.stderr, "lbgpt stop") {
		t.Fatalf("the key fixed in the shell, the daemon still on the old one: exit %d, %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "sk-right") || strings.Contains(r.stderr, "sk-wrong") {
		t.Errorf("a key on stderr: %s", r.stderr)
	}
	if r := run(t, right, "", "lbgpt", "status"); !strings.Contains(r.stderr, "started with another OPENAI_API_KEY") {
		t.Errorf("lbgpt status says nothing of it: %s", r.stderr)
	}
	if r := run(t, right, "", "lbgpt", "stop"); r.code != 0 {
		t.Fatalf("lbgpt stop: %d %s", r.code, r.stderr)
	}
	if r := run(t, right, "", "lbgpt", "ask", "hi"); r.code != 0 {
		t.Errorf("after lbgpt stop, with the right key: exit %d, %s", r.code, r.stderr)
	}
}
