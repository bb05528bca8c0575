package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/internal/sim"
)

var listening = regexp.MustCompile(`^lbgpt-sim listening on (http://127\.0\.0\.1:\d+) \(simulated OpenAI/Azure upstream, not a real API\)\n$`)

// startRun runs the command with args until the test ends and returns its
// base URL, read from the line it prints.
func startRun(t *testing.T, args ...string) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	errc := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, &stderr)
		pw.CloseWithError(io.EOF)
		errc <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("reading the first line: %v (run: %v)", err, <-errc)
	}
	m := listening.FindStringSubmatch(line)
	if m == nil {
		cancel()
		t.Fatalf("first line %q", line)
	}
	go io.Copy(io.Discard, pr) // nothing more is expected, but never block run
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("run did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return m[1], stop
}

func post(t *testing.T, url, header, value, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set(header, value)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func get[T any](t *testing.T, url string) T {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return v
}

const chat = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}`

func TestRunConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sim.toml")
	err := os.WriteFile(cfg, []byte(`
seed = 3
models = ["gpt-4o-mini", "text-embedding-3-small"]

[deployments]
prod = "gpt-4o-mini"

[[account]]
name = "east"
key = "sk-east"
rpm = 2
ttft = "1ms"
per_token = "0s"

[[account]]
name = "west"
key = "sk-west"
[account.faults]
error_503 = 0.0
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := startRun(t, "-addr", "127.0.0.1:0", "-config", cfg)

	resp, body := post(t, base+"/v1/chat/completions", "Authorization", "Bearer sk-east", chat)
	if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" {
		t.Fatalf("openai: %d %s", resp.StatusCode, body)
	}
	resp, body = post(t, base+"/openai/deployments/prod/chat/completions?api-version=2024-10-21", "api-key", "sk-west", chat)
	if resp.StatusCode != 200 {
		t.Fatalf("azure: %d %s", resp.StatusCode, body)
	}

	resp, body = post(t, base+"/_sim/faults?account=west", "Content-Type", "application/json", `{"error_503":1}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("set faults: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post(t, base+"/v1/chat/completions", "Authorization", "Bearer sk-west", chat); resp.StatusCode != 503 {
		t.Errorf("after setting faults: status %d, want 503", resp.StatusCode)
	}
	for _, bad := range []string{`{"error_503":2}`, `{"error_504":1}`} {
		if resp, body := post(t, base+"/_sim/faults?account=west", "Content-Type", "application/json", bad); resp.StatusCode != 400 {
			t.Errorf("faults %s: %d %s", bad, resp.StatusCode, body)
		}
	}
	if resp, _ := post(t, base+"/_sim/faults?account=nobody", "Content-Type", "application/json", `{}`); resp.StatusCode != 400 {
		t.Errorf("unknown account: %d", resp.StatusCode)
	}

	log := get[[]sim.Record](t, base+"/_sim/log")
	if len(log) != 3 || log[0].Account != "east" || log[1].Wire != sim.WireAzure || log[2].Fault != sim.Fault503 {
		t.Errorf("log %+v", log)
	}
	stats := get[map[string]sim.AccountStats](t, base+"/_sim/stats")
	if stats["east"].OK != 1 || stats["west"].Faults != 1 || stats["west"].Requests != 2 {
		t.Errorf("stats %+v", stats)
	}

	if err := stop(); err != nil {
		t.Errorf("run returned %v, want nil", err)
	}
	if _, err := http.Get(base + "/v1/models"); err == nil {
		t.Error("still serving after cancel")
	}
}

func TestRunFlags(t *testing.T) {
	base, _ := startRun(t, "-addr", "127.0.0.1:0", "-key", "sk-flag", "-rpm", "1", "-models", "gpt-4o,gpt-4o-mini")
	if resp, body := post(t, base+"/v1/chat/completions", "Authorization", "Bearer sk-flag", chat); resp.StatusCode != 200 {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	resp, _ := post(t, base+"/v1/chat/completions", "Authorization", "Bearer sk-flag", chat)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if stats := get[map[string]sim.AccountStats](t, base+"/_sim/stats"); stats["default"].RateLimited != 1 {
		t.Errorf("stats %+v", stats)
	}
}

// TestRunHang: a hung request does not keep the command from stopping.
func TestRunHang(t *testing.T) {
	base, stop := startRun(t, "-addr", "127.0.0.1:0", "-fault-hang", "1")
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(chat))
		req.Header.Set("Authorization", "Bearer sk-sim")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(get[[]sim.Record](t, base+"/_sim/log")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Errorf("run: %v", err)
	}
	if err := <-errc; err == nil {
		t.Error("hung request was answered")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown account key", []string{"-config", write("a.toml", "[[account]]\nname = \"a\"\nkey = \"k\"\nrpmm = 5\n")}, "account.rpmm"},
		{"unknown top-level key", []string{"-config", write("b.toml", "seeed = 1\n")}, "seeed"},
		{"unknown fault", []string{"-config", write("c.toml", "[[account]]\nkey = \"k\"\n[account.faults]\nerror_504 = 0.1\n")}, "account.faults.error_504"},
		{"bad duration", []string{"-config", write("d.toml", "[[account]]\nkey = \"k\"\nttft = \"soon\"\n")}, "soon"},
		{"invalid account", []string{"-config", write("e.toml", "[[account]]\nname = \"a\"\n")}, "empty key"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.toml")}, "load config"},
		{"flag with config", []string{"-config", write("f.toml", ""), "-key", "x", "-rpm", "3"}, "-key, -rpm cannot be combined with -config"},
		{"bad probability", []string{"-fault-500", "1.5"}, "error_500"},
		{"bad flag", []string{"-nope"}, "not defined"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
		{"zero log limit", []string{"-log-limit", "0"}, "-log-limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run() = %v, want an error containing %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("printed %q despite failing", stdout.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &stdout, &stderr); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range append([]string{"-addr", "-config", "-fault-stream-break", "/_sim/faults?account=NAME", "[[account]]", "/v1/responses/{id}/input_items", "/openai/v1/responses", "/v1/moderations"}, "lbgpt-sim listening on") {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
