package e2e

// A team on one machine: three lbgptd processes, each with its own socket,
// state directory and HTTP port, spending one simulator account through one
// redis-server ([shared] redis). The simulator enforces the account's RPM
// and counts the 429s it answers: an upstream 429 is the team overshooting
// its budget. The limit is small (120 RPM, 2 requests a second) so that a
// demand a little above the burst is rate-bound within seconds.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/internal/redistest"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

const (
	teamKey = "sk-e2e-team-key-0001"
	teamRPM = 120
)

// startTeamSim runs a simulator with one account, "team", limited to
// teamRPM, and returns its URL.
func startTeamSim(t *testing.T) string {
	t.Helper()
	return startSim(t, baseEnv(t), fmt.Sprintf(`
[[account]]
name = "team"
key = %q
rpm = %d
ttft = "20ms"
`, teamKey, teamRPM))
}

// simTeamStats reads the simulator's counters of the team's account.
func simTeamStats(t *testing.T, simURL string) sim.AccountStats {
	t.Helper()
	resp, err := http.Get(simURL + "/_sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]sim.AccountStats
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("/_sim/stats: %v", err)
	}
	return m["team"]
}

// member is one lbgptd of the team.
type member struct {
	*httpDaemon
	name   string
	env    []string // its own HOME and state directory
	socket string
}

// startTeam starts n lbgptd processes on the simulator at simURL, all with
// the same backend (so the same limit scope) and, unless redisURL is "",
// the same [shared] redis. The answer cache is off: every request goes
// upstream.
func startTeam(t *testing.T, simURL, redisURL string, n int) []*member {
	return startTeamCache(t, simURL, redisURL, n, false)
}

// startTeamCache is startTeam with each daemon's answer cache on or off
// (and, with redisURL, the team's shared cache with it).
func startTeamCache(t *testing.T, simURL, redisURL string, n int, cache bool) []*member {
	t.Helper()
	shared := ""
	if redisURL != "" {
		shared = fmt.Sprintf("[shared]\nredis = %q\ncache = %v\n", redisURL, cache)
	}
	cfg := fmt.Sprintf(`version = 1

[daemon]
request_timeout = "90s"

[cache]
enabled = %v

[http]
listen = "127.0.0.1:0"

%s
[[backend]]
name = "sim"
type = "openai"
base_url = "%s/v1"
api_key_env = "E2E_KEY"
limit_rpm = %d
max_concurrent = 64
`, cache, shared, simURL, teamRPM)
	var team []*member
	for i := range n {
		env := append(baseEnv(t), "E2E_KEY="+teamKey)
		dir := t.TempDir()
		path := filepath.Join(dir, "lbgpt.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		socket := filepath.Join(dir, "d.sock")
		d := startHTTPDaemonAt(t, env, path, socket)
		team = append(team, &member{httpDaemon: d, name: string(rune('A' + i)), env: env, socket: socket})
	}
	return team
}

// status is `lbgpt status --json` of m.
func (m *member) status(t *testing.T) rpc.StatusResult {
	t.Helper()
	r := run(t, m.env, "", "lbgpt", "status", "--json", "--socket", m.socket, "--no-autostart")
	var st rpc.StatusResult
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("lbgpt status --json on %s: code %d, %v\n%s%s", m.name, r.code, err, r.stdout, r.stderr)
	}
	return st
}

// scope is m's one shared limit scope in st, or nil.
func scope(st rpc.StatusResult) *rpc.ScopeStatus {
	if st.Team == nil || len(st.Team.Scopes) == 0 {
		return nil
	}
	return &st.Team.Scopes[0]
}

// teamClient is the HTTP client of the tests' load: enough connections for
// every request of a burst at once.
var teamClient = &http.Client{
	Transport: &http.Transport{MaxIdleConnsPerHost: 256},
	Timeout:   2 * time.Minute,
}

// ask sends one chat request through m's HTTP endpoint.
func (m *member) ask(ctx context.Context, prompt string) error {
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":%q}]}`, prompt)
	req, err := http.NewRequestWithContext(ctx, "POST", m.baseURL+"/chat/completions", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := teamClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var v struct {
		Choices []json.RawMessage
		Error   *struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || len(v.Choices) == 0 {
		msg := ""
		if v.Error != nil {
			msg = v.Error.Message
		}
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// tally counts the outcomes of a load.
type tally struct {
	ok, failed atomic.Int32
	mu         sync.Mutex
	errs       []string // the first few failures
}

func (tl *tally) add(who string, err error) {
	if err == nil {
		tl.ok.Add(1)
		return
	}
	tl.failed.Add(1)
	tl.mu.Lock()
	if len(tl.errs) < 5 {
		tl.errs = append(tl.errs, who+": "+err.Error())
	}
	tl.mu.Unlock()
}

func (tl *tally) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return fmt.Sprintf("%d answered, %d failed %q", tl.ok.Load(), tl.failed.Load(), tl.errs)
}

// burst sends perMember requests at once through each member, every prompt
// unique, counting them in tl; the returned function waits for them all.
func burst(ctx context.Context, team []*member, perMember int, tag string, tl *tally) (wait func()) {
	var wg sync.WaitGroup
	for _, m := range team {
		for i := range perMember {
			wg.Go(func() { tl.add(m.name, m.ask(ctx, fmt.Sprintf("%s %s %d", tag, m.name, i))) })
		}
	}
	return wg.Wait
}

// pollUntil polls cond every 50 ms until it holds, failing t after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
	}
}

// TestMultihostSharedBudget: a burst spread over three daemons whose total
// demand (132 requests) exceeds the account's 120 RPM completes without one
// upstream 429 when the daemons share their budget through Redis; the same
// burst through three daemons that do not share draws 429s (each believes
// it owns the whole 120), which is what sharing is for.
func TestMultihostSharedBudget(t *testing.T) {
	t.Parallel()
	const perMember = 44
	for _, tc := range []struct {
		name   string
		shared bool
	}{{"shared", true}, {"isolated", false}} {
		name, shared := tc.name, tc.shared
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			simURL := startTeamSim(t)
			redisURL := ""
			if shared {
				redisURL = redistest.Start(t).URL()
			}
			team := startTeam(t, simURL, redisURL, 3)
			var tl tally
			start := time.Now()
			burst(t.Context(), team, perMember, "burst", &tl)()
			elapsed := time.Since(start)
			st := simTeamStats(t, simURL)
			// The bound: the bucket's 120, then 2 a second.
			bound := float64(3*perMember-teamRPM) / (teamRPM / 60.0)
			t.Logf("%s: %s in %s (bound %.1f s); upstream %d requests, %d ok, %d 429s",
				name, &tl, elapsed.Round(time.Millisecond), bound, st.Requests, st.OK, st.RateLimited)
			if int(tl.ok.Load()) != 3*perMember {
				t.Errorf("%s: not every request was answered: %s", name, &tl)
			}
			if st.OK != 3*perMember {
				t.Errorf("%s: the simulator answered %d requests, want %d (each once)", name, st.OK, 3*perMember)
			}
			if shared && st.RateLimited != 0 {
				t.Errorf("sharing one budget, the team drew %d upstream 429s; want 0", st.RateLimited)
			}
			if !shared && st.RateLimited == 0 {
				t.Errorf("three daemons not sharing drew no 429: the burst does not exceed the limit, so the shared case proves nothing")
			}
		})
	}
}

// TestMultihostRedisOutage takes Redis away while the team is rate-bound,
// then gives it back, two ways: stopped and started again empty (a Redis
// without persistence restarting), and hung (SIGSTOP: connections accepted,
// nothing answered, every call running into its deadline) then resumed with
// its data. Every request is answered exactly once, the team stays under
// the limit (each host spends its lease, then its safe share), `lbgpt
// status --json` shows team.degraded_since while Redis is away and not
// after, and each daemon logs the change of state once each way, not per
// request; after a restart, once that the bucket was lost.
func TestMultihostRedisOutage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		restart bool
	}{{"restart", true}, {"hang", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testOutage(t, tc.restart)
		})
	}
}

func testOutage(t *testing.T, restart bool) {
	simURL := startTeamSim(t)
	rs := redistest.Start(t)
	team := startTeam(t, simURL, rs.URL(), 3)
	statuses := func() []rpc.StatusResult {
		var sts []rpc.StatusResult
		for _, m := range team {
			sts = append(sts, m.status(t))
		}
		return sts
	}
	// Every member keeps asking, so every member needs grants throughout
	// (an idle daemon makes no Redis call, and so sees no outage).
	var tl tally
	var stop atomic.Bool
	defer stop.Store(true)
	var waits []func()
	start := time.Now()
	for _, m := range team {
		waits = append(waits, keepAsking(t.Context(), m, 2, "outage", &tl, &stop))
	}
	// Away once the burst is spent and the team is on the refill.
	pollUntil(t, 30*time.Second, "124 requests answered", func() bool { return tl.ok.Load() >= 124 })
	if restart {
		rs.Stop()
	} else {
		rs.Pause()
	}
	downAt, okAtDown := time.Since(start), tl.ok.Load()
	pollUntil(t, 10*time.Second, "every daemon's status shows team.degraded_since", func() bool {
		for _, st := range statuses() {
			if st.Team == nil || st.Team.DegradedSince.IsZero() {
				return false
			}
		}
		return true
	})
	degradedAt, okDegraded := time.Since(start), tl.ok.Load()
	// The safe shares keep the team going while Redis is away.
	pollUntil(t, 15*time.Second, "3 requests answered while Redis is away", func() bool { return tl.ok.Load() >= okDegraded+3 })
	if restart {
		rs.Restart()
	} else {
		rs.Resume()
	}
	upAt, okUp := time.Since(start), tl.ok.Load()
	pollUntil(t, 10*time.Second, "no daemon's status shows team.degraded_since after Redis is back", func() bool {
		for _, st := range statuses() {
			if st.Team == nil || !st.Team.DegradedSince.IsZero() {
				return false
			}
		}
		return true
	})
	recoveredAt, okRecovered := time.Since(start), tl.ok.Load()
	pollUntil(t, 20*time.Second, "3 requests answered after Redis is back", func() bool { return tl.ok.Load() >= okRecovered+3 })
	stop.Store(true)
	for _, w := range waits {
		w()
	}
	elapsed := time.Since(start)
	st := simTeamStats(t, simURL)
	t.Logf("%s in %s; redis away at %s (%d answered), every status degraded at %s (%d), redis back at %s (%d), every status recovered at %s (%d); upstream %d requests, %d ok, %d 429s",
		&tl, elapsed.Round(time.Millisecond), downAt.Round(time.Millisecond), okAtDown, degradedAt.Round(time.Millisecond), okDegraded,
		upAt.Round(time.Millisecond), okUp, recoveredAt.Round(time.Millisecond), okRecovered, st.Requests, st.OK, st.RateLimited)

	if tl.failed.Load() != 0 {
		t.Errorf("requests failed: %s", &tl)
	}
	if st.OK != int(tl.ok.Load()) {
		t.Errorf("the simulator answered %d requests, the team %d: each must be paid once", st.OK, tl.ok.Load())
	}
	if st.RateLimited != 0 {
		t.Errorf("%d upstream 429s across the outage; want 0", st.RateLimited)
	}
	lost := 0
	if restart {
		lost = 1
	}
	for _, m := range team {
		log := m.log.String()
		down, up := strings.Count(log, "shared limits degraded"), strings.Count(log, "shared limits recovered")
		if down != 1 || up != 1 {
			t.Errorf("daemon %s logged %d \"shared limits degraded\" and %d \"shared limits recovered\" lines; want 1 each:\n%s", m.name, down, up, log)
		}
		if n := strings.Count(log, "shared limits restarted"); n != lost {
			t.Errorf("daemon %s logged %d \"shared limits restarted\" lines; want %d:\n%s", m.name, n, lost, log)
		}
	}
}

// TestMultihostKill9: a daemon killed with SIGKILL while it holds a lease
// takes the lease with it. The other two keep asking, through what is left
// of the burst and into the refill, without an upstream 429 (the dead host's lease counts as
// spent: under-use, never overshoot), and drop the dead host from the scope
// once it has been silent for the host TTL.
func TestMultihostKill9(t *testing.T) {
	t.Parallel()
	simURL := startTeamSim(t)
	rs := redistest.Start(t)
	team := startTeam(t, simURL, rs.URL(), 3)
	a, b, c := team[0], team[1], team[2]

	// C works until it holds a lease, and is killed.
	var tlC tally
	var stopC atomic.Bool
	defer stopC.Store(true)
	waitC := keepAsking(t.Context(), c, 4, "kill", &tlC, &stopC)
	var lease int64
	pollUntil(t, 15*time.Second, "C holds a lease", func() bool {
		if s := scope(c.status(t)); s != nil && s.LeaseRPM > 0 {
			lease = s.LeaseRPM
			return true
		}
		return false
	})
	c.cmd.Process.Kill()
	killedAt := time.Now()
	stopC.Store(true)
	waitC()
	t.Logf("C killed holding a lease of %d requests; it had %s", lease, &tlC)

	// A and B keep asking until each sees C gone: past the burst, into the
	// refill, and past the host TTL (10 s).
	var tl tally
	var stop atomic.Bool
	defer stop.Store(true)
	waitA, waitB := keepAsking(t.Context(), a, 4, "after the kill", &tl, &stop), keepAsking(t.Context(), b, 4, "after the kill", &tl, &stop)
	var dropped time.Duration
	pollUntil(t, 30*time.Second, "A and B see 2 hosts on the scope", func() bool {
		for _, m := range []*member{a, b} {
			if s := scope(m.status(t)); s == nil || s.Hosts != 2 {
				return false
			}
		}
		dropped = time.Since(killedAt)
		return true
	})
	// And they go on after it.
	okDropped := tl.ok.Load()
	pollUntil(t, 20*time.Second, "3 requests answered after C was dropped", func() bool { return tl.ok.Load() >= okDropped+3 })
	stop.Store(true)
	waitA()
	waitB()
	st := simTeamStats(t, simURL)
	t.Logf("A and B: %s; C dropped from the scope %s after the kill (%d answered by then); upstream %d requests, %d ok, %d 429s",
		&tl, dropped.Round(time.Millisecond), okDropped, st.Requests, st.OK, st.RateLimited)
	if tl.failed.Load() != 0 {
		t.Errorf("A and B failed requests after C died: %s", &tl)
	}
	if st.RateLimited != 0 {
		t.Errorf("%d upstream 429s after a daemon died holding a lease; want 0", st.RateLimited)
	}
}

// keepAsking runs workers loops asking through m, every prompt unique,
// counting in tl, until stop is set (or ctx ends); the returned function
// waits for the requests in flight then to end.
func keepAsking(ctx context.Context, m *member, workers int, tag string, tl *tally, stop *atomic.Bool) (wait func()) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				tl.add(m.name, m.ask(ctx, fmt.Sprintf("%s %s %d %d", tag, m.name, w, i)))
			}
		})
	}
	return wg.Wait
}

// TestMultihostSharedCache: an answer paid on host A is a hit on host B,
// which says it came from A; `lbgpt cache forget` on B removes it on A too,
// so that A pays for it again.
func TestMultihostSharedCache(t *testing.T) {
	simURL := startTeamSim(t)
	rs := redistest.Start(t)
	team := startTeamCache(t, simURL, rs.URL(), 3, true)
	a, b := team[0], team[1]
	const prompt = "what is the capital of the shared cache?"
	askMeta := func(m *member) http.Header {
		t.Helper()
		// temperature 0: a sampled request over HTTP gets an answer of its own
		body := fmt.Sprintf(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":%q}]}`, prompt)
		req, _ := http.NewRequest("POST", m.baseURL+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+m.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := teamClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", m.name, resp.StatusCode)
		}
		return resp.Header
	}
	paid := func() int { return simTeamStats(t, simURL).Requests }

	h := askMeta(a)
	if h.Get(rpc.HeaderCache) != "miss" || paid() != 1 {
		t.Fatalf("host A's first ask: cache %q, upstream %d requests; want a paid miss", h.Get(rpc.HeaderCache), paid())
	}
	entry := h.Get(rpc.HeaderCacheEntry)
	aHost := a.status(t).Team.Host
	// The write to Redis is behind the answer: wait for it.
	pollUntil(t, 5*time.Second, "host A shares its answer", func() bool {
		r := run(t, a.env, "", "lbgpt", "cache", "stats", "--json", "--socket", a.socket, "--no-autostart")
		var st rpc.CacheStats
		return json.Unmarshal([]byte(r.stdout), &st) == nil && st.Shared != nil && st.Shared.Puts == 1
	})
	hb := askMeta(b)
	if hb.Get(rpc.HeaderCache) != "exact" {
		t.Fatalf("host B's ask of host A's answer: cache %q, want an exact hit", hb.Get(rpc.HeaderCache))
	}
	if got := hb.Get(rpc.HeaderCacheHost); got != aHost {
		t.Errorf("host B's hit says it came from %q, want host A %q", got, aHost)
	}
	if n := paid(); n != 1 {
		t.Fatalf("upstream %d requests: host B paid for host A's answer", n)
	}

	r := run(t, b.env, "", "lbgpt", "cache", "forget", entry, "--socket", b.socket, "--no-autostart")
	if r.code != 0 {
		t.Fatalf("lbgpt cache forget on B: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The forget travels on the team's stream; A drops its own copy.
	pollUntil(t, 5*time.Second, "host A forgets the answer forgotten on B", func() bool {
		return askMeta(a).Get(rpc.HeaderCache) == "miss"
	})
	if n := paid(); n != 2 {
		t.Errorf("upstream %d requests after the forget, want 2 (host A paid again once)", n)
	}
}
