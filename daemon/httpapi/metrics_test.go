package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
)

// TestMetricsTextFormat checks the writer on values that need escaping and
// on a cache, parsed back by Prometheus' own parser.
func TestMetricsTextFormat(t *testing.T) {
	var lat proxy.Latencies
	lat.Observe("we\"ird\\name\n", 3*time.Second, 0)
	st := rpc.StatusResult{
		Backends: []rpc.BackendStatus{{Name: "we\"ird\\name\n", State: rpc.StateCooling, LimitRPM: 10, RemainingRPM: -1}},
		Cache:    &rpc.CacheStats{Hits: rpc.CacheHits{Exact: 4, Semantic: 2, Coalesced: 1}, Misses: 9},
	}
	b := writeMetrics(st, &lat)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	h := fams["lbgpt_request_duration_seconds"].Metric[0]
	if h.Label[0].GetValue() != "we\"ird\\name\n" || h.Histogram.GetSampleCount() != 1 || h.Histogram.GetSampleSum() != 3 {
		t.Errorf("histogram = %v", h)
	}
	for _, bk := range h.Histogram.Bucket {
		if want := uint64(0); bk.GetUpperBound() >= 5 {
			want = 1
			if bk.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v holds %d", bk.GetUpperBound(), bk.GetCumulativeCount())
			}
		} else if bk.GetUpperBound() < 2.5 && bk.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v holds %d", bk.GetUpperBound(), bk.GetCumulativeCount())
		}
	}
	if len(fams["lbgpt_backend_headroom_rpm"].GetMetric()) != 0 {
		t.Errorf("unknown headroom exported: %v", fams["lbgpt_backend_headroom_rpm"])
	}
	hits := map[string]float64{}
	for _, m := range fams["lbgpt_cache_hits_total"].GetMetric() {
		hits[m.Label[0].GetValue()] = m.Counter.GetValue()
	}
	if hits["exact"] != 4 || hits["semantic"] != 2 || hits["coalesced"] != 1 {
		t.Errorf("cache hits = %v", hits)
	}
}

func TestMetricsTeam(t *testing.T) {
	var lat proxy.Latencies
	st := rpc.StatusResult{Team: &rpc.TeamStatus{DegradedSince: time.Unix(1, 0), RTTUS: 250,
		Scopes: []rpc.ScopeStatus{{Name: "s1", Hosts: 3, LeaseRPM: 7, LeaseTPM: 900}}}}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(writeMetrics(st, &lat))))
	if err != nil {
		t.Fatal(err)
	}
	if v := fams["lbgpt_shared_degraded"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("lbgpt_shared_degraded = %v while degraded", v)
	}
	if v := fams["lbgpt_shared_scope_hosts"].GetMetric()[0].GetGauge().GetValue(); v != 3 {
		t.Errorf("lbgpt_shared_scope_hosts = %v", v)
	}
	if n := len(fams["lbgpt_shared_scope_lease"].GetMetric()); n != 2 {
		t.Errorf("%d lease samples, want rpm and tpm", n)
	}
	if _, ok := fams["lbgpt_shared_degraded"]; !ok {
		t.Error("no team metrics")
	}
	st.Team = nil
	fams, _ = parser.TextToMetricFamilies(strings.NewReader(string(writeMetrics(st, &lat))))
	if _, ok := fams["lbgpt_shared_degraded"]; ok {
		t.Error("team metrics without a team")
	}
}
