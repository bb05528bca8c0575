package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func openSemantic(t testing.TB, db *bolt.DB, emb Embedder) *Semantic {
	t.Helper()
	s, err := OpenSemantic(db, emb, SemanticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func add(t testing.TB, s *Semantic, id, partition, text string) {
	t.Helper()
	if err := s.Add(context.Background(), SemanticEntry{ID: id, Partition: partition, Text: text, Target: "target-" + id, Namespace: "ns"}); err != nil {
		t.Fatal(err)
	}
}

func lookup(t testing.TB, s *Semantic, partition, text string) (SemanticHit, bool) {
	t.Helper()
	hit, ok, err := s.Lookup(context.Background(), partition, text)
	if err != nil {
		t.Fatal(err)
	}
	return hit, ok
}

// TestSemanticCases: the original's cases and the traps peer gateways fell
// into, each alone in its partition so nothing else can be hit.
func TestSemanticCases(t *testing.T) {
	s := openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder())
	cases := []struct {
		name, stored, query string
		hit                 bool
	}{
		{"typo of an unknown word", "pong", "pongo", true},
		{"different word", "pong", "test", false},
		{"paraphrase", "How do I reverse a list in Python?", "What's the way to reverse a Python list?", true},
		{"politeness", "How large is the moon?", "Can you please tell me how big the moon is?", true},
		{"country", "What is the capital of France?", "What is the capital of Germany?", false},
		{"direction", "convert 5 km to miles", "convert 5 miles to km", false},
		{"number", "Give me 3 tips for better sleep.", "Give me 5 tips for better sleep.", false},
		{"negation", "Why is the sky blue?", "Why isn't the sky blue?", false},
		{"role", "Did Brutus kill Caesar?", "Did Caesar kill Brutus?", false},
		{"format", "Give me the data as JSON.", "Give me the data as CSV.", false},
		{"language", "Translate good morning into French.", "Translate good morning into German.", false},
		{"superlative", "What is the largest planet?", "What is the smallest planet?", false},
		{"unit", "How many grams are in a pound?", "How many grams are in an ounce?", false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			part := fmt.Sprint("p", i)
			add(t, s, fmt.Sprint("id", i), part, c.stored)
			hit, ok := lookup(t, s, part, c.query)
			if ok != c.hit {
				t.Fatalf("%q after %q: hit = %v (%+v), want %v", c.query, c.stored, ok, hit, c.hit)
			}
			if ok && (hit.ID != fmt.Sprint("id", i) || hit.Target != fmt.Sprint("target-id", i) || hit.Exact || hit.Similarity < DefaultThreshold) {
				t.Errorf("hit = %+v", hit)
			}
		})
	}
}

func TestSemanticExactAndEmpty(t *testing.T) {
	s := openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder())
	add(t, s, "a", "p", "What is the capital of Peru?")
	hit, ok := lookup(t, s, "p", "What is the capital of Peru?")
	if !ok || !hit.Exact || hit.ID != "a" || hit.Similarity < 0.999 {
		t.Errorf("exact text: %+v %v", hit, ok)
	}
	if _, ok := lookup(t, s, "p", ""); ok {
		t.Error("empty text hit")
	}
	if err := s.Add(context.Background(), SemanticEntry{Partition: "p"}); err == nil {
		t.Error("adding an empty text succeeded")
	}
}

func TestSemanticPartitionsNeverMix(t *testing.T) {
	s := openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder())
	add(t, s, "a", "tenant-a", "How do I center a div with CSS?")
	if _, ok := lookup(t, s, "tenant-b", "How do I center a div with CSS?"); ok {
		t.Error("a lookup in partition b found partition a's entry")
	}
	add(t, s, "b", "tenant-b", "How do I center a div with CSS?")
	hit, ok := lookup(t, s, "tenant-b", "How do I center a div with CSS?")
	if !ok || hit.ID != "b" {
		t.Errorf("partition b: %+v %v", hit, ok)
	}
	hit, ok = lookup(t, s, "tenant-a", "How can I center a div using CSS?")
	if !ok || hit.ID != "a" {
		t.Errorf("partition a: %+v %v", hit, ok)
	}
}

// TestSemanticReopen: entries come back from bbolt with their vectors, and
// the same queries give the same hits.
func TestSemanticReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openDB(t, path)
	s := openSemantic(t, db, NewLocalEmbedder())
	texts := []string{"How do I remove a file in Linux?", "What is the capital of Australia?", "Write a haiku about autumn leaves."}
	queries := []string{"How can I delete a file on Linux?", "Tell me the capital of Australia.", "Write me a haiku about autumn leaves, please.", "What is the capital of Austria?"}
	for i, x := range texts {
		add(t, s, fmt.Sprint("e", i), "p", x)
	}
	type result struct {
		hit SemanticHit
		ok  bool
	}
	var before []result
	for _, q := range queries {
		h, ok := lookup(t, s, "p", q)
		before = append(before, result{h, ok})
	}
	if !before[0].ok || !before[1].ok || !before[2].ok || before[3].ok {
		t.Fatalf("before reopening: %+v", before)
	}
	db.Close()

	counting := &countingEmbedder{Embedder: NewLocalEmbedder()}
	s = openSemantic(t, openDB(t, path), counting)
	if s.Len() != len(texts) {
		t.Fatalf("Len after reopening = %d, want %d", s.Len(), len(texts))
	}
	if n := counting.texts(); n != 1 {
		t.Errorf("opening embedded %d texts, want only the fingerprint probe", n)
	}
	for i, q := range queries {
		h, ok := lookup(t, s, "p", q)
		if (result{h, ok}) != before[i] {
			t.Errorf("%q: after reopening %+v %v, before %+v", q, h, ok, before[i])
		}
	}
}

type countingEmbedder struct {
	Embedder
	mu sync.Mutex
	n  int
}

func (c *countingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	c.mu.Lock()
	c.n += len(texts)
	c.mu.Unlock()
	return c.Embedder.Embed(ctx, texts)
}

func (c *countingEmbedder) texts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// otherEmbedder stands for a different embedding model: the local vectors
// reversed (still unit length).
type otherEmbedder struct{ Embedder }

func (o otherEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vs, err := o.Embedder.Embed(ctx, texts)
	for _, v := range vs {
		for i, j := 0, len(v)-1; i < j; i, j = i+1, j-1 {
			v[i], v[j] = v[j], v[i]
		}
	}
	return vs, err
}

// TestSemanticEmbedderChange: vectors made by another embedder are made
// again at open, so lookups keep working.
func TestSemanticEmbedderChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openDB(t, path)
	s := openSemantic(t, db, NewLocalEmbedder())
	add(t, s, "a", "p", "How do I remove a file in Linux?")
	db.Close()
	counting := &countingEmbedder{Embedder: otherEmbedder{NewLocalEmbedder()}}
	s = openSemantic(t, openDB(t, path), counting)
	if n := counting.texts(); n != 2 {
		t.Errorf("embedded %d texts at open, want the probe and the one entry", n)
	}
	if hit, ok := lookup(t, s, "p", "How can I delete a file on Linux?"); !ok || hit.ID != "a" {
		t.Errorf("after the embedder changed: %+v %v", hit, ok)
	}
}

func TestSemanticForgetAndPurge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openDB(t, path)
	s := openSemantic(t, db, NewLocalEmbedder())
	add(t, s, "a", "p", "How do I remove a file in Linux?")
	add(t, s, "b", "p", "What is the capital of Australia?")
	add(t, s, "c", "q", "What is the capital of Australia?")
	if err := s.Add(context.Background(), SemanticEntry{ID: "d", Partition: "q", Text: "Why is the sky blue?", Namespace: "other"}); err != nil {
		t.Fatal(err)
	}
	ok, err := s.Forget("a")
	if err != nil || !ok {
		t.Fatalf("Forget(a) = %v, %v", ok, err)
	}
	if ok, _ := s.Forget("a"); ok {
		t.Error("forgetting twice reported an entry")
	}
	if _, hit := lookup(t, s, "p", "How can I delete a file on Linux?"); hit {
		t.Error("a forgotten entry still hits")
	}
	n, err := s.Purge(func(e SemanticEntry) bool { return e.Namespace == "ns" })
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if _, hit := lookup(t, s, "q", "What is the capital of Australia?"); hit {
		t.Error("a purged entry still hits")
	}
	if s.Len() != 1 {
		t.Errorf("Len = %d, want 1", s.Len())
	}
	db.Close()
	s = openSemantic(t, openDB(t, path), NewLocalEmbedder())
	if s.Len() != 1 {
		t.Errorf("Len after reopening = %d, want 1: removals did not reach bbolt", s.Len())
	}
	if hit, ok := lookup(t, s, "q", "Why is the sky blue?"); !ok || hit.ID != "d" {
		t.Errorf("the kept entry: %+v %v", hit, ok)
	}
}

// TestSemanticConcurrent runs lookups, adds and forgets at once; -race
// checks the index (chromem-go's Delete is not race-free by itself).
func TestSemanticConcurrent(t *testing.T) {
	// A small ClusterAt: the partition gets clustered while lookups run.
	s, err := OpenSemantic(openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder(), SemanticOptions{ClusterAt: 40})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{"How do I remove a file in Linux?", "What is the capital of Australia?", "Why is the sky blue?", "How do I make pancakes?"}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				id := fmt.Sprintf("w%d-%d", w, i)
				text := texts[(w+i)%len(texts)]
				if err := s.Add(ctx, SemanticEntry{ID: id, Partition: "p", Text: text}); err != nil {
					errs <- err
					return
				}
				if _, _, err := s.Lookup(ctx, "p", text); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if ok, err := s.Forget(id); err != nil || !ok {
						errs <- fmt.Errorf("Forget(%s) = %v, %v", id, ok, err)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			s.Purge(func(e SemanticEntry) bool { return false })
			s.Len()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if s.Len() != 4*15 {
		t.Errorf("Len = %d, want %d", s.Len(), 4*15)
	}
}

type failingEmbedder struct{}

func (failingEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("no model")
}

func TestSemanticEmbedderError(t *testing.T) {
	if _, err := OpenSemantic(openDB(t, filepath.Join(t.TempDir(), "c.db")), failingEmbedder{}, SemanticOptions{}); err == nil {
		t.Error("open with a failing embedder succeeded")
	}
}

// TestSemanticClustered: a partition that grows past ClusterAt is split
// into clusters; identical texts still always hit, paraphrases still hit,
// removal still works, and reopening clusters it again.
func TestSemanticClustered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openDB(t, path)
	opts := SemanticOptions{ClusterAt: 300}
	s, err := OpenSemantic(db, NewLocalEmbedder(), opts)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	var texts []string
	for i := range 700 {
		text := benchText(r)
		texts = append(texts, text)
		add(t, s, fmt.Sprint("b", i), "p", text)
	}
	add(t, s, "moon", "p", "How large is the moon?")
	if p := s.parts["p"]; p.centroids == nil || len(p.lists) != clusters+1 {
		t.Fatalf("partition of %d entries is not clustered", s.Len())
	}
	check := func(stage string) {
		t.Helper()
		for i, text := range texts {
			hit, ok := lookup(t, s, "p", text)
			if !ok || !hit.Exact {
				t.Fatalf("%s: identical text %d not found: %+v %v", stage, i, hit, ok)
			}
		}
		if hit, ok := lookup(t, s, "p", "Can you please tell me how big the moon is?"); !ok || hit.ID != "moon" {
			t.Errorf("%s: paraphrase: %+v %v", stage, hit, ok)
		}
	}
	check("after adding")
	if ok, err := s.Forget("moon"); !ok || err != nil {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	if _, ok := lookup(t, s, "p", "How large is the moon?"); ok {
		t.Error("forgotten entry hits")
	}
	add(t, s, "moon", "p", "How large is the moon?")
	db.Close()
	s, err = OpenSemantic(openDB(t, path), NewLocalEmbedder(), opts)
	if err != nil {
		t.Fatal(err)
	}
	check("after reopening")
}

// TestSemanticLogsNoPrompt: even at debug level, a refused candidate is
// logged by id and kind of refusal, never by the words of the prompts.
func TestSemanticLogsNoPrompt(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := OpenSemantic(openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder(), SemanticOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	add(t, s, "a", "p", "What is the capital of France?")
	if _, ok := lookup(t, s, "p", "What is the capital of Germany?"); ok {
		t.Fatal("France answered for Germany")
	}
	out := strings.ToLower(buf.String())
	if !strings.Contains(out, "refused") {
		t.Fatalf("no refusal logged: %s", out)
	}
	for _, w := range []string{"france", "germany", "capital"} {
		if strings.Contains(out, w) {
			t.Errorf("log contains %q: %s", w, out)
		}
	}
}

// wobblyEmbedder stands for a remote model whose vectors differ slightly
// from call to call.
type wobblyEmbedder struct{ Embedder }

func (w wobblyEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	vs, err := w.Embedder.Embed(ctx, texts)
	for _, v := range vs {
		v[0] += 0.001
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		for i := range v {
			v[i] /= float32(math.Sqrt(n))
		}
	}
	return vs, err
}

// TestSemanticSameEmbedderWobbles: a slightly different probe vector is the
// same embedder; nothing is embedded again.
func TestSemanticSameEmbedderWobbles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db := openDB(t, path)
	add(t, openSemantic(t, db, NewLocalEmbedder()), "a", "p", "How do I remove a file in Linux?")
	db.Close()
	counting := &countingEmbedder{Embedder: wobblyEmbedder{NewLocalEmbedder()}}
	openSemantic(t, openDB(t, path), counting)
	if n := counting.texts(); n != 1 {
		t.Errorf("embedded %d texts at open, want only the probe", n)
	}
}
