package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// portkeyVersion is the Portkey gateway the http scenario compares with.
const portkeyVersion = "1.15.2"

// httpScenario measures what lbgptd's OpenAI-compatible HTTP endpoint adds
// to a request, and what the Portkey gateway (npm @portkey-ai/gateway, run
// with node) adds proxying to the same zero-latency simulator: the same
// go-openai requests directly, through lbgptd and through Portkey,
// interleaved in rounds.
func httpScenario(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	n := fs.Int("n", 2000, "requests per path for the latency phase")
	c := fs.Int("c", 1, "concurrency of the latency phase")
	tn := fs.Int("throughput-n", 6000, "requests per path for the throughput phase")
	tc := fs.Int("throughput-c", 32, "concurrency of the throughput phase")
	rounds := fs.Int("rounds", 6, "interleaved rounds per phase")
	portkey := fs.Bool("portkey", true, "compare with the Portkey gateway (needs node and npm)")
	pkDir := fs.String("portkey-dir", filepath.Join(os.TempDir(), "lbgpt-bench-portkey-"+portkeyVersion), "where Portkey is installed (npm install on first use, with its npm cache there too)")
	l := layoutFlags(fs)
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runHTTP(ctx, out, *l, *n, *c, *tn, *tc, *rounds, *portkey, *pkDir)
	}
}

func runHTTP(ctx context.Context, out io.Writer, l layout, n, c, tn, tc, rounds int, portkey bool, pkDir string) (map[string]any, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r, err := newRig(ctx, l, fmt.Sprintf("[http]\nlisten = %q\n[cache]\nenabled = false", addr), "")
	if err != nil {
		return nil, err
	}
	defer r.close()
	token, err := os.ReadFile(filepath.Join(r.dir, rpc.TokenFile))
	if err != nil {
		return nil, err
	}
	names := []string{"direct", "lbgpt"}
	paths := []func(context.Context, int) error{
		r.chat(r.direct),
		r.chat(r.client("http://"+addr+"/v1", strings.TrimSpace(string(token)), nil)),
	}
	if portkey {
		addr, stop, err := startPortkey(ctx, pkDir)
		if err != nil {
			return nil, fmt.Errorf("portkey: %w (run with -portkey=false to leave it out)", err)
		}
		defer stop()
		names = append(names, "portkey")
		paths = append(paths, r.chat(r.client("http://"+addr+"/v1", r.key, http.Header{
			"X-Portkey-Provider":    {"openai"},
			"X-Portkey-Custom-Host": {r.base},
		})))
	}
	// Warm every path: connections, tokenizer tables, node's JIT.
	if _, err := measurePaths(ctx, 300*len(paths), 8, 1, paths...); err != nil {
		return nil, err
	}
	lat, err := measurePaths(ctx, n, c, rounds, paths...)
	if err != nil {
		return nil, err
	}
	thr, err := measurePaths(ctx, tn, tc, rounds, paths...)
	if err != nil {
		return nil, err
	}
	figures := map[string]any{"scenario": "http", "n": n, "c": c, "throughput_c": tc, "throughput_n": tn}
	fmt.Fprintf(out, "http: %d requests per path at concurrency %d, then %d at concurrency %d, %d interleaved rounds\n", n, c, tn, tc, rounds)
	for i, name := range names {
		p50, p99 := percentile(lat[i].lat, 50), percentile(lat[i].lat, 99)
		figures[name+"_p50_us"], figures[name+"_p99_us"], figures[name+"_rps"] = p50, p99, round1(thr[i].rps)
		line := fmt.Sprintf("  %-8s p50 %6d µs  p99 %6d µs  %7.0f req/s at c=%d", name, p50, p99, thr[i].rps, tc)
		if i > 0 {
			added50, added99 := p50-percentile(lat[0].lat, 50), p99-percentile(lat[0].lat, 99)
			ratio := round3(thr[i].rps / thr[0].rps)
			figures[name+"_added_p50_us"], figures[name+"_added_p99_us"], figures[name+"_throughput_ratio"] = added50, added99, ratio
			line += fmt.Sprintf("   added p50 %5d µs  p99 %5d µs  throughput ×%.3f", added50, added99, ratio)
		}
		fmt.Fprintln(out, line)
	}
	if portkey {
		fmt.Fprintf(out, "  target: lbgpt adds less latency and keeps more throughput than Portkey %s\n", portkeyVersion)
	}
	return figures, nil
}

// startPortkey runs the Portkey gateway with node on a free loopback port,
// installing it into dir first when it is not there.
func startPortkey(ctx context.Context, dir string) (addr string, stop func(), err error) {
	script := filepath.Join(dir, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
	if _, err := os.Stat(script); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, err
		}
		cmd := exec.CommandContext(ctx, "npm", "install", "--prefix", dir, "--cache", filepath.Join(dir, ".npm"),
			"--no-audit", "--no-fund", "--ignore-scripts", "@portkey-ai/gateway@"+portkeyVersion)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("npm install @portkey-ai/gateway@%s: %v\n%s", portkeyVersion, err, b)
		}
	}
	if addr, err = freeAddr(); err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("node", script, "--port="+port, "--headless")
	cmd.Env = append(os.Environ(), "NODE_ENV=production")
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { cmd.Process.Kill(); cmd.Wait() }
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, stop, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return "", nil, errors.New("the gateway did not listen within 30s")
		}
	}
}

// freeAddr is a loopback address with a port free now, for a server the
// bench starts and must know the address of beforehand.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
