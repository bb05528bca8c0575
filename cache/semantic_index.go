package cache

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	chromem "github.com/philippgille/chromem-go"
)

// The index of one partition is chromem-go collections. A small partition
// is one collection, searched exhaustively. chromem-go scans every document
// of a collection on each query (about 1 µs per document here: ~110 ms at
// 100k), so a partition that reaches clusterAt entries is split into
// clusters, one collection each, around centroids found by spherical
// k-means; a query scans the clusters of its probes nearest centroids only.
// An entry far from every centroid (an outlier: a topic the clusters were
// not made for) goes to an extra list that every query scans; when outliers
// grow past a tenth of the partition, the partition is clustered again.
// An identical text always finds its entry (the same vector goes to the
// same list); a near neighbour across a cluster border can be missed, which
// for a cache is a miss, not a wrong answer.
const (
	defaultClusterAt = 8192
	clusters         = 128
	probes           = 6
	outlierBelow     = 0.4 // cosine to the nearest centroid
	kmeansSample     = 4096
	kmeansRounds     = 8
)

// partIndex is the index of one partition. Its methods are called with
// Semantic.mu held (for writing, except query).
type partIndex struct {
	newList   func() (*chromem.Collection, error)
	drop      func(*chromem.Collection)
	lists     []*chromem.Collection
	centroids [][]float32 // nil: one list, exhaustive
	n         int
}

// newPartIndex builds the index of a partition from its documents. With
// centroids, documents go to their stored list (lists[i], -1 if unknown);
// without, a large partition is clustered anew (computed is then true).
func newPartIndex(ctx context.Context, docs []chromem.Document, centroids [][]float32, lists []int, clusterAt int, newList func() (*chromem.Collection, error), drop func(*chromem.Collection)) (p *partIndex, where []int, computed bool, err error) {
	p = &partIndex{newList: newList, drop: drop, centroids: centroids}
	vecs := func() [][]float32 {
		v := make([][]float32, len(docs))
		for i, d := range docs {
			v[i] = d.Embedding
		}
		return v
	}
	switch {
	case centroids != nil:
		where = make([]int, len(docs))
		for i, d := range docs {
			if l := lists[i]; l >= 0 && l <= len(centroids) {
				where[i] = l
			} else {
				where[i], computed = p.assign(d.Embedding), true
			}
		}
	case clusterAt > 0 && len(docs) >= clusterAt:
		v := vecs()
		p.centroids = kmeans(v, clusters, kmeansRounds)
		where, computed = p.assignAll(v), true
	default:
		where = make([]int, len(docs))
	}
	for range len(p.centroids) + 1 {
		c, err := newList()
		if err != nil {
			return nil, nil, false, err
		}
		p.lists = append(p.lists, c)
	}
	for i, d := range docs {
		if err := p.lists[where[i]].AddDocument(ctx, d); err != nil {
			return nil, nil, false, fmt.Errorf("semantic: index: %w", err)
		}
	}
	p.n = len(docs)
	return p, where, computed, nil
}

// add indexes one document in list l (from assign).
func (p *partIndex) add(ctx context.Context, d chromem.Document, l int) error {
	if err := p.lists[l].AddDocument(ctx, d); err != nil {
		return fmt.Errorf("semantic: index: %w", err)
	}
	p.n++
	return nil
}

// assign chooses the list of a vector: its nearest centroid's, or the
// outliers' (the last).
func (p *partIndex) assign(v []float32) int {
	l := nearest(p.centroids, v)
	if dot(p.centroids[l], v) < outlierBelow {
		return len(p.centroids)
	}
	return l
}

// assignAll assigns every vector, in parallel.
func (p *partIndex) assignAll(vecs [][]float32) []int {
	return parallel(vecs, p.assign)
}

// crowded reports that too many entries are outliers: time to cluster again.
func (p *partIndex) crowded() bool {
	return p.centroids != nil && p.lists[len(p.centroids)].Count() > max(1000, p.n/10)
}

// remove drops a document from list l.
func (p *partIndex) remove(id string, l int) {
	p.lists[l].Delete(context.Background(), nil, nil, id)
	p.n--
}

// close drops every list.
func (p *partIndex) close() {
	for _, c := range p.lists {
		p.drop(c)
	}
}

// documents returns copies of every indexed document.
func (p *partIndex) documents(ctx context.Context, ids []string, lists []int) ([]chromem.Document, error) {
	docs := make([]chromem.Document, len(ids))
	for i, id := range ids {
		d, err := p.lists[lists[i]].GetByID(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("semantic: index: %w", err)
		}
		docs[i] = d
	}
	return docs, nil
}

// query returns up to n nearest documents, best first.
func (p *partIndex) query(ctx context.Context, vec []float32, n int) ([]chromem.Result, error) {
	lists := []int{0}
	if p.centroids != nil {
		lists = append(nearestN(p.centroids, vec, probes), len(p.centroids))
	}
	// chromem orders equal similarities as its goroutines finish: ask for
	// more than n and order ties by id, so a lookup finds the same
	// candidates every time (texts differing only in words the embedder
	// ignores have one vector).
	var all []chromem.Result
	for _, l := range lists {
		c := p.lists[l]
		k := min(2*n, c.Count())
		if k == 0 {
			continue
		}
		res, err := c.QueryEmbedding(ctx, vec, k, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("semantic: query: %w", err)
		}
		all = append(all, res...)
	}
	slices.SortFunc(all, func(a, b chromem.Result) int {
		return cmp.Or(cmp.Compare(b.Similarity, a.Similarity), cmp.Compare(a.ID, b.ID))
	})
	return all[:min(n, len(all))], nil
}

// dot of two vectors of equal length, four sums at a time.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

func nearest(centroids [][]float32, v []float32) int {
	best, bestSim := 0, float32(-2)
	for i, c := range centroids {
		if s := dot(c, v); s > bestSim {
			best, bestSim = i, s
		}
	}
	return best
}

func nearestN(centroids [][]float32, v []float32, n int) []int {
	idx := make([]int, len(centroids))
	sims := make([]float32, len(centroids))
	for i, c := range centroids {
		idx[i], sims[i] = i, dot(c, v)
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(sims[b], sims[a]) })
	return idx[:min(n, len(idx))]
}

// parallel maps f over vecs on every CPU.
func parallel(vecs [][]float32, f func([]float32) int) []int {
	out := make([]int, len(vecs))
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(vecs); i += workers {
				out[i] = f(vecs[i])
			}
		})
	}
	wg.Wait()
	return out
}

// kmeans finds k unit centroids by spherical k-means over an evenly spaced
// sample of vecs; deterministic for the same vecs in the same order.
func kmeans(vecs [][]float32, k, rounds int) [][]float32 {
	sample := vecs
	if len(vecs) > kmeansSample {
		sample = make([][]float32, kmeansSample)
		for i := range sample {
			sample[i] = vecs[i*len(vecs)/kmeansSample]
		}
	}
	k = min(k, len(sample))
	dims := len(sample[0])
	centroids := make([][]float32, k)
	for i := range centroids {
		centroids[i] = slices.Clone(sample[i*len(sample)/k])
	}
	for range rounds {
		where := parallel(sample, func(v []float32) int { return nearest(centroids, v) })
		sums := make([][]float64, k)
		for i := range sums {
			sums[i] = make([]float64, dims)
		}
		for i, v := range sample {
			for j, x := range v {
				sums[where[i]][j] += float64(x)
			}
		}
		for i, s := range sums {
			var norm float64
			for _, x := range s {
				norm += x * x
			}
			if norm == 0 {
				continue // an empty cluster keeps its centroid
			}
			norm = math.Sqrt(norm)
			for j, x := range s {
				centroids[i][j] = float32(x / norm)
			}
		}
	}
	return centroids
}
