package main

// Shared pieces of the goodput and faults scenarios: a workload of unique
// chat requests, simulated accounts on loopback listeners, an in-process
// lbgptd configured over them, and one batch call through its socket.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/rpc"
)

// benchModel is the model every benchmark request asks for.
const benchModel = "gpt-4o-mini"

// intList is a flag holding comma-separated integers, one per backend.
type intList []int

var _ flag.Value = (*intList)(nil)

func (l *intList) String() string {
	s := make([]string, len(*l))
	for i, v := range *l {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(s string) error {
	var out intList
	for f := range strings.SplitSeq(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 {
			return fmt.Errorf("%q is not a list of non-negative integers", s)
		}
		out = append(out, v)
	}
	*l = out
	return nil
}

// pool is the shape both scenarios share: backends named a, b, c, … with
// requests- and tokens-per-minute limits.
type pool struct {
	rpm, tpm intList
}

func (p *pool) register(fs *flag.FlagSet) {
	p.rpm = intList{1200, 800, 500}
	p.tpm = intList{450_000, 300_000, 150_000}
	fs.Var(&p.rpm, "rpm", "requests per minute of each backend (a,b,c,…), comma-separated")
	fs.Var(&p.tpm, "tpm", "tokens per minute of each backend, comma-separated")
}

func (p *pool) check() error {
	if len(p.rpm) == 0 || len(p.rpm) != len(p.tpm) {
		return fmt.Errorf("-rpm and -tpm need one value per backend each (have %d and %d)", len(p.rpm), len(p.tpm))
	}
	if slices.Contains(p.rpm, 0) || slices.Contains(p.tpm, 0) {
		return errors.New("-rpm and -tpm: every backend needs both limits")
	}
	return nil
}

func (p *pool) names() []string {
	n := make([]string, len(p.rpm))
	for i := range n {
		n[i] = string(rune('a' + i))
	}
	return n
}

// sizes are the ranges, in tokens, of the workload's prompts and answers.
type sizes struct {
	promptMin, promptMax int // prompt tokens, as the simulator counts them (message overhead included)
	answerMin, answerMax int // max_tokens
}

func (s *sizes) register(fs *flag.FlagSet) {
	fs.IntVar(&s.promptMin, "prompt-min", 20, "smallest prompt, in tokens")
	fs.IntVar(&s.promptMax, "prompt-max", 600, "largest prompt, in tokens")
	fs.IntVar(&s.answerMin, "answer-min", 16, "smallest max_tokens")
	fs.IntVar(&s.answerMax, "answer-max", 256, "largest max_tokens")
}

func (s *sizes) check() error {
	if s.promptMin < 20 || s.promptMax < s.promptMin || s.answerMin < 16 || s.answerMax < s.answerMin {
		return errors.New("want 20 <= -prompt-min <= -prompt-max and 16 <= -answer-min <= -answer-max " +
			"(an answer needs 16 tokens to echo the item's tag)")
	}
	return nil
}

// latency is the simulated upstream latency of every account.
type latency struct {
	ttft, perToken time.Duration
}

func (l *latency) register(fs *flag.FlagSet) {
	fs.DurationVar(&l.ttft, "ttft", 50*time.Millisecond, "simulated time to first token")
	fs.DurationVar(&l.perToken, "per-token", time.Millisecond, "simulated time per completion token after the first")
}

// workItem is one request of a workload.
type workItem struct {
	tag       string          // first word of the prompt, echoed by the simulator: "item-000042"
	body      json.RawMessage // the OpenAI chat completion request
	prompt    int             // prompt tokens, counted as the simulator counts them
	maxTokens int
}

// cost is what the simulator charges the request to its TPM bucket.
func (w workItem) cost() int { return w.prompt + w.maxTokens }

// vocabulary words are one token each, with a leading space, in o200k_base.
var vocabulary = strings.Fields(`the of and to in is that for it as with was on be by this are from or at an
which but not have has more can will one all their there been when what time about also into data
model system value result request answer simple clear first new some other could would than
then them these only over such most well many very just like make each where after before because
through between under while should those both same given level point state order number field
table record token stream cache route limit queue worker server client signal sample vector random
steady quiet bright river stone cloud paper window market letter`)

// makeWorkload returns n chat requests with prompt and answer sizes drawn
// uniformly from sz. Sizes depend only on seed; every prompt is unique (an
// index tag) and carries a nonce of this run, so no cache anywhere can
// answer it from an earlier run.
func makeWorkload(n int, seed uint64, sz sizes) []workItem {
	rng := rand.New(rand.NewPCG(seed, 0x6c6267707462))
	nonce := fmt.Sprintf("run-%08x", uint32(time.Now().UnixNano()))
	items := make([]workItem, n)
	var b strings.Builder
	for i := range items {
		tag := fmt.Sprintf("item-%06d", i)
		want := sz.promptMin + rng.IntN(sz.promptMax-sz.promptMin+1)
		maxTokens := sz.answerMin + rng.IntN(sz.answerMax-sz.answerMin+1)
		// The tag, the nonce and the message framing take about 20 tokens;
		// each vocabulary word one.
		b.Reset()
		b.WriteString(tag)
		b.WriteString(" ")
		b.WriteString(nonce)
		b.WriteString(" please answer briefly:")
		for range max(0, want-20) {
			b.WriteByte(' ')
			b.WriteString(vocabulary[rng.IntN(len(vocabulary))])
		}
		content := b.String()
		body, err := json.Marshal(map[string]any{
			"model":      benchModel,
			"max_tokens": maxTokens,
			"messages":   []map[string]string{{"role": "user", "content": content}},
		})
		if err != nil {
			panic(err) // plain maps of strings and ints always marshal
		}
		items[i] = workItem{
			tag:       tag,
			body:      body,
			prompt:    tokens.CountMessages(benchModel, []tokens.Message{{Role: "user", Content: content}}),
			maxTokens: maxTokens,
		}
	}
	return items
}

// demand is what a workload charges the simulator's buckets in all.
type demand struct {
	requests, tokens int
	promptMean       float64
	answerMean       float64 // mean max_tokens
}

func measureDemand(items []workItem) demand {
	var d demand
	var prompt, answer int
	for _, it := range items {
		d.requests++
		d.tokens += it.cost()
		prompt += it.prompt
		answer += it.maxTokens
	}
	if len(items) > 0 {
		d.promptMean = float64(prompt) / float64(len(items))
		d.answerMean = float64(answer) / float64(len(items))
	}
	return d
}

// lowerBound is the shortest time in which any balancer could have the
// simulator admit the whole demand: the buckets start full (Σ limit) and
// refill at Σ limit/60 a second, so for each dimension T = max(0, demand −
// Σ limit) / (Σ limit / 60), and the bound is the larger T. It ignores
// latency and the packing of requests into backends, so it is optimistic.
func lowerBound(d demand, rpm, tpm []int) (seconds float64, binding string) {
	var sr, st int
	for i := range rpm {
		sr += rpm[i]
		st += tpm[i]
	}
	tr := math.Max(0, float64(d.requests-sr)) / (float64(sr) / 60)
	tt := math.Max(0, float64(d.tokens-st)) / (float64(st) / 60)
	if tt >= tr {
		return tt, "tokens"
	}
	return tr, "requests"
}

// upstream is a simulator served on its own loopback listener, so it can be
// cut off on its own.
type upstream struct {
	sim     *sim.Server
	hs      *http.Server
	url     string // OpenAI base URL, ".../v1"
	cutOnce sync.Once
}

func startUpstream(opts sim.Options) (*upstream, error) {
	s := sim.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{sim: s, hs: &http.Server{Handler: s}, url: "http://" + ln.Addr().String() + "/v1"}
	go u.hs.Serve(ln)
	return u, nil
}

// cut makes the upstream unreachable, as an account whose endpoint went
// away: the listener closes (new connections are refused), idle connections
// close, and requests already being answered get their answers, for up to
// five seconds, then their connections close too.
func (u *upstream) cut() {
	u.cutOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if u.hs.Shutdown(ctx) != nil {
			u.hs.Close()
		}
	})
}

// close releases everything the upstream holds.
func (u *upstream) close() {
	u.sim.Close() // first: cuts simulated latency short so handlers return
	u.hs.Close()
}

// count429 sums the 429 answers of the named accounts.
func (u *upstream) count429(names ...string) int {
	st := u.sim.Stats()
	n := 0
	for _, name := range names {
		n += st[name].RateLimited
	}
	return n
}

// benchBackend is one [[backend]] of the daemon under test.
type benchBackend struct {
	name, url, key string
	rpm, tpm       int // the limits the daemon is told
}

// inProcDaemon is an lbgptd serving on a socket in a private directory.
type inProcDaemon struct {
	socket string
	dir    string
	stop   context.CancelFunc
	served chan error
}

// startDaemon starts lbgptd over backends, with max_concurrent high enough
// that concurrency is never what limits a backend, and no answer cache:
// these scenarios measure the balancer.
func startDaemon(ctx context.Context, backends []benchBackend) (*inProcDaemon, error) {
	return startDaemonWith(ctx, backends, false)
}

// startDaemonWith is startDaemon with the answer cache on when cache is
// set, in a file of the daemon's private directory.
func startDaemonWith(ctx context.Context, backends []benchBackend, cache bool) (*inProcDaemon, error) {
	var b strings.Builder
	b.WriteString("version = 1\n[daemon]\nrequest_timeout = \"120s\"\n[balance]\nstrategy = \"max_headroom\"\n")
	for _, be := range backends {
		fmt.Fprintf(&b, "[[backend]]\nname = %q\ntype = \"openai\"\nbase_url = %q\napi_key = %q\nlimit_rpm = %d\nlimit_tpm = %d\nmax_concurrent = 64\n",
			be.name, be.url, be.key, be.rpm, be.tpm)
	}
	cfg, err := config.Parse([]byte(b.String()), "bench")
	if err != nil {
		return nil, fmt.Errorf("daemon config: %w", err)
	}
	if _, err := cfg.Resolve(os.Getenv); err != nil {
		return nil, fmt.Errorf("daemon config: %w", err)
	}
	cfg.Cache.Enabled = cache
	dir, err := os.MkdirTemp("", "lbgpt-bench-")
	if err != nil {
		return nil, err
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: slog.New(slog.DiscardHandler), StateDir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	sock := filepath.Join(dir, "d.sock")
	ln, err := daemon.Listen(sock)
	if err != nil {
		d.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	dctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	p := &inProcDaemon{socket: sock, dir: dir, stop: stop, served: make(chan error, 1)}
	go func() { p.served <- d.Serve(dctx, ln) }()
	return p, nil
}

// status asks the daemon for its status, briefly.
func (p *inProcDaemon) status(ctx context.Context) (*rpc.StatusResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &client.Client{Socket: p.socket}
	defer c.Close()
	return c.Status(ctx)
}

// close stops the daemon and waits for it, at most 15 seconds: a daemon
// that does not stop is reported, not waited for.
func (p *inProcDaemon) close() error {
	p.stop()
	defer os.RemoveAll(p.dir)
	select {
	case err := <-p.served:
		return err
	case <-time.After(15 * time.Second):
		return errors.New("lbgptd did not stop within 15s of its context ending")
	}
}

// arrival is one batch item as the client saw it.
type arrival struct {
	item rpc.BatchItem
	at   time.Duration // since the batch call started
}

// batchOutcome is what one batch through lbgptd gave.
type batchOutcome struct {
	elapsed   time.Duration // to the batch result, or to the deadline
	timedOut  bool          // the deadline came first: items are those notified
	items     []rpc.BatchItem
	arrivals  []arrival // in order of arrival
	ok        int
	failed    int
	served    []bool         // by input index: answered
	retries   int            // attempts beyond the first, over the answered items
	byBackend map[string]int // answered items per backend
	attempts  map[int]int    // answered items per number of upstream attempts
}

// errorSummary counts the failed items' errors by message, most common
// first, at most three kinds.
func (b *batchOutcome) errorSummary() string {
	counts := map[string]int{}
	for _, it := range b.items {
		if it.Error != nil {
			counts[it.Error.Message]++
		}
	}
	msgs := make([]string, 0, len(counts))
	for m := range counts {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(x, y string) int { return cmp.Or(counts[y]-counts[x], strings.Compare(x, y)) })
	var parts []string
	for _, m := range msgs[:min(3, len(msgs))] {
		parts = append(parts, fmt.Sprintf("%d× %q", counts[m], m))
	}
	return strings.Join(parts, "; ")
}

func (b *batchOutcome) note() string {
	if b.timedOut {
		return " (stopped at the deadline)"
	}
	return ""
}

// runBatch sends items through lbgptd as one batch, with the Go client.
// onItem, if set, sees every item as its notification arrives. A deadline is
// an outcome, not an error: the items notified before it are counted.
func runBatch(ctx context.Context, d *inProcDaemon, items []workItem, concurrency int, onItem func(arrival)) (*batchOutcome, error) {
	return runBatchAt(ctx, d.socket, items, concurrency, onItem)
}

// runBatchAt is runBatch through the lbgptd serving socket.
func runBatchAt(ctx context.Context, socket string, items []workItem, concurrency int, onItem func(arrival)) (*batchOutcome, error) {
	reqs := make([]any, len(items))
	for i, it := range items {
		reqs[i] = it.body
	}
	c := &client.Client{Socket: socket}
	defer c.Close()
	o := &batchOutcome{byBackend: map[string]int{}, attempts: map[int]int{}, served: make([]bool, len(items))}
	var res *rpc.BatchResult
	var err error
	start := time.Now()
	for ev, evErr := range c.Batch(ctx, reqs, rpc.Options{}, concurrency) {
		switch {
		case evErr != nil:
			err = evErr
		case ev.Item != nil:
			a := arrival{item: *ev.Item, at: time.Since(start)}
			o.arrivals = append(o.arrivals, a)
			if onItem != nil {
				onItem(a)
			}
		case ev.Result != nil:
			res = ev.Result
		}
	}
	o.elapsed = time.Since(start)
	switch {
	case res != nil:
		o.items = res.Items
	case ctx.Err() != nil:
		o.timedOut = true
		for _, a := range o.arrivals {
			o.items = append(o.items, a.item)
		}
	case err != nil:
		return nil, fmt.Errorf("batch through lbgptd: %w", err)
	default:
		return nil, errors.New("batch through lbgptd: no result")
	}
	for _, it := range o.items {
		if it.Result == nil {
			o.failed++
			continue
		}
		o.ok++
		if it.Index >= 0 && it.Index < len(items) {
			o.served[it.Index] = true
		}
		o.byBackend[it.Result.Meta.Backend]++
		o.attempts[it.Result.Meta.Attempts]++
		o.retries += max(0, it.Result.Meta.Attempts-1)
	}
	return o, nil
}

// answers reports whether text is the simulator's answer to the item tagged
// tag: it echoes the prompt's first words, the tag first.
func answers(text, tag string) bool { return strings.Contains(text, `"`+tag) }

// percentileMS of sorted durations, in milliseconds.
func percentileMS(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted)-1) + 0.5)
	return round1(float64(sorted[i]) / float64(time.Millisecond))
}

// fractions turns counts by name into fractions of total, rounded.
func fractions(counts map[string]int, names []string, total int) map[string]float64 {
	out := make(map[string]float64, len(names))
	for _, n := range names {
		out[n] = 0
		if total > 0 {
			out[n] = round3(float64(counts[n]) / float64(total))
		}
	}
	return out
}

func formatShares(m map[string]float64, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f%%", n, 100*m[n])
	}
	return strings.Join(parts, ", ")
}
