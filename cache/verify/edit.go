package verify

import (
	"fmt"
	"slices"
	"strings"
)

// An edit is how one prompt is the other with words added or replaced:
// the longest common subsequence of the two sides' meaningful words (a
// word matches the same word, its lemma, a synonym, a typo or an
// abbreviation of it) and what each side has outside it. A request
// written again with a clause added ("…, and add tests", "…, make it
// funny", "…for dark mode") or one word replaced ("mean" / "median",
// "junior" / "senior") keeps nearly all of its words, in order; a
// paraphrase rewords and reorders them.
type edit struct {
	shared       int     // words in the common subsequence
	longer       int     // meaningful words of the longer side
	restA, restB []token // words of each side outside the common subsequence
	// extraA and extraB are the content words of restA and restB that
	// nothing on the other side matches, not even loosely (a typo, another
	// form of the word, two words written as one): what only that side
	// asks for.
	extraA, extraB []token
	tailA, tailB   bool // that side's extra words all come after its last shared word
	logicSwap      bool // "and" on one side where the other has "or"
}

// The shape of a near copy: at least nearCopyShared words in common, and
// on the side that kept more of them at most nearCopyRest words left over,
// or a fifth of the shared words when more are shared (a long request
// copied with a short phrase reworded).
const (
	nearCopyShared = 5
	nearCopyRest   = 1
	nearCopyShare  = 0.2
)

// editWords are the words an edit compares: the meaningful ones, and the
// conjunctions "and" and "or", which change a condition.
func editWords(ts []token) []token {
	var out []token
	for _, t := range ts {
		if t.class != classStop && t.class != classFiller || t.norm == "and" || t.norm == "or" {
			out = append(out, t)
		}
	}
	return out
}

func (v *Verifier) editMatch(x, y token) bool {
	return x.norm == y.norm || x.class == classContent && y.class == classContent && v.strongMatch(x, y) > 0
}

func (v *Verifier) edits(ta, tb []token) edit {
	a, b := editWords(ta), editWords(tb)
	n, m := len(a), len(b)
	// l[i][j] is the length of the common subsequence of a[i:] and b[j:];
	// match[i][j] whether a[i] matches b[j].
	l := make([][]int, n+1)
	match := make([][]bool, n)
	for i := range l {
		l[i] = make([]int, m+1)
		if i < n {
			match[i] = make([]bool, m)
			for j := range m {
				match[i][j] = v.editMatch(a[i], b[j])
			}
		}
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if match[i][j] {
				l[i][j] = l[i+1][j+1] + 1
			} else {
				l[i][j] = max(l[i+1][j], l[i][j+1])
			}
		}
	}
	inA, inB := make([]bool, n), make([]bool, m)
	for i, j := 0, 0; i < n && j < m; {
		switch {
		case match[i][j] && l[i][j] == l[i+1][j+1]+1:
			inA[i], inB[j] = true, true
			i++
			j++
		case l[i+1][j] >= l[i][j+1]:
			i++
		default:
			j++
		}
	}
	e := edit{shared: l[0][0], longer: max(n, m)}
	e.restA, e.extraA, e.tailA = v.leftOver(a, inA, tb)
	e.restB, e.extraB, e.tailB = v.leftOver(b, inB, ta)
	e.logicSwap = hasNorm(e.restA, "and") && hasNorm(e.restB, "or") || hasNorm(e.restA, "or") && hasNorm(e.restB, "and")
	return e
}

// leftOver returns the words of ws outside the common subsequence, those
// of them that only this side asks for (see edit), and whether these all
// come after the last shared word.
func (v *Verifier) leftOver(ws []token, in []bool, other []token) (rest, extra []token, tail bool) {
	last := -1
	for i, ok := range in {
		if ok {
			last = i
		}
	}
	oc := content(other)
	tail = true
	for i, w := range ws {
		if in[i] {
			continue
		}
		rest = append(rest, w)
		if w.class != classContent || v.matchedIn(w, oc) || compound(w, other) || halfCompound(ws, i, other) || v.near(w, other) {
			continue
		}
		extra = append(extra, w)
		if i < last {
			tail = false
		}
	}
	return rest, extra, tail && len(extra) > 0
}

// near: w is a typo of a word of other, of any class ("shoud" / "should",
// "teh" / "the"), or another form of it ("calculate" / "calculation").
func (v *Verifier) near(w token, other []token) bool {
	for _, u := range other {
		if sameStem(w.norm, u.norm) || sameRoot(w.raw, u.raw) || v.shortFor(w.raw, u.raw) || v.shortFor(u.raw, w.raw) || v.typo(w.raw, u.raw) || v.typo(w.norm, u.norm) ||
			len(w.raw) == len(u.raw) && len(w.raw) >= 3 && w.raw != u.raw && sameLetters(w.raw, u.raw) && editDistance(w.raw, u.raw, 1) <= 1 {
			return true
		}
	}
	return false
}

// sameStem: two forms of one word ("calculate" / "calculation",
// "configure" / "configuration"): their first five letters or more, and
// all but the last three of the shorter, are the same.
func sameStem(a, b string) bool {
	n := commonPrefix(a, b)
	return n >= 5 && n >= min(len(a), len(b))-3
}

// sameRoot: two inflections of one root ("quit" / "quitting", "rented"
// / "rental", "scams" / "scammed"): the same once an ending (-s, -es,
// -ed, -d, -ing, -er, -al) and a doubled last consonant are taken off,
// a root of three letters or more.
func sameRoot(a, b string) bool {
	ra, rb := root(a), root(b)
	return len(ra) >= 3 && ra == rb
}

func root(w string) string {
	for _, end := range []string{"ing", "es", "ed", "er", "al", "s", "d"} {
		if r, ok := strings.CutSuffix(w, end); ok && len(r) >= 3 {
			w = r
			break
		}
	}
	if n := len(w); n >= 4 && w[n-1] == w[n-2] && !strings.ContainsRune("aeiou", rune(w[n-1])) {
		w = w[:n-1]
	}
	return strings.TrimSuffix(w, "e")
}

// shortFor: short is long written short, as people type it without its
// vowels or cut ("srv" / "server", "dicts" / "dictionaries"): three
// letters or more, not a word of the lexicon nor a frequent one, the same
// first letter, its letters in order among long's, which is longer by two
// or more.
func (v *Verifier) shortFor(short, long string) bool {
	if len(short) < 3 || len(long) < len(short)+2 || short[0] != long[0] || v.common(short) {
		return false
	}
	if _, word := v.lex[short]; word {
		return false // "vegan" is no "vegetarian" written short
	}
	j := 0
	for i := 0; i < len(long) && j < len(short); i++ {
		if long[i] == short[j] {
			j++
		}
	}
	return j == len(short)
}

func sameLetters(a, b string) bool {
	x, y := []byte(a), []byte(b)
	slices.Sort(x)
	slices.Sort(y)
	return string(x) == string(y)
}

// halfCompound: ws[i] and a neighbour are one word of other written apart
// ("load balancer" / "loadbalancer", "buy-back" / "buyback").
func halfCompound(ws []token, i int, other []token) bool {
	for _, u := range other {
		if i > 0 && ws[i-1].raw+ws[i].raw == u.raw || i+1 < len(ws) && ws[i].raw+ws[i+1].raw == u.raw {
			return true
		}
	}
	return false
}

func hasNorm(ts []token, w string) bool {
	for _, t := range ts {
		if t.norm == w {
			return true
		}
	}
	return false
}

// nearCopy: the two sides keep all but a few of their words, in order.
func (e edit) nearCopy() bool {
	rest := float64(min(len(e.restA), len(e.restB)))
	return e.shared >= nearCopyShared && rest <= max(nearCopyRest, nearCopyShare*float64(e.shared))
}

// oneForOne: each side has one word left over, which only it asks for,
// beside at least two shared ("toxic to cats" / "toxic to dogs").
func (e edit) oneForOne() bool {
	return e.shared >= 2 && len(e.restA) == 1 && len(e.restB) == 1 && len(e.extraA) == 1 && len(e.extraB) == 1
}

// veto refuses a near copy, or a one-for-one change, that asks for
// something more or else: a content word only one side asks for, or "and"
// turned into "or".
func (e edit) veto() string {
	if !e.nearCopy() && !e.oneForOne() {
		return ""
	}
	switch {
	case e.logicSwap:
		return `"and" and "or" differ`
	case len(e.extraA) > 0 && len(e.extraB) > 0:
		return fmt.Sprintf("%q in place of %q", e.extraA[0].norm, e.extraB[0].norm)
	case len(e.extraA) > 0:
		return fmt.Sprintf("only one side asks for %q", e.extraA[0].norm)
	case len(e.extraB) > 0:
		return fmt.Sprintf("only one side asks for %q", e.extraB[0].norm)
	}
	return ""
}

// extraWeight is the weight of the heaviest word only one side asks for,
// as a share of the heaviest possible.
func (v *Verifier) extraWeight(e edit) float64 {
	w := 0.0
	for _, t := range append(e.extraA, e.extraB...) {
		w = max(w, v.weight(t.norm))
	}
	return w / maxWeight
}
