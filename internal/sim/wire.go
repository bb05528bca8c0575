package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"
)

var (
	contentJSON   = []string{"application/json"}
	contentStream = []string{"text/event-stream; charset=utf-8"}
	noCache       = []string{"no-cache"}
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuf() *[]byte { b := bufPool.Get().(*[]byte); *b = (*b)[:0]; return b }

func putBuf(b *[]byte) {
	if cap(*b) <= 1<<20 {
		bufPool.Put(b)
	}
}

// send writes a complete JSON answer.
func (c *call) send(status int, body []byte) {
	h := c.w.Header()
	h["Content-Type"] = contentJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if c.acct != nil && !c.limitsSent {
		c.limitHeaders(c.peek())
	}
	c.requestID()
	if status >= 200 && status < 300 {
		c.processingMS()
	}
	c.rec.Status = status
	c.finish() // before the client can see the answer, so Log agrees with it
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

func (c *call) requestID() {
	c.w.Header()["X-Request-Id"] = []string{"req_sim_" + strconv.FormatUint(c.s.seq.Add(1), 10)}
}

// processingMS sets the openai-processing-ms header of a 2xx answer to the
// simulated latency.
func (c *call) processingMS() {
	c.w.Header()["Openai-Processing-Ms"] = []string{strconv.FormatInt(c.latency.Milliseconds(), 10)}
}

// sendJSON answers with v marshalled, HTML characters left unescaped as
// OpenAI leaves them; a malformed fault drawn for the request cuts the body
// in half.
func (c *call) sendJSON(status int, v any) {
	o := marshal(v)
	if status == http.StatusOK && c.fault == FaultMalformed {
		c.rec.Fault = c.fault
		o = o[:len(o)/2]
	}
	c.send(status, o)
}

// marshal returns v as compact JSON followed by a newline, without escaping
// HTML characters. The values marshalled here cannot fail to marshal.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("sim: marshal: " + err.Error())
	}
	return b.Bytes()
}

// marshalLine is marshal without the trailing newline, for an event's data.
func marshalLine(v any) []byte { return bytes.TrimSuffix(marshal(v), []byte("\n")) }

// fail answers with OpenAI's error body shape; empty param and code are null.
func (c *call) fail(status int, message, typ, param, code string) {
	b := getBuf()
	defer putBuf(b)
	o := append(*b, `{"error":{"message":`...)
	o = appendString(o, message)
	o = append(o, `,"type":`...)
	o = appendString(o, typ)
	o = append(o, `,"param":`...)
	o = appendNullable(o, param)
	o = append(o, `,"code":`...)
	o = appendNullable(o, code)
	o = append(o, "}}\n"...)
	*b = o
	c.send(status, o)
}

// failAzure answers with Azure's error body shape.
func (c *call) failAzure(status int, code, message string) {
	b := getBuf()
	defer putBuf(b)
	o := append(*b, `{"error":{"code":`...)
	o = appendString(o, code)
	o = append(o, `,"message":`...)
	o = appendString(o, message)
	o = append(o, "}}\n"...)
	*b = o
	c.send(status, o)
}

// modelCreated is the creation time reported for every model.
const modelCreated = 1700000000

func modelListBody(models []string) []byte {
	o := []byte(`{"object":"list","data":[`)
	for i, m := range models {
		if i > 0 {
			o = append(o, ',')
		}
		o = append(o, `{"id":`...)
		o = appendString(o, m)
		o = append(o, `,"object":"model","created":`...)
		o = strconv.AppendInt(o, modelCreated, 10)
		o = append(o, `,"owned_by":"lbgpt-sim"}`...)
	}
	return append(o, "]}\n"...)
}

func appendNullable(o []byte, s string) []byte {
	if s == "" {
		return append(o, "null"...)
	}
	return appendString(o, s)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string.
func appendString(o []byte, s string) []byte {
	o = append(o, '"')
	o = appendEscaped(o, s)
	return append(o, '"')
}

// appendEscaped appends s escaped for the inside of a JSON string; invalid
// UTF-8 becomes U+FFFD, as encoding/json does.
func appendEscaped(o []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			o = append(o, s[start:i]...)
			switch b {
			case '"', '\\':
				o = append(o, '\\', b)
			case '\n':
				o = append(o, '\\', 'n')
			case '\r':
				o = append(o, '\\', 'r')
			case '\t':
				o = append(o, '\\', 't')
			default:
				o = append(o, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			o = append(o, s[start:i]...)
			o = append(o, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			o = append(o, s[start:i]...)
			o = append(o, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(o, s[start:]...)
}
