package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	openai "github.com/sashabaranov/go-openai"
)

// Kind classifies a failed call by what the caller can do about it. The
// values are wire values: they may be logged, stored and compared as
// strings.
type Kind string

// The kinds of failure, with what they come from.
const (
	KindRateLimited Kind = "rate_limited" // 429
	KindAuth        Kind = "auth"         // 401, 403, and 429 insufficient_quota: the key cannot be used
	KindBadRequest  Kind = "bad_request"  // 400, 409, 413, 422, other 4xx, and requests go-openai refuses to send
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
	Message string // the upstream's message or the local cause, with secrets redacted

	RetryAfter time.Duration // the server's requested wait; 0 = none
	Err        error         // the cause; go-openai's errors in it are redacted copies
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

// classify turns what go-openai returned for the call c into an *Error.
func (p *Provider) classify(ctx context.Context, c *call, err error) *Error {
	if pe, ok := errors.AsType[*Error](err); ok {
		return pe
	}
	obs := c.observation()
	got, sent, bodyErr := c.state()
	e := &Error{Backend: p.name, Status: obs.Status, RetryAfter: obs.RetryAfter, Err: err}

	reqErr, isReqErr := errors.AsType[*openai.RequestError](err)
	apiErr, isAPIErr := errors.AsType[*openai.APIError](err)
	upstream := isReqErr || isAPIErr // the response was read whole

	// The caller's context first: go-openai and net/http wrap its error, and
	// a cut body or refused connection is only a symptom of it.
	ctxErr := ctx.Err()
	if ctxErr == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		ctxErr = err
	}
	if ctxErr != nil && !upstream {
		e.Kind = KindTimeout
		if errors.Is(ctxErr, context.Canceled) {
			e.Kind = KindCanceled
		}
		if !errors.Is(err, ctxErr) {
			e.Err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		e.Message = p.redact(err.Error())
		return e
	}

	switch {
	case isReqErr:
		// A non-2xx answer whose body is not an OpenAI error object.
		e.Kind = kindOf(reqErr.HTTPStatusCode, "")
		e.Status = reqErr.HTTPStatusCode
		msg := strings.TrimSpace(string(reqErr.Body))
		if inner, ok := reqErr.Err.(*openai.APIError); ok && inner.Message != "" {
			msg = inner.Message
			e.Code = codeString(inner.Code)
		}
		if msg == "" {
			msg = reqErr.HTTPStatus
		}
		e.Message = p.redact(msg)
		e.Err = p.redactRequestError(reqErr)
	case isAPIErr:
		e.Code = codeString(apiErr.Code)
		if apiErr.HTTPStatusCode != 0 {
			e.Kind = kindOf(apiErr.HTTPStatusCode, e.Code)
			e.Status = apiErr.HTTPStatusCode
		} else {
			// An error event in a stream that opened with 200.
			e.Kind = kindOfEvent(e.Code, apiErr.Type)
		}
		e.Message = p.redact(apiErr.Message)
		e.Err = p.redactAPIError(apiErr)
	case isTimeout(err) || isTimeout(bodyErr):
		e.Kind = KindTimeout
		e.Message = p.redact(err.Error())
	case got && (obs.Status < 200 || obs.Status > 299):
		// go-openai could not read the error body, or took a 3xx for a
		// success: the status says enough.
		e.Kind = kindOf(obs.Status, "")
		e.Message = p.redact(err.Error())
		if obs.Status < 400 && !strings.HasPrefix(err.Error(), "unexpected status") {
			e.Message = p.redact(fmt.Sprintf("unexpected status %d: %v", obs.Status, err))
		}
	case got && (bodyErr != nil || errors.Is(err, errBrokenStream)):
		e.Kind = KindNetwork
		e.Message = p.redact(err.Error())
	case got:
		// A 2xx whose body did not decode, an undecodable stream chunk, a
		// stream of empty lines.
		e.Kind = KindServer
		e.Message = p.redact("malformed response: " + err.Error())
	case sent:
		e.Kind = KindNetwork
		e.Message = p.redact(err.Error())
	default:
		// go-openai refused the request before sending it.
		e.Kind = KindBadRequest
		e.Message = p.redact(err.Error())
	}
	if len(e.Message) > maxMessage {
		e.Message = strings.ToValidUTF8(e.Message[:maxMessage], "") + "…"
	}
	return e
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

func (p *Provider) redactAPIError(e *openai.APIError) *openai.APIError {
	cp := *e
	cp.Message = p.redact(e.Message)
	return &cp
}

func (p *Provider) redactRequestError(e *openai.RequestError) *openai.RequestError {
	cp := *e
	cp.Body = []byte(p.redact(string(e.Body)))
	if inner, ok := e.Err.(*openai.APIError); ok {
		cp.Err = p.redactAPIError(inner)
	}
	return &cp
}

// redacted replaces what redact finds.
const redacted = "[redacted]"

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
