package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// runOverhead measures what lbgptd adds to a request: the same requests
// against a zero-latency simulator, directly with go-openai and through the
// daemon over its socket, interleaved in rounds so both see the same
// machine state.
func overhead(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	n := fs.Int("n", 4000, "requests per path for the latency phase")
	c := fs.Int("c", 1, "concurrency of the latency phase")
	tn := fs.Int("throughput-n", 8000, "requests per path for the throughput phase")
	tc := fs.Int("throughput-c", 32, "concurrency of the throughput phase")
	rounds := fs.Int("rounds", 8, "interleaved rounds per phase")
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runOverhead(ctx, out, *n, *c, *tn, *tc, *rounds)
	}
}

func runOverhead(ctx context.Context, out io.Writer, n, c, tn, tc, rounds int) (map[string]any, error) {
	const key = "sk-bench-overhead"
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "bench", Key: key}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: s}
	go hs.Serve(ln)
	defer hs.Close()
	defer s.Close()
	base := "http://" + ln.Addr().String() + "/v1"

	cfg, err := config.Parse(fmt.Appendf(nil, "version = 1\n[[backend]]\nname = \"sim\"\ntype = \"openai\"\nbase_url = %q\napi_key = %q\nmax_concurrent = 1000\n", base, key), "bench")
	if err != nil {
		return nil, err
	}
	if _, err := cfg.Resolve(os.Getenv); err != nil {
		return nil, err
	}
	cfg.Cache.Enabled = false // this scenario measures the balancer, not the cache
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lbgpt-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock, err := daemon.Listen(filepath.Join(dir, "d.sock"))
	if err != nil {
		return nil, err
	}
	dctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- d.Serve(dctx, sock) }()
	defer func() { stop(); <-served }()

	ocfg := openai.DefaultConfig(key)
	ocfg.BaseURL = base
	ocfg.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	direct := openai.NewClientWithConfig(ocfg)

	var seq atomic.Int64
	request := func() openai.ChatCompletionRequest {
		i := seq.Add(1)
		return openai.ChatCompletionRequest{
			Model:     "gpt-4o-mini",
			MaxTokens: 16,
			Messages:  []openai.ChatCompletionMessage{{Role: "user", Content: fmt.Sprintf("overhead benchmark request %d: say something short", i)}},
		}
	}
	clients := make([]*client.Client, max(c, tc))
	for i := range clients {
		clients[i] = &client.Client{Socket: filepath.Join(dir, "d.sock")}
		defer clients[i].Close()
	}
	doDirect := func(ctx context.Context, _ int) error {
		_, err := direct.CreateChatCompletion(ctx, request())
		return err
	}
	doDaemon := func(ctx context.Context, worker int) error {
		_, err := clients[worker].Chat(ctx, request(), rpc.Options{})
		return err
	}
	// Warm both paths: connections, tokenizer tables.
	if _, err := measure(ctx, 200, 8, 1, doDirect, doDaemon); err != nil {
		return nil, err
	}

	lat, err := measure(ctx, n, c, rounds, doDirect, doDaemon)
	if err != nil {
		return nil, err
	}
	thr, err := measure(ctx, tn, tc, rounds, doDirect, doDaemon)
	if err != nil {
		return nil, err
	}
	figures := map[string]any{
		"scenario":         "overhead",
		"n":                n,
		"c":                c,
		"direct_p50_us":    percentile(lat.direct, 50),
		"direct_p99_us":    percentile(lat.direct, 99),
		"daemon_p50_us":    percentile(lat.daemon, 50),
		"daemon_p99_us":    percentile(lat.daemon, 99),
		"added_p50_us":     percentile(lat.daemon, 50) - percentile(lat.direct, 50),
		"added_p99_us":     percentile(lat.daemon, 99) - percentile(lat.direct, 99),
		"direct_rps":       round1(thr.directRPS),
		"daemon_rps":       round1(thr.daemonRPS),
		"throughput_c":     tc,
		"throughput_ratio": round3(thr.daemonRPS / thr.directRPS),
	}
	fmt.Fprintf(out, "overhead: %d requests per path at concurrency %d, %d interleaved rounds\n", n, c, rounds)
	fmt.Fprintf(out, "  direct  p50 %6d µs  p99 %6d µs\n", figures["direct_p50_us"], figures["direct_p99_us"])
	fmt.Fprintf(out, "  daemon  p50 %6d µs  p99 %6d µs\n", figures["daemon_p50_us"], figures["daemon_p99_us"])
	fmt.Fprintf(out, "  added   p50 %6d µs  p99 %6d µs   (target p50 <= 100)\n", figures["added_p50_us"], figures["added_p99_us"])
	fmt.Fprintf(out, "throughput: %d requests per path at concurrency %d\n", tn, tc)
	fmt.Fprintf(out, "  direct %.0f req/s, daemon %.0f req/s, ratio %.3f   (target >= 0.7)\n", thr.directRPS, thr.daemonRPS, thr.daemonRPS/thr.directRPS)
	return figures, nil
}

type measured struct {
	direct, daemon       []time.Duration // sorted latencies
	directRPS, daemonRPS float64
}

// measure runs n requests per path at concurrency c, alternating the paths
// over rounds, and returns sorted latencies and throughput per path.
func measure(ctx context.Context, n, c, rounds int, direct, daemon func(context.Context, int) error) (measured, error) {
	var m measured
	var directTime, daemonTime time.Duration
	per := max(n/rounds, 1)
	for r := range rounds {
		paths := []struct {
			do      func(context.Context, int) error
			lat     *[]time.Duration
			elapsed *time.Duration
		}{{direct, &m.direct, &directTime}, {daemon, &m.daemon, &daemonTime}}
		if r%2 == 1 {
			paths[0], paths[1] = paths[1], paths[0]
		}
		for _, p := range paths {
			lat, elapsed, err := batch(ctx, per, c, p.do)
			if err != nil {
				return m, err
			}
			*p.lat = append(*p.lat, lat...)
			*p.elapsed += elapsed
		}
	}
	slices.Sort(m.direct)
	slices.Sort(m.daemon)
	m.directRPS = float64(len(m.direct)) / directTime.Seconds()
	m.daemonRPS = float64(len(m.daemon)) / daemonTime.Seconds()
	return m, nil
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
