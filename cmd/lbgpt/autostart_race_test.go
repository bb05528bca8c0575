package main

import (
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
)

// TestConcurrentAutostart runs four asks at once with no daemon, against
// the real lbgptd (built here): each starts one, one wins the socket, the
// others exit, and every ask is answered.
func TestConcurrentAutostart(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command to build lbgptd")
	}
	bin := t.TempDir()
	build := exec.Command(goBin, "build", "-o", bin+"/", "../lbgptd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lbgptd: %v\n%s", err, out)
	}
	// The daemons find lbgptd on PATH and their key in the environment.
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("LBGPT_TEST_KEY", "sk-autostart-test")
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // the daemons' cache file

	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: "sk-autostart-test"}}})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close)
	cfg := filepath.Join(t.TempDir(), "lbgpt.toml")
	err = os.WriteFile(cfg, []byte(fmt.Sprintf("version = 1\n\n[[backend]]\nname = \"sim\"\ntype = \"openai\"\nbase_url = %q\napi_key_env = \"LBGPT_TEST_KEY\"\n", ts.URL+"/v1")), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(t.TempDir(), "run", "lbgptd.sock")

	const n = 4
	type outcome struct {
		stdout, stderr string
		code           int
	}
	outcomes := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stdout, stderr, code := runCtx(t.Context(), "", "ask", "--socket", socket, "--config", cfg, fmt.Sprintf("question %d", i))
			outcomes[i] = outcome{stdout, stderr, code}
		})
	}
	wg.Wait()
	// Stop the daemon that won, before the upstream goes.
	c := &client.Client{Socket: socket}
	if st, err := c.Status(t.Context()); err == nil {
		if p, err := os.FindProcess(st.PID); err == nil {
			t.Cleanup(func() { p.Kill() })
		}
	}
	c.Close()

	started := 0
	for i, o := range outcomes {
		if o.code != 0 || !strings.Contains(o.stdout, fmt.Sprintf("question %d", i)) {
			t.Errorf("ask %d: exit %d\nstdout: %s\nstderr: %s", i, o.code, o.stdout, o.stderr)
		}
		if strings.Contains(o.stderr, "started lbgptd in the background") {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d asks say they started the daemon, want 1", started)
	}
	log, err := os.ReadFile(filepath.Join(filepath.Dir(socket), "lbgptd.log"))
	if err != nil || !strings.Contains(string(log), "msg=serving") {
		t.Errorf("the log lacks the serving daemon's lines (%v):\n%s", err, log)
	}
}
