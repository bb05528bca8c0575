package provider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind classifies a failed call by what the caller can do about it. The
// values are wire values: they may be logged, stored and compared as
// strings.
type Kind string

// The kinds of failure, with what they come from.
const (
	KindRateLimited Kind = "rate_limited" // 429
	KindAuth        Kind = "auth"         // 401, 403, and 429 insufficient_quota: the key cannot be used
	KindBadRequest  Kind = "bad_request"  // 400, 409, 413, 422, other 4xx, and requests that cannot be sent
	KindNotFound    Kind = "not_found"    // 404, or model_not_found / DeploymentNotFound: this backend lacks the model
	KindServer      Kind = "server"       // 5xx, unexpected 1xx/3xx, a 2xx body that is not the expected JSON, an error event in a stream
	KindNetwork     Kind = "network"      // connection refused or reset, body cut short, stream ended before [DONE]
	KindTimeout     Kind = "timeout"      // the context's deadline, a network timeout, 408
	KindCanceled    Kind = "canceled"     // the caller canceled the context or closed the stream
)

// Retryable reports whether the same request may succeed on a later attempt:
// true for rate_limited, server, network and timeout.
func (k Kind) Retryable() bool {
	switch k {
	case KindRateLimited, KindServer, KindNetwork, KindTimeout:
		return true
	}
	return false
}

// Error is a failed call to a backend.
type Error struct {
	Kind    Kind
	Backend string // the backend's name
	Status  int    // HTTP status of the response; 0 when none arrived
	Code    string // the upstream's error code, such as "model_not_found"; may be ""
	Param   string // the request field the upstream named, if it did
	Message string // the upstream's message or the local cause, with secrets redacted

	RetryAfter time.Duration // the server's requested wait; 0 = none
	Err        error         // the cause, redacted like Message
}

// Error reads like
// "backend openai: rate limited (429 rate_limit_exceeded): Rate limit reached".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Backend != "" {
		b.WriteString("backend ")
		b.WriteString(e.Backend)
		b.WriteString(": ")
	}
	b.WriteString(strings.ReplaceAll(string(e.Kind), "_", " "))
	switch {
	case e.Status != 0 && e.Code != "":
		fmt.Fprintf(&b, " (%d %s)", e.Status, e.Code)
	case e.Status != 0:
		fmt.Fprintf(&b, " (%d)", e.Status)
	case e.Code != "":
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// notFoundCodes are upstream codes that say the backend lacks the model,
// whatever the status (some servers answer 400).
var notFoundCodes = map[string]bool{
	"model_not_found":    true, // OpenAI
	"DeploymentNotFound": true, // Azure
}

// kindOf maps an HTTP status and upstream code to a Kind.
func kindOf(status int, code string) Kind {
	switch {
	case notFoundCodes[code] && status >= 400 && status < 500:
		return KindNotFound
	case code == "insufficient_quota":
		// OpenAI's 429 for an account out of credit: waiting does not help,
		// so the key is as good as refused.
		return KindAuth
	case status == 429:
		return KindRateLimited
	case status == 401 || status == 403:
		return KindAuth
	case status == 404:
		return KindNotFound
	case status == 408:
		return KindTimeout
	case status >= 400 && status < 500:
		return KindBadRequest
	}
	return KindServer // 5xx, and statuses an API should never answer
}

// kindOfEvent classifies an error event inside a 200 stream, which has a code
// but no status.
func kindOfEvent(code, typ string) Kind {
	switch {
	case notFoundCodes[code]:
		return KindNotFound
	case code == "insufficient_quota":
		return KindAuth
	case code == "rate_limit_exceeded" || typ == "rate_limit_error":
		return KindRateLimited
	}
	return KindServer
}

// maxMessage bounds Error.Message: a proxy's HTML error page is not a message.
const maxMessage = 1024

// apiError is the error object of OpenAI's error answers and error events,
// {"message","type","param","code"}, and of Azure's {"code","message"}.
type apiError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
}

// statusError is the error of a non-2xx answer with body.
func (p *Provider) statusError(obs Observation, body []byte) *Error {
	e := &Error{Backend: p.name, Status: obs.Status, RetryAfter: obs.RetryAfter}
	var wrapped struct {
		Error *apiError `json:"error"`
	}
	msg := ""
	if json.Unmarshal(body, &wrapped) == nil && wrapped.Error != nil {
		e.Code = codeString(wrapped.Error.Code)
		e.Param, _ = wrapped.Error.Param.(string)
		msg = wrapped.Error.Message
	} else {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(obs.Status)
	}
	e.Kind = kindOf(obs.Status, e.Code)
	if obs.Status >= 300 && obs.Status < 400 {
		msg = fmt.Sprintf("unexpected status %d: %s", obs.Status, msg)
	}
	e.Message = p.limit(p.redact(msg))
	e.Err = errors.New(e.Message)
	return e
}

// eventError is the error of an error event inside a stream that opened
// with 200.
func (p *Provider) eventError(obs Observation, ae *apiError) *Error {
	e := &Error{Backend: p.name, Status: obs.Status, Code: codeString(ae.Code)}
	e.Param, _ = ae.Param.(string)
	e.Kind = kindOfEvent(e.Code, ae.Type)
	e.Message = p.limit(p.redact(cmp.Or(ae.Message, "error event in the stream")))
	e.Err = errors.New(e.Message)
	return e
}

// transportError classifies a failure below HTTP: sending, or reading a
// body. obs is what the response said, if one arrived.
func (p *Provider) transportError(ctx context.Context, obs Observation, err error) *Error {
	if pe, ok := errors.AsType[*Error](err); ok {
		return pe
	}
	e := &Error{Backend: p.name, Status: obs.Status, RetryAfter: obs.RetryAfter}
	if errors.Is(context.Cause(ctx), errNoHeaders) {
		e.Kind, e.Code = KindTimeout, CodeNoHeaders
		e.Message = "the upstream accepted the request and sent no response headers in time"
		e.Err = errNoHeaders
		return e
	}
	e.Message = p.limit(p.redact(err.Error()))
	e.Err = errors.New(e.Message) // net/http's error names the URL, whose query may hold a secret
	// The caller's context first: net/http wraps its error, and a cut
	// body or refused connection is only a symptom of it.
	ctxErr := ctx.Err()
	if ctxErr == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		ctxErr = err
	}
	switch {
	case ctxErr != nil:
		e.Kind = KindTimeout
		if errors.Is(ctxErr, context.Canceled) {
			e.Kind = KindCanceled
		}
		e.Err = fmt.Errorf("%w (%s)", ctxErr, e.Message)
	case isTimeout(err):
		e.Kind = KindTimeout
	default:
		e.Kind = KindNetwork
	}
	return e
}

// limit bounds a message.
func (p *Provider) limit(msg string) string {
	if len(msg) > maxMessage {
		return strings.ToValidUTF8(msg[:maxMessage], "") + "…"
	}
	return msg
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}

// codeString renders an APIError code, a string or a number.
func codeString(code any) string {
	switch c := code.(type) {
	case nil:
		return ""
	case string:
		return c
	case int:
		if c == 0 { // go-openai reads "code": null as 0
			return ""
		}
		return strconv.Itoa(c)
	}
	return fmt.Sprint(code)
}

// redacted replaces what redact finds.
const redacted = "[redacted]"

// minPrefix is the shortest start of the backend's key that redact
// replaces: six bytes say little about a key of dozens, and shorter runs
// would garble ordinary words.
const minPrefix = 6

// minKeyLen is the shortest key redact replaces verbatim: shorter "keys"
// ("none", "ollama") are placeholders, and replacing them would garble the
// message.
const minKeyLen = 8

// secretPatterns match things that look like credentials.
var secretPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+`), "Bearer " + redacted},
	{regexp.MustCompile(`(?i)\b(api[-_ ]?key["']?\s*[:=]\s*["']?)[^\s"',;]+`), "${1}" + redacted},
	// OpenAI keys, also masked ones ("sk-proj-****...abcd"), Anthropic's.
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_\-*.]*[A-Za-z0-9_*]`), redacted},
	// Azure keys: 32 hex digits.
	{regexp.MustCompile(`\b[0-9a-fA-F]{32}\b`), redacted},
}

// longToken matches candidates for other opaque keys (Azure's newer 84-byte
// keys, gsk_..., xai-...): redact replaces those that mix letters and digits.
var longToken = regexp.MustCompile(`[A-Za-z0-9_\-]{40,}`)

// redact removes the backend's key and anything that looks like an API key
// from s.
func (p *Provider) redact(s string) string {
	return redact(s, *p.key)
}

func redact(s, key string) string {
	if len(key) >= minKeyLen {
		s = strings.ReplaceAll(s, key, redacted)
		// An upstream may echo the start of the key ("key abcd1234…
		// is invalid"): any run of its first minPrefix or more bytes
		// goes too.
		for n := len(key) - 1; n >= minPrefix; n-- {
			if strings.Contains(s, key[:n]) {
				s = strings.ReplaceAll(s, key[:n], redacted)
				break
			}
		}
	}
	for _, sp := range secretPatterns {
		s = sp.re.ReplaceAllString(s, sp.with)
	}
	return longToken.ReplaceAllStringFunc(s, func(tok string) string {
		if strings.ContainsAny(tok, "0123456789") && strings.IndexFunc(tok, unicode.IsLetter) >= 0 {
			return redacted
		}
		return tok
	})
}

// AsError returns err as an *Error: the one it wraps, or a new one classed
// by what err is (a context's end is canceled or timeout; anything else is
// treated as a server-side failure). AsError(nil) is nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	if pe, ok := errors.AsType[*Error](err); ok {
		return pe
	}
	kind := KindServer
	switch {
	case errors.Is(err, context.Canceled):
		kind = KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		kind = KindTimeout
	}
	return &Error{Kind: kind, Message: err.Error(), Err: err}
}
