package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lbgpt/lbgpt/cache"
)

// semanticPair is one labelled line of a quality set: b asked after a was
// stored should hit a exactly when same is true. Register and split are
// optional (testdata/semantic/README.md).
type semanticPair struct {
	A        string `json:"a"`
	B        string `json:"b"`
	Same     bool   `json:"same"`
	Kind     string `json:"kind"`
	Register string `json:"register"`
	Split    string `json:"split"`
	line     int
}

// semanticQuality stores every a of the set at once in one partition, asks
// the b of every pair of the chosen split through the real
// Semantic.Lookup (threshold, then verifier), and scores the answers. A
// hit is correct only if it found its own a and the pair is labelled same.
func semanticQuality(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	pairs := fs.String("pairs", "testdata/semantic/dev-set.jsonl", "JSONL file of labelled pairs")
	split := fs.String("split", "", "score only the pairs of this split (train, dev, test); empty: all")
	threshold := fs.Float64("threshold", cache.DefaultThreshold, "similarity threshold of the scored run")
	show := fs.String("show", "", "also list the scored pairs that went wrong: false (wrong hits), missed, or all")
	clusterAt := fs.Int("cluster-at", 0, "partition size from which lookups search clusters (0: the cache's default, negative: never)")
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		ps, err := readPairs(*pairs)
		if err != nil {
			return nil, err
		}
		return runSemanticQuality(ctx, out, ps, *split, cache.SemanticOptions{Threshold: *threshold, ClusterAt: *clusterAt}, *show)
	}
}

func readPairs(path string) ([]semanticPair, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ps []semanticPair
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var p semanticPair
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if p.A == "" || p.B == "" || p.Kind == "" {
			return nil, fmt.Errorf("%s:%d: a, b and kind are required", path, n)
		}
		p.line = n
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: no pairs", path)
	}
	return ps, nil
}

// scorable drops the pairs whose b is also stored as an a: such a b would
// be scored a false hit for hitting the very text it is.
func scorable(ps []semanticPair) (kept []semanticPair, dropped int) {
	as := uniqueA(ps)
	for _, p := range ps {
		if as[p.B] {
			dropped++
			continue
		}
		kept = append(kept, p)
	}
	return kept, dropped
}

// outcome of one query: the stored text it hit ("" on a miss) and the
// similarity.
type outcome struct {
	text string
	sim  float64
}

// score of a set of outcomes.
type score struct {
	Hits, Correct, Same int
	FalseHits           map[string]int // by kind
	Missed, SameBy      map[string]int // by register
}

func (s score) precision() float64 {
	if s.Hits == 0 {
		return 1
	}
	return float64(s.Correct) / float64(s.Hits)
}

func (s score) recall() float64 {
	if s.Same == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.Same)
}

// correct reports whether outcome o of pair p is a correct hit.
func correct(p semanticPair, o outcome) bool { return p.Same && o.text == p.A }

// scoreOutcomes counts the outcomes, treating a hit below threshold as a
// miss.
func scoreOutcomes(ps []semanticPair, outs []outcome, threshold float64) score {
	s := score{FalseHits: map[string]int{}, Missed: map[string]int{}, SameBy: map[string]int{}}
	for i, p := range ps {
		o := outs[i]
		hit := o.text != "" && o.sim >= threshold
		if p.Same {
			s.Same++
			s.SameBy[p.Register]++
			if !(hit && correct(p, o)) {
				s.Missed[p.Register]++
			}
		}
		if !hit {
			continue
		}
		s.Hits++
		if correct(p, o) {
			s.Correct++
		} else {
			s.FalseHits[p.Kind]++
		}
	}
	return s
}

func runSemanticQuality(ctx context.Context, out io.Writer, all []semanticPair, split string, opts cache.SemanticOptions, show string) (map[string]any, error) {
	threshold := cmp.Or(opts.Threshold, cache.DefaultThreshold)
	kept, dropped := scorable(all)
	var ps []semanticPair
	for _, p := range kept {
		if split == "" || p.Split == split {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no pairs in split %q", split)
	}
	dir, err := os.MkdirTemp("", "lbgpt-bench-semantic-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "cache.db"), 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	emb := cache.NewLocalEmbedder()
	const partition = "bench"
	stored := 0
	{
		s, err := cache.OpenSemantic(db, emb, opts)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, p := range all { // every a of the file, whatever the split
			if seen[p.A] {
				continue
			}
			seen[p.A] = true
			stored++
			// Fixed ids: the index's order among equals is the same in every run.
			if err := s.Add(ctx, cache.SemanticEntry{ID: fmt.Sprintf("a%05d", stored), Partition: partition, Text: p.A, Target: p.A}); err != nil {
				return nil, err
			}
		}
	}
	// query runs every b through a fresh Semantic over the stored entries.
	query := func(threshold float64, unverified bool) ([]outcome, []time.Duration, error) {
		o := opts
		o.Threshold, o.Unverified = threshold, unverified
		s, err := cache.OpenSemantic(db, emb, o)
		if err != nil {
			return nil, nil, err
		}
		outs := make([]outcome, len(ps))
		lat := make([]time.Duration, len(ps))
		for i, p := range ps {
			start := time.Now()
			hit, ok, err := s.Lookup(ctx, partition, p.B)
			lat[i] = time.Since(start)
			if err != nil {
				return nil, nil, err
			}
			if ok {
				outs[i] = outcome{text: hit.Target, sim: hit.Similarity}
			}
		}
		return outs, lat, nil
	}
	outs, lat, err := query(threshold, false)
	if err != nil {
		return nil, err
	}
	main := scoreOutcomes(ps, outs, threshold)

	// The curves: with candidates taken best first, the result at a higher
	// threshold is the result at a low one if its similarity reaches it.
	const floor = 0.3
	verified, _, err := query(floor, false)
	if err != nil {
		return nil, err
	}
	unverified, _, err := query(floor, true)
	if err != nil {
		return nil, err
	}
	type point struct {
		Threshold float64 `json:"threshold"`
		Precision float64 `json:"precision"`
		Recall    float64 `json:"recall"`
	}
	var curve, curveUnverified []point
	for t := 0.4; t <= 0.951; t += 0.05 {
		v, u := scoreOutcomes(ps, verified, t), scoreOutcomes(ps, unverified, t)
		curve = append(curve, point{round3(t), round3(v.precision()), round3(v.recall())})
		curveUnverified = append(curveUnverified, point{round3(t), round3(u.precision()), round3(u.recall())})
	}
	slices.Sort(lat)

	name := cmp.Or(split, "all")
	fmt.Fprintf(out, "semantic-quality: %s: %d pairs scored (%d same), %d texts stored, %d pairs dropped (their b is also stored as an a), threshold %.2f\n",
		name, len(ps), main.Same, stored, dropped, threshold)
	fmt.Fprintf(out, "  precision %.3f  recall %.3f  (%d hits, %d correct)\n", main.precision(), main.recall(), main.Hits, main.Correct)
	fmt.Fprintf(out, "  false hits by kind: %s\n", sortedCounts(main.FalseHits))
	recallBy := map[string]float64{}
	for r, n := range main.SameBy {
		recallBy[cmp.Or(r, "-")] = round3(float64(n-main.Missed[r]) / float64(n))
	}
	fmt.Fprintf(out, "  recall by register: %v\n", recallBy)
	for i, p := range ps {
		o := outs[i]
		wrong := o.text != "" && !correct(p, o)
		missed := p.Same && !correct(p, o)
		if !(show == "all" && (wrong || missed) || show == "false" && wrong || show == "missed" && missed) {
			continue
		}
		what := "missed"
		if wrong {
			what = fmt.Sprintf("false hit on %q (similarity %.3f)", o.text, o.sim)
		}
		fmt.Fprintf(out, "  line %d (%s, %s): %q ← %q: %s\n", p.line, p.Kind, p.Register, p.A, p.B, what)
	}
	fmt.Fprintf(out, "  lookup p50 %d µs, p99 %d µs\n", percentile(lat, 50), percentile(lat, 99))
	fmt.Fprintf(out, "  threshold  verified P/R     similarity only P/R\n")
	for i, p := range curve {
		u := curveUnverified[i]
		fmt.Fprintf(out, "  %.2f       %.3f / %.3f    %.3f / %.3f\n", p.Threshold, p.Precision, p.Recall, u.Precision, u.Recall)
	}
	return map[string]any{
		"split":              name,
		"pairs":              len(ps),
		"dropped":            dropped,
		"stored":             stored,
		"threshold":          threshold,
		"precision":          round3(main.precision()),
		"recall":             round3(main.recall()),
		"hits":               main.Hits,
		"false_hits":         main.FalseHits,
		"recall_by_register": recallBy,
		"lookup_p50_us":      percentile(lat, 50),
		"curve":              curve,
		"curve_unverified":   curveUnverified,
	}, nil
}

func uniqueA(ps []semanticPair) map[string]bool {
	m := map[string]bool{}
	for _, p := range ps {
		m[p.A] = true
	}
	return m
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, m[k])
	}
	if s == "" {
		return "none"
	}
	return s
}
