package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/internal/syncbuf"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/rpc"
)

// runOverhead measures what lbgptd adds to a request: the same requests
// against a zero-latency simulator, directly with go-openai and through the
// daemon over its socket, interleaved in rounds so both see the same
// machine state. The daemon runs its default configuration, the exact
// cache on (a file in a temporary directory): every prompt is unique, so
// every request is a miss whose answer is written to the cache. lbgptd and
// the simulator run as processes of their own, as users run them. For
// scale, it also measures what a relay process that does nothing adds on
// this machine (relayFloor).
func overhead(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	n := fs.Int("n", 4000, "requests per path for the latency phase")
	c := fs.Int("c", 1, "concurrency of the latency phase")
	tn := fs.Int("throughput-n", 8000, "requests per path for the throughput phase")
	tc := fs.Int("throughput-c", 32, "concurrency of the throughput phase")
	rounds := fs.Int("rounds", 8, "interleaved rounds per phase")
	limits := fs.Bool("limits", true, "give the backend RPM and TPM limits (high enough never to bind), as every real setup has: admission then estimates each prompt's tokens")
	l := layoutFlags(fs)
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runOverhead(ctx, out, *l, *n, *c, *tn, *tc, *rounds, *limits)
	}
}

// layout says where a rig runs lbgptd and the simulator.
type layout struct {
	// inProcess runs both inside the bench's own process, as goroutines
	// of its runtime. It is cheaper than the real thing: a goroutine that
	// wakes another in a busy runtime finds a thread at hand, where a
	// process that waits for its socket sleeps and must be woken.
	inProcess bool
	lbgptd    string // the binaries, when they run as processes
	sim       string
}

func layoutFlags(fs *flag.FlagSet) *layout {
	l := &layout{}
	fs.BoolVar(&l.inProcess, "in-process", false, "run lbgptd and the simulator inside this process instead of as processes of their own (as users run them); cheaper, and the only way allocations are counted")
	fs.StringVar(&l.lbgptd, "lbgptd", "", "the lbgptd binary (default: lbgptd next to lbgpt-bench, else on $PATH)")
	fs.StringVar(&l.sim, "lbgpt-sim", "", "the lbgpt-sim binary (default: lbgpt-sim next to lbgpt-bench, else on $PATH)")
	return l
}

// rig is a zero-latency simulator and an lbgptd with one backend on it,
// plus the go-openai client and the unique requests both overhead
// scenarios send.
type rig struct {
	base   string // the simulator's API root
	key    string // its account's key
	dir    string // temp dir: the daemon's socket and state
	socket string
	daemon *daemon.Daemon // in-process only
	// backendConfig is what newRig added to the daemon's [[backend]].
	backendConfig string
	direct        *openai.Client // straight to the simulator
	seq           atomic.Int64
	close         func()
}

// newRig starts the simulator and the daemon as l says; extraConfig is
// added to the daemon's lbgpt.toml (before its [[backend]]), backendConfig
// to its [[backend]]. The rest is the defaults: the exact cache is on.
func newRig(ctx context.Context, l layout, extraConfig, backendConfig string) (_ *rig, err error) {
	r := &rig{key: "sk-bench-overhead", backendConfig: backendConfig}
	var cleanups []func()
	r.close = func() {
		slices.Reverse(cleanups)
		for _, f := range cleanups {
			f()
		}
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "lbgpt-bench-"); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(r.dir) })
	if l.inProcess {
		s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "bench", Key: r.key}}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		hs := &http.Server{Handler: s}
		go hs.Serve(ln)
		cleanups = append(cleanups, s.Close, func() { hs.Close() })
		r.base = "http://" + ln.Addr().String() + "/v1"
	} else {
		bin, err := binary("lbgpt-sim", l.sim)
		if err != nil {
			return nil, err
		}
		url, stop, err := startSim(ctx, bin, r.key)
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, stop)
		r.base = url + "/v1"
	}
	text := fmt.Sprintf("version = 1\n%s\n[[backend]]\nname = \"sim\"\ntype = \"openai\"\nbase_url = %q\napi_key = %q\nmax_concurrent = 1000\n%s\n", extraConfig, r.base, r.key, backendConfig)
	r.direct = r.client(r.base, r.key, nil)
	if !l.inProcess {
		bin, err := binary("lbgptd", l.lbgptd)
		if err != nil {
			return nil, err
		}
		p, _, err := startProc(ctx, bin, r.dir, text, "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		cleanups = append(cleanups, func() { p.stop() })
		r.socket = p.socket
		return r, nil
	}
	cfg, err := config.Parse([]byte(text), "bench")
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Resolve(os.Getenv); err != nil {
		return nil, err
	}
	r.daemon, err = daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), StateDir: r.dir})
	if err != nil {
		return nil, err
	}
	r.socket = filepath.Join(r.dir, "d.sock")
	sock, err := daemon.Listen(r.socket)
	if err != nil {
		return nil, err
	}
	if err := r.daemon.ListenHTTP(); err != nil {
		sock.Close()
		return nil, err
	}
	dctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- r.daemon.Serve(dctx, sock) }()
	cleanups = append(cleanups, func() { stop(); <-served })
	return r, nil
}

// startSim runs the lbgpt-sim binary on a free loopback port with one
// unlimited account of key, and returns its URL once it listens.
func startSim(ctx context.Context, bin, key string) (url string, stop func(), err error) {
	cmd := exec.Command(bin, "-addr", "127.0.0.1:0", "-key", key)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	var stderr syncbuf.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		// "lbgpt-sim listening on http://HOST:PORT (…)"
		if _, rest, ok := strings.Cut(s, " listening on "); ok {
			if u, _, ok := strings.Cut(rest, " "); ok {
				return u, stop, nil
			}
		}
		stop()
		return "", nil, fmt.Errorf("lbgpt-sim: unexpected first line %q: %s", s, stderr.String())
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	stop()
	return "", nil, fmt.Errorf("lbgpt-sim did not start: %s", stderr.String())
}

// client is a go-openai client of an OpenAI-compatible base URL, with
// extra headers on every request.
func (r *rig) client(base, key string, header http.Header) *openai.Client {
	ocfg := openai.DefaultConfig(key)
	ocfg.BaseURL = base
	var rt http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: 256}
	if header != nil {
		rt = headerTransport{rt, header}
	}
	ocfg.HTTPClient = &http.Client{Transport: rt}
	return openai.NewClientWithConfig(ocfg)
}

// headerTransport adds headers to every request.
type headerTransport struct {
	http.RoundTripper
	header http.Header
}

func (t headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range t.header {
		req.Header[k] = v
	}
	return t.RoundTripper.RoundTrip(req)
}

// request is a new unique chat request: nothing can be coalesced or served
// from the cache; with the cache on, every answer is written to it.
func (r *rig) request() openai.ChatCompletionRequest {
	i := r.seq.Add(1)
	return openai.ChatCompletionRequest{
		Model:     "gpt-4o-mini",
		MaxTokens: 16,
		Messages:  []openai.ChatCompletionMessage{{Role: "user", Content: fmt.Sprintf("overhead benchmark request %d: say something short", i)}},
	}
}

// viaDaemon is a measured path: one request through lbgptd with c.
func (r *rig) viaDaemon(c *client.Client) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		_, err := c.Chat(ctx, r.request(), rpc.Options{})
		return err
	}
}

// chat is a measured path: one request through c.
func (r *rig) chat(c *openai.Client) func(context.Context, int) error {
	return func(ctx context.Context, _ int) error {
		_, err := c.CreateChatCompletion(ctx, r.request())
		return err
	}
}

// neverBinding are limits no benchmark reaches: admission works as with
// real ones (each prompt's tokens estimated), and nothing waits.
const neverBinding = "limit_rpm = 100000000\nlimit_tpm = 100000000000"

func runOverhead(ctx context.Context, out io.Writer, l layout, n, c, tn, tc, rounds int, limits bool) (map[string]any, error) {
	backend := ""
	if limits {
		backend = neverBinding
	}
	r, err := newRig(ctx, l, "", backend)
	if err != nil {
		return nil, err
	}
	defer r.close()
	clients := make([]*client.Client, max(c, tc))
	for i := range clients {
		clients[i] = &client.Client{Socket: r.socket}
		defer clients[i].Close()
	}
	doDirect := r.chat(r.direct)
	doDaemon := func(ctx context.Context, worker int) error {
		return r.viaDaemon(clients[worker])(ctx, worker)
	}
	// Warm both paths: connections, tokenizer tables.
	if _, err := measure(ctx, 200, 8, 1, doDirect, doDaemon); err != nil {
		return nil, err
	}

	lat, err := measure(ctx, n, c, rounds, doDirect, doDaemon)
	if err != nil {
		return nil, err
	}
	// The daemon's own view of the latency phase's last requests: its time
	// outside the upstream call, and the upstream call.
	st, err := clients[0].Status(ctx)
	if err != nil {
		return nil, err
	}
	thr, err := measure(ctx, tn, tc, rounds, doDirect, doDaemon)
	if err != nil {
		return nil, err
	}
	steps, err := r.steps(ctx, clients[0], n/4)
	if err != nil {
		return nil, err
	}
	floorDirect, floorRelayed, err := relayFloor(ctx, r.dir, n)
	if err != nil {
		return nil, err
	}
	figures := map[string]any{
		"scenario":               "overhead",
		"limits":                 limits,
		"in_process":             l.inProcess,
		"n":                      n,
		"c":                      c,
		"direct_p50_us":          percentile(lat.direct, 50),
		"direct_p99_us":          percentile(lat.direct, 99),
		"daemon_p50_us":          percentile(lat.daemon, 50),
		"daemon_p99_us":          percentile(lat.daemon, 99),
		"added_p50_us":           percentile(lat.daemon, 50) - percentile(lat.direct, 50),
		"added_p99_us":           percentile(lat.daemon, 99) - percentile(lat.direct, 99),
		"direct_rps":             round1(thr.directRPS),
		"daemon_rps":             round1(thr.daemonRPS),
		"throughput_c":           tc,
		"throughput_ratio":       round3(thr.daemonRPS / thr.directRPS),
		"daemon_own_p50_us":      st.DaemonP50US,
		"daemon_upstream_p50_us": int64(st.Backends[0].LatencyP50MS * 1000),
		"floor_direct_p50_us":    floorDirect.Microseconds(),
		"floor_relayed_p50_us":   floorRelayed.Microseconds(),
		"floor_added_p50_us":     (floorRelayed - floorDirect).Microseconds(),
	}
	maps.Copy(figures, steps)
	where := "lbgptd and the simulator as processes of their own"
	if l.inProcess {
		where = "lbgptd and the simulator in this process (-in-process)"
	}
	fmt.Fprintf(out, "overhead: %d requests per path at concurrency %d, %d interleaved rounds; RPM/TPM limits on the backend: %v; %s\n", n, c, rounds, limits, where)
	fmt.Fprintf(out, "  direct  p50 %6d µs  p99 %6d µs\n", figures["direct_p50_us"], figures["direct_p99_us"])
	fmt.Fprintf(out, "  daemon  p50 %6d µs  p99 %6d µs\n", figures["daemon_p50_us"], figures["daemon_p99_us"])
	fmt.Fprintf(out, "  added   p50 %6d µs  p99 %6d µs   (target p50 <= 50, p99 <= 300)\n", figures["added_p50_us"], figures["added_p99_us"])
	fmt.Fprintf(out, "  as lbgptd saw them: its own time p50 %d µs, the upstream call p50 %d µs\n", figures["daemon_own_p50_us"], figures["daemon_upstream_p50_us"])
	fmt.Fprintf(out, "  the floor here: a relay process that does nothing adds p50 %d µs to a line echoed by another process (%d µs direct, %d µs relayed)\n", figures["floor_added_p50_us"], figures["floor_direct_p50_us"], figures["floor_relayed_p50_us"])
	fmt.Fprintf(out, "throughput: %d requests per path at concurrency %d\n", tn, tc)
	fmt.Fprintf(out, "  direct %.0f req/s, daemon %.0f req/s, ratio %.3f   (target >= 0.8)\n", thr.directRPS, thr.daemonRPS, thr.daemonRPS/thr.directRPS)
	fmt.Fprintf(out, "steps, %d each at concurrency 1:\n", n/4)
	fmt.Fprintf(out, "  status round trip p50 %d µs (target <= 30), exact hit p50 %d µs (target <= 60)\n", steps["status_p50_us"], steps["exact_hit_p50_us"])
	fmt.Fprintf(out, "  token count of a prompt p50 %d µs (admission skips it while the TPM bucket is over half full)\n", steps["tokenize_p50_us"])
	fmt.Fprintf(out, "  allocations the daemon path adds per request (counted in-process): %d\n", steps["allocs_per_request"])
	return figures, nil
}

// steps measures the hot path's steps one by one: a status round trip, an
// exact cache hit, the token count admission would make of a prompt, and
// the allocations the daemon path adds to a request.
func (r *rig) steps(ctx context.Context, c *client.Client, n int) (map[string]any, error) {
	timed := func(do func(context.Context, int) error) (int64, error) {
		lat, _, err := batch(ctx, n, 1, do)
		slices.Sort(lat)
		return percentile(lat, 50), err
	}
	status, err := timed(func(ctx context.Context, _ int) error {
		_, err := c.Status(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	same := r.request()
	hit, err := timed(func(ctx context.Context, _ int) error {
		_, err := c.Chat(ctx, same, rpc.Options{}) // the first one pays and stores
		return err
	})
	if err != nil {
		return nil, err
	}
	count, err := timed(func(context.Context, int) error {
		req := r.request()
		tokens.CountMessages(req.Model, []tokens.Message{{Role: req.Messages[0].Role, Content: req.Messages[0].Content}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	perRequest, err := r.allocs(ctx, n)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"status_p50_us":      status,
		"exact_hit_p50_us":   hit,
		"tokenize_p50_us":    count,
		"allocs_per_request": perRequest,
	}, nil
}

// allocs is the heap allocations the daemon path adds to a request: the
// process's allocations over n daemon requests, less those over n direct
// ones (the daemon and its client, less go-openai's client; the
// simulator's work is in both). Only a daemon in this process can be
// counted: a rig of processes starts one in-process rig for it.
func (r *rig) allocs(ctx context.Context, n int) (int64, error) {
	if r.daemon == nil {
		in, err := newRig(ctx, layout{inProcess: true}, "", r.backendConfig)
		if err != nil {
			return 0, err
		}
		defer in.close()
		return in.allocs(ctx, n)
	}
	c := &client.Client{Socket: r.socket}
	defer c.Close()
	count := func(do func(context.Context, int) error) (uint64, error) {
		runtime.GC()
		before := heapAllocs()
		_, _, err := batch(ctx, n, 1, do)
		return heapAllocs() - before, err
	}
	// Warm both paths: connections, tokenizer tables.
	if _, err := measure(ctx, 200, 1, 1, r.chat(r.direct), r.viaDaemon(c)); err != nil {
		return 0, err
	}
	viaDaemon, err := count(r.viaDaemon(c))
	if err != nil {
		return 0, err
	}
	viaDirect, err := count(r.chat(r.direct))
	if err != nil {
		return 0, err
	}
	return (int64(viaDaemon) - int64(viaDirect)) / int64(n), nil
}

// heapAllocs is the count of heap allocations the process made so far.
func heapAllocs() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

type measured struct {
	direct, daemon       []time.Duration // sorted latencies
	directRPS, daemonRPS float64
}

// measure runs n requests per path at concurrency c, alternating the paths
// over rounds, and returns sorted latencies and throughput per path.
func measure(ctx context.Context, n, c, rounds int, direct, daemon func(context.Context, int) error) (measured, error) {
	r, err := measurePaths(ctx, n, c, rounds, direct, daemon)
	if err != nil {
		return measured{}, err
	}
	return measured{direct: r[0].lat, daemon: r[1].lat, directRPS: r[0].rps, daemonRPS: r[1].rps}, nil
}

// pathResult is what measurePaths found of one path.
type pathResult struct {
	lat []time.Duration // sorted
	rps float64
}

// measurePaths runs n requests per path at concurrency c, over rounds in
// which the paths take turns in a rotating order, so every path sees the
// same machine state.
func measurePaths(ctx context.Context, n, c, rounds int, paths ...func(context.Context, int) error) ([]pathResult, error) {
	res := make([]pathResult, len(paths))
	elapsed := make([]time.Duration, len(paths))
	per := max(n/rounds, 1)
	for r := range rounds {
		for k := range paths {
			i := (k + r) % len(paths)
			lat, took, err := batch(ctx, per, c, paths[i])
			if err != nil {
				return nil, err
			}
			res[i].lat = append(res[i].lat, lat...)
			elapsed[i] += took
		}
	}
	for i := range res {
		slices.Sort(res[i].lat)
		res[i].rps = float64(len(res[i].lat)) / elapsed[i].Seconds()
	}
	return res, nil
}

// batch runs n calls of do on c workers.
func batch(ctx context.Context, n, c int, do func(context.Context, int) error) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := do(ctx, w); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
