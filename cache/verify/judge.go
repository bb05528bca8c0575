package verify

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Verdict is the judgement of one pair of prompts.
type Verdict struct {
	Same   bool
	Score  float64 // the model's probability that the pair is the same (0 after a veto, 1 for identical prompts)
	Reason string  // why not, when not the same
}

// Judge decides whether the answer stored for prompt b answers prompt a.
// It is symmetric.
func (v *Verifier) Judge(a, b string) Verdict {
	f, identical, veto := v.Features(a, b)
	switch {
	case veto != "":
		return Verdict{Reason: veto}
	case identical:
		return Verdict{Same: true, Score: 1}
	}
	p := model.probability(f)
	if p >= model.Threshold {
		return Verdict{Same: true, Score: p}
	}
	return Verdict{Score: p, Reason: fmt.Sprintf("judged different: score %.2f, below %.2f", p, model.Threshold)}
}

// Feature names, in the order Features returns them.
var FeatureNames = []string{"bias", "similarity", "coverage_min", "coverage_max", "soft_coverage_min", "unmatched_both", "unmatched_either", "unmatched_share", "relational_one_side", "length_ratio", "shared_context", "substitution", "substitution_similarity", "extra_weight", "extra_tail", "copy_share"}

// maxContent bounds the work of a comparison: past it, two texts (their
// shared pasted block set aside) are never the same unless identical.
const maxContent = 150

// Features returns the figures the model judges a pair by, whether the two
// are the same prompt up to case, punctuation and framing, or a veto: the
// reason the pair can never be the same.
func (v *Verifier) Features(a, b string) (f []float64, identical bool, veto string) {
	ra, rb, shared, veto := splitShared(a, b)
	if veto != "" {
		return nil, false, veto
	}
	if r := quotesDiffer(ra, rb); r != "" {
		return nil, false, r
	}
	ra, rb, quote := sharedQuotes(ra, rb)
	shared = shared || quote
	ta, tb := v.tokens(ra), v.tokens(rb)
	v.markInfinitives(ta)
	v.markInfinitives(tb)
	oneAsNumber(ta, tb)
	oneAsNumber(tb, ta)
	if r := sameCounts(ta, tb, classNumber); r != "" {
		return nil, false, "number " + r
	}
	negDiff := sameCounts(ta, tb, classNegation)
	if r := personsDiffer(ta, tb); r != "" {
		return nil, false, r
	}
	ca, cb := content(ta), content(tb)
	if negDiff == "" && sameNorms(editWords(ta), editWords(tb)) {
		return nil, true, ""
	}
	if len(ca) > maxContent || len(cb) > maxContent {
		return nil, false, "too long to compare"
	}
	if len(ca) == 0 && len(cb) == 0 && shared {
		// Only framing around the same pasted text: "explain this".
		return nil, true, ""
	}
	if len(ca) == 0 || len(cb) == 0 {
		return nil, false, "nothing to compare on one side"
	}
	al := v.align(ta, tb, ca, cb)
	if negDiff != "" && (negationBears(ta, tb, ca, al.bestA, al.strongA) || negationBears(tb, ta, cb, al.bestB, al.strongB)) {
		return nil, false, "negation " + negDiff
	}
	if r := v.closedClasses(ca, cb, al); r != "" {
		return nil, false, r
	}
	if r := beforeAfter(ta, tb); r != "" {
		return nil, false, r
	}
	if r := v.namesDiffer(ca, cb, al); r != "" {
		return nil, false, r
	}
	if r := conversions(ta, tb); r != "" {
		return nil, false, r
	}
	// The structural checks look from each side in turn.
	la := al.flip()
	for _, c := range []struct {
		ta, tb, ca, cb []token
		al             alignment
	}{{ta, tb, ca, cb, al}, {tb, ta, cb, ca, la}} {
		if r := directions(c.ta, c.tb, c.al); r != "" {
			return nil, false, r
		}
		if r := doSupport(c.ta, c.tb, c.al); r != "" {
			return nil, false, r
		}
		if r := roles(c.ta, c.tb, c.al); r != "" {
			return nil, false, r
		}
		if r := v.exchanged(c.ta, c.tb, c.ca, c.cb, c.al); r != "" {
			return nil, false, r
		}
	}
	ed := v.edits(ta, tb)
	if r := ed.veto(); r != "" {
		return nil, false, r
	}
	substWeight, substSim, r := v.substitution(ca, cb, al)
	if r != "" {
		return nil, false, r
	}
	sa, sb := v.side(ca, al.scoreA, al.vecA), v.side(cb, al.scoreB, al.vecB)
	similarity := 0.0
	if v.opts.TextSimilarity != nil {
		similarity = v.opts.TextSimilarity(a, b)
	}
	f = []float64{
		1,
		similarity,
		min(sa.coverage, sb.coverage),
		max(sa.coverage, sb.coverage),
		min(sa.soft, sb.soft),
		min(sa.maxUnmatched, sb.maxUnmatched) / maxWeight,
		max(sa.maxUnmatched, sb.maxUnmatched) / maxWeight,
		float64(sa.unmatched+sb.unmatched) / float64(len(ca)+len(cb)),
		min(float64(relationalOneSide(ta, tb)), 2) / 2,
		float64(min(len(ca), len(cb))) / float64(max(len(ca), len(cb))),
		b2f(shared),
		substWeight,
		substWeight * substSim,
		v.extraWeight(ed),
		b2f(ed.tailA || ed.tailB),
		float64(ed.shared) / float64(max(ed.longer, 1)),
	}
	return f, false, ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// markInfinitives turns the "to" of an infinitive ("how to cook") into a
// stop word: it is grammar, not a direction.
func (v *Verifier) markInfinitives(ts []token) {
	for i := range ts {
		if ts[i].class == classRelational && ts[i].norm == "to" && ts[i].raw == "to" && v.infinitive(ts, i) {
			ts[i].class = classStop
		}
	}
}

func content(ts []token) []token {
	var out []token
	for _, t := range ts {
		if t.class == classContent {
			out = append(out, t)
		}
	}
	return out
}

// meaningful are the tokens but grammar and framing.
func meaningful(ts []token) []token {
	var out []token
	for _, t := range ts {
		if t.class != classStop && t.class != classFiller {
			out = append(out, t)
		}
	}
	return out
}

func sameNorms(a, b []token) bool {
	return slices.EqualFunc(a, b, func(x, y token) bool { return x.norm == y.norm })
}

// negationBears reports whether a negation of ts bears on a word the
// other side has too: "why isn't the sky blue" / "why is the sky blue",
// "bread without yeast" / "bread with yeast". A negation whose words only
// its side asks for, outside a condition ("I do not own a computer, how do I bank by phone",
// "no jargon", "a third party who isn't insured" / "an uninsured third
// party") is content only one side has, judged as such.
func negationBears(ts, other, cs []token, best []int, strong []bool) bool {
	more := countDiff(ts, other, classNegation) // the kinds of negation this side has more of
	ci := map[int]int{}
	for i, t := range cs {
		ci[t.pos] = i
	}
	for k, t := range ts {
		if t.class != classNegation || more[t.norm] <= 0 {
			continue
		}
		for j := k - 1; j >= 0 && j >= k-4; j-- {
			if ts[j].norm == "if" || ts[j].norm == "unless" || ts[j].norm == "when" {
				return true // a condition: "if I don't have admin rights"
			}
		}
		// Its scope: the next content words, up to three, within six
		// tokens.
		n := 0
		for j := k + 1; j < len(ts) && j <= k+6 && n < 3; j++ {
			i, ok := ci[j]
			if !ok {
				continue
			}
			n++
			if best[i] >= 0 && strong[i] {
				return true
			}
		}
		if n == 0 && k > 0 {
			// "or not", "isn't yet": the words before it.
			for j := k - 1; j >= 0 && j >= k-3; j-- {
				if i, ok := ci[j]; ok && best[i] >= 0 && strong[i] {
					return true
				}
			}
		}
	}
	return false
}

// oneAsNumber reads "one" in ta as the number 1 where tb has a 1 that ta
// lacks ("more than one container" / "more than 1 container").
func oneAsNumber(ta, tb []token) {
	ones := func(ts []token) int {
		n := 0
		for _, t := range ts {
			if t.class == classNumber && t.norm == "1" {
				n++
			}
		}
		return n
	}
	need := ones(tb) - ones(ta)
	for i := range ta {
		if need > 0 && ta[i].raw == "one" && ta[i].class == classStop {
			ta[i].class, ta[i].norm = classNumber, "1"
			need--
		}
	}
}

// sameCounts compares how often each word of class c occurs on each side.
func sameCounts(a, b []token, c class) string {
	var diff []string
	for w, d := range countDiff(a, b, c) {
		if d != 0 {
			diff = append(diff, w)
		}
	}
	if len(diff) == 0 {
		return ""
	}
	slices.Sort(diff)
	return fmt.Sprintf("%q differs", diff[0])
}

// countDiff counts, for each word of class c, how many more times a has
// it than b.
func countDiff(a, b []token, c class) map[string]int {
	n := map[string]int{}
	for _, t := range a {
		if t.class == c {
			n[t.norm]++
		}
	}
	for _, t := range b {
		if t.class == c {
			n[t.norm]--
		}
	}
	return n
}

// alignment of the content words of two prompts: for each word of one
// side, its best counterpart on the other (-1: none) and how well it
// matches.
type alignment struct {
	bestA, bestB   []int
	scoreA, scoreB []float64
	vecA, vecB     []bool // matched only by word vectors
	strongA        []bool // matched by form, lemma, synonym, typo or abbreviation
	strongB        []bool
}

// flip is the alignment seen from b's side.
func (al alignment) flip() alignment {
	return alignment{
		bestA: al.bestB, bestB: al.bestA, scoreA: al.scoreB, scoreB: al.scoreA,
		vecA: al.vecB, vecB: al.vecA, strongA: al.strongB, strongB: al.strongA,
	}
}

// Match scores.
const (
	scoreSame      = 1.0
	scoreSynonym   = 0.9
	scoreCompound  = 0.95
	scoreTypo      = 0.85
	scorePrefix    = 0.8
	maxVector      = 0.85 // a word-vector neighbour scores its cosine, at most this
	minVector      = 0.6
	looseVector    = 0.75 // a word-vector neighbour below this is no synonym
	unmatchedBelow = 0.5
)

func (v *Verifier) align(ta, tb, ca, cb []token) alignment {
	al := alignment{
		bestA: make([]int, len(ca)), bestB: make([]int, len(cb)),
		scoreA: make([]float64, len(ca)), scoreB: make([]float64, len(cb)),
		vecA: make([]bool, len(ca)), vecB: make([]bool, len(cb)),
		strongA: make([]bool, len(ca)), strongB: make([]bool, len(cb)),
	}
	one := func(from []token, to []token, toAll []token, best []int, score []float64, vec, strong []bool) {
		for i, t := range from {
			best[i] = -1
			for j, u := range to {
				if s := v.strongMatch(t, u); s > score[i] {
					best[i], score[i], strong[i] = j, s, true
				}
			}
			if score[i] < scoreCompound && compound(t, toAll) {
				score[i], strong[i] = scoreCompound, true
				if best[i] < 0 {
					best[i] = -2 // matched by a compound, not by one word
				}
			}
			if strong[i] || t.cat != "" || t.name || v.opts.WordSimilarity == nil {
				continue
			}
			for j, u := range to {
				if u.cat != "" || u.name {
					continue
				}
				c := v.opts.WordSimilarity(t.norm, u.norm)
				if c >= minVector && min(c, maxVector) > score[i] {
					best[i], score[i], vec[i] = j, min(c, maxVector), true
				}
			}
		}
	}
	one(ca, cb, tb, al.bestA, al.scoreA, al.vecA, al.strongA)
	one(cb, ca, ta, al.bestB, al.scoreB, al.vecB, al.strongB)
	return al
}

// strongMatch scores two content words matched by form: the same word or
// lemma, a synonym, a typo, an abbreviation by prefix; 0 otherwise.
func (v *Verifier) strongMatch(t, u token) float64 {
	if t.norm == u.norm || t.raw == u.raw && t.raw != "" {
		return scoreSame
	}
	bt, bu := v.base(t.norm), v.base(u.norm)
	if bt == bu || !t.ident && !u.ident && v.sharesLemma(t.norm, u.norm) {
		return scoreSame
	}
	if t.ident || u.ident {
		// "calculate_tax" is no "calculate_total", nor "get_users"
		// "get_user"; "useEffct" is "useEffect" mistyped.
		if identTypo(t.norm, u.norm) {
			return scoreTypo
		}
		return 0
	}
	names := t.name && u.name // "the Prices sheet" is not "the Costs sheet"
	if t.cat == "" && u.cat == "" && !names && (v.synonyms(t.norm, u.norm) || v.synonyms(bt, bu)) || !names && (sameGroup(t.norm, u.norm) || sameGroup(bt, bu)) {
		return scoreSynonym
	}
	if (t.cat == "" || u.cat == "") && (v.typo(t.norm, u.norm) || v.typo(t.raw, u.raw)) {
		return scoreTypo
	}
	if t.cat == "" && u.cat == "" && (v.prefixOf(t.norm, u.norm) || v.prefixOf(u.norm, t.norm)) {
		return scorePrefix
	}
	return 0
}

// identTypo: two identifiers of eight letters or more one letter apart,
// the first the same, not a digit, nor an "s" at the end (a plural names
// another thing: "get_users" / "get_user"); file names ("tsconfig.json")
// never.
func identTypo(a, b string) bool {
	if len(a) < 8 || len(b) < 8 || a[0] != b[0] || strings.Contains(a+b, ".") || editDistance(a, b, 1) != 1 || strings.TrimSuffix(a, "s") == strings.TrimSuffix(b, "s") {
		return false
	}
	for _, c := range a + b {
		if c >= '0' && c <= '9' {
			return false
		}
	}
	return true
}

func (v *Verifier) sharesLemma(a, b string) bool {
	ea, eb := v.lex[a], v.lex[b]
	for _, x := range append([]string{a}, ea.lemmas...) {
		for _, y := range append([]string{b}, eb.lemmas...) {
			if x == y {
				return true
			}
		}
	}
	return false
}

func sameGroup(a, b string) bool {
	for _, x := range groups[a] {
		if slices.Contains(groups[b], x) {
			return true
		}
	}
	return false
}

// synonyms: a WordNet synset shared by the words' most frequent senses.
func (v *Verifier) synonyms(a, b string) bool {
	ea, eb := v.lex[a], v.lex[b]
	for _, x := range ea.syn {
		for _, y := range eb.syn {
			if x == y {
				return true
			}
		}
	}
	return false
}

// common reports whether w is a frequent word (it cannot be a typo or an
// abbreviation of another).
func (v *Verifier) common(w string) bool {
	if v.opts.Rank != nil {
		r, ok := v.opts.Rank(w)
		return ok && r < 20000
	}
	_, ok := v.lex[w]
	return ok
}

// typo: two words of four letters or more, one of them not a frequent word,
// with the same first letter, one edit apart (two for words of eight
// letters or more).
func (v *Verifier) typo(a, b string) bool {
	if len(a) < 4 || len(b) < 4 || a[0] != b[0] || v.common(a) && v.common(b) {
		return false
	}
	d := editDistance(a, b, 2)
	return d == 1 || d == 2 && min(len(a), len(b)) >= 8
}

// prefixOf: short, of three letters or more and not a frequent word, is
// how long is commonly cut ("repo", "approx", "perf").
func (v *Verifier) prefixOf(short, long string) bool {
	return len(short) >= 3 && len(long) >= len(short)+2 && strings.HasPrefix(long, short) && !v.common(short)
}

// compound: t is two adjacent words of ts written as one ("loadbalancer",
// "backup", "login").
func compound(t token, ts []token) bool {
	for j := 0; j+1 < len(ts); j++ {
		if len(ts[j].raw)+len(ts[j+1].raw) == len(t.raw) && ts[j].raw+ts[j+1].raw == t.raw {
			return true
		}
	}
	return false
}

// editDistance is the optimal-string-alignment distance of a and b, or
// limit+1 when it is larger than limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d > limit || -d > limit {
		return limit + 1
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		lo := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
			lo = min(lo, cur[j])
		}
		if lo > limit {
			return limit + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return min(prev[len(b)], limit+1)
}

// closedClasses refuses a pair whose closed-class words differ: different
// members on the two sides, or a member on one side that nothing on the
// other matches (unless it may stand alone).
func (v *Verifier) closedClasses(ca, cb []token, al alignment) string {
	check := func(from []token, strong []bool, best []int, to []token) string {
		for i, t := range from {
			if t.cat == "" {
				continue
			}
			if strong[i] && (best[i] < 0 || to[best[i]].cat == "" || to[best[i]].cat == t.cat || sameGroup(t.norm, to[best[i]].norm)) {
				continue
			}
			// Another member of its class on the other side, not itself
			// matched on this one?
			for _, u := range to {
				if u.cat == t.cat && v.strongMatch(t, u) == 0 && !v.matchedIn(u, from) {
					return fmt.Sprintf("different %s: %q and %q", t.cat, t.norm, u.norm)
				}
			}
			if !loneOK[t.norm] && !loneClass[t.cat] {
				return fmt.Sprintf("%s %q on one side only", t.cat, t.norm)
			}
		}
		return ""
	}
	if r := check(ca, al.strongA, al.bestA, cb); r != "" {
		return r
	}
	return check(cb, al.strongB, al.bestB, ca)
}

// matchedIn reports whether u matches a word of ts by form.
func (v *Verifier) matchedIn(u token, ts []token) bool {
	for _, t := range ts {
		if v.strongMatch(u, t) > 0 {
			return true
		}
	}
	return false
}

// governor is the relational word governing token i: the nearest one
// before it, at most three tokens back, with no content word between.
func governor(ts []token, i int) string {
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		switch ts[j].class {
		case classRelational:
			return ts[j].norm
		case classContent:
			return ""
		}
	}
	return ""
}

// directions refuses a pair where a relational word both sides use governs
// different words ("km to miles" / "miles to km", "heavier than lead" /
// "lead heavier than gold").
func directions(ta, tb []token, al alignment) string {
	ca, cb := content(ta), content(tb)
	// The relational words that govern an aligned word, on each side.
	govA, govB := map[string]bool{}, map[string]bool{}
	for i, j := range al.bestA {
		if j >= 0 && al.strongA[i] {
			govA[governor(ta, ca[i].pos)] = true
			govB[governor(tb, cb[j].pos)] = true
		}
	}
	// The relational words that govern a personal pronoun on b ("send
	// it to me").
	pronB := map[string]bool{}
	for k, t := range tb {
		if objectPronoun[t.norm] {
			if g := governor(tb, k); g != "" {
				pronB[g] = true
			}
		}
	}
	for i, j := range al.bestA {
		if j < 0 || !al.strongA[i] {
			continue
		}
		ga, gb := governor(ta, ca[i].pos), governor(tb, cb[j].pos)
		if ga == gb {
			continue
		}
		if ga != "" && gb == "" && pronB[ga] {
			// "send a 1099 to my contractor" / "my contractor sends a
			// 1099 to me".
			return fmt.Sprintf("%q is governed by %q on one side, a pronoun on the other", ca[i].norm, ga)
		}
		if ga != "" && gb != "" || ga != "" && govB[ga] || gb != "" && govA[gb] {
			return fmt.Sprintf("%q is governed by %q on one side and %q on the other", ca[i].norm, ga, gb)
		}
	}
	return ""
}

// objectPronoun are the personal pronouns a relational word can govern.
var objectPronoun = set(`me us him her them you`)

// doSupport refuses "who hired Smith" against "who did Smith hire": when
// one side asks with do-support after its wh-word and the other does not,
// and two aligned words change order, the wh-word asks for the other role.
func doSupport(ta, tb []token, al alignment) string {
	da, db := hasDoSupport(ta), hasDoSupport(tb)
	if da == db || !hasWord(ta, "who", "whom") || !hasWord(tb, "who", "whom") {
		return ""
	}
	ca, cb := content(ta), content(tb)
	for i, j := range al.bestA {
		if j < 0 || al.scoreA[i] < unmatchedBelow {
			continue
		}
		for k, l := range al.bestA {
			if k <= i || l < 0 || al.scoreA[k] < unmatchedBelow {
				continue
			}
			if cb[j].pos > cb[l].pos && ca[i].pos < ca[k].pos {
				return "who did what to whom differs"
			}
		}
	}
	return ""
}

// roles refuses a pair where a word aligned on both sides changes role:
// it owns on one side what the writer owns on the other ("how can I see
// my manager's calendar" / "how can my manager see my calendar", "a
// folder in a colleague's OneDrive" / "a folder in my OneDrive"), or it is an action
// done to the writer on one side ("a file shared with me", "a friend
// referred me") and by the writer on the other ("how do I share a file").
// An owner named after "of", "by" or "from" keeps its role ("my manager's
// calendar" / "the calendar of my manager"), and so does one written in
// another form ("an adult's fever" / "a fever in adults").
func roles(ta, tb []token, al alignment) string {
	ca, cb := content(ta), content(tb)
	writerB := hasWord(tb, "i", "we")
	for i, j := range al.bestA {
		if j < 0 || !al.strongA[i] {
			continue
		}
		x, y := ca[i], cb[j]
		if x.poss && !y.poss && x.raw == y.raw && !ownerAfter(tb, y.pos) && i+1 < len(ca) && writersOwn(tb, cb, al.bestA[i+1]) {
			return fmt.Sprintf("%q owns something on one side only", x.norm)
		}
		if writerB && toWriter(ta, x.pos) && !toWriter(tb, y.pos) {
			return fmt.Sprintf("%q is done to the writer on one side, by the writer on the other", x.norm)
		}
	}
	return ""
}

// writersOwn: content word j of cs (-1: none) follows "my" or "our".
func writersOwn(ts, cs []token, j int) bool {
	if j < 0 {
		return false
	}
	k := cs[j].pos
	return k > 0 && (ts[k-1].norm == "my" || ts[k-1].norm == "our")
}

// ownerAfter: token k is governed by "of", "by" or "from", grammar
// between.
func ownerAfter(ts []token, k int) bool {
	for j := k - 1; j >= 0 && j >= k-3; j-- {
		switch {
		case ts[j].norm == "of" || ts[j].norm == "by" || ts[j].norm == "from":
			return true
		case ts[j].class != classStop:
			return false
		}
	}
	return false
}

// toWriter: the word at k is followed by "me" or "us", grammar between
// ("send it to me", "shared with us", "referred me").
func toWriter(ts []token, k int) bool {
	for j := k + 1; j < len(ts) && j <= k+3; j++ {
		switch {
		case ts[j].norm == "me" || ts[j].norm == "us":
			return true
		case ts[j].class != classStop && ts[j].class != classRelational:
			return false
		}
	}
	return false
}

func hasDoSupport(ts []token) bool {
	for i := 0; i+1 < len(ts); i++ {
		if ts[i].norm == "who" || ts[i].norm == "whom" {
			switch ts[i+1].norm {
			case "do", "does", "did":
				return true
			}
		}
	}
	return false
}

// exchanged refuses a pair whose content words are the same but for two
// runs of them that trade places around the same middle: a = P X M Y S,
// b = P Y M X S ("is every square a rectangle" / "is every rectangle a
// square", "does vitamin C help absorb iron" / "does iron help absorb
// vitamin C", "baking soda instead of baking powder" / the reverse) —
// unless "and", "or" or "vs" alone join X and Y, a symmetric pair. Words
// of b are compared by the word of a they align with.
func (v *Verifier) exchanged(ta, tb, ca, cb []token, al alignment) string {
	// The words compared: content words (but wh-words, which move with
	// the question's shape) and numbers.
	keep := func(t token) bool { return t.class == classContent && t.cat != "wh" || t.class == classNumber }
	contentIndex := func(cs []token) map[int]int {
		m := map[int]int{}
		for i, t := range cs {
			m[t.pos] = i
		}
		return m
	}
	ciB := contentIndex(cb)
	var ka, kb []token
	var x, y []string
	for _, t := range ta {
		if keep(t) {
			ka, x = append(ka, t), append(x, t.norm)
		}
	}
	for _, t := range tb {
		if !keep(t) {
			continue
		}
		w := t.norm
		if j, ok := ciB[t.pos]; ok && al.bestB[j] >= 0 && al.strongB[j] {
			w = ca[al.bestB[j]].norm
		}
		kb, y = append(kb, t), append(y, w)
	}
	n := len(x)
	if n != len(y) || n < 2 || n > 30 {
		return ""
	}
	ca, cb = ka, kb
	eq := func(p, q []string) bool { return slices.Equal(p, q) }
	// a = x[:p] X=x[p:q] M=x[q:r] Y=x[r:s] x[s:]; b must be x[:p] Y M X x[s:].
	for p := 0; p < n; p++ {
		if x[p] == y[p] {
			continue // P is as long as the two agree
		}
		for s := n; s > p; s-- {
			if s < n && x[s] != y[s] {
				break
			}
			for q := p + 1; q < s; q++ {
				for r := q; r < s; r++ {
					X, M, Y := x[p:q], x[q:r], x[r:s]
					lenY := s - r
					if eq(y[p:p+lenY], Y) && nearEq(y[p+lenY:p+lenY+len(M)], M) && eq(y[p+lenY+len(M):s], X) && !eq(X, Y) {
						// The frame between them must stay word for word
						// ("square a rectangle" / "rectangle a square"); a
						// topic moved to the front ("vietnam currency" /
						// "currency used in vietnam") is no swap.
						if !v.sameBetween(ta, ca[q-1].pos, ca[r].pos, tb, cb[p+lenY-1].pos, cb[p+lenY+len(M)].pos) {
							continue
						}
						if len(M) == 0 && symmetricJoin(ta, ca[q-1].pos, ca[r].pos) {
							continue
						}
						return fmt.Sprintf("%q and %q trade places", strings.Join(X, " "), strings.Join(Y, " "))
					}
				}
			}
		}
		break
	}
	return ""
}

// nearEq: the frame between two runs that trade places is the same, or
// one content word of a frame of two or more is another ("columns A into
// long format with columns B" / "columns B into wide format with columns
// A").
func nearEq(p, q []string) bool {
	if len(p) != len(q) {
		return false
	}
	diff := 0
	for i := range p {
		if p[i] != q[i] {
			diff++
		}
	}
	return diff == 0 || diff == 1 && len(p) >= 2
}

// sameBetween: the words between i and j of a are those between k and l
// of b: the frame stayed while the two words traded places (one content
// word of a frame of two or more may be another, as in nearEq).
func (v *Verifier) sameBetween(a []token, i, j int, b []token, k, l int) bool {
	if j-i != l-k {
		return false
	}
	diff, words := 0, 0
	for d := 1; i+d < j; d++ {
		x, y := a[i+d], b[k+d]
		if x.class == classContent {
			words++
		}
		if x.norm != y.norm && !(x.class == classContent && y.class == classContent && v.strongMatch(x, y) > 0) {
			if x.class != classContent || y.class != classContent {
				return false
			}
			diff++
		}
	}
	return diff == 0 || diff == 1 && words >= 2
}

// symmetricJoin: the tokens between i and j are "and", "or" or "vs", and
// grammar.
func symmetricJoin(ts []token, i, j int) bool {
	join := false
	for k := i + 1; k < j; k++ {
		switch t := ts[k]; {
		case t.norm == "and" || t.norm == "or" || t.norm == "versus":
			join = true
		case t.class == classContent || t.class == classNumber:
			return false
		}
	}
	return join
}

// substitution finds a word of each side that nothing on the other
// matches (a loose word-vector neighbour is no match here), next to words
// aligned with each other: one word in another's place in an otherwise
// matching frame ("the mean of a binomial" / "the variance of a
// binomial", "legal in Germany" / "legal in Austria"). It returns the
// lighter word's weight and the pair's word-vector similarity, and a veto
// when either word is a name.
func (v *Verifier) substitution(ca, cb []token, al alignment) (weight, similarity float64, veto string) {
	loose := func(score float64, vec bool) bool { return score < unmatchedBelow || vec && score < looseVector }
	paired := func(i, j int) bool {
		return i >= 0 && j >= 0 && i < len(ca) && j < len(cb) && al.strongA[i] && al.bestA[i] == j
	}
	for i := range ca {
		if !loose(al.scoreA[i], al.vecA[i]) {
			continue
		}
		for j := range cb {
			if !loose(al.scoreB[j], al.vecB[j]) || !(paired(i-1, j-1) || paired(i+1, j+1)) {
				continue
			}
			if ca[i].name || cb[j].name {
				return 0, 0, fmt.Sprintf("%q and %q differ", ca[i].norm, cb[j].norm)
			}
			if w := min(v.weight(ca[i].norm), v.weight(cb[j].norm)); w > weight {
				weight = w
				if v.opts.WordSimilarity != nil {
					similarity = v.opts.WordSimilarity(ca[i].norm, cb[j].norm)
				}
			}
		}
	}
	return weight / maxWeight, similarity, ""
}

func hasWord(ts []token, words ...string) bool {
	for _, t := range ts {
		for _, w := range words {
			if t.norm == w {
				return true
			}
		}
	}
	return false
}

// relationalOneSide counts the relational words one side has and the other
// does not ("hired by Smith" / "hired Smith").
func relationalOneSide(ta, tb []token) int {
	c := 0
	for _, d := range countDiff(ta, tb, classRelational) {
		c += max(d, -d)
	}
	return c
}

// side sums up one side's alignment: matched means matched by form
// (identity, lemma, synonym, typo, abbreviation, compound); soft counts
// word-vector neighbours too, at their similarity.
type sideFigures struct {
	coverage     float64 // weighted share of its words matched
	soft         float64 // the same with word-vector neighbours
	maxUnmatched float64 // weight of its heaviest word not matched
	unmatched    int
}

// maxWeight is the weight of a word unknown to the vocabulary.
const maxWeight = 6.0

// weight of a content word: rarer words weigh more.
func (v *Verifier) weight(w string) float64 {
	if v.opts.Rank != nil {
		if r, ok := v.opts.Rank(w); ok {
			return min(1+math.Log1p(float64(r)/1000), maxWeight)
		}
		return maxWeight
	}
	if _, ok := v.lex[w]; ok {
		return 2
	}
	return maxWeight
}

func (v *Verifier) side(ts []token, score []float64, vec []bool) sideFigures {
	var s sideFigures
	var total, matched, soft float64
	for i, t := range ts {
		w := v.weight(t.norm)
		total += w
		soft += w * score[i]
		if vec[i] || score[i] < unmatchedBelow {
			s.unmatched++
			s.maxUnmatched = max(s.maxUnmatched, w)
			continue
		}
		matched += w * score[i]
	}
	s.coverage, s.soft = matched/total, soft/total
	return s
}

// splitShared sets aside the lines two prompts share when they share a
// pasted block (three lines or more, 120 characters or more): what is
// left are the instructions around it. A line inside the block that only
// one side has refuses the pair: the pasted text differs.
func splitShared(a, b string) (ra, rb string, shared bool, veto string) {
	la, lb := lines(a), lines(b)
	inB := map[string]int{}
	for _, l := range lb {
		inB[l]++
	}
	sharedA := make([]bool, len(la))
	chars, n := 0, 0
	for i, l := range la {
		if l != "" && inB[l] > 0 {
			inB[l]--
			sharedA[i] = true
			chars += len(l)
			n++
		}
	}
	if n < 3 || chars < 120 {
		return a, b, false, ""
	}
	inA := map[string]int{}
	for i, l := range la {
		if sharedA[i] {
			inA[l]++
		}
	}
	sharedB := make([]bool, len(lb))
	for i, l := range lb {
		if l != "" && inA[l] > 0 {
			inA[l]--
			sharedB[i] = true
		}
	}
	if r := insideBlock(la, sharedA); r != "" {
		return "", "", true, r
	}
	if r := insideBlock(lb, sharedB); r != "" {
		return "", "", true, r
	}
	// A line of the block changed where no shared line follows it: two
	// long lines left over, nearly the same or the same for their first 30
	// characters.
	for i, x := range la {
		if sharedA[i] || len(x) < 30 {
			continue
		}
		for j, y := range lb {
			if !sharedB[j] && len(y) >= 30 && (nearlySame(x, y) || commonPrefix(x, y) >= 30) {
				return "", "", true, fmt.Sprintf("the pasted text differs: %q", clip(x))
			}
		}
	}
	return rest(la, sharedA), rest(lb, sharedB), true, ""
}

// nearlySame: two different lines at most a fifth of whose characters
// differ.
func nearlySame(x, y string) bool {
	limit := max(len(x), len(y)) / 5
	return x != y && editDistance(x, y, limit) <= limit
}

func commonPrefix(x, y string) int {
	n := 0
	for n < len(x) && n < len(y) && x[n] == y[n] {
		n++
	}
	return n
}

func clip(l string) string {
	if len(l) > 60 {
		return l[:60] + "…"
	}
	return l
}

func lines(s string) []string {
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = strings.TrimSpace(l)
	}
	return ls
}

// insideBlock finds a line between the first and last shared lines that
// is not shared.
func insideBlock(ls []string, shared []bool) string {
	first, last := -1, -1
	for i, sh := range shared {
		if sh {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := first + 1; i < last; i++ {
		if !shared[i] && ls[i] != "" {
			return fmt.Sprintf("the pasted text differs: %q", clip(ls[i]))
		}
	}
	return ""
}

func rest(ls []string, shared []bool) string {
	var b strings.Builder
	for i, l := range ls {
		if !shared[i] && l != "" {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// quoted is text in quotes, of 20 characters or more: a sentence to
// proofread, translate or rewrite ("Proofread this: '…'").
// An apostrophe inside single quotes is followed by a letter ("it's").
var quoted = regexp.MustCompile(`(?:^|[\s:(])(?:'((?:[^'\n]|'\pL){20,}?)'|"([^"\n]{20,}?)"|“([^”\n]{20,}?)”)(?:$|[\s.,;:!?)])`)

// quotesDiffer refuses a pair quoting two texts that are nearly the same
// but not the same: the sentence to work on differs.
func quotesDiffer(a, b string) string {
	qa, qb := quotes(a), quotes(b)
	for _, x := range qa {
		for _, y := range qb {
			if nearlySame(x, y) {
				return fmt.Sprintf("the quoted text differs: %q", clip(x))
			}
		}
	}
	return ""
}

func quotes(s string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]+m[2]+m[3]), " "))
	}
	for _, m := range backticked.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), " "))
	}
	return out
}

// backticked is code in backticks, of 10 characters or more.
var backticked = regexp.MustCompile("`([^`]{10,})`")

// pastedLines are the long lines of a text of several lines: a sentence
// pasted on its own line, which the other prompt may quote inline.
func pastedLines(s string) []string {
	ls := lines(s)
	n := 0
	for _, l := range ls {
		if l != "" {
			n++
		}
	}
	var out []string
	for _, l := range ls {
		if n >= 2 && len(l) >= 40 && len(strings.Fields(l)) >= 6 {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return out
}

// sharedQuotes sets aside a quoted text that both prompts contain (quoted
// on one side at least, or pasted on a line of its own): what is left are
// the instructions around it.
func sharedQuotes(a, b string) (ra, rb string, shared bool) {
	na, nb := strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " ")
	for _, q := range slices.Concat(quotes(a), quotes(b), pastedLines(a), pastedLines(b)) {
		if strings.Contains(na, q) && strings.Contains(nb, q) {
			na, nb = strings.Replace(na, q, " ", 1), strings.Replace(nb, q, " ", 1)
			shared = true
		}
	}
	if !shared {
		return a, b, false
	}
	return na, nb, true
}

// timeSide says on which side of a point in time or in a sequence a word
// looks: "before", "until", "till", "prior", "earlier" one way; "after",
// "since", "later" the other.
var timeSide = map[string]int{"before": -1, "until": -1, "till": -1, "til": -1, "prior": -1, "earlier": -1,
	"after": 1, "since": 1, "later": 1}

// beforeAfter refuses a pair where one side looks before a point and the
// other after it, wherever the words sit ("commits made after 2024-06-01"
// / "commits made before 2024-06-01", "logs since the deploy" / "logs
// until the deploy"). After "how long" they measure a wait, not a side
// ("how long till the refund" / "how long after filing").
func beforeAfter(ta, tb []token) string {
	count := func(ts []token) (n [3]int, w [3]string) {
		howLong := false
		for k, t := range ts {
			if t.norm == "long" && k > 0 && ts[k-1].norm == "how" {
				howLong = true
			}
			if d, ok := timeSide[t.norm]; ok && !howLong {
				n[d+1]++
				w[d+1] = t.norm
			}
		}
		return n, w
	}
	na, wa := count(ta)
	nb, wb := count(tb)
	switch {
	case na[0] > nb[0] && nb[2] > na[2]:
		return fmt.Sprintf("%q and %q look opposite ways", wa[0], wb[2])
	case na[2] > nb[2] && nb[0] > na[0]:
		return fmt.Sprintf("%q and %q look opposite ways", wa[2], wb[0])
	}
	return ""
}

// namesDiffer refuses a pair that names different things of code or data:
// an identifier on each side that the other does not have ("customer_id"
// / "account_id", "rename calculate_total" / "rename calculate_tax"), or
// a thing of the same kind named otherwise ("the Prices sheet" / "the
// Costs sheet", "the orders table" / "the invoices table").
func (v *Verifier) namesDiffer(ca, cb []token, al alignment) string {
	has := func(ts []token, t token) bool {
		for _, u := range ts {
			if u.norm == t.norm {
				return true
			}
		}
		return false
	}
	for i, x := range ca {
		if !x.ident && x.slot == "" || al.strongA[i] && x.slot == "" || has(cb, x) {
			continue
		}
		for j, y := range cb {
			if has(ca, y) {
				continue
			}
			switch {
			case x.ident && y.ident && !al.strongB[j]:
				return fmt.Sprintf("%q and %q name different things", x.norm, y.norm)
			case x.slot != "" && x.slot == y.slot && v.strongMatch(x, y) == 0:
				return fmt.Sprintf("the %s %q and %q differ", x.slot, x.norm, y.norm)
			}
		}
	}
	return ""
}

// entity: a word naming a format, a language, a tool, a platform or a
// thing of code ("CSV", "Postgres", "orders.json", "GitLab").
func entity(t token) bool {
	switch t.cat {
	case "format", "proglang", "platform", "language":
		return true
	}
	return t.class == classContent && (t.ident || t.name)
}

// conversionRole says whether the entity at k is where a conversion goes
// (+1: "to JSON", "into Postgres", "as orders.csv") or where it comes from
// (-1: "from MySQL"), 0 when nothing says.
func conversionRole(ts []token, k int) int {
	for j := k - 1; j >= 0 && j >= k-3; j-- {
		switch t := ts[j]; {
		case t.norm == "to" || t.raw == "as":
			return 1
		case t.norm == "from":
			return -1
		case t.class == classContent || t.class == classNumber:
			return 0
		}
	}
	return 0
}

// conversionDirection is +1 when x goes to y on this side, -1 when y goes
// to x, 0 when the side does not say.
func conversionDirection(ts []token, x, y string) int {
	d := 0
	for k, t := range ts {
		if !entity(t) || t.norm != x && t.norm != y {
			continue
		}
		r := conversionRole(ts, k)
		if t.norm == y {
			r = -r
		}
		switch {
		case r == 0:
		case d == 0:
			d = r
		case d != r:
			return 0 // both ways: "to and from"
		}
	}
	return d
}

// conversions refuses a pair that converts, moves or migrates between the
// same two formats or systems in opposite directions, wherever the words
// sit ("reads orders.csv and writes it to orders.json" / "read
// orders.json and write it out as orders.csv", "migrate from MySQL to
// Postgres" / "Postgres to MySQL migration").
func conversions(ta, tb []token) string {
	names := func(ts []token) []string {
		var out []string
		for _, t := range ts {
			if entity(t) && !slices.Contains(out, t.norm) {
				out = append(out, t.norm)
			}
		}
		return out
	}
	na, nb := names(ta), names(tb)
	for i, x := range na {
		if !slices.Contains(nb, x) {
			continue
		}
		for _, y := range na[i+1:] {
			if !slices.Contains(nb, y) {
				continue
			}
			da, db := conversionDirection(ta, x, y), conversionDirection(tb, x, y)
			if da != 0 && db != 0 && da != db {
				return fmt.Sprintf("%q and %q are converted the other way", x, y)
			}
		}
	}
	return ""
}
