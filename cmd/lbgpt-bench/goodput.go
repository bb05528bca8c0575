package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// goodput measures how close lbgptd comes to the sum of its backends' rate
// limits: a workload too big for the limits' burst, sent as one batch, timed
// against the lower bound the limits allow. The same workload then runs
// through the original LBGPT's algorithm, rebuilt here, against fresh
// accounts with the same limits.
func goodput(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	var o goodputOptions
	fs.IntVar(&o.n, "n", 3000, "requests in the workload")
	fs.IntVar(&o.concurrency, "concurrency", 256, "batch concurrency asked of lbgptd")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload's sizes and of the baseline's random choices")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "deadline of each phase (lbgptd, then baseline)")
	fs.BoolVar(&o.baseline, "baseline", true, "also run the original's algorithm as a baseline")
	fs.IntVar(&o.base.perBackend, "baseline-concurrent", 5, "baseline: calls in flight per backend (the original's max_parallel_calls)")
	fs.IntVar(&o.base.attempts, "baseline-attempts", 10, "baseline: attempts per request (the original's stop_after_attempts)")
	fs.Float64Var(&o.base.waitScale, "baseline-wait-scale", 1, "baseline: scale of the original's backoff (wait_random_exponential(min=5, max=60), in seconds)")
	o.pool.register(fs)
	o.sizes.register(fs)
	o.latency.register(fs)
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runGoodput(ctx, out, o)
	}
}

type goodputOptions struct {
	n, concurrency int
	seed           uint64
	timeout        time.Duration
	baseline       bool
	base           baselineOptions
	pool           pool
	sizes          sizes
	latency        latency
}

func runGoodput(ctx context.Context, out io.Writer, o goodputOptions) (map[string]any, error) {
	if err := o.pool.check(); err != nil {
		return nil, err
	}
	if err := o.sizes.check(); err != nil {
		return nil, err
	}
	if o.n < 1 || o.concurrency < 1 || o.base.perBackend < 1 || o.base.attempts < 1 || o.base.waitScale < 0 {
		return nil, errors.New("-n, -concurrency, -baseline-concurrent and -baseline-attempts must be positive")
	}
	names := o.pool.names()
	items := makeWorkload(o.n, o.seed, o.sizes)
	dem := measureDemand(items)
	bound, binding := lowerBound(dem, o.pool.rpm, o.pool.tpm)

	fmt.Fprintf(out, "goodput: %d unique requests, prompts %d–%d tokens (mean %.0f), max_tokens %d–%d (mean %.0f)\n",
		o.n, o.sizes.promptMin, o.sizes.promptMax, dem.promptMean, o.sizes.answerMin, o.sizes.answerMax, dem.answerMean)
	fmt.Fprintf(out, "  demand %d requests, %d tokens; limits %s\n", dem.requests, dem.tokens, describeLimits(names, o.pool.rpm, o.pool.tpm))
	fmt.Fprintf(out, "  lower bound %.1f s (%s bind)\n", bound, binding)

	// lbgptd.
	accounts := make([]sim.Account, len(names))
	backends := make([]benchBackend, len(names))
	for i, name := range names {
		key := "sk-bench-goodput-" + name
		accounts[i] = sim.Account{Name: name, Key: key, RPM: o.pool.rpm[i], TPM: o.pool.tpm[i], TTFT: o.latency.ttft, PerToken: o.latency.perToken}
		backends[i] = benchBackend{name: name, key: key, rpm: o.pool.rpm[i], tpm: o.pool.tpm[i]}
	}
	up, err := startUpstream(sim.Options{Accounts: accounts, Seed: int64(o.seed)})
	if err != nil {
		return nil, err
	}
	defer up.close()
	for i := range backends {
		backends[i].url = up.url
	}
	pctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	d, err := startDaemon(pctx, backends)
	if err != nil {
		return nil, err
	}
	res, err := runBatch(pctx, d, items, o.concurrency, nil)
	if err != nil {
		d.close()
		return nil, err
	}
	var status *rpc.StatusResult
	if st, err := d.status(ctx); err == nil {
		status = st
	}
	if err := d.close(); err != nil {
		fmt.Fprintf(out, "  warning: %v\n", err)
	}
	up.close()
	cancel()
	n429 := up.count429(names...)

	// With items missing, the ratio is taken against the bound of the
	// demand actually served, so failing fast does not pass for goodput.
	dBound := servedBound(items, res.served, o.pool)
	fmt.Fprintf(out, "lbgptd (max_headroom, batch concurrency %d, max_concurrent 64 per backend):\n", o.concurrency)
	fmt.Fprintf(out, "  %d/%d answered in %.2f s%s; goodput ratio %.3f (target >= 0.95); upstream 429s %d (target 0)\n",
		res.ok, o.n, res.elapsed.Seconds(), res.note(), ratio(dBound, res.elapsed), n429)
	if res.ok < o.n {
		fmt.Fprintf(out, "  %d items failed or were not answered: the ratio is against the %.1f s bound of the answered ones\n", o.n-res.ok, dBound)
		if s := res.errorSummary(); s != "" {
			fmt.Fprintf(out, "  errors: %s\n", s)
		}
	}
	share := fractions(res.byBackend, names, res.ok)
	fmt.Fprintf(out, "  share %s; TPM share %s\n", formatShares(share, names), formatShares(limitShares(o.pool.tpm, names), names))
	if status != nil {
		fmt.Fprintf(out, "  daemon status:%s\n", describeStatus(status))
	}

	figures := map[string]any{
		"scenario":           "goodput",
		"n":                  o.n,
		"concurrency":        o.concurrency,
		"demand_tokens":      dem.tokens,
		"bound_s":            round3(bound),
		"binding":            binding,
		"elapsed_s":          round3(res.elapsed.Seconds()),
		"goodput_ratio":      round3(ratio(bound, res.elapsed)),
		"upstream_429":       n429,
		"completed":          res.ok,
		"failed":             res.failed,
		"timed_out":          res.timedOut,
		"retries":            res.retries,
		"share":              share,
		"attempts_histogram": res.attempts,
	}
	if !o.baseline {
		return figures, nil
	}

	// The original's algorithm, against fresh accounts with the same limits.
	bup, err := startUpstream(sim.Options{Accounts: accounts, Seed: int64(o.seed)})
	if err != nil {
		return nil, err
	}
	defer bup.close()
	keys := make([]string, len(names))
	weights := make([]float64, len(names))
	for i := range names {
		keys[i] = accounts[i].Key
		weights[i] = float64(o.pool.tpm[i])
	}
	bctx, bcancel := context.WithTimeout(ctx, o.timeout)
	defer bcancel()
	base := runBaseline(bctx, bup.url, names, keys, weights, items, o.base, o.seed)
	bup.close()
	bBound := servedBound(items, base.served, o.pool)
	b429 := bup.count429(names...)
	bshare := fractions(base.byBackend, names, base.ok)
	fmt.Fprintf(out, "baseline (the original: weighted random by TPM, %d in flight per backend, retry on 429/5xx with wait_random_exponential(min=%gs, max=%gs), %d attempts):\n",
		o.base.perBackend, 5*o.base.waitScale, 60*o.base.waitScale, o.base.attempts)
	note := ""
	if base.timedOut {
		note = fmt.Sprintf(" (stopped at the %s deadline)", o.timeout)
	}
	fmt.Fprintf(out, "  %d/%d answered, %d failed, in %.2f s%s; goodput ratio %.3f; upstream 429s %d\n",
		base.ok, o.n, base.failed, base.elapsed.Seconds(), note, ratio(bBound, base.elapsed), b429)
	if base.ok < o.n {
		fmt.Fprintf(out, "  the ratio is against the %.1f s bound of the answered items\n", bBound)
	}
	fmt.Fprintf(out, "  share %s\n", formatShares(bshare, names))
	if res.elapsed > 0 {
		fmt.Fprintf(out, "lbgptd finished %.2fx faster than the baseline\n", base.elapsed.Seconds()/res.elapsed.Seconds())
	}
	figures["baseline_elapsed_s"] = round3(base.elapsed.Seconds())
	figures["baseline_goodput_ratio"] = round3(ratio(bBound, base.elapsed))
	figures["baseline_upstream_429"] = b429
	figures["baseline_completed"] = base.ok
	figures["baseline_failed"] = base.failed
	figures["baseline_timed_out"] = base.timedOut
	figures["baseline_share"] = bshare
	figures["baseline_wait_scale"] = o.base.waitScale
	return figures, nil
}

// servedBound is the lower bound of the items marked served.
func servedBound(items []workItem, served []bool, p pool) float64 {
	var some []workItem
	for i, it := range items {
		if i < len(served) && served[i] {
			some = append(some, it)
		}
	}
	b, _ := lowerBound(measureDemand(some), p.rpm, p.tpm)
	return b
}

// ratio is bound / elapsed, 0 when nothing was measured.
func ratio(bound float64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return bound / elapsed.Seconds()
}

func describeLimits(names []string, rpm, tpm []int) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d RPM/%d TPM", n, rpm[i], tpm[i])
	}
	return strings.Join(parts, ", ")
}

func describeStatus(st *rpc.StatusResult) string {
	var b strings.Builder
	for _, be := range st.Backends {
		fmt.Fprintf(&b, " %s: %d calls, %d errors, %d 429s, %d retries;", be.Name, be.Requests, be.Errors, be.Status429, be.Retries)
	}
	return strings.TrimSuffix(b.String(), ";")
}

func limitShares(limits []int, names []string) map[string]float64 {
	counts := map[string]int{}
	total := 0
	for i, n := range names {
		counts[n] = limits[i]
		total += limits[i]
	}
	return fractions(counts, names, total)
}

// baselineOptions are the knobs of the original's algorithm.
type baselineOptions struct {
	perBackend int     // semaphore per backend: max_parallel_calls, default 5
	attempts   int     // stop_after_attempt, default 10
	waitScale  float64 // 1 = the original's wait_random_exponential(min=5, max=60)
}

// baselineOutcome is what the original's algorithm gave.
type baselineOutcome struct {
	elapsed    time.Duration
	timedOut   bool
	ok, failed int
	served     []bool // by input index: answered
	byBackend  map[string]int
}

// runBaseline sends items the way the original LBGPT's
// MultiLoadBalancedGPT with allocation "random" and weights does:
// chat_completion_list starts every item at once; each attempt picks a
// backend at random by weight, with no regard for its headroom, and waits
// for that backend's semaphore; an attempt that ends in 429, 5xx or a
// connection error is retried (on a new random pick) after tenacity's
// wait_random_exponential(min=5, max=60): uniform(5 s, clamp(2^(attempt−1) s,
// 5 s, 60 s)), the sleep holding no semaphore; after the last attempt the
// item fails (the original returns None for it). Retry-After is ignored.
func runBaseline(ctx context.Context, baseURL string, names, keys []string, weights []float64, items []workItem, o baselineOptions, seed uint64) baselineOutcome {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * o.perBackend * len(names)}}
	defer hc.CloseIdleConnections()
	sems := make([]chan struct{}, len(names))
	for i := range sems {
		sems[i] = make(chan struct{}, o.perBackend)
	}
	var total float64
	for _, w := range weights {
		total += w
	}
	pick := func(rng *rand.Rand) int {
		x := rng.Float64() * total
		for i, w := range weights {
			if x < w {
				return i
			}
			x -= w
		}
		return len(weights) - 1
	}
	// call makes one attempt and reports whether it succeeded and whether
	// a failure is one the original retries.
	call := func(b int, it workItem) (ok, retry bool) {
		select {
		case sems[b] <- struct{}{}:
		case <-ctx.Done():
			return false, false
		}
		defer func() { <-sems[b] }()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/chat/completions", bytes.NewReader(it.body))
		if err != nil {
			return false, false
		}
		req.Header.Set("Authorization", "Bearer "+keys[b])
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return false, ctx.Err() == nil // APIConnectionError, timeouts
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return false, ctx.Err() == nil
		case resp.StatusCode == http.StatusOK:
			return answers(client.AnswerText(body), it.tag), false
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			return false, true // RateLimitError, InternalServerError
		}
		return false, false
	}
	wait := func(attempt int, rng *rand.Rand) time.Duration {
		const lo, hi = 5.0, 60.0
		upper := math.Max(lo, math.Min(math.Pow(2, float64(attempt-1)), hi))
		return time.Duration((lo + rng.Float64()*(upper-lo)) * o.waitScale * float64(time.Second))
	}

	var mu sync.Mutex // guards out
	out := baselineOutcome{byBackend: map[string]int{}, served: make([]bool, len(items))}
	var wg sync.WaitGroup
	start := time.Now()
	for i, it := range items {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for attempt := 1; attempt <= o.attempts; attempt++ {
				b := pick(rng)
				ok, retry := call(b, it)
				if ok {
					mu.Lock()
					out.ok++
					out.served[i] = true
					out.byBackend[names[b]]++
					mu.Unlock()
					return
				}
				if !retry || attempt == o.attempts {
					break
				}
				t := time.NewTimer(wait(attempt, rng))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				if ctx.Err() != nil {
					break
				}
			}
			mu.Lock()
			out.failed++
			mu.Unlock()
		})
	}
	wg.Wait()
	out.elapsed = time.Since(start)
	out.timedOut = ctx.Err() != nil
	return out
}
