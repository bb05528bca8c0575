// Package tokens counts tokens the way OpenAI's models do, offline.
//
// It wraps tiktoken-go with the encodings compiled into the binary
// (tiktoken-go-loader), so counting never touches the network. Each encoding
// is loaded once, on first use (loading o200k_base takes a few hundred
// milliseconds); after that Count is safe for concurrent use by any number of
// goroutines.
//
// Models are mapped to encodings by name prefix, with a table kept here
// because tiktoken-go's own table predates the newer models:
//
//	gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*, chatgpt-4o*  → o200k_base
//	gpt-4*, gpt-3.5*, gpt-35* (Azure), text-embedding-*               → cl100k_base
//	anything else                                                    → o200k_base
//
// Unknown models use o200k_base because every current OpenAI model does; for
// other vendors' models the count is an estimate of the right magnitude. Names
// are matched case-insensitively after stripping decorations: a provider
// prefix ("openai/gpt-4o") and a fine-tune wrapper
// ("ft:gpt-4o-mini:org::id" counts as gpt-4o-mini). An Azure deployment name
// is not a model name: map it to its model before asking.
package tokens

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	tiktoken "github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// Encoding names returned by Encoding.
const (
	O200kBase  = "o200k_base"
	Cl100kBase = "cl100k_base"
)

// Message is one chat message as CountMessages sees it.
type Message struct {
	Role, Name, Content string
}

// Chat accounting constants from OpenAI's cookbook ("How to count tokens
// with tiktoken"), valid for every gpt-3.5-turbo-0613-and-later chat model.
const (
	perMessage = 3 // <|start|>{role/name}\n{content}<|end|>\n
	perName    = 1 // a name field costs one more token
	perReply   = 3 // every reply is primed with <|start|>assistant<|message|>
)

// The loader is set before any encoding can load; tiktoken-go keeps it in a
// plain package variable, so it must not be assigned concurrently with use.
func init() {
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
}

var (
	o200k  = sync.OnceValues(func() (*tiktoken.Tiktoken, error) { loads.Add(1); return tiktoken.GetEncoding(O200kBase) })
	cl100k = sync.OnceValues(func() (*tiktoken.Tiktoken, error) { loads.Add(1); return tiktoken.GetEncoding(Cl100kBase) })
	loads  atomic.Int32 // encodings loaded, for tests
)

// prefixes maps model-name prefixes to encodings; the first match wins, so
// longer prefixes come before the shorter ones they extend.
var prefixes = []struct{ prefix, encoding string }{
	{"gpt-4o", O200kBase},
	{"gpt-4.1", O200kBase},
	{"gpt-4.5", O200kBase},
	{"gpt-5", O200kBase},
	{"chatgpt-4o", O200kBase},
	{"o1", O200kBase},
	{"o3", O200kBase},
	{"o4", O200kBase},
	{"gpt-4", Cl100kBase},
	{"gpt-3.5", Cl100kBase},
	{"gpt-35", Cl100kBase},
	{"text-embedding-", Cl100kBase},
}

// Encoding returns the name of the encoding used for model: "o200k_base" or
// "cl100k_base".
func Encoding(model string) string {
	m := Canonical(model)
	for _, p := range prefixes {
		if strings.HasPrefix(m, p.prefix) {
			return p.encoding
		}
	}
	return O200kBase
}

// Canonical returns model stripped of the decorations Encoding ignores:
// surrounding space, letter case, a provider prefix ("openai/gpt-4o") and a
// fine-tune wrapper ("ft:gpt-4o-mini:org::id" → "gpt-4o-mini").
func Canonical(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndexByte(m, '/'); i >= 0 {
		m = m[i+1:]
	}
	if rest, ok := strings.CutPrefix(m, "ft:"); ok {
		m, _, _ = strings.Cut(rest, ":")
	}
	return m
}

func encoder(model string) *tiktoken.Tiktoken {
	get := o200k
	if Encoding(model) == Cl100kBase {
		get = cl100k
	}
	enc, err := get()
	if err != nil {
		// The encodings are compiled in; failing to load one is a build
		// defect, not a run-time condition callers could handle.
		panic("tokens: load encoding: " + err.Error())
	}
	return enc
}

// Load loads every encoding the package uses, so that later calls do not
// pay for it (about a second of CPU in all); safe to call concurrently
// with anything and more than once.
func Load() {
	encoder("gpt-4o")
	encoder("gpt-4")
}

// Count returns the number of tokens text encodes to for model. Special
// tokens such as "<|endoftext|>" are counted as ordinary text, as the API
// does for user content.
func Count(model, text string) int {
	if text == "" {
		return 0
	}
	return len(encoder(model).EncodeOrdinary(text))
}

// CountMessages returns the prompt tokens a chat request with msgs costs on
// model, by OpenAI's accounting: 3 tokens per message plus the tokens of its
// role, content and name (and 1 more when it has a name), plus 3 that prime
// the reply.
func CountMessages(model string, msgs []Message) int {
	return countMessages(encoder(model), msgs, count)
}

// countMessages applies the chat accounting with content counted by
// content.
func countMessages(enc *tiktoken.Tiktoken, msgs []Message, content func(*tiktoken.Tiktoken, string) int) int {
	n := perReply
	for _, m := range msgs {
		n += perMessage + count(enc, m.Role) + content(enc, m.Content)
		if m.Name != "" {
			n += perName + count(enc, m.Name)
		}
	}
	return n
}

// Estimates: a text up to exactLimit bytes is counted exactly; a longer
// one by windows of it. A BPE pass costs about 100 bytes of garbage per
// byte of text (an 8 MB prompt: 700 MB), which admission cannot spend on
// every request; a few windows spread over the text give its
// tokens-per-byte within a few percent on any text that does not change
// its nature between them.
const (
	exactLimit = 32 << 10
	windows    = 16
	windowSize = 4 << 10
)

// Estimate is Count for admission: exact up to 32 KiB, sampled beyond.
func Estimate(model, text string) int {
	if text == "" {
		return 0
	}
	return estimate(encoder(model), text)
}

// EstimateMessages is CountMessages for admission: each text exact up to
// 32 KiB, sampled beyond.
func EstimateMessages(model string, msgs []Message) int {
	return countMessages(encoder(model), msgs, estimate)
}

// Counts of the texts admission met lately, by content: a chat resends
// its whole history every turn, and system prompts and pasted context
// repeat across requests, so most of a request's text was counted before.
// Texts shorter than cachedMin cost less to count than to look up.
const (
	cachedMin   = 256
	cachedTexts = 4096
)

// counted keys a text by its encoder, a 64-bit hash and its length: a
// collision (one in 2^64 per pair) would misjudge an estimate, which the
// upstream's usage corrects after the call.
type counted struct {
	enc  *tiktoken.Tiktoken
	hash uint64
	n    int
}

var (
	seed      = maphash.MakeSeed()
	estimates = func() *lru.Cache[counted, int] {
		c, err := lru.New[counted, int](cachedTexts)
		if err != nil {
			panic(err)
		}
		return c
	}()
)

// estimate is estimateText, remembered for the texts worth it.
func estimate(enc *tiktoken.Tiktoken, s string) int {
	if len(s) < cachedMin {
		return estimateText(enc, s)
	}
	k := counted{enc, maphash.String(seed, s), len(s)}
	if n, ok := estimates.Get(k); ok {
		return n
	}
	n := estimateText(enc, s)
	estimates.Add(k, n)
	return n
}

// estimateText counts s exactly when it is short, else scales the tokens of
// evenly spaced windows (cut at spaces, so no window splits a word) to its
// length.
func estimateText(enc *tiktoken.Tiktoken, s string) int {
	if len(s) <= exactLimit {
		return count(enc, s)
	}
	var toks, bytes int
	step := (len(s) - windowSize) / (windows - 1)
	for i := range windows {
		w := s[atSpace(s, i*step):atSpace(s, i*step+windowSize)]
		toks += count(enc, w)
		bytes += len(w)
	}
	if bytes == 0 {
		return count(enc, s)
	}
	return int((int64(toks)*int64(len(s)) + int64(bytes) - 1) / int64(bytes))
}

// atSpace moves i forward to the next space within 64 bytes, else to the
// next character boundary; at most len(s).
func atSpace(s string, i int) int {
	if i >= len(s) {
		return len(s)
	}
	if j := strings.IndexByte(s[i:min(len(s), i+64)], ' '); j >= 0 {
		return i + j
	}
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return i
}

// Truncate returns the longest prefix of text, cut at a token boundary, that
// encodes to at most n tokens for model, and its token count. A cut that would
// split a UTF-8 sequence backs off to the previous whole character.
func Truncate(model, text string, n int) (string, int) {
	if n <= 0 || text == "" {
		return "", 0
	}
	enc := encoder(model)
	ids := enc.EncodeOrdinary(text)
	if len(ids) <= n {
		return text, len(ids)
	}
	for k := n; k > 0; k-- {
		s := enc.Decode(ids[:k])
		if !utf8.ValidString(s) || !strings.HasPrefix(text, s) {
			continue
		}
		if c := count(enc, s); c <= n {
			return s, c
		}
	}
	return "", 0
}

func count(enc *tiktoken.Tiktoken, s string) int {
	if s == "" {
		return 0
	}
	return len(enc.EncodeOrdinary(s))
}
