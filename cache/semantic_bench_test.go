package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchWords make up synthetic prompts: template + random topic words, so
// that the entries are distinct and spread over the space.
var benchWords = strings.Fields(`python linux kernel database index cache river mountain recipe bread
	cake soup chicken salmon tomato garden flower tree forest ocean island city country history war
	king queen president election market stock price bank loan mortgage tax salary job interview resume
	email letter poem story novel movie music guitar piano song dance school student teacher exam math
	algebra geometry physics chemistry biology cell gene protein virus vaccine doctor hospital heart
	brain sleep exercise running swimming football tennis chess game computer phone laptop network
	server client browser website design color paint camera photo travel flight hotel train car bike
	engine battery solar wind energy climate weather rain snow winter summer coffee tea wine beer`)

var benchTemplates = []string{"How do I %s the %s in %s?", "What is the best %s for %s and %s?", "Explain %s, %s and %s.", "Why does %s affect %s near %s?", "Write about %s with %s for %s."}

var benchVerbs = strings.Fields("fix clean build change measure compare plan learn choose store")

func benchText(r *rand.Rand) string {
	w := func() string { return benchWords[r.IntN(len(benchWords))] }
	t := benchTemplates[r.IntN(len(benchTemplates))]
	if strings.HasPrefix(t, "How do I") {
		return fmt.Sprintf(t, benchVerbs[r.IntN(len(benchVerbs))], w(), w()) + fmt.Sprintf(" %d", r.IntN(1000))
	}
	return fmt.Sprintf(t, w(), w(), w()) + fmt.Sprintf(" %d", r.IntN(1000))
}

// fillSemantic writes n entries of one partition straight into bbolt (one
// transaction, vectors from the local embedder), as a long-running daemon
// would have left them.
func fillSemantic(b *testing.B, path string, n int) {
	b.Helper()
	db := openDB(b, path)
	defer db.Close()
	emb := NewLocalEmbedder()
	if _, err := OpenSemantic(db, emb, SemanticOptions{}); err != nil { // creates the buckets and fingerprint
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	err := db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketSemantic).Bucket(bucketEntries)
		for i := range n {
			text := benchText(r)
			v, err := emb.Embed(context.Background(), []string{text})
			if err != nil {
				return err
			}
			e := SemanticEntry{ID: fmt.Sprintf("e%07d", i), Partition: "p", Text: text, Target: fmt.Sprintf("t%07d", i), Created: time.Unix(0, 0)}
			if err := bk.Put([]byte(e.ID), encodeEntry(e, v[0])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkSemanticLookup(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "c.db")
			fillSemantic(b, path, n)
			s := openSemantic(b, openDB(b, path), NewLocalEmbedder())
			r := rand.New(rand.NewPCG(3, 4))
			var lat []time.Duration
			ctx := context.Background()
			for b.Loop() {
				q := benchText(r)
				start := time.Now()
				if _, _, err := s.Lookup(ctx, "p", q); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// BenchmarkOpenSemantic100k: from a closed database file holding 100k
// entries to an index ready for lookups.
func BenchmarkOpenSemantic100k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "c.db")
	fillSemantic(b, path, 100_000)
	emb := NewLocalEmbedder()
	// The first open clusters the partition and stores the clusters, as a
	// daemon that has run before would have.
	db := openDB(b, path)
	if _, err := OpenSemantic(db, emb, SemanticOptions{}); err != nil {
		b.Fatal(err)
	}
	db.Close()
	var s *Semantic
	for b.Loop() {
		s = nil
		db := openDB(b, path)
		var err error
		s, err = OpenSemantic(db, emb, SemanticOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != 100_000 {
			b.Fatalf("Len = %d", s.Len())
		}
		db.Close()
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MB")
	runtime.KeepAlive(s)
}

// BenchmarkClusterRecall reports how often the clustered search finds the
// same nearest neighbour as the exhaustive one, for queries that are stored
// texts reworded ("please" added, one topic word changed).
func BenchmarkClusterRecall(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "c.db")
	fillSemantic(b, path, n)
	db := openDB(b, path)
	exact, err := OpenSemantic(db, NewLocalEmbedder(), SemanticOptions{ClusterAt: -1})
	if err != nil {
		b.Fatal(err)
	}
	clustered := openSemantic(b, db, NewLocalEmbedder())
	r := rand.New(rand.NewPCG(1, 2)) // the texts fillSemantic stored
	var stored []string
	for range n {
		stored = append(stored, benchText(r))
	}
	ctx := context.Background()
	same, total := 0, 0
	for b.Loop() {
		for range 200 {
			words := strings.Fields(stored[r.IntN(n)])
			words[len(words)-2] = benchWords[r.IntN(len(benchWords))]
			v, err := exact.emb.Embed(ctx, []string{"Please " + strings.Join(words, " ")})
			if err != nil {
				b.Fatal(err)
			}
			want, err := exact.parts["p"].query(ctx, v[0], 1)
			if err != nil {
				b.Fatal(err)
			}
			got, err := clustered.parts["p"].query(ctx, v[0], 1)
			if err != nil {
				b.Fatal(err)
			}
			total++
			if len(got) > 0 && got[0].Similarity >= want[0].Similarity {
				same++
			}
		}
	}
	b.ReportMetric(float64(same)/float64(total), "recall@1")
}
