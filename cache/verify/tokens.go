package verify

import (
	"regexp"
	"strings"
	"unicode"
)

// class says how a token may be matched.
type class int

const (
	classStop       class = iota // ignored
	classFiller                  // ignored: politeness and framing
	classNegation                // counted by kind
	classRelational              // must govern the same words where both sides have it
	classNumber                  // a veto unless the same on both sides
	classContent                 // aligned softly, weighted by rarity
)

type token struct {
	norm    string // lowercase, spelling and abbreviations resolved, numbers as digits
	raw     string // lowercase as typed
	class   class
	cat     string // the closed class of a content word, if any
	name    bool   // capitalised, not at a sentence start (or all capitals)
	pos     int    // index among all tokens
	initial bool   // first of its sentence
	poss    bool   // written with a possessive "'s" ("my manager's calendar")
	ident   bool   // an identifier of code or data: matched only by its own form
	slot    string // the thing it names, when it names one ("orders" in "the orders table": "table")
	caps    bool   // typed in capitals
}

var (
	chunkRE  = regexp.MustCompile(`[0-9]+(?:[.,][0-9]+)+|[\p{L}\p{N}]+(?:(?:_+|\.)[\p{L}\p{N}]+)*_*(?:'[\p{L}]+)?|->|→|=>|===|!==|:=|==|!=|<=|>=|&&|\|\||\*\*|<<|>>|\?\.|::|\+=|-=|\*=|/=|\|>|\+\+|%|&`)
	alnumRE  = regexp.MustCompile(`[0-9]+|[^0-9]+`)
	contract = strings.NewReplacer("can't", "can not", "won't", "will not", "cannot", "can not", "n't", " not",
		"Can't", "Can not", "Won't", "Will not", "Cannot", "Can not", "CANNOT", "CAN NOT", "N'T", " NOT",
		"’", "'", "w/o", " without ", "w/", " with ", "b/c", " because ")
)

// tokens splits and classifies a prompt.
func (v *Verifier) tokens(text string) []token {
	text = casualText(contract.Replace(foldAccents.Replace(text)))
	text = rates.ReplaceAllStringFunc(text, func(m string) string { return " " + rateWords[strings.ToLower(m)] + " " })
	var out []token
	poss := false // the chunk ends in a possessive "'s"
	idx := chunkRE.FindAllStringIndex(text, -1)
	ticks := backtickSpans(text)
	cur := "" // the chunk being read
	add := func(raw, norm string, initial, name bool) {
		t := token{raw: raw, norm: norm, pos: len(out), initial: initial, name: name, poss: poss,
			caps: len(cur) >= 2 && strings.ToUpper(cur) == cur && strings.ToLower(cur) != cur}
		v.classify(&t)
		out = append(out, t)
	}
	for n, ix := range idx {
		chunk := text[ix[0]:ix[1]]
		cur = chunk
		initial := n == 0 || sentenceEnds(text[:ix[0]])
		if id, ext, ok := v.identifier(chunk, inSpans(ticks, ix[0])); ok {
			// "customer_id", "calculateTotal", "orders.csv", "`main`": a
			// name of code or data, one token, matched only by its form.
			poss = false
			add(id, id, initial, true)
			t := &out[len(out)-1]
			if t.class != classContent || t.cat != "" {
				t.class, t.cat = classContent, ""
			}
			t.ident = true
			if categories[ext] != "" {
				add(ext, ext, false, false) // "orders.csv" is a CSV file too
			}
			continue
		}
		switch chunk {
		case "->", "→", "=>":
			add("to", "to", initial, false)
			continue
		case "%":
			add("percent", "percent", initial, false)
			continue
		case "&":
			add("and", "and", initial, false)
			continue
		}
		if operators[chunk] {
			// "what does := do", "is vs ==": an operator standing alone
			// is a name of code; inside an expression it is part of it.
			if standalone(text, ix[0], ix[1]) {
				add(chunk, chunk, initial, true)
				out[len(out)-1].class, out[len(out)-1].cat, out[len(out)-1].ident = classContent, "", true
			}
			continue
		}
		poss = false
		if i := strings.IndexByte(chunk, '\''); i > 0 {
			poss = strings.EqualFold(chunk[i:], "'s")
			chunk = chunk[:i] // "what's" → "what"; "it's" → "it"
		}
		name := isName(chunk, initial)
		low := strings.ToLower(chunk)
		if len(chunk) >= 2 && strings.ToUpper(chunk) == chunk && stop[low] {
			// "the US", "IT support": an acronym, not a pronoun.
			add(low, low+"_", initial, true)
			out[len(out)-1].class, out[len(out)-1].cat = classContent, ""
			continue
		}
		if len(chunk) == 1 && unicode.IsUpper(rune(chunk[0])) && !initial && chunk != "I" {
			// "type A blood", "vitamin A", "plan B": a name, not an article.
			add(low, low, initial, true)
			out[len(out)-1].class, out[len(out)-1].cat = classContent, ""
			continue
		}
		if particles[chunk] {
			// "Hi po, how do I …": a particle of politeness typed in
			// lower case ("PO" is a purchase order).
			add(low, low, initial, false)
			out[len(out)-1].class = classFiller
			continue
		}
		if low == "mom" && chunk != "MoM" && chunk != "MOM" {
			low = "mother" // "MoM" is month over month
		}
		if w, ok := textSpeak[low]; ok {
			if w == "" {
				add(low, low, initial, false)
				out[len(out)-1].class = classFiller
				continue
			}
			for i, f := range strings.Fields(w) {
				add(low, f, initial && i == 0, false)
			}
			continue
		}
		if n+1 < len(idx) && n > 0 {
			if w, ok := v.speakDigit(low, strings.ToLower(text[idx[n-1][0]:idx[n-1][1]]), text[idx[n+1][0]:idx[n+1][1]]); ok {
				add(low, w, initial, false)
				continue
			}
		}
		if w, ok := casualNegations[low]; ok {
			add(low, w, initial, false)
			add("not", "not", false, false)
			continue
		}
		if low == "one" && strings.HasPrefix(text[ix[1]:], "-") {
			low = "1" // "one-line", "one-page"
		}
		if isNumber(low) {
			if low == "00" && ix[0] > 0 && text[ix[0]-1] == ':' {
				continue // "06:00" is 6 o'clock
			}
			for _, n := range numbers(low, text[:ix[0]], text[ix[1]:]) {
				add(low, n, initial, false)
			}
			continue
		}
		if o, ok := ordinalDigits[low]; ok {
			add(low, o, initial, false) // "3rd", "21st"
			continue
		}
		if n, ok := roman[low]; ok && (len(low) >= 3 || low == "ii" || strings.ToUpper(chunk) == chunk) {
			// "Basel III", "Louis XIV", "Henry VIII".
			add(low, n, initial, false)
			continue
		}
		if us := v.americanSpelling(low); us != "" && spelling[low] == "" && abbreviations[low] == "" {
			add(low, us, initial, name)
			continue
		}
		if full, ok := v.expand(low); ok {
			for i, w := range strings.Fields(full) {
				add(low, w, initial && i == 0, name)
			}
			continue
		}
		// Letters and digits run together: "100g", "401k", "2mo", "m3".
		parts := alnumRE.FindAllString(low, -1)
		for i, p := range parts {
			full, ok := v.expand(p)
			if !ok || len(parts) == 1 {
				full = p
			}
			for j, w := range strings.Fields(full) {
				add(p, w, initial && i == 0 && j == 0, name)
			}
		}
	}
	contentAfterArticle(out)
	ageOld(out)
	slotNames(out)
	return out
}

// operators of code, read as names where they stand alone.
var operators = set("=== !== := == != <= >= && || ** << >> ?. :: += -= *= /= |> ++")

// standalone: text[i:j] stands between spaces, quotes, backticks or
// brackets, or at an end.
func standalone(text string, i, j int) bool {
	edge := func(c byte) bool { return strings.IndexByte(" \t\n`'\"()[]{},.?!:;", c) >= 0 }
	return (i == 0 || edge(text[i-1])) && (j == len(text) || edge(text[j]))
}

// identifier reads a chunk as a name of code or data: words joined by
// underscores ("customer_id") or dots ("orders.csv", "app.config.ts"; not
// "e.g"), a word whose case changes inside ("calculateTotal",
// "GitLab"; not a closed-class or a lexicon word such as "JavaScript" or
// "mRNA"), or a word in backticks. It returns the identifier as compared
// (lower case, without underscores or a possessive) and a file name's
// extension.
func (v *Verifier) identifier(chunk string, ticked bool) (id, ext string, ok bool) {
	if i := strings.IndexByte(chunk, '\''); i > 0 {
		chunk = chunk[:i]
	}
	low := strings.ToLower(chunk)
	switch {
	case strings.Contains(chunk, "_"):
	case strings.Contains(chunk, "."):
		parts := strings.Split(low, ".")
		long := false
		for _, p := range parts {
			long = long || len(p) >= 3
		}
		if !long || isNumber(low) {
			return "", "", false
		}
		ext = parts[len(parts)-1]
	case ticked:
		if isNumber(low) {
			return "", "", false
		}
	case camel(chunk):
		if _, word := v.lex[low]; word || categories[low] != "" || abbreviations[low] != "" || spelling[low] != "" {
			return "", "", false
		}
	default:
		return "", "", false
	}
	id = strings.Trim(strings.ReplaceAll(low, "_", ""), ".")
	return id, ext, id != ""
}

// camel: a lower-case letter followed by a capital inside the word.
func camel(w string) bool {
	r := []rune(w)
	for i := 1; i < len(r); i++ {
		if unicode.IsLower(r[i-1]) && unicode.IsUpper(r[i]) {
			return true
		}
	}
	return false
}

var tickRE = regexp.MustCompile("`[^`\n]+`")

func backtickSpans(text string) [][]int { return tickRE.FindAllStringIndex(text, -1) }

func inSpans(spans [][]int, i int) bool {
	for _, s := range spans {
		if i > s[0] && i < s[1] {
			return true
		}
	}
	return false
}

// slotNames: a word naming one of the things code and data are made of
// ("the orders table", "the Prices sheet", "the staging namespace") is a
// name: another word in its place names another thing.
// The word must follow a determiner or a preposition of place ("in the
// orders table", "from Prices sheet"; not "to store database passwords"),
// and not be typed in capitals ("CREATE TABLE" is a statement).
func slotNames(ts []token) {
	for i := 0; i+1 < len(ts); i++ {
		t := &ts[i]
		if t.class == classContent && t.cat == "" && slotNouns[ts[i+1].norm] && ts[i+1].class == classContent &&
			i > 0 && slotBefore[ts[i-1].norm] && !slotNouns[t.norm] && !t.caps {
			t.name = true
			t.slot = strings.TrimSuffix(ts[i+1].norm, "s")
		}
	}
}

var slotBefore = set(`the a an my our your their this that its his her in from into on of`)

// slotNouns are the things of code and data that people name.
var slotNouns = set(`table tables column columns sheet sheets tab field fields branch bucket namespace
	schema database repo repository service function method class variable module package
	endpoint topic queue index cluster environment env project folder directory`)

// roman numerals of two letters or more, as people number kings, wars and
// versions; "IV", "VI", "IX", "XI" and "XV" only in capitals ("iv" and
// "vi" are words too).
var roman = map[string]string{"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9",
	"xi": "11", "xii": "12", "xiii": "13", "xiv": "14", "xv": "15", "xvi": "16", "xvii": "17", "xviii": "18", "xix": "19", "xx": "20"}

// sentenceEnds: s ends a sentence, but for spaces.
func sentenceEnds(s string) bool {
	s = strings.TrimRightFunc(s, unicode.IsSpace)
	return s != "" && strings.IndexByte(".!?:;", s[len(s)-1]) >= 0
}

// rates written with a slash are one unit each ("km/h", "m/s").
var (
	rates     = regexp.MustCompile(`(?i)\b(?:km/h|kph|m/s|mi/h|ft/s|km/s|mb/s|gb/s|kb/s|mbit/s|gbit/s)\b`)
	rateWords = map[string]string{"km/h": "kph", "kph": "kph", "m/s": "mps", "mi/h": "mph", "ft/s": "fps", "km/s": "kmps",
		"mb/s": "mbyteps", "gb/s": "gbyteps", "kb/s": "kbyteps", "mbit/s": "mbitps", "gbit/s": "gbitps"}
)

// foldAccents writes accented Latin letters without their accents
// ("crêpes", "café", "naïve").
var foldAccents = strings.NewReplacer(
	"à", "a", "á", "a", "â", "a", "ä", "a", "ã", "a", "å", "a", "ç", "c", "è", "e", "é", "e", "ê", "e", "ë", "e",
	"ì", "i", "í", "i", "î", "i", "ï", "i", "ñ", "n", "ò", "o", "ó", "o", "ô", "o", "ö", "o", "õ", "o",
	"ù", "u", "ú", "u", "û", "u", "ü", "u", "ý", "y", "ÿ", "y",
	"À", "A", "Á", "A", "Â", "A", "Ä", "A", "Ç", "C", "È", "E", "É", "E", "Ê", "E", "Í", "I", "Ñ", "N",
	"Ó", "O", "Ö", "O", "Ú", "U", "Ü", "U",
	// Powers: "x²" is "x^2".
	"²", "^2", "³", "^3", "¹", "^1", "⁴", "^4")

// expand resolves a spelling variant or an abbreviation that is not a word
// of its own in the lexicon.
func (v *Verifier) expand(low string) (string, bool) {
	if sp, ok := spelling[low]; ok {
		return sp, true
	}
	if full, ok := abbreviations[low]; ok {
		return full, true
	}
	return "", false
}

// numbers reads a run of digits, commas and points: "15,230" is one
// number, "(2,3)" and "34,139,34" are several (a comma between groups that
// are not of three digits separates a list); ".05" is 0.05 and "06" is 6.
func numbers(low, before, after string) []string {
	parts := strings.Split(low, ",")
	list := strings.HasPrefix(after, ",") && len(after) > 1 && after[1] >= '0' && after[1] <= '9'
	for _, p := range parts[1:] {
		if len(p) < 3 || p[3:] != "" && p[3] != '.' {
			list = true
		}
	}
	if !list {
		parts = []string{strings.Join(parts, "")}
	}
	for i, p := range parts {
		if i == 0 && strings.HasSuffix(before, ".") && (len(before) < 2 || before[len(before)-2] < '0' || before[len(before)-2] > '9') && !strings.Contains(p, ".") {
			p = "0." + p // "alpha .05"
		}
		if t := strings.TrimLeft(p, "0"); t != "" && t[0] != '.' {
			p = t
		}
		parts[i] = p
	}
	return parts
}

// ordinalDigits are ordinals written with digits, read as words.
var ordinalDigits = map[string]string{"1st": "first", "2nd": "second", "3rd": "third", "4th": "fourth", "5th": "fifth",
	"6th": "sixth", "7th": "seventh", "8th": "eighth", "9th": "ninth", "10th": "tenth"}

func isNumber(s string) bool {
	for i := range len(s) {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' && s[i] != ',' {
			return false
		}
	}
	return s != ""
}

func (v *Verifier) classify(t *token) {
	w := t.norm
	switch {
	case isNumber(w):
		t.class = classNumber
	case numberWords[w] != "":
		t.class, t.norm = classNumber, numberWords[w]
	case negation[w] != "":
		t.class, t.norm = classNegation, negation[w]
	case relational[w] != "":
		t.class, t.norm = classRelational, relational[w]
	case categories[w] != "" && !stop[w]:
		t.class, t.cat = classContent, categories[w]
	case stop[w]:
		t.class = classStop
	case filler[w]:
		t.class = classFiller
	default:
		t.class = classContent
		if base := v.base(w); categories[base] != "" {
			t.cat = categories[base]
		} else if v.superlative(w) {
			t.cat = "degree"
		}
	}
}

// superlative: a word in -est whose stem is an adjective ("lowest",
// "largest", "biggest", "easiest").
func (v *Verifier) superlative(w string) bool {
	stem, ok := strings.CutSuffix(w, "est")
	if !ok || len(stem) < 2 {
		return false
	}
	cands := []string{stem, stem + "e"}
	if n := len(stem); n > 2 && stem[n-1] == stem[n-2] {
		cands = append(cands, stem[:n-1]) // bigg → big
	}
	if strings.HasSuffix(stem, "i") {
		cands = append(cands, stem[:len(stem)-1]+"y") // easi → easy
	}
	for _, c := range cands {
		if len(c) >= 3 && strings.Contains(v.lex[c].pos, "a") {
			return true
		}
	}
	return false
}

// contentAfterArticle: a framing word after an article is a noun of the
// question ("the mean of X", "a guide to Y"): content after all.
func contentAfterArticle(ts []token) {
	for i := 1; i < len(ts); i++ {
		if ts[i].class == classFiller {
			switch ts[i-1].norm {
			case "the", "a", "an":
				ts[i].class = classContent
				ts[i].cat = categories[ts[i].norm]
			}
		}
	}
}

// base is a word's first lemma, or the word.
func (v *Verifier) base(w string) string {
	if e, ok := v.lex[w]; ok && len(e.lemmas) > 0 {
		return e.lemmas[0]
	}
	return w
}

// isName: capitalised and not merely the first word of a sentence; an
// acronym ("API", "HSA") is no name: people type it in capitals or not.
func isName(raw string, initial bool) bool {
	r := []rune(raw)
	if len(r) == 0 || !unicode.IsUpper(r[0]) || len(r) > 1 && unicode.IsUpper(r[1]) {
		return false
	}
	return !initial
}

// infinitive reports whether token i ("to") starts an infinitive ("how to
// cook", "the best way to learn") rather than a direction: the next word
// can be a verb and the one before is not a content word that "to" could
// complete ("convert km to miles").
func (v *Verifier) infinitive(ts []token, i int) bool {
	if i+1 >= len(ts) || !strings.Contains(v.lex[ts[i+1].norm].pos, "v") {
		return false
	}
	if i == 0 {
		return true
	}
	prev := ts[i-1]
	return prev.class != classContent || infinitiveAfter[prev.norm] || strings.Contains(v.lex[prev.norm].pos, "v") && !strings.Contains(v.lex[ts[i+1].norm].pos, "n")
}

// infinitiveAfter are content words after which "to" + verb is an
// infinitive.
var infinitiveAfter = set(`want wants wanted need needs like try trying tried able going used order
	best easiest fastest cheapest simplest quickest possible learn where when whether who good better
	safe okay ok time way ways steps how`)

// ageOld: "old" after a unit of time is an age ("a 3-year-old", "2 months
// old"), not the opposite of "new".
func ageOld(ts []token) {
	for i := 1; i < len(ts); i++ {
		if ts[i].norm == "old" && ts[i-1].cat == "unit" {
			ts[i].class, ts[i].cat = classStop, ""
		}
	}
}
