package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lbgpt/lbgpt/rpc"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// busyStatus is a daemon under load: one backend saturated, one cooling
// after a 429, one with a refused key, numbers as wide as they get.
func busyStatus() *rpc.StatusResult {
	started := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := started.Add(90 * time.Minute)
	return &rpc.StatusResult{
		Version: "v0.3.0", Protocol: rpc.Version, PID: 4242, StartedAt: started, UptimeS: now.Sub(started).Seconds(),
		Config: "/home/ana/.config/lbgpt/lbgpt.toml", Strategy: "max_headroom", Queue: 17, DaemonP50US: 85, DaemonP99US: 1460,
		ReloadedAt: now.Add(-time.Minute), ReloadError: `lbgpt.toml:14: unknown key "limit_rmp" (did you mean "limit_rpm"?)`,
		RestartPending: []string{"[http] listen, socket"},
		Backends: []rpc.BackendStatus{
			{Name: "openai", Type: "openai", State: rpc.StateSaturated, Reason: "tpm", Requests: 1234567, Errors: 120, Status429: 0, Retries: 45,
				Tokens: 98765432, InFlight: 64, LimitRPM: 10000, LimitTPM: 2000000, UsedRPM: 9999, UsedTPM: 1234000,
				LatencyP50MS: 812.4, LatencyP95MS: 2400},
			{Name: "azure-eu", Type: "azure", Models: []string{"gpt-4o", "gpt-4o-mini"}, State: rpc.StateCooling,
				CooldownUntil: now.Add(4500 * time.Millisecond), Requests: 52340, Errors: 1234, Status429: 1200, Retries: 1300,
				InFlight: 0, LimitRPM: 500, LimitTPM: 150000, UsedRPM: 500, UsedTPM: 149000, LatencyP50MS: 1530},
			{Name: "vllm", Type: "openai-compatible", Models: []string{"llama-3.1-8b"}, State: rpc.StateDeadKey,
				Requests: 3, Errors: 3, UsedRPM: 0, LatencyP50MS: 0.4},
		},
	}
}

func TestStatusTable(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, busyStatus(), "")
	got := b.String()
	golden := filepath.Join("testdata", "status.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("status table differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
	for _, field := range []string{"RELOAD REJECTED", "AT THE NEXT START: [http] listen, socket changed since lbgptd started", `"limit_rmp" (did you mean "limit_rpm"?)`, "previous configuration stays", "strategy max_headroom", "queue 17", "p50 85µs", "p99 1.5ms",
		"saturated: tpm", "cooling 4.5s", "dead_key", "9999/10k", "2M", "1.2M/2M", "500/500", "149k/150k", "0/-", "812ms", "1.53s", "<1ms"} {
		if !strings.Contains(got, field) {
			t.Errorf("table lacks %q", field)
		}
	}
	for i, line := range strings.Split(got, "\n") {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("line %d is %d columns, over 100: %q", i+1, n, line)
		}
	}
}

func TestStatusCacheLine(t *testing.T) {
	st := busyStatus()
	st.Cache = &rpc.CacheStats{Entries: 1200, SemanticEntries: 300, Bytes: 5 << 20, Hits: rpc.CacheHits{Exact: 70, Semantic: 5, Coalesced: 2}, Misses: 23, HitRate: 0.77}
	var b bytes.Buffer
	printStatus(&b, st, "")
	want := "cache 1200 entries (300 semantic), 5.0 MiB  hits 70 exact 5 semantic 2 coalesced  misses 23  hit rate 77 %\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("no cache line %q in\n%s", want, b.String())
	}
}

func TestStatusCommand(t *testing.T) {
	f := newFake(t, nil)
	stdout, stderr, code := runCtx(t.Context(), "", "status", "--socket", f.socket)
	if code != 0 || !strings.Contains(stdout, "lbgptd fake") || !strings.Contains(stdout, "BACKEND  STATE") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, _, code = runCtx(t.Context(), "", "status", "--socket", f.socket, "--json")
	if code != 0 || !strings.Contains(stdout, `"version": "fake"`) || !strings.Contains(stdout, `"daemon_p99_us": 0`) {
		t.Errorf("--json: exit %d, stdout %q", code, stdout)
	}
}

func TestCompact(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 950: "950", 9999: "9999", 10000: "10k", 12500: "12.5k", 149000: "149k",
		999999: "1M", 999_499: "999k", 99_960: "100k", 1000000: "1M", 1500000: "1.5M", 2000000: "2M", 123456789: "123M", 5e9: "5G"} {
		if got := compact(n); got != want {
			t.Errorf("compact(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestStatusTeamLines(t *testing.T) {
	st := busyStatus()
	now := snapshotTime(st)
	st.Team = &rpc.TeamStatus{Redis: "redis://:xxxxx@cache.lan:6379", Host: "build-3:812", Hosts: 4, RTTUS: 180,
		Scopes: []rpc.ScopeStatus{{Name: "a1b2c3d4e5f60718", Backends: []string{"openai"}, Hosts: 3, LevelRPM: 4200, LevelTPM: 1500000, LeaseRPM: 60, LeaseTPM: 25000, CoolingUntil: now.Add(2 * time.Second)}}}
	var b bytes.Buffer
	printStatus(&b, st, "")
	for _, want := range []string{"team of 4 hosts: redis redis://:xxxxx@cache.lan:6379  host build-3:812  round trip 180µs",
		"scope a1b2c3d4e5f60718 (openai): 3 hosts  shared rpm 4200, lease 60  shared tpm 1.5M, lease 25k  cooling 2s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no line %q in\n%s", want, b.String())
		}
	}
	st.Team.DegradedSince, st.Team.LastError = now.Add(-42*time.Second), "dial unix /run/redis.sock: connect: no such file or directory"
	st.Team.Scopes[0].Degraded, st.Team.Scopes[0].ShareRPM, st.Team.Scopes[0].ShareTPM = true, 1050, 375000
	b.Reset()
	printStatus(&b, st, "")
	if want := "SHARED LIMITS DEGRADED since"; !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "(42s ago)") || strings.Contains(b.String(), "team of 4") {
		t.Errorf("degraded team not shown as such:\n%s", b.String())
	}
	if want := "spending its safe share: rpm 1050, tpm 375k"; !strings.Contains(b.String(), want) {
		t.Errorf("no %q in\n%s", want, b.String())
	}
}

// Spend and budgets in status; a ledger that did not open is said loudly.
func TestStatusSpendLines(t *testing.T) {
	st := busyStatus()
	st.Spend = &rpc.SpendStatus{Today: rpc.SpendTotals{CostUSD: 4.12, SavedUSD: 1.3, Unpriced: 2}, Month: rpc.SpendTotals{CostUSD: 40},
		Budgets: []rpc.Budget{{Period: "day", LimitUSD: 5, SpentUSD: 4.5, ReservedUSD: 0.2, Warn: true}}}
	var b bytes.Buffer
	printStatus(&b, st, "")
	for _, want := range []string{
		"spend today $4.12 paid, $1.30 saved by the cache; this month $40.00 paid, $0.00 saved (and 2 answers today of a model without a price)",
		"budget overall per day: $4.50 of $5.00 spent, $0.20 held by requests in flight  NEARLY SPENT",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
	st.Spend, st.SpendError = nil, "spend: snapshot /state/spend.json: invalid character"
	b.Reset()
	printStatus(&b, st, "")
	if !strings.Contains(b.String(), "SPEND NOT KEPT: the ledger did not open: spend: snapshot /state/spend.json") {
		t.Errorf("a ledger that did not open is not said:\n%s", b.String())
	}
}
