package config

import (
	"sort"
	"strconv"
	"strings"
)

// BurntSushi/toml reports no position for a decoded key, so this file finds
// the line of every key itself. It runs only on text the TOML parser has
// already accepted, so it can be lenient; it must still never panic or loop.

// seg is one element of a key path: a key, and for an element of an array of
// tables its index (idx is -1 otherwise).
type seg struct {
	name string
	idx  int
}

// occurrence is one key written in the file, with its full path.
type occurrence struct {
	path   []seg
	line   int
	header string // "[" or "[[" when the key is a table header, else ""
}

type locator struct {
	src    string
	i      int
	starts []int          // byte offset of each line's start
	occ    []occurrence   // every key, in document order
	first  map[string]int // canon(path) -> line where the path first appears
	arrays map[string]int // canon(path) of an array of tables -> elements so far
	table  []seg          // the current [table]
}

// locate returns the keys of src with their lines.
func locate(src string) *locator {
	l := &locator{
		src:    src,
		starts: []int{0},
		first:  map[string]int{},
		arrays: map[string]int{},
	}
	for i := 0; i < len(src); i++ {
		if src[i] == '\n' {
			l.starts = append(l.starts, i+1)
		}
	}
	if strings.HasPrefix(src, "\ufeff") {
		l.i = len("\ufeff") // a byte order mark
	}
	for l.i < len(src) {
		at := l.i
		l.skipBlank(true)
		if l.i >= len(src) {
			break
		}
		if src[l.i] == '[' {
			l.header()
		} else {
			l.keyval(l.table)
		}
		l.skipBlank(false)
		if l.i == at {
			l.i++ // never loop
		}
	}
	return l
}

// lineAt returns the 1-based line of byte offset off.
func (l *locator) lineAt(off int) int {
	return sort.Search(len(l.starts), func(n int) bool { return l.starts[n] > off })
}

// line returns the line where path first appears, falling back to its
// closest ancestor; 0 when none is known.
func (l *locator) line(path []seg) int {
	for n := len(path); n > 0; n-- {
		if ln, ok := l.first[canon(path[:n])]; ok {
			return ln
		}
		if ln, ok := l.first[canonBare(path[:n])]; ok {
			return ln
		}
	}
	return 0
}

func (l *locator) record(path []seg, line int, header string) {
	p := append([]seg(nil), path...)
	l.occ = append(l.occ, occurrence{path: p, line: line, header: header})
	for n := 1; n <= len(p); n++ {
		for _, k := range []string{canon(p[:n]), canonBare(p[:n])} {
			if _, ok := l.first[k]; !ok {
				l.first[k] = line
			}
		}
	}
}

// canon names a path unambiguously: "\"backend\"[1].\"name\"".
func canon(path []seg) string {
	var b strings.Builder
	for n, s := range path {
		if n > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Quote(s.name))
		if s.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(s.idx) + "]")
		}
	}
	return b.String()
}

// canonBare is canon without the index of the last element: the array itself.
func canonBare(path []seg) string {
	last := path[len(path)-1]
	last.idx = -1
	return canon(append(path[:len(path)-1:len(path)-1], last))
}

// skipBlank skips spaces, tabs and comments, and newlines when nl is set.
func (l *locator) skipBlank(nl bool) {
	for l.i < len(l.src) {
		switch c := l.src[l.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			l.i++
		case c == '\n' && nl:
			l.i++
		case c == '#':
			for l.i < len(l.src) && l.src[l.i] != '\n' {
				l.i++
			}
		default:
			return
		}
	}
}

func (l *locator) header() {
	line := l.lineAt(l.i)
	l.i++
	kind := "["
	if l.i < len(l.src) && l.src[l.i] == '[' {
		kind = "[["
		l.i++
	}
	names := l.keyPath()
	for l.i < len(l.src) && l.src[l.i] == ']' {
		l.i++
	}
	var path []seg
	for n, name := range names {
		s := seg{name: name, idx: -1}
		k := canon(append(path, s))
		if kind == "[[" && n == len(names)-1 {
			s.idx = l.arrays[k]
			l.arrays[k]++
		} else if c, ok := l.arrays[k]; ok && c > 0 {
			s.idx = c - 1 // a table inside the latest element
		}
		path = append(path, s)
	}
	if len(path) == 0 {
		return
	}
	l.record(path, line, kind)
	l.table = path
}

// keyval reads "key = value" in the table at prefix.
func (l *locator) keyval(prefix []seg) {
	line := l.lineAt(l.i)
	names := l.keyPath()
	if len(names) == 0 {
		return
	}
	path := append([]seg(nil), prefix...)
	for _, name := range names {
		path = append(path, seg{name: name, idx: -1})
	}
	l.record(path, line, "")
	l.skipBlank(false)
	if l.i >= len(l.src) || l.src[l.i] != '=' {
		return
	}
	l.i++
	l.skipBlank(false)
	l.value(path)
}

// keyPath reads a dotted key of bare and quoted parts.
func (l *locator) keyPath() []string {
	var names []string
	for {
		l.skipBlank(false)
		if l.i >= len(l.src) {
			return names
		}
		switch l.src[l.i] {
		case '"':
			names = append(names, l.basic())
		case '\'':
			names = append(names, l.literal())
		default:
			start := l.i
			for l.i < len(l.src) && !strings.ContainsRune(" \t\r\n.=[]{},#\"'", rune(l.src[l.i])) {
				l.i++
			}
			if l.i == start {
				return names
			}
			names = append(names, l.src[start:l.i])
		}
		l.skipBlank(false)
		if l.i >= len(l.src) || l.src[l.i] != '.' {
			return names
		}
		l.i++
	}
}

// basic reads a one-line "basic string" and returns its value.
func (l *locator) basic() string {
	start := l.i
	l.i++
	for l.i < len(l.src) && l.src[l.i] != '"' && l.src[l.i] != '\n' {
		if l.src[l.i] == '\\' {
			l.i++
		}
		l.i++
	}
	if l.i < len(l.src) && l.src[l.i] == '"' {
		l.i++
	}
	raw := l.src[start:min(l.i, len(l.src))]
	if s, err := strconv.Unquote(raw); err == nil {
		return s
	}
	return strings.Trim(raw, `"`)
}

// literal reads a one-line 'literal string' and returns its value.
func (l *locator) literal() string {
	l.i++
	start := l.i
	for l.i < len(l.src) && l.src[l.i] != '\'' && l.src[l.i] != '\n' {
		l.i++
	}
	s := l.src[start:l.i]
	if l.i < len(l.src) && l.src[l.i] == '\'' {
		l.i++
	}
	return s
}

// value skips a value; inline tables inside it are keys of path.
func (l *locator) value(path []seg) {
	if l.i >= len(l.src) {
		return
	}
	switch c := l.src[l.i]; {
	case strings.HasPrefix(l.src[l.i:], `"""`) || strings.HasPrefix(l.src[l.i:], `'''`):
		l.multiline(l.src[l.i:l.i+3], c == '"')
	case c == '"':
		l.basic()
	case c == '\'':
		l.literal()
	case c == '[':
		l.array(path)
	case c == '{':
		l.inline(path)
	default:
		for l.i < len(l.src) && !strings.ContainsRune(",]}\n#", rune(l.src[l.i])) {
			l.i++
		}
	}
}

// multiline skips a """multi-line""" or ”'multi-line”' string.
func (l *locator) multiline(delim string, escapes bool) {
	l.i += 3
	for l.i < len(l.src) {
		if escapes && l.src[l.i] == '\\' {
			l.i += 2
			continue
		}
		if strings.HasPrefix(l.src[l.i:], delim) {
			l.i += 3
			// Up to two quotes may end the content: """a""""" is `a""`.
			for n := 0; n < 2 && l.i < len(l.src) && l.src[l.i] == delim[0]; n++ {
				l.i++
			}
			return
		}
		l.i++
	}
}

// array skips an array; an inline table that is its n-th element holds keys
// of path with index n, as a [[table]] would.
func (l *locator) array(path []seg) {
	l.i++
	n := 0
	for l.i < len(l.src) {
		at := l.i
		l.skipBlank(true)
		if l.i >= len(l.src) {
			return
		}
		switch l.src[l.i] {
		case ']':
			l.i++
			return
		case ',':
			l.i++
			continue
		case '{':
			elem := append([]seg(nil), path...)
			if len(elem) > 0 {
				elem[len(elem)-1].idx = n
			}
			l.inline(elem)
		default:
			l.value(path)
		}
		n++
		if l.i == at {
			l.i++
		}
	}
}

// inline reads an { inline = "table" } whose keys belong to path.
func (l *locator) inline(path []seg) {
	l.i++
	for l.i < len(l.src) {
		at := l.i
		l.skipBlank(true) // TOML 1.1 allows newlines in inline tables
		if l.i >= len(l.src) {
			return
		}
		switch l.src[l.i] {
		case '}':
			l.i++
			return
		case ',':
			l.i++
		default:
			l.keyval(path)
		}
		if l.i == at {
			l.i++
		}
	}
}
