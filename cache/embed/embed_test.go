package embed

import (
	"math"
	"slices"
	"testing"
)

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func newEmbedder(t testing.TB) *Embedder {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestUnitVectors(t *testing.T) {
	e := newEmbedder(t)
	for _, text := range []string{
		"", "   ", "?!", "the of and", "please can you tell me", "xyzzy plugh", "zzzzqqq",
		"42", "How do I reverse a list in Python?", "Ünïcödé ✓ 日本語", "pong",
	} {
		v := e.Vector(text)
		if len(v) != Dims {
			t.Fatalf("%q: %d components, want %d", text, len(v), Dims)
		}
		n := math.Sqrt(dot(v, v))
		if math.Abs(n-1) > 1e-5 || math.IsNaN(n) {
			t.Errorf("%q: norm %v, want 1", text, n)
		}
	}
}

func TestDeterministic(t *testing.T) {
	e := newEmbedder(t)
	texts := []string{"How do I center a div with CSS?", "pongo", "convert 5 km to miles"}
	first, err := e.Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	again, err := newEmbedder(t).Embed(t.Context(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if !slices.Equal(first[i], again[i]) {
			t.Errorf("%q embeds differently the second time", texts[i])
		}
	}
}

func TestSimilarities(t *testing.T) {
	e := newEmbedder(t)
	sim := func(a, b string) float64 { return dot(e.Vector(a), e.Vector(b)) }
	// A typo of a word the table lacks stays close; a different word does not.
	if s := sim("pong", "pongo"); s < 0.8 {
		t.Errorf("pong/pongo = %.3f, want ≥ 0.8", s)
	}
	if s := sim("pong", "test"); s > 0.5 {
		t.Errorf("pong/test = %.3f, want ≤ 0.5", s)
	}
	// Unknown words still tell sentences apart.
	if s := sim("deploy with kubectl", "deploy with helmfile"); s > 0.95 {
		t.Errorf("unknown words ignored: %.3f", s)
	}
	// A paraphrase is closer than an unrelated prompt.
	para := sim("How do I remove a file in Linux?", "How can I delete a file on Linux?")
	unrelated := sim("How do I remove a file in Linux?", "What are good names for a cat?")
	if para < 0.8 || unrelated > para-0.3 {
		t.Errorf("paraphrase %.3f, unrelated %.3f", para, unrelated)
	}
}

func TestCorrect(t *testing.T) {
	e := newEmbedder(t)
	for typo, want := range map[string]string{"pongo": "pong", "recieve": "receive", "langauge": "language"} {
		r, ok := e.t.correct(typo)
		if !ok {
			t.Errorf("%q: no correction", typo)
			continue
		}
		if got, _ := e.t.wordOf(r); got != want {
			t.Errorf("%q corrected to %q, want %q", typo, got, want)
		}
	}
	if _, ok := e.t.correct("pon"); ok {
		t.Error("corrected a three-letter word")
	}
}

func BenchmarkVector(b *testing.B) {
	e := newEmbedder(b)
	for b.Loop() {
		e.Vector("Can you please tell me how to reverse a linked list in Golang without recursion?")
	}
}

// FuzzVector: every text gets a unit vector, the same one each time.
func FuzzVector(f *testing.F) {
	for _, s := range []string{"", "pongo", "the of and", "Ünïcödé ✓", "zzzzzzzzzzzz", "42 km"} {
		f.Add(s)
	}
	e := newEmbedder(f)
	f.Fuzz(func(t *testing.T, s string) {
		v := e.Vector(s)
		if n := math.Sqrt(dot(v, v)); math.Abs(n-1) > 1e-5 {
			t.Errorf("%q: norm %v", s, n)
		}
		if !slices.Equal(v, e.Vector(s)) {
			t.Errorf("%q: not deterministic", s)
		}
	})
}
