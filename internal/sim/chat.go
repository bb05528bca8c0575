package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lbgpt/lbgpt/internal/tokens"
)

type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Completion length bounds, in tokens, before any max_tokens cap.
const (
	minAnswer = 16
	maxAnswer = 96
)

// echoWords is how many words of the last user message an answer echoes.
const echoWords = 8

func (c *call) chat() {
	var req chatRequest
	if err := json.Unmarshal(c.body, &req); err != nil {
		c.badJSON()
		return
	}
	c.rec.Stream = req.Stream
	model, ok := c.model(req.Model)
	if !ok {
		return
	}
	if isEmbedding(model) {
		c.fail(http.StatusNotFound, "This is not a chat model and thus not supported in the v1/chat/completions endpoint.", "invalid_request_error", "model", "")
		return
	}
	msgs, ok := c.messages(req.Messages)
	if !ok {
		return
	}
	limit := 0
	for _, p := range []struct {
		name string
		v    *int
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if p.v == nil {
			continue
		}
		if *p.v < 1 {
			c.fail(http.StatusBadRequest, "Invalid '"+p.name+"': integer below minimum value. Expected a value >= 1, but got "+strconv.Itoa(*p.v)+" instead.", "invalid_request_error", p.name, "integer_below_min_value")
			return
		}
		limit = *p.v // max_completion_tokens wins when both are set
	}
	if req.StreamOptions != nil && !req.Stream {
		c.fail(http.StatusBadRequest, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "invalid_request_error", "stream_options", "")
		return
	}

	c.drawFault(req.Stream)
	if c.earlyFault() {
		return
	}

	rep := c.s.replies.get(model, msgs)
	n, finish := rep.target, "stop"
	if limit > 0 && limit < n {
		n, finish = limit, "length"
	}
	cost := rep.prompt + n
	if limit > 0 {
		cost = rep.prompt + limit
	}
	if !c.admitOrRefuse(model, cost) {
		return
	}
	c.rec.PromptTokens, c.rec.CompletionTokens = rep.prompt, n
	parts := rep.parts(n)
	if req.Stream {
		c.stream(model, rep, parts, finish, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	if !c.sleep(c.acct.TTFT + time.Duration(n-1)*c.acct.PerToken) {
		return // the client went away
	}
	b := getBuf()
	defer putBuf(b)
	o := append(*b, `{"id":`...)
	o = appendID(o, rep)
	o = append(o, `,"object":"chat.completion","created":`...)
	o = strconv.AppendInt(o, c.rec.Time.Unix(), 10)
	o = append(o, `,"model":`...)
	o = appendString(o, model)
	o = append(o, `,"choices":[{"index":0,"message":{"role":"assistant","content":"`...)
	for _, p := range parts {
		if p.space {
			o = append(o, ' ')
		}
		o = appendEscaped(o, p.word)
	}
	o = append(o, `","refusal":null},"logprobs":null,"finish_reason":"`...)
	o = append(o, finish...)
	o = append(o, `"}],"usage":`...)
	o = appendUsage(o, rep.prompt, n)
	o = append(o, `,"system_fingerprint":"fp_sim"}`+"\n"...)
	*b = o
	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o = o[:len(o)/2]
	}
	c.send(http.StatusOK, o)
}

func (c *call) badJSON() {
	c.fail(http.StatusBadRequest, "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.", "invalid_request_error", "", "")
}

// messages validates the request's messages and converts them for counting.
func (c *call) messages(in []chatMessage) ([]tokens.Message, bool) {
	if in == nil {
		c.fail(http.StatusBadRequest, "Missing required parameter: 'messages'.", "invalid_request_error", "messages", "missing_required_parameter")
		return nil, false
	}
	if len(in) == 0 {
		c.fail(http.StatusBadRequest, "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "invalid_request_error", "messages", "empty_array")
		return nil, false
	}
	out := make([]tokens.Message, len(in))
	for i, m := range in {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool", "function":
		default:
			c.fail(http.StatusBadRequest, "Invalid value: '"+m.Role+"'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.", "invalid_request_error", "messages["+strconv.Itoa(i)+"].role", "invalid_value")
			return nil, false
		}
		text, ok := contentText(m.Content)
		if !ok {
			c.fail(http.StatusBadRequest, "Invalid type for 'messages["+strconv.Itoa(i)+"].content': expected a string, an array of content parts or null.", "invalid_request_error", "messages["+strconv.Itoa(i)+"].content", "invalid_type")
			return nil, false
		}
		out[i] = tokens.Message{Role: m.Role, Name: m.Name, Content: text}
	}
	return out, true
}

// contentText returns the text of a message content: a string, an array of
// content parts (text parts joined by newlines, other parts ignored) or null.
func contentText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	switch raw[0] {
	case '"':
		var s string
		return s, json.Unmarshal(raw, &s) == nil
	case '[':
		var parts []contentPart
		if json.Unmarshal(raw, &parts) != nil {
			return "", false
		}
		var b strings.Builder
		for _, p := range parts {
			if p.Type != "text" {
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
		return b.String(), true
	}
	return "", false
}

func isEmbedding(model string) bool { return strings.Contains(tokens.Canonical(model), "embed") }

func appendID(o []byte, rep *reply) []byte {
	o = append(o, `"chatcmpl-sim-`...)
	o = hex.AppendEncode(o, rep.sum[:12])
	return append(o, '"')
}

func appendUsage(o []byte, prompt, completion int) []byte {
	o = append(o, `{"prompt_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt), 10)
	o = append(o, `,"completion_tokens":`...)
	o = strconv.AppendInt(o, int64(completion), 10)
	o = append(o, `,"total_tokens":`...)
	o = strconv.AppendInt(o, int64(prompt+completion), 10)
	return append(o, '}')
}

// stream answers with server-sent events in OpenAI's framing.
func (c *call) stream(model string, rep *reply, parts []part, finish string, usage bool) {
	h := c.w.Header()
	h["Content-Type"] = contentStream
	h["Cache-Control"] = noCache
	c.requestID()
	c.w.WriteHeader(http.StatusOK)
	c.rec.Status = http.StatusOK
	rc := http.NewResponseController(c.w)
	b := getBuf()
	defer putBuf(b)

	head := append((*b)[:0], `data: {"id":`...)
	head = appendID(head, rep)
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = strconv.AppendInt(head, c.rec.Time.Unix(), 10)
	head = append(head, `,"model":`...)
	head = appendString(head, model)
	head = append(head, `,"system_fingerprint":"fp_sim","choices":[`...)
	*b = head
	n := len(head)
	tail := "}\n\n"
	if usage {
		tail = `,"usage":null}` + "\n\n"
	}
	emit := func(o []byte) bool {
		*b = o
		if _, err := c.w.Write(o); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	if c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o := append((*b)[:n], `{"index":0,"delta":{"role":`...)
		c.finish()
		emit(append(o, "\n\ndata: [DONE]\n\n"...))
		return
	}
	o := append((*b)[:n], `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`...)
	if !emit(append(o, tail...)) {
		return
	}
	cut := -1
	if c.fault == FaultStreamBreak {
		cut = len(parts) / 2
	}
	for i, p := range parts {
		if i == cut {
			c.rec.Fault = c.fault
			c.cut(false)
			return
		}
		delay := time.Duration(p.tokens) * c.acct.PerToken
		if i == 0 {
			delay = c.acct.TTFT + time.Duration(p.tokens-1)*c.acct.PerToken
		}
		if !c.sleep(delay) {
			return
		}
		o := append((*b)[:n], `{"index":0,"delta":{"content":"`...)
		if p.space {
			o = append(o, ' ')
		}
		o = appendEscaped(o, p.word)
		o = append(o, `"},"logprobs":null,"finish_reason":null}]`...)
		if !emit(append(o, tail...)) {
			return
		}
	}
	c.finish() // before the end is visible, so Log agrees with what the client saw
	o = append((*b)[:n], `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`...)
	o = append(o, finish...)
	o = append(o, `"}]`...)
	if !emit(append(o, tail...)) {
		return
	}
	if usage {
		o = append((*b)[:n], `],"usage":`...)
		o = appendUsage(o, rep.prompt, c.rec.CompletionTokens)
		if !emit(append(o, "}\n\n"...)) {
			return
		}
	}
	emit(append((*b)[:0], "data: [DONE]\n\n"...))
}

// reply is the uncapped answer to a list of messages on one encoding.
type reply struct {
	sum    [32]byte // hash of the messages
	prompt int      // prompt tokens
	words  []string // `Simulated answer to "echo…".` split at spaces
	counts []int    // tokens of each word, with its leading space after the first
	total  int      // sum of counts
	target int      // completion tokens when uncapped, in [minAnswer, maxAnswer]
}

// part is one piece of an answer's text, and one content chunk of a stream.
type part struct {
	space  bool // preceded by a space
	word   string
	tokens int
}

// filler words are one token each, with and without a leading space, in
// every encoding package tokens uses (a test checks), and a space-separated
// word never shares a token with its neighbours, so an answer's tokens add up
// word by word.
var filler = strings.Fields(`the of and to in is that for it as with was on be by this are from or at an
which but not have has more can will one all their there been when what time about also into data
model system value result request answer simple clear first new some other could would than
then them these only over such most well many very just like make each where after before because
through between under while should those both same given level point state order number field
table record token stream cache route limit queue worker server client signal sample vector random
steady quiet bright river stone cloud paper window market letter`)

// parts returns the answer cut or padded to exactly n tokens.
func (r *reply) parts(n int) []part {
	out := make([]part, 0, len(r.words)+max(0, n-r.total)+1)
	rng := rand.NewPCG(binary.LittleEndian.Uint64(r.sum[8:]), binary.LittleEndian.Uint64(r.sum[16:]))
	used := 0
	for i, w := range r.words {
		if used+r.counts[i] > n {
			break
		}
		out = append(out, part{space: i > 0, word: w, tokens: r.counts[i]})
		used += r.counts[i]
	}
	dot := used == r.total && n-used >= 2 // a whole echo and room for a filler: end with a period
	if dot {
		n--
	}
	for ; used < n; used++ {
		out = append(out, part{space: len(out) > 0, word: filler[rng.Uint64()%uint64(len(filler))], tokens: 1})
	}
	if dot {
		out = append(out, part{word: ".", tokens: 1})
	}
	return out
}

func newReply(model string, msgs []tokens.Message, sum [32]byte) *reply {
	r := &reply{
		sum:    sum,
		prompt: tokens.CountMessages(model, msgs),
		target: minAnswer + int(binary.BigEndian.Uint64(sum[:8])%(maxAnswer-minAnswer+1)),
	}
	last := msgs[len(msgs)-1].Content
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			last = msgs[i].Content
			break
		}
	}
	words := firstWords(last, echoWords+1)
	echo := strings.Join(words[:min(len(words), echoWords)], " ")
	if len(words) > echoWords {
		echo += "…"
	}
	r.words = strings.Split(`Simulated answer to "`+echo+`".`, " ")
	r.counts = make([]int, len(r.words))
	for i, w := range r.words {
		if i > 0 {
			w = " " + w
		}
		r.counts[i] = tokens.Count(model, w)
		r.total += r.counts[i]
	}
	return r
}

// firstWords returns up to n leading whitespace-separated words of s.
func firstWords(s string, n int) []string {
	var out []string
	for len(out) < n {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		if s == "" {
			break
		}
		end := strings.IndexFunc(s, unicode.IsSpace)
		if end < 0 {
			end = len(s)
		}
		w := s[:end]
		if !utf8.ValidString(w) {
			w = strings.ToValidUTF8(w, "\uFFFD")
		}
		out = append(out, w)
		s = s[end:]
	}
	return out
}

// hashMessages returns a hash of everything in msgs that shapes an answer.
func hashMessages(msgs []tokens.Message) [32]byte {
	h := sha256.New()
	var n [8]byte
	for _, m := range msgs {
		for _, s := range []string{m.Role, m.Name, m.Content} {
			binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// replyCache keeps recent replies, because counting tokens is the costly part
// of an answer and tests and benchmarks repeat prompts.
type replyCache struct {
	mu sync.Mutex // guards m
	m  map[replyKey]*reply
}

type replyKey struct {
	encoding string
	sum      [32]byte
}

const replyCacheSize = 4096

func (rc *replyCache) get(model string, msgs []tokens.Message) *reply {
	key := replyKey{tokens.Encoding(model), hashMessages(msgs)}
	rc.mu.Lock()
	r := rc.m[key]
	rc.mu.Unlock()
	if r != nil {
		return r
	}
	r = newReply(model, msgs, key.sum)
	rc.mu.Lock()
	if rc.m == nil || len(rc.m) >= replyCacheSize {
		rc.m = make(map[replyKey]*reply)
	}
	rc.m[key] = r
	rc.mu.Unlock()
	return r
}
