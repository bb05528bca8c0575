package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/lbgpt/lbgpt/cache/verify"
)

// previous is the model before the pooled fit (fitted on dev-set.jsonl's
// train split alone, threshold chosen there at precision 0.982), kept to
// compare against.
var previous = struct {
	names     []string
	weights   []float64
	threshold float64
}{
	[]string{"bias", "similarity", "coverage_min", "coverage_max", "soft_coverage_min", "unmatched_both", "unmatched_either", "unmatched_share", "relational_one_side", "length_ratio", "shared_context", "substitution", "substitution_similarity", "extra_weight", "extra_tail", "copy_share"},
	[]float64{-1.3933, 0.9298, 1.1978, 1.4157, 1.2083, -0.7441, -0.4236, -1.3099, -0.2503, 0.0478, 1.1737, -0.4993, -0.1017, -0.6229, -0.2006, 0.9387},
	0.8473,
}

// runCompare prints, for the previous model and the pooled refit, the
// lookup figures of each held-out part, the pooled recall at a few
// precisions, the pooled curve, the wrong hits and where the same pairs
// are lost.
func runCompare(dir string, target, lambda float64, show string) error {
	ls, qs, err := load(dir)
	if err != nil {
		return err
	}
	xs, ys := training(qs)
	for _, part := range []string{partFit, partHeld} {
		losses(qs, part)
	}
	cs := make([]int, len(previous.names))
	for k, n := range previous.names {
		if cs[k] = slices.Index(verify.FeatureNames, n); cs[k] < 0 {
			return fmt.Errorf("the previous model's feature %s is gone", n)
		}
	}
	prev := func(f []float64) float64 {
		z := 0.0
		for k, c := range cs {
			z += previous.weights[k] * f[c]
		}
		return sigmoid(z)
	}
	w := round(fitLogistic(xs, ys, lambda))
	pooled := func(f []float64) float64 { return sigmoid(dotW(w, f)) }
	type variant struct {
		name  string
		score func([]float64) float64
		th    float64
	}
	chosen := func(score func([]float64) float64, p float64) float64 {
		th, _ := chooseThreshold(qs, partHeld, score, p)
		return th
	}
	vs := []variant{
		{"previous model, its threshold", prev, previous.threshold},
		{"previous model, held-out threshold", prev, chosen(prev, target)},
		{"pooled refit, held-out threshold", pooled, chosen(pooled, target)},
	}
	names := []string{}
	for _, l := range ls {
		names = append(names, strings.TrimSuffix(l.name, ".jsonl")+" "+partHeld)
	}
	names = append(names, "pooled "+partHeld, "pooled "+partFit)
	fmt.Printf("| design | threshold | %s | pooled held-out recall at precision ≥ 0.95 / 0.97 |\n", strings.Join(names, " | "))
	for _, v := range vs {
		r := report(ls, qs, v.score, v.th)
		var cells []string
		for _, n := range names {
			t := r.get(n)
			cells = append(cells, fmt.Sprintf("%.3f / %.3f", t.precision(), t.recall()))
		}
		var at []string
		for _, p := range []float64{0.95, 0.97} {
			t := report(ls, qs, v.score, chosen(v.score, p)).get("pooled " + partHeld)
			at = append(at, fmt.Sprintf("%.3f", t.recall()))
		}
		fmt.Printf("| %s | %.4f | %s | %s |\n", v.name, v.th, strings.Join(cells, " | "), strings.Join(at, " / "))
	}
	fmt.Fprintf(os.Stderr, "pooled refit: weights %v\n", w)
	curve(qs, pooled, partHeld)
	wrongHits(ls, qs, pooled, vs[2].th, partHeld)
	if show != "" {
		showSet(ls, qs, pooled, vs[2].th, show)
	}
	return nil
}

// showSet lists, for one set and both its parts, the wrong hits at th and
// why each same pair is lost: its own a not retrieved, vetoed, or scored
// below th (or below another candidate).
func showSet(ls []labelled, qs []query, score func([]float64) float64, th float64, name string) {
	for _, q := range qs {
		l := ls[q.set]
		if l.name != name && name != "all" {
			continue
		}
		p := l.pairs[q.pair]
		b, s := top(q, score)
		hit := b >= 0 && s >= th
		switch {
		case hit && !q.cands[b].same:
			fmt.Printf("WRONG %s %s %.3f [%s] %q ← %q\n", l.name, q.part, s, p.Kind, l.texts[q.cands[b].stored], p.B)
		case q.same && !hit || q.same && !q.cands[b].same:
			why := "not retrieved"
			if i := slices.IndexFunc(q.cands, func(e example) bool { return e.same }); i >= 0 {
				switch e := q.cands[i]; {
				case e.veto != "":
					why = "veto: " + e.veto
				case e.f != nil:
					why = fmt.Sprintf("score %.3f", score(e.f))
				}
			}
			fmt.Printf("LOST %s %s [%s] %s: %q ← %q\n", l.name, q.part, p.Register, why, p.A, p.B)
		}
	}
}

// curve prints the pooled precision and recall of a part at thresholds.
func curve(qs []query, score func([]float64) float64, part string) {
	for g := 99; g >= 50; g-- {
		th := float64(g) / 100
		var t tally
		for _, q := range qs {
			if q.part == part {
				b, s := top(q, score)
				t.add(q, b, s, th)
			}
		}
		fmt.Fprintf(os.Stderr, "  %s %.2f: %.3f / %.3f (%d hits, %d wrong)\n", part, th, t.precision(), t.recall(), t.hits, t.hits-t.correct)
	}
}

// wrongHits lists the queries of a part whose hit at th is wrong.
func wrongHits(ls []labelled, qs []query, score func([]float64) float64, th float64, part string) {
	for _, q := range qs {
		if q.part != part {
			continue
		}
		b, s := top(q, score)
		if b < 0 || s < th || q.cands[b].same {
			continue
		}
		l := ls[q.set]
		p := l.pairs[q.pair]
		rel := "another a"
		if l.texts[q.cands[b].stored] == p.A {
			rel = "its own a, " + p.Kind
		}
		fmt.Fprintf(os.Stderr, "wrong hit, %s %.3f identical=%v (%s): %q ← %q\n", l.name, s, q.cands[b].identical, rel, l.texts[q.cands[b].stored], p.B)
	}
}

// losses says where the same pairs of a part are lost: their own a not
// retrieved, vetoed (by the kind of veto), or judged by the model.
func losses(qs []query, part string) {
	n, notRetrieved, judged := 0, 0, 0
	vetoes := map[string]int{}
	for _, q := range qs {
		if q.part != part || !q.same {
			continue
		}
		n++
		i := slices.IndexFunc(q.cands, func(e example) bool { return e.same })
		switch {
		case i < 0:
			notRetrieved++
		case q.cands[i].veto != "":
			vetoes[vetoKind(q.cands[i].veto)]++
		default:
			judged++
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d same pairs; own a not retrieved %d, identical or judged %d, vetoed %v\n", part, n, notRetrieved, judged, vetoes)
}

// vetoKind is a veto's reason without the words it quotes.
func vetoKind(v string) string {
	var keep []string
	for i, p := range strings.Split(v, `"`) {
		if i%2 == 0 {
			keep = append(keep, strings.TrimSpace(p))
		}
	}
	return strings.TrimSpace(strings.Join(keep, " _ "))
}
