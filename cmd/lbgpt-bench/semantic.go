package main

import (
	"bufio"
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

// semanticPair is one labelled line of the quality set: b asked after a was
// stored should hit a exactly when same is true.
type semanticPair struct {
	A    string `json:"a"`
	B    string `json:"b"`
	Same bool   `json:"same"`
	Kind string `json:"kind"`
}

// semanticQuality stores every a of the set at once in one partition, asks
// every b through the real Semantic.Lookup (threshold, then verifier), and
// scores the answers. A hit is correct only if it found its own a and the
// pair is labelled same. Odd lines of the file are the development half,
// even lines the held-out half, reported separately.
func semanticQuality(fs *flag.FlagSet) func(context.Context, io.Writer) (map[string]any, error) {
	pairs := fs.String("pairs", "testdata/semantic-pairs.jsonl", "JSONL file of labelled pairs")
	threshold := fs.Float64("threshold", cache.DefaultThreshold, "similarity threshold of the scored run")
	show := fs.String("show", "", "also list the false hits of this half: dev, held-out or all")
	clusterAt := fs.Int("cluster-at", 0, "partition size from which lookups search clusters (0: the cache's default, negative: never)")
	return func(ctx context.Context, out io.Writer) (map[string]any, error) {
		ps, err := readPairs(*pairs)
		if err != nil {
			return nil, err
		}
		return runSemanticQuality(ctx, out, ps, cache.SemanticOptions{Threshold: *threshold, ClusterAt: *clusterAt}, *show)
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
	for n := 1; sc.Scan(); n++ {
		var p semanticPair
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if p.A == "" || p.B == "" || p.Kind == "" {
			return nil, fmt.Errorf("%s:%d: a, b and kind are required", path, n)
		}
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%s: no pairs", path)
	}
	// A b that is another pair's a would be scored a false hit for hitting
	// the very text it is.
	as := uniqueA(ps)
	for i, p := range ps {
		if as[p.B] {
			return nil, fmt.Errorf("%s:%d: b %q is also stored as an a", path, i+1, p.B)
		}
	}
	return ps, nil
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
	FalseHits           map[string]int
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

// scoreOutcomes counts the outcomes of the pairs whose index passes keep,
// treating a hit below threshold as a miss.
func scoreOutcomes(ps []semanticPair, outs []outcome, threshold float64, keep func(int) bool) score {
	s := score{FalseHits: map[string]int{}}
	for i, p := range ps {
		if !keep(i) {
			continue
		}
		if p.Same {
			s.Same++
		}
		o := outs[i]
		if o.text == "" || o.sim < threshold {
			continue
		}
		s.Hits++
		if p.Same && o.text == p.A {
			s.Correct++
		} else {
			s.FalseHits[p.Kind]++
		}
	}
	return s
}

func runSemanticQuality(ctx context.Context, out io.Writer, ps []semanticPair, opts cache.SemanticOptions, show string) (map[string]any, error) {
	threshold := opts.Threshold
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
	{
		s, err := cache.OpenSemantic(db, emb, opts)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p.A] {
				continue
			}
			seen[p.A] = true
			if err := s.Add(ctx, cache.SemanticEntry{Partition: partition, Text: p.A, Target: p.A}); err != nil {
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
	all := func(int) bool { return true }
	main := scoreOutcomes(ps, outs, threshold, all)
	dev := scoreOutcomes(ps, outs, threshold, func(i int) bool { return i%2 == 0 })
	held := scoreOutcomes(ps, outs, threshold, func(i int) bool { return i%2 == 1 })

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
		v, u := scoreOutcomes(ps, verified, t, all), scoreOutcomes(ps, unverified, t, all)
		curve = append(curve, point{round3(t), round3(v.precision()), round3(v.recall())})
		curveUnverified = append(curveUnverified, point{round3(t), round3(u.precision()), round3(u.recall())})
	}
	slices.Sort(lat)

	fmt.Fprintf(out, "semantic-quality: %d pairs (%d same), %d stored texts, threshold %.2f\n", len(ps), main.Same, len(uniqueA(ps)), threshold)
	fmt.Fprintf(out, "  all:       precision %.3f  recall %.3f  (%d hits, %d correct)\n", main.precision(), main.recall(), main.Hits, main.Correct)
	fmt.Fprintf(out, "  dev half:  precision %.3f  recall %.3f\n", dev.precision(), dev.recall())
	fmt.Fprintf(out, "  held-out:  precision %.3f  recall %.3f\n", held.precision(), held.recall())
	fmt.Fprintf(out, "  false hits by kind: %v\n", sortedCounts(main.FalseHits))
	for i, p := range ps {
		o := outs[i]
		half := map[int]string{0: "dev", 1: "held-out"}[i%2]
		if o.text == "" || (p.Same && o.text == p.A) || (show != "all" && show != half) {
			continue
		}
		fmt.Fprintf(out, "  false hit, line %d (%s): %q → %q (similarity %.3f)\n", i+1, p.Kind, p.B, o.text, o.sim)
	}
	fmt.Fprintf(out, "  lookup p50 %d µs, p99 %d µs\n", percentile(lat, 50), percentile(lat, 99))
	fmt.Fprintf(out, "  threshold  verified P/R     similarity only P/R\n")
	for i, p := range curve {
		u := curveUnverified[i]
		fmt.Fprintf(out, "  %.2f       %.3f / %.3f    %.3f / %.3f\n", p.Threshold, p.Precision, p.Recall, u.Precision, u.Recall)
	}
	return map[string]any{
		"pairs":             len(ps),
		"threshold":         threshold,
		"precision":         round3(main.precision()),
		"recall":            round3(main.recall()),
		"hits":              main.Hits,
		"false_hits":        main.FalseHits,
		"dev_precision":     round3(dev.precision()),
		"dev_recall":        round3(dev.recall()),
		"heldout_precision": round3(held.precision()),
		"heldout_recall":    round3(held.recall()),
		"lookup_p50_us":     percentile(lat, 50),
		"curve":             curve,
		"curve_unverified":  curveUnverified,
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
