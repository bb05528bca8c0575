package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// multihost measures a team: the goodput scenario's pool and workload,
// split evenly across -hosts lbgptd processes that share the three
// accounts' budgets through one redis-server on a Unix socket ([shared]
// redis). In the same run, the same workload through as many daemons that
// share nothing (each believes it owns every account: the overshoot
// sharing exists to prevent), then through a sharing team again with Redis
// stopped for -outage in the middle. Every phase has a fresh simulator
// (full buckets) and, when it shares, a fresh Redis.
func multihost(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	var o multihostOptions
	fs.IntVar(&o.hosts, "hosts", 3, "lbgptd processes in the team")
	fs.IntVar(&o.n, "n", 3000, "requests in each phase's workload")
	fs.IntVar(&o.concurrency, "concurrency", 256, "batch concurrency asked of each lbgptd")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the workload's sizes")
	fs.DurationVar(&o.timeout, "timeout", 3*time.Minute, "deadline of each phase's load")
	fs.DurationVar(&o.outage, "outage", 10*time.Second, "how long Redis stays stopped in the outage phase")
	fs.Float64Var(&o.outageAt, "outage-at", 0.3, "share of the items answered when Redis stops in the outage phase")
	fs.IntVar(&o.probes, "probes", 2000, "admission-cost probe: sequential requests per path (shared host, single daemon)")
	fs.DurationVar(&o.sample, "sample", 100*time.Millisecond, "interval of the status samples that measure parked leases")
	fs.StringVar(&o.lbgptd, "lbgptd", "", "the lbgptd binary (default: lbgptd next to lbgpt-bench, else on $PATH)")
	fs.StringVar(&o.redisServer, "redis-server", "", "the redis-server binary, 7 or newer (default: on $PATH)")
	o.pool.register(fs)
	o.sizes.register(fs)
	o.latency.register(fs)
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		return runMultihost(ctx, out, o)
	}
}

type multihostOptions struct {
	hosts, n, concurrency int
	seed                  uint64
	timeout               time.Duration
	outage                time.Duration
	outageAt              float64
	probes                int
	sample                time.Duration
	lbgptd, redisServer   string
	pool                  pool
	sizes                 sizes
	latency               latency
}

// probeModel is the model of the admission-cost probe: only the probe
// backend serves it, and the workload's backends only benchModel.
const probeModel = "gpt-4o"

func runMultihost(ctx context.Context, out io.Writer, o multihostOptions) (map[string]any, error) {
	if err := o.pool.check(); err != nil {
		return nil, err
	}
	if err := o.sizes.check(); err != nil {
		return nil, err
	}
	if o.hosts < 1 || o.n < o.hosts || o.concurrency < 1 || o.probes < 1 || o.sample <= 0 || o.outage < 0 || !(o.outageAt >= 0 && o.outageAt < 1) {
		return nil, errors.New("want -hosts >= 1, -n >= -hosts, -concurrency, -probes, -sample > 0, -outage >= 0 and -outage-at in [0, 1)")
	}
	lbgptd, err := binary("lbgptd", o.lbgptd)
	if err != nil {
		return nil, err
	}
	redisBin, err := redisServerBinary(o.redisServer)
	if err != nil {
		return nil, err
	}
	names := o.pool.names()
	dem := measureDemand(makeWorkload(o.n, o.seed, o.sizes))
	bound, binding := lowerBound(dem, o.pool.rpm, o.pool.tpm)
	fmt.Fprintf(out, "multihost: %d lbgptd processes; each phase %d unique requests split evenly across them, prompts mean %.0f tokens, max_tokens mean %.0f\n",
		o.hosts, o.n, dem.promptMean, dem.answerMean)
	fmt.Fprintf(out, "  demand %d requests, %d tokens; limits %s; lower bound %.1f s (%s bind)\n",
		dem.requests, dem.tokens, describeLimits(names, o.pool.rpm, o.pool.tpm), bound, binding)

	phases := []teamPhase{
		{name: "shared", shared: true, probe: true},
		{name: "isolated"},
		{name: "outage", shared: true, outage: o.outage},
	}
	results := make([]*teamResult, len(phases))
	for i, ph := range phases {
		r, err := runTeamPhase(ctx, o, lbgptd, redisBin, ph)
		if err != nil {
			return nil, fmt.Errorf("%s phase: %w", ph.name, err)
		}
		r.report(out, o, ph)
		results[i] = r
	}
	sh, iso, outg := results[0], results[1], results[2]
	figures := map[string]any{
		"scenario":    "multihost",
		"hosts":       o.hosts,
		"n":           o.n,
		"concurrency": o.concurrency,
		"bound_s":     round3(sh.bound),
		"binding":     binding,

		"elapsed_s":             round3(sh.elapsed.Seconds()),
		"goodput_ratio":         round3(ratio(sh.bound, sh.elapsed)),
		"upstream_429":          sh.n429,
		"completed":             sh.ok,
		"failed":                sh.failed,
		"redis_ops":             sh.redisOps,
		"redis_ops_per_request": round3(perItem(sh.redisOps, sh.ok)),
		"redis_exchanges":       sh.exchanges,
		"parked_share":          round3(sh.parked.mean),
		"parked_share_max":      round3(sh.parked.max),
		"parked_share_rpm":      round3(sh.parked.meanRPM),
		"parked_share_tpm":      round3(sh.parked.meanTPM),
		"parked_samples":        sh.parked.samples,
		"added_p50_us":          sh.probe.shared50 - sh.probe.single50,
		"added_p99_us":          sh.probe.shared99 - sh.probe.single99,
		"probe_shared_p50_us":   sh.probe.shared50,
		"probe_single_p50_us":   sh.probe.single50,
		"share":                 fractions(sh.byBackend, names, sh.ok),

		"isolated_elapsed_s":     round3(iso.elapsed.Seconds()),
		"isolated_goodput_ratio": round3(ratio(iso.bound, iso.elapsed)),
		"isolated_upstream_429":  iso.n429,
		"isolated_completed":     iso.ok,

		"outage_s":               o.outage.Seconds(),
		"outage_elapsed_s":       round3(outg.elapsed.Seconds()),
		"outage_goodput_ratio":   round3(ratio(outg.bound, outg.elapsed)),
		"outage_upstream_429":    outg.n429,
		"outage_completed":       outg.ok,
		"outage_completed_ratio": float64(outg.ok) / float64(o.n), // unrounded: 2999/3000 must not read as 1
		"outage_failed":          outg.failed,
		"outage_max_gap_s":       round3(outg.maxGap.Seconds()),
		"outage_degraded_logs":   outg.logCount("shared limits degraded"),
		"outage_recovered_logs":  outg.logCount("shared limits recovered"),
	}
	return figures, nil
}

// redisServerBinary finds redis-server: path when set, else on $PATH.
func redisServerBinary(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("the multihost scenario needs redis-server 7 or newer (Debian: apt-get install redis-server; or -redis-server PATH): %w", err)
	}
	return p, nil
}

// teamPhase is one run of the workload through the team.
type teamPhase struct {
	name   string
	shared bool          // [shared] redis on every host
	probe  bool          // measure the admission cost before the load
	outage time.Duration // Redis stopped this long once outageAt of the items are answered; 0 none
}

// teamResult is what one phase gave.
type teamResult struct {
	n           int
	bound       float64 // lower bound of the whole workload
	servedBound float64 // of the items answered
	elapsed     time.Duration
	timedOut    bool
	ok, failed  int
	errors      string
	byBackend   map[string]int
	byHost      []int // items answered per host
	upstream    map[string]sim.AccountStats
	n429        int
	upstreamOK  int // 200s of the workload's accounts: each item must be paid once
	redisOps    int64
	exchanges   int64            // EVALSHA and EVAL calls: limit.lua
	opsByCmd    map[string]int64 // every command counted in redisOps
	parked      parkedStats
	probe       probeResult
	outageFrom  time.Duration // since the load started; 0 without an outage
	outageTo    time.Duration
	maxGap      time.Duration // the longest time no request was admitted upstream, from the outage on
	logs        []string      // each host's log
}

func (r *teamResult) logCount(line string) int {
	n := 0
	for _, l := range r.logs {
		n += strings.Count(l, line)
	}
	return n
}

func perItem(n int64, items int) float64 {
	if items == 0 {
		return 0
	}
	return float64(n) / float64(items)
}

func runTeamPhase(ctx context.Context, o multihostOptions, lbgptd, redisBin string, ph teamPhase) (*teamResult, error) {
	names := o.pool.names()
	items := makeWorkload(o.n, o.seed, o.sizes)
	r := &teamResult{n: o.n, byHost: make([]int, o.hosts), byBackend: map[string]int{}}
	r.bound, _ = lowerBound(measureDemand(items), o.pool.rpm, o.pool.tpm)

	accounts := make([]sim.Account, 0, len(names)+1)
	backends := make([]benchBackend, 0, len(names)+1)
	for i, name := range names {
		key := "sk-bench-multihost-" + name
		accounts = append(accounts, sim.Account{Name: name, Key: key, RPM: o.pool.rpm[i], TPM: o.pool.tpm[i], TTFT: o.latency.ttft, PerToken: o.latency.perToken})
		backends = append(backends, benchBackend{name: name, key: key, rpm: o.pool.rpm[i], tpm: o.pool.tpm[i]})
	}
	if ph.probe {
		// Limits far above what the probe asks, so that no probe waits for
		// budget: the probe times admission, not the refill.
		const key = "sk-bench-multihost-probe"
		accounts = append(accounts, sim.Account{Name: "probe", Key: key, RPM: 600_000, TPM: 600_000_000})
		backends = append(backends, benchBackend{name: "probe", key: key, rpm: 600_000, tpm: 600_000_000})
	}
	// The log is kept for the outage's gap: a record is about 250 bytes.
	up, err := startUpstream(sim.Options{Accounts: accounts, Seed: int64(o.seed), LogLimit: 2 * o.n})
	if err != nil {
		return nil, err
	}
	defer up.close()
	for i := range backends {
		backends[i].url = up.url
	}
	root, err := os.MkdirTemp("", "lbgpt-bench-multihost-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)

	var rs *redisProc
	redisURL := ""
	if ph.shared {
		if rs, err = startRedis(ctx, redisBin, filepath.Join(root, "redis")); err != nil {
			return nil, err
		}
		defer rs.close()
		redisURL = rs.url()
	}
	hosts := make([]*lbgptdProc, 0, o.hosts)
	defer func() {
		for _, h := range hosts {
			r.logs = append(r.logs, h.stop())
		}
	}()
	cfg := teamConfig(backends, redisURL, o.timeout)
	for i := range o.hosts {
		h, err := startHost(ctx, lbgptd, filepath.Join(root, "host"+strconv.Itoa(i)), cfg)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	if ph.probe {
		single, err := startHost(ctx, lbgptd, filepath.Join(root, "single"), teamConfig(backends, "", o.timeout))
		if err != nil {
			return nil, err
		}
		r.probe, err = probeAdmission(ctx, hosts[0].socket, single.socket, o.probes)
		single.stop()
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
	}

	// The load: item i goes to host i mod hosts, each host's share as one
	// batch, all at once.
	var statsBefore map[string]int64
	if rs != nil {
		if statsBefore, err = rs.commandStats(ctx); err != nil {
			return nil, err
		}
	}
	caps := map[string][2]float64{}
	for _, b := range backends[:len(names)] {
		caps[b.name] = [2]float64{float64(b.rpm), float64(b.tpm)}
	}
	pctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var stopSampling func() parkedStats
	if ph.shared {
		sockets := make([]string, len(hosts))
		for i, h := range hosts {
			sockets[i] = h.socket
		}
		stopSampling = sampleParked(pctx, sockets, caps, o.sample)
	}
	var answered atomic.Int64
	outageDue := make(chan struct{})
	var dueOnce sync.Once
	threshold := int64(o.outageAt * float64(o.n))
	var outageWG sync.WaitGroup
	var restartErr error // set by the outage goroutine, read after outageWG.Wait
	start := time.Now()
	if ph.outage > 0 {
		outageWG.Go(func() {
			select {
			case <-outageDue:
			case <-pctx.Done():
				return
			}
			r.outageFrom = time.Since(start)
			rs.kill()
			t := time.NewTimer(ph.outage)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			r.outageTo = time.Since(start)
			restartErr = rs.start(context.WithoutCancel(ctx))
		})
		if threshold == 0 {
			dueOnce.Do(func() { close(outageDue) })
		}
	}
	shares := make([][]int, o.hosts) // input indices by host
	for i := range items {
		shares[i%o.hosts] = append(shares[i%o.hosts], i)
	}
	outcomes := make([]*batchOutcome, o.hosts)
	errs := make([]error, o.hosts)
	var wg sync.WaitGroup
	for hi, h := range hosts {
		part := make([]workItem, len(shares[hi]))
		for j, i := range shares[hi] {
			part[j] = items[i]
		}
		wg.Go(func() {
			outcomes[hi], errs[hi] = runBatchAt(pctx, h.socket, part, o.concurrency, func(a arrival) {
				if a.item.Result != nil && answered.Add(1) >= threshold && ph.outage > 0 {
					dueOnce.Do(func() { close(outageDue) })
				}
			})
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	cancel() // ends an outage that never began
	outageWG.Wait()
	if stopSampling != nil {
		r.parked = stopSampling()
	}
	if err := errors.Join(append(errs, restartErr)...); err != nil {
		return nil, err
	}
	if rs != nil && ph.outage == 0 {
		after, err := rs.commandStats(ctx)
		if err != nil {
			return nil, err
		}
		r.redisOps, r.exchanges, r.opsByCmd = clientOps(statsBefore, after)
	}

	served := make([]bool, len(items))
	var errText []string
	for hi, b := range outcomes {
		r.ok += b.ok
		r.failed += b.failed
		r.byHost[hi] = b.ok
		r.timedOut = r.timedOut || b.timedOut
		for j, s := range b.served {
			served[shares[hi][j]] = s
		}
		for name, n := range b.byBackend {
			r.byBackend[name] += n
		}
		if s := b.errorSummary(); s != "" {
			errText = append(errText, s)
		}
	}
	r.errors = strings.Join(errText, "; ")
	if ph.outage > 0 && r.outageFrom > 0 {
		r.maxGap = longestGap(up.sim.Log(), start.Add(r.outageFrom), start.Add(r.elapsed))
	}
	r.servedBound = servedBound(items, served, o.pool)
	r.upstream = up.sim.Stats()
	r.n429 = up.count429(names...)
	for _, name := range names {
		r.upstreamOK += r.upstream[name].OK
	}
	return r, nil
}

func (r *teamResult) report(out io.Writer, o multihostOptions, ph teamPhase) {
	names := o.pool.names()
	switch {
	case ph.outage > 0:
		fmt.Fprintf(out, "outage (shared, redis-server killed when %.0f%% of the items were answered, started again empty %s later):\n", 100*o.outageAt, ph.outage)
	case ph.shared:
		fmt.Fprintf(out, "shared ([shared] redis on every host, batch concurrency %d each):\n", o.concurrency)
	default:
		fmt.Fprintf(out, "isolated (no [shared]: each host believes it owns every account):\n")
	}
	note := ""
	if r.timedOut {
		note = " (stopped at the deadline)"
	}
	fmt.Fprintf(out, "  %d/%d answered (%d failed) in %.2f s%s; goodput ratio %.3f (target >= 0.95); upstream 429s %d (target 0)\n",
		r.ok, r.n, r.failed, r.elapsed.Seconds(), note, ratio(r.bound, r.elapsed), r.n429)
	if r.ok < r.n {
		fmt.Fprintf(out, "  against the %.1f s bound of the answered items: ratio %.3f\n", r.servedBound, ratio(r.servedBound, r.elapsed))
	}
	if r.errors != "" {
		fmt.Fprintf(out, "  errors: %s\n", r.errors)
	}
	fmt.Fprintf(out, "  upstream 200s %d for %d answered items; per host %v; share %s\n",
		r.upstreamOK, r.ok, r.byHost, formatShares(fractions(r.byBackend, names, r.ok), names))
	for _, name := range names {
		st := r.upstream[name]
		fmt.Fprintf(out, "  upstream %s: %d requests, %d ok, %d 429s\n", name, st.Requests, st.OK, st.RateLimited)
	}
	if ph.probe {
		p := r.probe
		fmt.Fprintf(out, "  admission probe (%d sequential requests each, alternating, on a scope whose limits never bind): shared host p50 %d µs p99 %d µs, single daemon p50 %d µs p99 %d µs: added p50 %d µs, p99 %d µs\n",
			p.n, p.shared50, p.shared99, p.single50, p.single99, p.shared50-p.single50, p.shared99-p.single99)
		fmt.Fprintf(out, "    in the daemon (daemon_us + queued_us): shared p50 %d µs, single p50 %d µs\n", p.sharedIn50, p.singleIn50)
	}
	if ph.shared && ph.outage == 0 {
		fmt.Fprintf(out, "  redis: %d client commands (%.3f per request, target <= 0.1), %d of them limit.lua exchanges; %s\n",
			r.redisOps, perItem(r.redisOps, r.ok), r.exchanges, formatOps(r.opsByCmd))
	}
	if ph.shared {
		fmt.Fprintf(out, "  parked in leases (%d samples): mean %.3f of the capacity (target <= 0.1), peak %.3f; requests %.3f, tokens %.3f\n",
			r.parked.samples, r.parked.mean, r.parked.max, r.parked.meanRPM, r.parked.meanTPM)
	}
	if ph.outage > 0 {
		fmt.Fprintf(out, "  redis down from %.2f s to %.2f s of the load; completed ratio %.4f (target 1); 429s %.2f%% of the requests (target <= 1%%)\n",
			r.outageFrom.Seconds(), r.outageTo.Seconds(), float64(r.ok)/float64(r.n), 100*float64(r.n429)/float64(r.n))
		fmt.Fprintf(out, "  longest time without an upstream admission from the outage on: %.2f s\n", r.maxGap.Seconds())
		fmt.Fprintf(out, "  log lines over %d hosts: %d \"shared limits degraded\", %d \"shared limits recovered\", %d \"shared limits restarted\"\n",
			len(r.logs), r.logCount("shared limits degraded"), r.logCount("shared limits recovered"), r.logCount("shared limits restarted"))
	}
}

func formatOps(m map[string]int64) string {
	cmds := make([]string, 0, len(m))
	for c := range m {
		cmds = append(cmds, c)
	}
	sort.Slice(cmds, func(i, j int) bool { return m[cmds[i]] > m[cmds[j]] || m[cmds[i]] == m[cmds[j]] && cmds[i] < cmds[j] })
	parts := make([]string, len(cmds))
	for i, c := range cmds {
		parts[i] = fmt.Sprintf("%s %d", c, m[c])
	}
	return "by command: " + strings.Join(parts, ", ")
}

// teamConfig is the lbgpt.toml of every host: the workload's backends
// serving benchModel only (and a probe backend serving probeModel only),
// no answer cache (every request goes upstream), [shared] when redisURL is
// set, sharing limits only.
func teamConfig(backends []benchBackend, redisURL string, timeout time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\n[daemon]\nrequest_timeout = %q\n[balance]\nstrategy = \"max_headroom\"\n[cache]\nenabled = false\n", timeout.String())
	if redisURL != "" {
		fmt.Fprintf(&b, "[shared]\nredis = %q\ncache = false\n", redisURL)
	}
	for _, be := range backends {
		model := benchModel
		if be.name == "probe" {
			model = probeModel
		}
		fmt.Fprintf(&b, "[[backend]]\nname = %q\ntype = \"openai\"\nbase_url = %q\napi_key = %q\nmodels = [%q]\nlimit_rpm = %d\nlimit_tpm = %d\nmax_concurrent = 64\n",
			be.name, be.url, be.key, model, be.rpm, be.tpm)
	}
	return b.String()
}

// startHost starts lbgptd with cfg in dir and returns once it answers a
// status call.
func startHost(ctx context.Context, bin, dir, cfg string) (*lbgptdProc, error) {
	p, _, err := startProc(ctx, bin, dir, cfg)
	return p, err
}

// redisProc is a redis-server on a Unix socket in dir, with no TCP port
// and no persistence, as internal/redistest runs it.
type redisProc struct {
	bin, dir, socket string
	cmd              *exec.Cmd
	exited           chan struct{}
	rdb              *redis.Client // the bench's own connection, for INFO
}

func startRedis(ctx context.Context, bin, dir string) (*redisProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	r := &redisProc{bin: bin, dir: dir, socket: filepath.Join(dir, "redis.sock")}
	r.rdb = redis.NewClient(&redis.Options{Network: "unix", Addr: r.socket, MaxRetries: -1, DisableIdentity: true})
	if err := r.start(ctx); err != nil {
		r.rdb.Close()
		return nil, err
	}
	return r, nil
}

func (r *redisProc) url() string { return "unix://" + r.socket }

// start runs the server and waits until it answers PING.
func (r *redisProc) start(ctx context.Context) error {
	r.cmd = exec.Command(r.bin,
		"--port", "0", "--unixsocket", r.socket, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--daemonize", "no",
		"--maxmemory-policy", "volatile-lru")
	log, err := os.Create(filepath.Join(r.dir, "redis.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(r.cmd, r.exited)
	for deadline := time.Now().Add(10 * time.Second); ; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := r.rdb.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.kill()
			return fmt.Errorf("redis-server did not answer on %s within 10 s: %v\n%s", r.socket, err, out)
		}
		select {
		case <-r.exited:
			out, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited:\n%s", out)
		case <-ctx.Done():
			r.kill()
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill stops the server at once, as a crash would; it keeps no data.
func (r *redisProc) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
	os.Remove(r.socket)
}

func (r *redisProc) close() {
	r.kill()
	r.rdb.Close()
}

// commandStats is INFO commandstats: calls by command name.
func (r *redisProc) commandStats(ctx context.Context) (map[string]int64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := r.rdb.Info(ictx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	m := map[string]int64{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err == nil {
			m[strings.TrimPrefix(name, "cmdstat_")] = n
		}
	}
	return m, nil
}

// scriptCommands are what limit.lua calls inside its script: Redis counts
// them in commandstats (and in total_commands_processed), but they are no
// round trip.
var scriptCommands = []string{"time", "hget", "hset", "hgetall", "hdel"}

// clientOps is what the hosts asked of Redis between two INFO
// commandstats: every command but those run inside limit.lua and the
// bench's own INFO, each one round trip. exchanges are the script calls.
func clientOps(before, after map[string]int64) (ops, exchanges int64, byCmd map[string]int64) {
	byCmd = map[string]int64{}
	for cmd, n := range after {
		d := n - before[cmd]
		if d <= 0 || cmd == "info" || slices.Contains(scriptCommands, cmd) {
			continue
		}
		byCmd[cmd] = d
		ops += d
		if cmd == "evalsha" || cmd == "eval" {
			exchanges += d
		}
	}
	return ops, exchanges, byCmd
}

// parkedStats is the capacity the hosts held in leases, unspent.
//
// parked_share is defined as follows. Every -sample interval while the
// load runs, the bench reads every host's status: for each limit scope of
// the workload's backends, the host's lease_rpm and lease_tpm (what it was
// granted from the shared bucket and has not spent yet). A sample's share
// is, for requests and for tokens, Σ over hosts and scopes of the leases
// over Σ of the scopes' limits (the per-minute capacity); the larger of the
// two. parked_share is the mean of the samples, parked_share_max the
// largest. Unspent is counted as parked even when the host is about to
// spend it, so this is an upper bound of the capacity idle in leases.
type parkedStats struct {
	samples          int
	mean, max        float64
	meanRPM, meanTPM float64
}

// sampleParked samples the hosts' statuses until the returned function is
// called, which returns the figures.
func sampleParked(ctx context.Context, sockets []string, caps map[string][2]float64, every time.Duration) func() parkedStats {
	var total [2]float64
	for _, c := range caps {
		total[0] += c[0]
		total[1] += c[1]
	}
	done := make(chan struct{})
	result := make(chan parkedStats, 1)
	go func() {
		clients := make([]*client.Client, len(sockets))
		for i, s := range sockets {
			clients[i] = &client.Client{Socket: s}
			defer clients[i].Close()
		}
		var ps parkedStats
		var sum, sumR, sumT float64
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if ps.samples > 0 {
					ps.mean, ps.meanRPM, ps.meanTPM = sum/float64(ps.samples), sumR/float64(ps.samples), sumT/float64(ps.samples)
				}
				result <- ps
				return
			case <-tick.C:
			}
			var lease [2]float64
			complete := true
			for _, c := range clients {
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				st, err := c.Status(sctx)
				cancel()
				if err != nil || st.Team == nil {
					complete = false
					break
				}
				for _, sc := range st.Team.Scopes {
					if len(sc.Backends) == 0 {
						continue
					}
					if _, ok := caps[sc.Backends[0]]; ok {
						lease[0] += float64(sc.LeaseRPM)
						lease[1] += float64(sc.LeaseTPM)
					}
				}
			}
			if !complete {
				continue
			}
			r, t := lease[0]/total[0], lease[1]/total[1]
			s := max(r, t)
			ps.samples++
			sum, sumR, sumT = sum+s, sumR+r, sumT+t
			ps.max = max(ps.max, s)
		}
	}()
	return func() parkedStats {
		close(done)
		return <-result
	}
}

// probeResult is the admission cost measured by probeAdmission, in µs.
type probeResult struct {
	n                      int
	shared50, shared99     int64 // round trip through a sharing host
	single50, single99     int64 // through a daemon that shares nothing
	sharedIn50, singleIn50 int64 // daemon_us + queued_us, p50
}

// probeAdmission times n requests, one at a time, through the sharing
// host at shared and through the lone daemon at single, alternating (which
// goes first alternates too), to the probe backend: an account with no
// latency whose limits never bind. added_p50_us = the shared host's p50
// round trip − the lone daemon's: what taking a request's budget from a
// shared lease costs over taking it from a local bucket, the lease's
// prefetches from Redis included as they fall.
func probeAdmission(ctx context.Context, shared, single string, n int) (probeResult, error) {
	const warm = 50
	cs, c1 := &client.Client{Socket: shared}, &client.Client{Socket: single}
	defer cs.Close()
	defer c1.Close()
	var rtt, in [2][]time.Duration
	nonce := time.Now().UnixNano()
	for i := range n + warm {
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			c := []*client.Client{cs, c1}[k]
			req := map[string]any{"model": probeModel, "max_tokens": 16,
				"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("probe %d %d %d", nonce, k, i)}}}
			t := time.Now()
			res, err := c.Chat(ctx, req, rpc.Options{})
			took := time.Since(t)
			if err != nil {
				return probeResult{}, err
			}
			if i >= warm {
				rtt[k] = append(rtt[k], took)
				in[k] = append(in[k], time.Duration(res.Meta.DaemonUS+res.Meta.QueuedUS)*time.Microsecond)
			}
		}
	}
	for k := range 2 {
		slices.Sort(rtt[k])
		slices.Sort(in[k])
	}
	return probeResult{n: n,
		shared50: percentile(rtt[0], 50), shared99: percentile(rtt[0], 99),
		single50: percentile(rtt[1], 50), single99: percentile(rtt[1], 99),
		sharedIn50: percentile(in[0], 50), singleIn50: percentile(in[1], 50)}, nil
}

// longestGap is the longest time between from and to during which the
// simulator admitted no request (answered none 200), in the log's records.
// The last stretch, from the last admission to to, is one answer's latency
// when the load completes.
func longestGap(log []sim.Record, from, to time.Time) time.Duration {
	var times []time.Time
	for _, rec := range log {
		if rec.Status == 200 && !rec.Time.Before(from) && rec.Time.Before(to) {
			times = append(times, rec.Time)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	var gap time.Duration
	last := from
	for _, t := range append(times, to) {
		gap = max(gap, t.Sub(last))
		last = t
	}
	return gap
}
