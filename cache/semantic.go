package cache

// The semantic cache (this file and semantic_*.go) answers a prompt with a
// stored answer to a prompt that asks the same thing in other words.
//
// Two stages. Retrieval: the chosen text is embedded (by default offline,
// see cache/embed) and the nearest stored texts of the same partition are
// found in an in-memory chromem-go index, one collection per partition.
// Verification: a neighbour above the threshold is accepted only if the
// verifier (cache/verify) finds that every content word of each text aligns
// with the other and no number, name, negation, direction, format or
// language differs. Precision comes from the second stage: one-word traps
// ("5 km to miles" / "5 miles to km") embed almost identically, so no
// threshold separates them (see docs/semantic-cache.md).
//
// bbolt is the source of truth: bucket "semantic" holds sub-buckets
// "entries" (ID → entry with its vector, so opening does not re-embed),
// "meta" (the embedder's fingerprint: when the embedder changes, opening
// re-embeds every text), and for large partitions "clusters" (partition →
// centroids) and "lists" (ID → cluster), so opening does not cluster again.
// The index is rebuilt from bbolt at open.
//
// A *Semantic is safe for concurrent use: lookups run in parallel; writers
// (Add, Forget, Purge) are serialised and hold the index exclusively only
// while they change it (chromem-go's Delete is not race-free on its own).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/cache/embed"
	"github.com/lbgpt/lbgpt/cache/verify"
	chromem "github.com/philippgille/chromem-go"
	bolt "go.etcd.io/bbolt"
)

// Embedder turns texts into unit vectors, all of one length.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

var _ Embedder = (*embed.Embedder)(nil)

// NewLocalEmbedder returns the built-in offline embedder (GloVe word vectors
// compiled in; see cache/embed).
func NewLocalEmbedder() Embedder {
	e, err := embed.New()
	if err != nil {
		return failedEmbedder{err}
	}
	return e
}

// NewVerifier returns the semantic cache's verifier, over the built-in
// embedder's words and texts.
func NewVerifier() (*verify.Verifier, error) {
	e, err := embed.New()
	if err != nil {
		return nil, err
	}
	return verify.New(verify.Options{
		Rank:           e.Rank,
		WordSimilarity: e.WordSimilarity,
		TextSimilarity: func(a, b string) float64 {
			va, vb := e.Vector(a), e.Vector(b)
			var d float64
			for i := range va {
				d += float64(va[i]) * float64(vb[i])
			}
			return d
		},
	})
}

type failedEmbedder struct{ err error }

func (f failedEmbedder) Embed(context.Context, []string) ([][]float32, error) { return nil, f.err }

// DefaultThreshold is the cosine similarity a stored text needs before the
// verifier looks at it. It only bounds the work: the verifier decides.
const DefaultThreshold = 0.5

// Candidates is how many nearest neighbours the verifier may examine.
const Candidates = 8

// SemanticOptions configure OpenSemantic. The zero value uses
// DefaultThreshold and discards logs.
type SemanticOptions struct {
	Threshold float64      // 0 means DefaultThreshold
	Logger    *slog.Logger // nil discards
	// Unverified accepts the nearest neighbour on similarity alone. For
	// measuring the verifier (lbgpt-bench semantic-quality), never for
	// serving.
	Unverified bool
	// ClusterAt is the partition size from which lookups search clusters
	// instead of every entry (0: 8192; negative: never).
	ClusterAt int
}

// SemanticEntry is one stored text. Partition and Target are opaque: the
// caller's hash of everything that must match exactly, and the exact-cache
// key holding the answer.
type SemanticEntry struct {
	ID, Partition, Text, Target, Namespace string
	Created                                time.Time
}

// SemanticHit is the result of a successful lookup.
type SemanticHit struct {
	ID, Target string
	Similarity float64
	Exact      bool // the stored text equals the query text
}

// Semantic is the semantic index over one bbolt database.
type Semantic struct {
	db        *bolt.DB
	emb       Embedder
	ver       *verify.Verifier
	threshold float64
	verified  bool
	clusterAt int
	log       *slog.Logger
	dims      int    // the embedder's vectors' length
	identity  string // Fingerprint's

	wmu sync.Mutex // serialises writers across bbolt and the index

	mu      sync.RWMutex // guards everything below
	index   *chromem.DB
	seq     int                     // names collections
	entries map[string]indexedEntry // by ID
	parts   map[string]*partIndex
}

// indexedEntry is an entry and the list of its partition's index holding it.
type indexedEntry struct {
	SemanticEntry
	list int
}

var (
	bucketSemantic = []byte("semantic")
	bucketEntries  = []byte("entries")
	bucketMeta     = []byte("meta")
	bucketClusters = []byte("clusters")
	bucketLists    = []byte("lists")
	keyFingerprint = []byte("embedder")
)

// OpenSemantic loads the semantic entries of db into a new index, creating
// the bucket if needed. If emb is not the embedder the vectors were made
// with, every stored text is embedded again.
func OpenSemantic(db *bolt.DB, emb Embedder, opts SemanticOptions) (*Semantic, error) {
	ver, err := NewVerifier()
	if err != nil {
		return nil, err
	}
	s := &Semantic{
		db:        db,
		emb:       emb,
		ver:       ver,
		threshold: opts.Threshold,
		verified:  !opts.Unverified,
		clusterAt: opts.ClusterAt,
		log:       opts.Logger,
		index:     chromem.NewDB(),
		entries:   map[string]indexedEntry{},
		parts:     map[string]*partIndex{},
	}
	if s.threshold == 0 {
		s.threshold = DefaultThreshold
	}
	if s.clusterAt == 0 {
		s.clusterAt = defaultClusterAt
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()
	fp, err := fingerprint(ctx, emb)
	if err != nil {
		return nil, fmt.Errorf("semantic: embedder: %w", err)
	}
	_, probe, err := decodeEntry(fp, true)
	if err != nil {
		return nil, fmt.Errorf("semantic: embedder: %w", err)
	}
	s.dims, s.identity = len(probe), identity(probe)
	var stale bool
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSemantic)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(bucketEntries); err != nil {
			return err
		}
		m, err := b.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		stale = !sameEmbedder(m.Get(keyFingerprint), fp)
		for _, name := range [][]byte{bucketClusters, bucketLists} {
			if stale && b.Bucket(name) != nil {
				if err := b.DeleteBucket(name); err != nil { // clusters of the old vectors
					return err
				}
			}
			if _, err := b.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return m.Put(keyFingerprint, fp)
	})
	if err != nil {
		return nil, fmt.Errorf("semantic: open: %w", err)
	}
	if stale {
		if err := s.reembed(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// fingerprint identifies an embedder by its vector for a fixed text
// (encoded as the vector of an entry).
func fingerprint(ctx context.Context, emb Embedder) ([]byte, error) {
	v, err := emb.Embed(ctx, []string{"lbgpt: which embedder made these vectors? 42 Zebras"})
	if err != nil {
		return nil, err
	}
	if len(v) != 1 || len(v[0]) == 0 {
		return nil, errors.New("no vector")
	}
	return encodeEntry(SemanticEntry{}, v[0]), nil
}

// sameEmbedder compares two fingerprints: the same length and nearly the
// same direction (a remote model's vectors wobble a little between calls;
// re-embedding every stored text at each start would be costly).
func sameEmbedder(old, cur []byte) bool {
	_, a, err := decodeEntry(old, true)
	if err != nil {
		return false
	}
	_, b, err := decodeEntry(cur, true)
	if err != nil || len(a) != len(b) {
		return false
	}
	return dot(a, b) >= 0.999
}

// load fills the index from bbolt.
func (s *Semantic) load(ctx context.Context) error {
	docs := map[string][]chromem.Document{}
	lists := map[string][]int{}
	centroids := map[string][][]float32{}
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSemantic)
		err := b.Bucket(bucketClusters).ForEach(func(k, v []byte) error {
			c, err := decodeCentroids(v)
			if err != nil {
				return fmt.Errorf("clusters of %q: %w", k, err)
			}
			centroids[string(k)] = c
			return nil
		})
		if err != nil {
			return err
		}
		if n := b.Bucket(bucketEntries).Stats().KeyN; n > len(s.entries) {
			s.entries = make(map[string]indexedEntry, n)
		}
		// lists is keyed like entries: walk both in step.
		lc := b.Bucket(bucketLists).Cursor()
		lk, lv := lc.First()
		return b.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			e, vec, err := decodeEntry(v, true)
			if err != nil {
				return fmt.Errorf("entry %q: %w", k, err)
			}
			for lk != nil && bytes.Compare(lk, k) < 0 {
				lk, lv = lc.Next()
			}
			l := -1
			if bytes.Equal(lk, k) {
				l = decodeList(lv)
			}
			s.entries[e.ID] = indexedEntry{SemanticEntry: e}
			docs[e.Partition] = append(docs[e.Partition], chromem.Document{ID: e.ID, Embedding: vec})
			lists[e.Partition] = append(lists[e.Partition], l)
			n++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("semantic: load: %w", err)
	}
	for part, ds := range docs {
		computed, err := s.build(ctx, part, ds, centroids[part], lists[part])
		if err != nil {
			return err
		}
		if computed {
			if err := s.saveClusters(part); err != nil {
				return err
			}
		}
	}
	s.log.Info("semantic cache loaded", "entries", n, "partitions", len(s.parts))
	return nil
}

// build (re)creates the index of a partition from its documents, with the
// stored clustering if any, and says whether it computed a new one. Callers
// hold s.mu for writing (or are in OpenSemantic).
func (s *Semantic) build(ctx context.Context, partition string, docs []chromem.Document, centroids [][]float32, lists []int) (bool, error) {
	p, lists, computed, err := newPartIndex(ctx, docs, centroids, lists, s.clusterAt, s.newList, s.dropList)
	if err != nil {
		return false, err
	}
	s.install(partition, p, docs, lists)
	return computed, nil
}

// install makes p the index of partition, whose documents are in lists.
// Callers hold s.mu for writing (or are in OpenSemantic).
func (s *Semantic) install(partition string, p *partIndex, docs []chromem.Document, lists []int) {
	if old := s.parts[partition]; old != nil {
		old.close()
	}
	s.parts[partition] = p
	for i, d := range docs {
		e := s.entries[d.ID]
		e.list = lists[i]
		s.entries[d.ID] = e
	}
}

// saveClusters stores a partition's centroids and the list of each of its
// entries. Callers hold s.wmu (or are in OpenSemantic) and s.mu at least
// for reading.
func (s *Semantic) saveClusters(partition string) error {
	p := s.parts[partition]
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSemantic)
		if err := b.Bucket(bucketClusters).Put([]byte(partition), encodeCentroids(p.centroids)); err != nil {
			return err
		}
		var ids []string
		for id, e := range s.entries {
			if e.Partition == partition {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids) // bbolt inserts in key order fast, in random order slowly
		lists := b.Bucket(bucketLists)
		for _, id := range ids {
			if err := lists.Put([]byte(id), encodeList(s.entries[id].list)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("semantic: save clusters: %w", err)
	}
	return nil
}

// reembed embeds every stored text again with the current embedder.
func (s *Semantic) reembed(ctx context.Context) error {
	var all []SemanticEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSemantic).Bucket(bucketEntries).ForEach(func(k, v []byte) error {
			e, _, err := decodeEntry(v, false)
			if err != nil {
				return fmt.Errorf("entry %q: %w", k, err)
			}
			all = append(all, e)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("semantic: re-embed: %w", err)
	}
	if len(all) == 0 {
		return nil
	}
	s.log.Warn("semantic cache embedder changed, embedding stored texts again", "entries", len(all))
	const batch = 256
	for start := 0; start < len(all); start += batch {
		part := all[start:min(start+batch, len(all))]
		texts := make([]string, len(part))
		for i, e := range part {
			texts[i] = e.Text
		}
		vecs, err := s.emb.Embed(ctx, texts)
		if err != nil {
			return fmt.Errorf("semantic: re-embed: %w", err)
		}
		err = s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSemantic).Bucket(bucketEntries)
			for i, e := range part {
				if err := b.Put([]byte(e.ID), encodeEntry(e, vecs[i])); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("semantic: re-embed: %w", err)
		}
	}
	return nil
}

// newList creates an empty collection; callers hold s.wmu (or are in
// OpenSemantic).
func (s *Semantic) newList() (*chromem.Collection, error) {
	s.seq++
	c, err := s.index.CreateCollection(fmt.Sprint("c", s.seq), nil, noEmbedding)
	if err != nil {
		return nil, fmt.Errorf("semantic: index: %w", err)
	}
	return c, nil
}

func (s *Semantic) dropList(c *chromem.Collection) { s.index.DeleteCollection(c.Name) }

// noEmbedding is the collections' embedding function: vectors always come
// with the documents.
func noEmbedding(context.Context, string) ([]float32, error) {
	return nil, errors.New("semantic: the index never embeds")
}

// Len is the number of entries.
func (s *Semantic) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries)
}

// Lookup finds a stored text of the partition that asks the same as text.
// ok is false on a miss; err only reports a failing embedder.
func (s *Semantic) Lookup(ctx context.Context, partition, text string) (SemanticHit, bool, error) {
	if text == "" {
		return SemanticHit{}, false, nil
	}
	vecs, err := s.emb.Embed(ctx, []string{text})
	if err != nil {
		return SemanticHit{}, false, fmt.Errorf("semantic: embed: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.parts[partition]
	if !ok {
		return SemanticHit{}, false, nil
	}
	res, err := p.query(ctx, vecs[0], Candidates)
	if err != nil {
		return SemanticHit{}, false, err
	}
	// Every candidate is judged and the one the verifier likes best wins
	// (the nearest among equals): a stored prompt that asks a little more
	// or less than the query can stand nearer to it than its own partner.
	var best SemanticHit
	bestScore := -1.0
	for _, r := range res {
		if float64(r.Similarity) < s.threshold {
			break
		}
		e := s.entries[r.ID].SemanticEntry
		// float32 rounding puts identical unit vectors a hair above 1.
		hit := SemanticHit{ID: e.ID, Target: e.Target, Similarity: min(float64(r.Similarity), 1), Exact: e.Text == text}
		if hit.Exact || !s.verified {
			return hit, true, nil
		}
		v := s.ver.Judge(text, e.Text)
		if !v.Same {
			// The reason quotes the words at fault; the log keeps only its kind.
			kind, _, _ := strings.Cut(v.Reason, `"`)
			s.log.Debug("semantic candidate refused", "id", e.ID, "similarity", hit.Similarity, "score", v.Score, "reason", strings.TrimSpace(kind))
			continue
		}
		if v.Score > bestScore {
			best, bestScore = hit, v.Score
		}
	}
	return best, bestScore >= 0, nil
}

// Add stores an entry (replacing one with the same ID). An empty ID gets a
// random one; a zero Created gets the current time.
func (s *Semantic) Add(ctx context.Context, e SemanticEntry) error {
	if e.Text == "" {
		return errors.New("semantic: add: empty text")
	}
	vec, err := s.Vector(ctx, e.Text)
	if err != nil {
		return err
	}
	return s.AddVectors(ctx, []SemanticEntry{e}, [][]float32{vec})
}

// Vector is the unit vector the index's embedder gives text: what Add
// stores with an entry of that text.
func (s *Semantic) Vector(ctx context.Context, text string) ([]float32, error) {
	vecs, err := s.emb.Embed(ctx, []string{text})
	if err != nil {
		return nil, fmt.Errorf("semantic: embed: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("semantic: embed: %d vectors for one text", len(vecs))
	}
	return vecs[0], nil
}

// Fingerprint identifies the embedder that made the index's vectors: its
// vectors' length and the signs of (up to) the first 64 components of its
// vector for a fixed text. Vectors travel between indexes (AddVectors)
// only when their fingerprints are equal. The signs survive the small
// wobble of a remote model's vectors and the last-bit differences of
// floating point across machines; another model or word table changes
// them.
func (s *Semantic) Fingerprint() string { return s.identity }

func identity(probe []float32) string {
	var bits uint64
	for i, x := range probe[:min(64, len(probe))] {
		if x >= 0 {
			bits |= 1 << i
		}
	}
	return fmt.Sprintf("%d:%016x", len(probe), bits)
}

// AddVectors stores entries whose vectors are already made, vecs[i] for
// entries[i] — another index's entries of the same embedder (see
// Fingerprint) — replacing entries with the same IDs, in one bbolt
// transaction. A vector of the wrong length, or zero, is an error and
// nothing is stored; the others are scaled to unit length. Empty IDs and
// zero Created times are filled as by Add.
func (s *Semantic) AddVectors(ctx context.Context, entries []SemanticEntry, vecs [][]float32) error {
	if len(entries) != len(vecs) {
		return fmt.Errorf("semantic: add: %d entries, %d vectors", len(entries), len(vecs))
	}
	entries = slices.Clone(entries)
	units := make([][]float32, len(vecs))
	for i, e := range entries {
		if e.Text == "" {
			return errors.New("semantic: add: empty text")
		}
		if len(vecs[i]) != s.dims {
			return fmt.Errorf("semantic: add: a vector of %d dimensions, the index has %d", len(vecs[i]), s.dims)
		}
		var ok bool
		if units[i], ok = unitVector(vecs[i]); !ok {
			return errors.New("semantic: add: a zero or non-finite vector")
		}
		if e.ID == "" {
			entries[i].ID = newID()
		}
		if e.Created.IsZero() {
			entries[i].Created = time.Now()
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// The index first, entry by entry: where each goes depends on the ones
	// before it (a partition's first entry, its clustering). Then the
	// entries and their lists in one transaction, and the clusterings made
	// meanwhile.
	clustered := map[string]bool{}
	for i, e := range entries {
		computed, err := s.index1(ctx, e, units[i])
		if err != nil {
			s.unindexAll(entries)
			return err
		}
		if computed {
			clustered[e.Partition] = true
		}
	}
	lists := make([]int, len(entries)) // -1: none kept (not clustered, or saved with its clustering)
	s.mu.RLock()
	for i, e := range entries {
		lists[i] = -1
		if p := s.parts[e.Partition]; p != nil && p.centroids != nil && !clustered[e.Partition] {
			lists[i] = s.entries[e.ID].list
		}
	}
	s.mu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSemantic)
		for i, e := range entries {
			if err := b.Bucket(bucketEntries).Put([]byte(e.ID), encodeEntry(e, units[i])); err != nil {
				return err
			}
			if lists[i] >= 0 {
				if err := b.Bucket(bucketLists).Put([]byte(e.ID), encodeList(lists[i])); err != nil {
					return err
				}
			} else if err := b.Bucket(bucketLists).Delete([]byte(e.ID)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.unindexAll(entries)
		return fmt.Errorf("semantic: add: %w", err)
	}
	for part := range clustered {
		s.mu.RLock()
		err := s.saveClusters(part)
		s.mu.RUnlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// unitVector is v scaled to length 1 (v itself when it is already);
// false for a zero or non-finite v.
func unitVector(v []float32) ([]float32, bool) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 || math.IsInf(sum, 0) || math.IsNaN(sum) {
		return nil, false
	}
	if math.Abs(sum-1) < 1e-5 {
		return v, true
	}
	n := 1 / math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * n)
	}
	return out, true
}

// index1 puts one entry in the index, replacing one with its ID, and says
// whether its partition was clustered anew. Callers hold s.wmu.
func (s *Semantic) index1(ctx context.Context, e SemanticEntry, vec []float32) (bool, error) {
	// Only writers change s.parts and the partitions' shape, and they hold
	// s.wmu: p and its centroids stay as read here.
	s.mu.Lock()
	s.unindex(e.ID)
	p := s.parts[e.Partition]
	s.mu.Unlock()
	doc := chromem.Document{ID: e.ID, Embedding: vec}
	if p == nil || p.centroids == nil && s.clusterAt > 0 && p.n+1 >= s.clusterAt || p.crowded() {
		return s.rebuildWith(ctx, e, doc)
	}
	l := 0
	if p.centroids != nil {
		l = p.assign(vec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := p.add(ctx, doc, l); err != nil {
		return false, err
	}
	s.entries[e.ID] = indexedEntry{e, l}
	return false, nil
}

// unindexAll drops entries from the index (an add that failed half way).
func (s *Semantic) unindexAll(entries []SemanticEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range entries {
		s.unindex(e.ID)
	}
}

// rebuildWith builds the index of e's partition again, with e: on its first
// entry, when it grows large enough to be clustered, and when its clusters
// no longer fit its entries. It says whether it clustered the partition
// (the caller saves the clustering). Callers hold s.wmu, not s.mu: lookups
// go on with the old index while the new one is built.
func (s *Semantic) rebuildWith(ctx context.Context, e SemanticEntry, doc chromem.Document) (bool, error) {
	var docs []chromem.Document
	s.mu.RLock()
	if p := s.parts[e.Partition]; p != nil {
		var ids []string
		var lists []int
		for id, x := range s.entries {
			if x.Partition == e.Partition {
				ids, lists = append(ids, id), append(lists, x.list)
			}
		}
		var err error
		if docs, err = p.documents(ctx, ids, lists); err != nil {
			s.mu.RUnlock()
			return false, err
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(docs, func(a, b chromem.Document) int { return strings.Compare(a.ID, b.ID) })
	docs = append(docs, doc)
	// newList and dropList change s.index and s.seq, which only writers
	// touch: s.wmu is enough.
	p, lists, computed, err := newPartIndex(ctx, docs, nil, nil, s.clusterAt, s.newList, s.dropList)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.entries[e.ID] = indexedEntry{SemanticEntry: e}
	s.install(e.Partition, p, docs, lists)
	s.mu.Unlock()
	if computed {
		s.log.Info("semantic partition clustered", "entries", len(docs))
	}
	return computed, nil
}

// Forget removes one entry; false if there was none.
func (s *Semantic) Forget(id string) (bool, error) {
	n, err := s.remove(func(e SemanticEntry) bool { return e.ID == id }, []byte(id))
	return n > 0, err
}

// Purge removes every entry for which match returns true and says how many.
func (s *Semantic) Purge(match func(SemanticEntry) bool) (int, error) {
	return s.remove(match, nil)
}

// remove deletes matching entries from bbolt, then from the index. With key
// set, only that entry is considered.
func (s *Semantic) remove(match func(SemanticEntry) bool, key []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var gone []string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSemantic).Bucket(bucketEntries)
		consider := func(k, v []byte) error {
			e, _, err := decodeEntry(v, false)
			if err != nil {
				return fmt.Errorf("entry %q: %w", k, err)
			}
			if match(e) {
				gone = append(gone, string(k))
			}
			return nil
		}
		if key != nil {
			if v := b.Get(key); v != nil {
				if err := consider(key, v); err != nil {
					return err
				}
			}
		} else if err := b.ForEach(consider); err != nil {
			return err
		}
		lists := tx.Bucket(bucketSemantic).Bucket(bucketLists)
		for _, id := range gone {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
			if err := lists.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("semantic: remove: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range gone {
		s.unindex(id)
	}
	return len(gone), nil
}

// unindex drops id from the index; callers hold s.mu for writing.
func (s *Semantic) unindex(id string) {
	e, ok := s.entries[id]
	if !ok {
		return
	}
	delete(s.entries, id)
	p := s.parts[e.Partition]
	if p == nil {
		return
	}
	p.remove(id, e.list)
	if p.n == 0 {
		p.close()
		delete(s.parts, e.Partition)
	}
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
