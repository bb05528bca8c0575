package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// TestMarks: a mark is saved, read back after reopening and after a
// compaction, and removed with nil.
func TestMarks(t *testing.T) {
	s, path := openTest(t, Options{})
	if v := s.Mark("cursor"); v != nil {
		t.Fatalf("a new store has mark %q", v)
	}
	if err := s.SetMark("cursor", []byte("1-2")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if v := s.Mark("cursor"); string(v) != "1-2" {
		t.Fatalf("after compaction the mark is %q", v)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMark("cursor", []byte("x")); err == nil {
		t.Error("SetMark on a closed store succeeded")
	}
	s, err := Open(path, Options{FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := s.Mark("cursor"); string(v) != "1-2" {
		t.Fatalf("after reopening the mark is %q", v)
	}
	if err := s.SetMark("cursor", nil); err != nil {
		t.Fatal(err)
	}
	if v := s.Mark("cursor"); v != nil {
		t.Errorf("a removed mark reads %q", v)
	}
}

// TestAddVectors: entries with the vectors another index made (another
// host's, shared) hit as if added here, and come back after reopening;
// clustering while a batch goes in keeps every identical text findable.
func TestAddVectors(t *testing.T) {
	ctx := context.Background()
	src := openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "a.db")), NewLocalEmbedder())
	path := filepath.Join(t.TempDir(), "b.db")
	db := openDB(t, path)
	opts := SemanticOptions{ClusterAt: 200}
	dst, err := OpenSemantic(db, NewLocalEmbedder(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if src.Fingerprint() != dst.Fingerprint() {
		t.Fatalf("one embedder, two fingerprints: %s, %s", src.Fingerprint(), dst.Fingerprint())
	}
	r := rand.New(rand.NewPCG(7, 8))
	var entries []SemanticEntry
	var vecs [][]float32
	for i := range 450 {
		e := SemanticEntry{ID: fmt.Sprint("v", i), Partition: "p", Text: benchText(r), Target: fmt.Sprint("t", i), Namespace: "ns"}
		v, err := src.Vector(ctx, e.Text)
		if err != nil {
			t.Fatal(err)
		}
		entries, vecs = append(entries, e), append(vecs, v)
	}
	entries = append(entries, SemanticEntry{ID: "moon", Partition: "q", Text: "How large is the moon?", Target: "t-moon"})
	v, _ := src.Vector(ctx, "How large is the moon?")
	vecs = append(vecs, v)
	// In batches of uneven size, so that clustering (at 200) happens inside one.
	for start := 0; start < len(entries); start += 150 {
		end := min(start+150, len(entries))
		if err := dst.AddVectors(ctx, entries[start:end], vecs[start:end]); err != nil {
			t.Fatal(err)
		}
	}
	if p := dst.parts["p"]; p == nil || p.centroids == nil {
		t.Fatal("the partition was not clustered")
	}
	check := func(stage string) {
		t.Helper()
		if dst.Len() != len(entries) {
			t.Fatalf("%s: Len = %d, want %d", stage, dst.Len(), len(entries))
		}
		for _, e := range entries {
			hit, ok := lookup(t, dst, e.Partition, e.Text)
			if !ok || !hit.Exact || hit.Target != e.Target {
				t.Fatalf("%s: %s not found: %+v %v", stage, e.ID, hit, ok)
			}
		}
		if hit, ok := lookup(t, dst, "q", "Can you please tell me how big the moon is?"); !ok || hit.ID != "moon" {
			t.Errorf("%s: paraphrase: %+v %v", stage, hit, ok)
		}
	}
	check("after adding")
	db.Close()
	counting := &countingEmbedder{Embedder: NewLocalEmbedder()}
	if dst, err = OpenSemantic(openDB(t, path), counting, opts); err != nil {
		t.Fatal(err)
	}
	check("after reopening")
	if n := counting.texts(); n != 1+len(entries)+1 {
		// the probe, each lookup, the paraphrase: nothing embedded at open
		t.Errorf("embedded %d texts, want %d", n, len(entries)+2)
	}
}

// TestAddVectorsRefused: a vector of another length, or zero, stores
// nothing of its batch.
func TestAddVectorsRefused(t *testing.T) {
	ctx := context.Background()
	s := openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "c.db")), NewLocalEmbedder())
	good, err := s.Vector(ctx, "What is a cache?")
	if err != nil {
		t.Fatal(err)
	}
	e := SemanticEntry{ID: "a", Partition: "p", Text: "What is a cache?"}
	for name, bad := range map[string][]float32{
		"short": good[:10],
		"zero":  make([]float32, len(good)),
	} {
		err := s.AddVectors(ctx, []SemanticEntry{e, {ID: "b", Partition: "p", Text: "x"}}, [][]float32{good, bad})
		if err == nil {
			t.Errorf("%s vector: no error", name)
		}
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after refused batches", s.Len())
	}
}

// TestFingerprint: the same embedder (even wobbling a little) has one
// fingerprint; another embedder has another.
func TestFingerprint(t *testing.T) {
	open := func(emb Embedder) string {
		return openSemantic(t, openDB(t, filepath.Join(t.TempDir(), "c.db")), emb).Fingerprint()
	}
	local := open(NewLocalEmbedder())
	if w := open(wobblyEmbedder{NewLocalEmbedder()}); w != local {
		t.Errorf("a wobbling embedder: %s, want %s", w, local)
	}
	if o := open(otherEmbedder{NewLocalEmbedder()}); o == local {
		t.Errorf("another embedder has the same fingerprint %s", o)
	}
}
