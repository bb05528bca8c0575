package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// faults runs the goodput pool through trouble: backend a fails a share of
// its calls with 5xx, backend b is cut off (connection refused) halfway
// through, and backend c enforces a lower RPM than lbgptd is told, so it
// answers bursts of 429 with Retry-After. Every item must still be answered,
// in order, and no request may be answered upstream twice.
func faults(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	var o faultsOptions
	fs.IntVar(&o.n, "n", 3000, "requests in the workload")
	fs.IntVar(&o.concurrency, "concurrency", 256, "batch concurrency asked of lbgptd")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload's sizes and of the simulated faults")
	fs.DurationVar(&o.timeout, "timeout", 4*time.Minute, "deadline of the batch")
	fs.Float64Var(&o.fail, "fail", 0.3, "share of backend a's calls failing with 500, 502 or 503 (a third each)")
	fs.Float64Var(&o.cutAt, "cut-at", 0.5, "share of items done when backend b is cut off")
	fs.IntVar(&o.realRPM, "c-real-rpm", 100, "requests per minute backend c really allows (lbgptd is told its -rpm value)")
	o.pool.register(fs)
	o.sizes.register(fs)
	o.latency.register(fs)
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runFaults(ctx, out, o)
	}
}

type faultsOptions struct {
	n, concurrency int
	seed           uint64
	timeout        time.Duration
	fail, cutAt    float64
	realRPM        int
	pool           pool
	sizes          sizes
	latency        latency
}

func runFaults(ctx context.Context, out io.Writer, o faultsOptions) (map[string]any, error) {
	if err := o.pool.check(); err != nil {
		return nil, err
	}
	if len(o.pool.rpm) != 3 {
		return nil, errors.New("faults needs exactly three backends in -rpm and -tpm")
	}
	if err := o.sizes.check(); err != nil {
		return nil, err
	}
	if o.n < 1 || o.concurrency < 1 || o.realRPM < 1 || !(o.fail >= 0 && o.fail <= 1) || !(o.cutAt >= 0 && o.cutAt <= 1) {
		return nil, errors.New("want -n, -concurrency, -c-real-rpm >= 1 and -fail, -cut-at in [0, 1]")
	}
	names := o.pool.names()
	items := makeWorkload(o.n, o.seed, o.sizes)
	dem := measureDemand(items)

	key := func(name string) string { return "sk-bench-faults-" + name }
	acct := func(i int) sim.Account {
		return sim.Account{Name: names[i], Key: key(names[i]), RPM: o.pool.rpm[i], TPM: o.pool.tpm[i], TTFT: o.latency.ttft, PerToken: o.latency.perToken}
	}
	a, b, c := acct(0), acct(1), acct(2)
	a.Faults = sim.Faults{Error500: o.fail / 3, Error502: o.fail / 3, Error503: o.fail / 3}
	c.RPM = o.realRPM
	// a and c share a simulator; b has its own listener so it can be cut.
	upAC, err := startUpstream(sim.Options{Accounts: []sim.Account{a, c}, Seed: int64(o.seed)})
	if err != nil {
		return nil, err
	}
	defer upAC.close()
	upB, err := startUpstream(sim.Options{Accounts: []sim.Account{b}, Seed: int64(o.seed)})
	if err != nil {
		return nil, err
	}
	defer upB.close()
	backends := make([]benchBackend, 3)
	for i, name := range names {
		backends[i] = benchBackend{name: name, url: upAC.url, key: key(name), rpm: o.pool.rpm[i], tpm: o.pool.tpm[i]}
	}
	backends[1].url = upB.url

	fmt.Fprintf(out, "faults: %d unique requests, prompts mean %.0f tokens, max_tokens mean %.0f; demand %d tokens\n",
		o.n, dem.promptMean, dem.answerMean, dem.tokens)
	fmt.Fprintf(out, "  limits told to lbgptd: %s\n", describeLimits(names, o.pool.rpm, o.pool.tpm))
	fmt.Fprintf(out, "  a fails %.0f%% of calls with 5xx; b is cut off (connection refused) after %.0f%% of the items; c really allows %d RPM\n",
		100*o.fail, 100*o.cutAt, o.realRPM)

	pctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	d, err := startDaemon(pctx, backends)
	if err != nil {
		return nil, err
	}
	cutAfter := int(math.Ceil(o.cutAt * float64(o.n)))
	var cutWG sync.WaitGroup
	var cutAt time.Duration
	done := 0
	cutB := func(at time.Duration) {
		cutAt = at
		cutWG.Go(upB.cut)
	}
	if cutAfter == 0 {
		cutB(0)
	}
	res, err := runBatch(pctx, d, items, o.concurrency, func(a arrival) {
		done++
		if done == cutAfter {
			cutB(a.at)
		}
	})
	if err != nil {
		d.close()
		return nil, err
	}
	cutWG.Wait()
	var status *rpc.StatusResult
	if st, err := d.status(ctx); err == nil {
		status = st
	}
	if err := d.close(); err != nil {
		fmt.Fprintf(out, "  warning: %v\n", err)
	}
	upAC.close()
	upB.close()

	// Order: one item per request, in input order, each answering its own
	// prompt; the notifications too.
	orderOK := !res.timedOut && len(res.items) == o.n
	wrong := 0
	for i, it := range res.items {
		if it.Index != i {
			orderOK = false
		}
		if it.Result != nil && (it.Index < 0 || it.Index >= o.n || !answers(client.AnswerText(it.Result.Response), items[it.Index].tag)) {
			wrong++
		}
	}
	for _, a := range res.arrivals {
		if r := a.item.Result; r != nil && (a.item.Index < 0 || a.item.Index >= o.n || !answers(client.AnswerText(r.Response), items[a.item.Index].tag)) {
			orderOK = false
		}
	}
	if wrong > 0 {
		orderOK = false
	}

	// Duplicates: the same request body answered 200 more than once,
	// anywhere. Prompts are unique, so an identical body is the same item.
	answered := map[string]int{}
	upstream200 := 0
	for _, u := range []*upstream{upAC, upB} {
		for _, r := range u.sim.Log() {
			if r.Status == 200 && r.Fault == "" {
				answered[r.BodySHA256]++
				upstream200++
			}
		}
	}
	dups := 0
	for _, n := range answered {
		dups += n - 1
	}

	// Latency per item: in the daemon (Meta: upstream + daemon time, from
	// the item's start to its answer, queueing and backoff included), and
	// as seen by the client (from the batch call to the item's
	// notification, so it includes waiting behind earlier items).
	var inDaemon, seen []time.Duration
	for _, it := range res.items {
		if r := it.Result; r != nil {
			inDaemon = append(inDaemon, time.Duration(r.Meta.UpstreamUS+r.Meta.DaemonUS)*time.Microsecond)
		}
	}
	for _, a := range res.arrivals {
		if a.item.Result != nil {
			seen = append(seen, a.at)
		}
	}
	slices.Sort(inDaemon)
	slices.Sort(seen)
	hist := map[string]int{}
	for n, count := range res.attempts {
		hist[strconv.Itoa(n)] = count
	}
	if res.failed > 0 {
		hist["failed"] = res.failed
	}

	statsAC, statsB := upAC.sim.Stats(), upB.sim.Stats()
	upstream := map[string]sim.AccountStats{names[0]: statsAC[names[0]], names[1]: statsB[names[1]], names[2]: statsAC[names[2]]}
	n429 := 0
	for _, st := range upstream {
		n429 += st.RateLimited
	}
	completed := float64(res.ok) / float64(o.n)
	share := fractions(res.byBackend, names, res.ok)

	fmt.Fprintf(out, "lbgptd (max_headroom, batch concurrency %d):\n", o.concurrency)
	fmt.Fprintf(out, "  %d/%d answered (completed ratio %.4f, target 1), %d failed, in %.2f s%s; b cut at %.2f s\n",
		res.ok, o.n, completed, res.failed, res.elapsed.Seconds(), res.note(), cutAt.Seconds())
	if s := res.errorSummary(); s != "" {
		fmt.Fprintf(out, "  errors: %s\n", s)
	}
	fmt.Fprintf(out, "  in order and each answering its own prompt: %v (%d wrong answers)\n", orderOK, wrong)
	fmt.Fprintf(out, "  upstream 200s %d, duplicate upstream answers %d (target 0)\n", upstream200, dups)
	fmt.Fprintf(out, "  per-item latency in the daemon p50 %.0f ms, p99 %.0f ms; from the batch start to the item p50 %.0f ms, p99 %.0f ms\n",
		percentileMS(inDaemon, 50), percentileMS(inDaemon, 99), percentileMS(seen, 50), percentileMS(seen, 99))
	fmt.Fprintf(out, "  attempts per item %v\n", hist)
	fmt.Fprintf(out, "  share %s\n", formatShares(share, names))
	for _, name := range names {
		st := upstream[name]
		fmt.Fprintf(out, "  upstream %s: %d requests, %d ok, %d injected faults, %d 429s\n", name, st.Requests, st.OK, st.Faults, st.RateLimited)
	}
	if status != nil {
		fmt.Fprintf(out, "  daemon status:%s\n", describeStatus(status))
	}

	return map[string]any{
		"scenario":                   "faults",
		"n":                          o.n,
		"concurrency":                o.concurrency,
		"elapsed_s":                  round3(res.elapsed.Seconds()),
		"timed_out":                  res.timedOut,
		"completed_ratio":            completed, // unrounded: 2999/3000 must not read as 1
		"completed":                  res.ok,
		"failed":                     res.failed,
		"order_ok":                   orderOK,
		"wrong_answers":              wrong,
		"duplicate_upstream_answers": dups,
		"upstream_200":               upstream200,
		"upstream_429":               n429,
		"upstream_5xx":               upstream[names[0]].Faults,
		"p50_ms":                     percentileMS(inDaemon, 50),
		"p99_ms":                     percentileMS(inDaemon, 99),
		"arrival_p50_ms":             percentileMS(seen, 50),
		"arrival_p99_ms":             percentileMS(seen, 99),
		"attempts_histogram":         hist,
		"share":                      share,
		"cut_at_s":                   round3(cutAt.Seconds()),
	}, nil
}
