package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// withDaemon inserts [daemon] settings into a test config.
func withDaemon(cfg, settings string) string {
	return strings.Replace(cfg, "version = 1\n", "version = 1\n[daemon]\n"+settings+"\n", 1)
}

// runBatch sends n items and returns the final result.
func runBatch(t *testing.T, c *client.Client, n, concurrency int) (*rpc.BatchResult, error) {
	t.Helper()
	reqs := make([]any, n)
	for i := range reqs {
		reqs[i] = userRequest("gpt-4o-mini", fmt.Sprintf("item %d", i))
	}
	for ev, err := range c.Batch(context.Background(), reqs, rpc.Options{}, concurrency) {
		if err != nil {
			return nil, err
		}
		if ev.Result != nil {
			return ev.Result, nil
		}
	}
	return nil, errors.New("batch ended without a result")
}

type batchOutcome struct {
	res *rpc.BatchResult
	err error
}

// startBatch runs runBatch in the background.
func startBatch(t *testing.T, c *client.Client, n, concurrency int) <-chan batchOutcome {
	done := make(chan batchOutcome, 1)
	go func() {
		res, err := runBatch(t, c, n, concurrency)
		done <- batchOutcome{res, err}
	}()
	return done
}

// A stop lets the requests in flight finish within the drain timeout, and
// a watch does not hold the drain.
func TestDrainFinishesRequestsInFlight(t *testing.T) {
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 300 * time.Millisecond}}})
	h := startWith(t, s, withDaemon(oneBackend, `drain_timeout = "20s"`))
	w, err := h.client.Watch(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Chat(context.Background(), userRequest("gpt-4o-mini", "slow"), rpc.Options{})
		errc <- err
	}()
	waitFor(t, func() bool { return inFlight(h.daemon) == 1 })
	start := time.Now()
	h.stop()
	if err := <-errc; err != nil {
		t.Errorf("request in flight at the stop: %v, want its answer", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %s: the watch held the drain", d)
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, rpc.ErrShuttingDown) {
		t.Errorf("watch after the stop: %v, want ErrShuttingDown", err)
	}
}

func inFlight(d *Daemon) int {
	n := 0
	for _, b := range d.pool.State() {
		n += b.InFlight
	}
	return n
}

// SIGTERM in the middle of a batch (Serve's context ends): the items that
// fit in the drain are answered, the rest fail with the shutting-down
// error, and the batch result lists every item.
func TestStopMidBatch(t *testing.T) {
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 150 * time.Millisecond}}})
	h := startWith(t, s, withDaemon(oneBackend, `drain_timeout = "400ms"`))
	// Warm up: the first answer of a process loads the simulator's
	// tokenizer, which may take longer than the drain.
	if _, err := h.client.Chat(context.Background(), userRequest("gpt-4o-mini", "warm up"), rpc.Options{}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	done := startBatch(t, h.client, n, 4) // 4 at a time: ~1.5s in all
	waitFor(t, func() bool { return len(s.Log()) >= 5 })
	h.stop()
	o := <-done
	if o.err != nil {
		t.Fatalf("batch: %v", o.err)
	}
	answered, canceled := 0, 0
	for i, it := range o.res.Items {
		switch {
		case it.Index != i:
			t.Errorf("item %d has index %d", i, it.Index)
		case it.Result != nil && it.Error == nil:
			answered++
		case it.Error != nil && it.Error.Code == rpc.CodeShuttingDown:
			canceled++
		default:
			t.Errorf("item %d: neither answered nor cleanly failed: %+v", i, it)
		}
	}
	if len(o.res.Items) != n || answered == 0 || canceled == 0 {
		t.Errorf("%d items: %d answered, %d canceled by the stop; want all %d, some of each", len(o.res.Items), answered, canceled, n)
	}
	t.Logf("stop mid-batch: %d answered within the drain, %d canceled", answered, canceled)
}

// A reload that adds c and drops b while a batch runs: no item is lost,
// b finishes what it had, and c takes new items.
func TestReloadDuringBatch(t *testing.T) {
	s := sim.New(sim.Options{Accounts: []sim.Account{
		{Name: "a", Key: keyA, TTFT: 20 * time.Millisecond},
		{Name: "b", Key: keyB, TTFT: 20 * time.Millisecond},
		{Name: "c", Key: keyAzure, TTFT: 20 * time.Millisecond},
	}})
	h := startWith(t, s, twoBackends)
	const n = 120
	done := startBatch(t, h.client, n, 8)
	waitFor(t, func() bool { return len(s.Log()) >= 20 })
	next := strings.Replace(twoBackends, `name = "b"`, `name = "c"`, 1)
	next = strings.Replace(next, "KEY_B", "KEY_AZURE", 1)
	next = strings.Replace(next, "[[backend]]\nname = \"a\"", "[[backend]]\nname = \"a\"\nweight = 2", 1)
	if err := h.daemon.Reload(loader(t, h, next)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	atReload := len(s.Log())
	o := <-done
	if o.err != nil {
		t.Fatalf("batch: %v", o.err)
	}
	by := map[string]int{}
	for i, it := range o.res.Items {
		if it.Result == nil || it.Error != nil {
			t.Errorf("item %d lost across the reload: %+v", i, it.Error)
			continue
		}
		by[it.Result.Meta.Backend]++
	}
	if by["c"] == 0 || by["b"] == 0 {
		t.Errorf("answers by backend %v: want some from b (before) and from c (after)", by)
	}
	for _, r := range s.Log()[atReload:] {
		if r.Account == "b" && r.Time.After(s.Log()[atReload-1].Time.Add(time.Second)) {
			t.Errorf("b called long after it was removed: %+v", r)
		}
	}
	st, err := h.client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, b := range st.Backends {
		names = append(names, b.Name)
	}
	if strings.Join(names, ",") != "a,c" || st.ReloadError != "" || st.ReloadedAt.IsZero() {
		t.Errorf("status after reload: backends %v, reload error %q, reloaded at %v", names, st.ReloadError, st.ReloadedAt)
	}
	if a := st.Backends[0]; a.Requests < 10 {
		t.Errorf("a's stats were reset by the reload: %d requests", a.Requests)
	}
	t.Logf("reload mid-batch: answers by backend %v", by)
}

// loader parses cfgText as the harness does.
func loader(t *testing.T, h *harness, cfgText string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		cfg, err := config.Parse([]byte(strings.ReplaceAll(cfgText, "{{URL}}", h.url)), "test.toml")
		if err != nil {
			return nil, err
		}
		env := map[string]string{"KEY_A": keyA, "KEY_B": keyB, "KEY_AZURE": keyAzure}
		if _, err := cfg.Resolve(func(k string) string { return env[k] }); err != nil {
			return nil, err
		}
		return cfg, nil
	}
}

// An invalid new config is rejected: the old one stays and status says why.
func TestReloadRejected(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends)
	bad := strings.Replace(twoBackends, `type = "openai"`, `type = "openia"`, 1)
	err := h.daemon.Reload(loader(t, h, bad))
	if err == nil {
		t.Fatal("Reload accepted an unknown backend type")
	}
	st, err2 := h.client.Status(context.Background())
	if err2 != nil {
		t.Fatal(err2)
	}
	if st.ReloadError == "" || !strings.Contains(st.ReloadError, "openia") || len(st.Backends) != 2 {
		t.Errorf("after a rejected reload: reload_error %q, %d backends; want the reason and the old 2", st.ReloadError, len(st.Backends))
	}
	if !strings.Contains(h.logs.String(), "reload rejected") {
		t.Errorf("the rejection was not logged:\n%s", h.logs.String())
	}
	if _, err := h.client.Chat(context.Background(), userRequest("gpt-4o-mini", "still there"), rpc.Options{}); err != nil {
		t.Errorf("chat after a rejected reload: %v", err)
	}
	// A good reload clears the error.
	if err := h.daemon.Reload(loader(t, h, twoBackends)); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.client.Status(context.Background()); st == nil || st.ReloadError != "" {
		t.Errorf("reload error not cleared by a good reload: %+v", st)
	}
}

// notes collects sd_notify messages.
type notes struct {
	mu   sync.Mutex
	msgs []string
}

func (n *notes) notify(s string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.msgs = append(n.msgs, s)
	return nil
}

func (n *notes) count(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			c++
		}
	}
	return c
}

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.ReplaceAll(oneBackend, "{{URL}}", "http://127.0.0.1:1")), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolve(func(string) string { return keyA })
	cfg.Cache.Enabled = false // no cache file for these daemons, which are never closed
	return cfg
}

// The watchdog is pinged while the health check passes, and not while it
// fails; READY and STATUS come first.
func TestWatchdogFollowsHealthCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n notes
		var mu sync.Mutex
		var failing bool
		d, err := New(Options{Config: testConfig(t), Notify: n.notify})
		if err != nil {
			t.Fatal(err)
		}
		lo := lifeOptions{statusEvery: 5 * time.Second, watchdog: 2 * time.Second, check: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if failing {
				return errors.New("wedged")
			}
			return nil
		}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.life(ctx, lo); close(done) }()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := n.msgs[0]; !strings.HasPrefix(got, "READY=1\nSTATUS=1/1 backends up") {
			t.Errorf("first message %q, want READY=1 with a status", got)
		}
		if p, s := n.count("WATCHDOG=1"), n.count("STATUS="); p != 10 || s != 2 {
			t.Errorf("healthy 10s: %d pings (want 10, every 1s), %d status updates (want 2)", p, s)
		}
		mu.Lock()
		failing = true
		mu.Unlock()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if p := n.count("WATCHDOG=1"); p != 10 {
			t.Errorf("%d pings after the check started failing, want none more (10)", p)
		}
		mu.Lock()
		failing = false
		mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		if p := n.count("WATCHDOG=1"); p != 11 {
			t.Errorf("%d pings once healthy again, want 11", p)
		}
		cancel()
		<-done
	})
}

// The default health check goes through the dispatcher: it passes on a
// serving daemon and fails when the request path is wedged.
func TestSelfCheck(t *testing.T) {
	h := start(t, accounts(sim.Faults{}), twoBackends)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.daemon.selfCheck(ctx); err != nil {
		t.Fatalf("health check of a serving daemon: %v", err)
	}
	// Wedge the request path: every handler waits for the daemon's lock.
	h.daemon.mu.Lock()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	err := h.daemon.selfCheck(ctx2)
	h.daemon.mu.Unlock()
	if err == nil {
		t.Fatal("health check passed while the request path was wedged")
	}
}

// Serve says READY=1 when it serves and STOPPING=1 when it stops; Reload
// says RELOADING=1 with MONOTONIC_USEC, then READY=1.
func TestServeNotifies(t *testing.T) {
	var n notes
	d, err := New(Options{Config: testConfig(t), Notify: n.notify})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(t.TempDir() + "/d.sock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	waitFor(t, func() bool { return n.count("READY=1") == 1 })
	if err := d.Reload(func() (*config.Config, error) { return testConfig(t), nil }); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var seq []string
	for _, m := range n.msgs {
		first, _, _ := strings.Cut(m, "\n")
		seq = append(seq, first)
		if first == "RELOADING=1" && !strings.Contains(m, "\nMONOTONIC_USEC=") {
			t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", m)
		}
	}
	if got := strings.Join(seq, " "); got != "READY=1 RELOADING=1 READY=1 STOPPING=1" {
		t.Errorf("notifications %q", got)
	}
}
