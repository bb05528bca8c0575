package httpapi

import (
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
)

// GET /metrics: the daemon's counters in Prometheus' text exposition format
// (version 0.0.4), written by hand: the format is small, and
// client_golang's registry would weigh more than the endpoint.

// promWriter writes the text format.
type promWriter struct{ b []byte }

// family starts a metric family.
func (p *promWriter) family(name, typ, help string) {
	p.b = append(p.b, "# HELP "...)
	p.b = append(p.b, name...)
	p.b = append(p.b, ' ')
	p.b = append(p.b, strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)...)
	p.b = append(p.b, "\n# TYPE "...)
	p.b = append(p.b, name...)
	p.b = append(p.b, ' ')
	p.b = append(p.b, typ...)
	p.b = append(p.b, '\n')
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// sample writes one sample; labels are name, value pairs.
func (p *promWriter) sample(name string, v float64, labels ...string) {
	p.b = append(p.b, name...)
	if len(labels) > 0 {
		p.b = append(p.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.b = append(p.b, ',')
			}
			p.b = append(p.b, labels[i]...)
			p.b = append(p.b, `="`...)
			p.b = append(p.b, labelEscaper.Replace(labels[i+1])...)
			p.b = append(p.b, '"')
		}
		p.b = append(p.b, '}')
	}
	p.b = append(p.b, ' ')
	switch {
	case math.IsInf(v, 1):
		p.b = append(p.b, "+Inf"...)
	default:
		p.b = strconv.AppendFloat(p.b, v, 'g', -1, 64)
	}
	p.b = append(p.b, '\n')
}

// histogram writes the samples of one histogram of a family.
func (p *promWriter) histogram(name string, h *proxy.Histogram, labels ...string) {
	var cum uint64
	for i := range len(proxy.LatencyBuckets) + 1 {
		cum += h.Count(i)
		le := math.Inf(1)
		if i < len(proxy.LatencyBuckets) {
			le = proxy.LatencyBuckets[i]
		}
		p.sample(name+"_bucket", float64(cum), append(slices.Clip(labels), "le", formatLe(le))...)
	}
	p.sample(name+"_sum", h.SumSeconds(), labels...)
	p.sample(name+"_count", float64(cum), labels...)
}

func formatLe(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// backendStates are the values of lbgpt_backend_state's state label.
var backendStates = []string{rpc.StateOK, rpc.StateSaturated, rpc.StateCooling, rpc.StateDown, rpc.StateDeadKey}

// writeMetrics writes st and the latency histograms in the text format.
func writeMetrics(st rpc.StatusResult, lat *proxy.Latencies) []byte {
	var p promWriter
	p.family("lbgpt_uptime_seconds", "gauge", "Seconds since lbgptd started.")
	p.sample("lbgpt_uptime_seconds", st.UptimeS)
	p.family("lbgpt_queue_length", "gauge", "Requests waiting for a backend with room under its limits.")
	p.sample("lbgpt_queue_length", float64(st.Queue))
	p.family("lbgpt_daemon_overhead_seconds", "gauge", "Time requests spend in lbgptd itself (neither upstream nor queued), over the last 1024 requests, by quantile.")
	p.sample("lbgpt_daemon_overhead_seconds", float64(st.DaemonP50US)/1e6, "quantile", "0.5")
	p.sample("lbgpt_daemon_overhead_seconds", float64(st.DaemonP99US)/1e6, "quantile", "0.99")

	perBackend := []struct {
		name, typ, help string
		value           func(b *rpc.BackendStatus) (float64, bool)
	}{
		{"lbgpt_backend_requests_total", "counter", "Upstream calls made.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.Requests), true }},
		{"lbgpt_backend_errors_total", "counter", "Upstream calls that failed, 429s included.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.Errors), true }},
		{"lbgpt_backend_rate_limited_total", "counter", "Upstream calls answered 429.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.Status429), true }},
		{"lbgpt_backend_retries_total", "counter", "Upstream calls that retried an earlier attempt.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.Retries), true }},
		{"lbgpt_backend_tokens_total", "counter", "Prompt and completion tokens answered.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.Tokens), true }},
		{"lbgpt_backend_in_flight", "gauge", "Upstream calls in flight.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.InFlight), true }},
		{"lbgpt_backend_limit_rpm", "gauge", "Requests per minute allowed; absent when unknown.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.LimitRPM), b.LimitRPM > 0 }},
		{"lbgpt_backend_limit_tpm", "gauge", "Tokens per minute allowed; absent when unknown.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.LimitTPM), b.LimitTPM > 0 }},
		{"lbgpt_backend_used_rpm", "gauge", "Requests in the last 60 s, in flight included.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.UsedRPM), true }},
		{"lbgpt_backend_used_tpm", "gauge", "Tokens in the last 60 s, reservations included.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.UsedTPM), true }},
		{"lbgpt_backend_headroom_rpm", "gauge", "Requests the backend can take now under its RPM limit; absent when the limit is unknown.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.RemainingRPM), b.RemainingRPM >= 0 }},
		{"lbgpt_backend_headroom_tpm", "gauge", "Tokens the backend can take now under its TPM limit; absent when the limit is unknown.", func(b *rpc.BackendStatus) (float64, bool) { return float64(b.RemainingTPM), b.RemainingTPM >= 0 }},
	}
	for _, f := range perBackend {
		p.family(f.name, f.typ, f.help)
		for i := range st.Backends {
			if v, ok := f.value(&st.Backends[i]); ok {
				p.sample(f.name, v, "backend", st.Backends[i].Name)
			}
		}
	}
	p.family("lbgpt_backend_state", "gauge", "1 for the backend's state now: ok, saturated, cooling (after a 429), down (failing) or dead_key.")
	for _, b := range st.Backends {
		for _, s := range backendStates {
			v := 0.0
			if b.State == s {
				v = 1
			}
			p.sample("lbgpt_backend_state", v, "backend", b.Name, "state", s)
		}
	}
	for i, h := range []struct{ name, help string }{
		{"lbgpt_request_duration_seconds", "Answered requests by the backend that answered: the whole request, queueing and retries included."},
		{"lbgpt_upstream_duration_seconds", "Answered requests by the backend that answered: the time spent in upstream calls."},
	} {
		p.family(h.name, "histogram", h.help)
		for _, b := range st.Backends {
			p.histogram(h.name, &lat.Of(b.Name)[i], "backend", b.Name)
		}
	}
	if c := st.Cache; c != nil {
		p.family("lbgpt_cache_hits_total", "counter", "Requests answered without an upstream call, by kind.")
		p.sample("lbgpt_cache_hits_total", float64(c.Hits.Exact), "kind", "exact")
		p.sample("lbgpt_cache_hits_total", float64(c.Hits.Semantic), "kind", "semantic")
		p.sample("lbgpt_cache_hits_total", float64(c.Hits.Coalesced), "kind", "coalesced")
		p.family("lbgpt_cache_misses_total", "counter", "Requests answered upstream.")
		p.sample("lbgpt_cache_misses_total", float64(c.Misses))
		p.family("lbgpt_cache_entries", "gauge", "Cache entries, by cache.")
		p.sample("lbgpt_cache_entries", float64(c.Entries), "cache", "exact")
		p.sample("lbgpt_cache_entries", float64(c.SemanticEntries), "cache", "semantic")
		p.family("lbgpt_cache_bytes", "gauge", "Size of the cache file.")
		p.sample("lbgpt_cache_bytes", float64(c.Bytes))
		p.family("lbgpt_cache_evictions_total", "counter", "Cache entries evicted.")
		p.sample("lbgpt_cache_evictions_total", float64(c.Evictions))
		p.family("lbgpt_cache_write_errors_total", "counter", "Cache writes that failed: refused at once, or a commit of the write-behind queue that failed (kept and retried); every answer still reached its client.")
		p.sample("lbgpt_cache_write_errors_total", float64(c.WriteErrors))
	}
	if sp := st.Spend; sp != nil {
		p.family("lbgpt_spend_usd", "gauge", "What the answers paid upstream cost in the current UTC day and month, USD (priced models only).")
		p.sample("lbgpt_spend_usd", sp.Today.CostUSD, "period", "day")
		p.sample("lbgpt_spend_usd", sp.Month.CostUSD, "period", "month")
		p.family("lbgpt_saved_usd", "gauge", "What cache hits saved in the current UTC day and month, USD: each hit at what its answer cost when paid.")
		p.sample("lbgpt_saved_usd", sp.Today.SavedUSD, "period", "day")
		p.sample("lbgpt_saved_usd", sp.Month.SavedUSD, "period", "month")
		if len(sp.Budgets) > 0 {
			p.family("lbgpt_budget_limit_usd", "gauge", "Each [budget] limit, USD; namespace \"\" is the overall one.")
			for _, b := range sp.Budgets {
				p.sample("lbgpt_budget_limit_usd", b.LimitUSD, "namespace", b.Namespace, "period", b.Period)
			}
			p.family("lbgpt_budget_spent_usd", "gauge", "What each [budget] limit has spent, USD.")
			for _, b := range sp.Budgets {
				p.sample("lbgpt_budget_spent_usd", b.SpentUSD, "namespace", b.Namespace, "period", b.Period)
			}
		}
	}
	if c := st.Cache; c != nil && c.Shared != nil {
		sh := c.Shared
		p.family("lbgpt_shared_cache_reads_total", "counter", "Reads of the team's shared answer cache after a local miss, by result.")
		p.sample("lbgpt_shared_cache_reads_total", float64(sh.Hits), "result", "hit")
		p.sample("lbgpt_shared_cache_reads_total", float64(sh.Misses), "result", "miss")
		p.family("lbgpt_shared_cache_puts_total", "counter", "Answers written to the team's shared cache.")
		p.sample("lbgpt_shared_cache_puts_total", float64(sh.Puts))
		p.family("lbgpt_shared_cache_drops_total", "counter", "Answers and semantic entries not shared: too large, the write queue full, or Redis down.")
		p.sample("lbgpt_shared_cache_drops_total", float64(sh.Drops))
		p.family("lbgpt_shared_cache_errors_total", "counter", "Calls to the team's Redis for the shared cache that failed.")
		p.sample("lbgpt_shared_cache_errors_total", float64(sh.Errors))
		p.family("lbgpt_shared_cache_semantic_total", "counter", "Semantic entries announced to the team, added from it, and skipped (another embedder made them).")
		p.sample("lbgpt_shared_cache_semantic_total", float64(sh.SemanticSent), "direction", "sent")
		p.sample("lbgpt_shared_cache_semantic_total", float64(sh.SemanticReceived), "direction", "received")
		p.sample("lbgpt_shared_cache_semantic_total", float64(sh.SemanticSkipped), "direction", "skipped")
	}
	if t := st.Team; t != nil {
		p.family("lbgpt_shared_degraded", "gauge", "1 while the team's Redis does not answer: each host spends what it holds, then its safe share.")
		p.sample("lbgpt_shared_degraded", boolGauge(!t.DegradedSince.IsZero()))
		p.family("lbgpt_shared_redis_rtt_seconds", "gauge", "Median round trip of recent calls to the team's Redis.")
		p.sample("lbgpt_shared_redis_rtt_seconds", float64(t.RTTUS)/1e6)
		p.family("lbgpt_shared_scope_hosts", "gauge", "Hosts active on each shared limit scope, at this host's last exchange.")
		for _, s := range t.Scopes {
			p.sample("lbgpt_shared_scope_hosts", float64(s.Hosts), "scope", s.Name)
		}
		p.family("lbgpt_shared_scope_lease", "gauge", "What this host holds unspent of each shared limit, by scope and limit.")
		for _, s := range t.Scopes {
			p.sample("lbgpt_shared_scope_lease", float64(s.LeaseRPM), "scope", s.Name, "limit", "rpm")
			p.sample("lbgpt_shared_scope_lease", float64(s.LeaseTPM), "scope", s.Name, "limit", "tpm")
		}
	}
	return p.b
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metrics answers GET /metrics.
func (a *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	b := writeMetrics(a.status(), a.pl.Latencies())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}
