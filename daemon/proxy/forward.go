package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/internal/jsonx"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
	"github.com/tidwall/gjson"
)

// answer is one upstream answer, as the upstream sent it: shareable by
// coalesced requests, and what the cache stores.
type answer struct {
	body    []byte           // a whole answer; nil for a stream
	events  []provider.Event // a streamed answer's events (chat: its chunks, the usage chunk included)
	header  http.Header      // the upstream's response headers a client may read (see passHeaders)
	status  int              // the upstream's HTTP status
	rep     balance.Report
	served  string // model or deployment sent upstream
	warning string // for the answer's metadata: something around it went wrong
	usage   spend.Usage
	counted bool // the upstream reported usage
}

// passHeaders are the upstream response headers lbgptd hands on to its
// clients: the request id OpenAI's support asks for, the processing time,
// and the rate-limit readings of the backend that answered.
var passHeaders = []string{
	"Content-Type", // another route's answer may be audio, an image
	"X-Request-Id", "Apim-Request-Id", "Openai-Processing-Ms", "Openai-Version",
	"X-Ratelimit-Limit-Requests", "X-Ratelimit-Limit-Tokens",
	"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Remaining-Tokens",
	"X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens",
}

func passed(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	out := make(http.Header, len(passHeaders))
	for _, k := range passHeaders {
		if v := h[k]; len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// admission is what the pool needs to admit r. Its tokens are needed only
// when a backend that could take it has a TPM limit to respect, and
// counted only when a limit runs low (balance.Counting); a bound of them
// does otherwise.
func (pl *Pipeline) admission(r *Request) balance.Request {
	req := balance.Request{Model: r.view.Model}
	if !r.chat() && !r.responses() {
		return req
	}
	answer := pl.est.answer(r)
	req.Tokens = r.promptBound() + answer
	switch pl.pool.Counting(req) {
	case balance.CountNone:
		req.Tokens = 0
	case balance.CountExact:
		req.Tokens = r.promptTokens() + answer
	}
	return req
}

// call is the provider call of r.
func (r *Request) call() provider.Call {
	return provider.Call{Path: r.path, Model: r.view.Model, Body: r.raw, Stream: r.view.Stream}
}

// send makes the balanced, retried upstream call of a whole answer.
func (pl *Pipeline) send(ctx context.Context, r *Request, adm balance.Request, c provider.Call) (answer, error) {
	var ans answer
	res, rep, err := balance.Do(ctx, pl.pool, adm,
		func(ctx context.Context, m *balance.Member) (*provider.Response, balance.Outcome, error) {
			ans.served = m.Config.Deployment(c.Model)
			res, err := m.Provider.Send(ctx, c)
			out := balance.Outcome{Obs: res.Obs}
			if err == nil {
				if err = checkAnswer(m.Provider, r, res); err == nil && r != nil {
					ans.usage, ans.counted = spend.ParseUsage(res.Body)
					out.Tokens = r.charged(ans.usage)
				}
			}
			return res, out, err
		})
	ans.rep = rep
	if err != nil {
		return ans, err
	}
	if r != nil && (r.chat() || r.responses()) {
		pl.est.observe(ans.usage.Output)
	}
	ans.body, ans.header, ans.status = res.Body, passed(res.Obs.Header), res.Obs.Status
	return ans, nil
}

// checkAnswer refuses a 2xx answer that is not what r's operation returns,
// so that it is retried like a server error.
func checkAnswer(p *provider.Provider, r *Request, res *provider.Response) error {
	if r == nil || (!r.chat() && !r.responses()) {
		return nil
	}
	// The syntax checked and the two members found without decoding the
	// answer (encoding/json took ~17 µs on a 3 kB one).
	if !jsonx.Valid(res.Body) {
		return p.Malformed(res.Obs, "the answer is not JSON")
	}
	// A member given twice counts as its last occurrence, as the clients'
	// decoders (and encoding/json) read it: gjson's path finds the first.
	root := gjson.Parse(unsafe.String(unsafe.SliceData(res.Body), len(res.Body)))
	if !root.IsObject() {
		return p.Malformed(res.Obs, "the answer is not a JSON object")
	}
	var choices, id gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "choices":
			choices = v
		case "id":
			id = v
		}
		return true
	})
	switch {
	case r.chat():
		if !choices.IsArray() || choices.Get("#").Int() == 0 {
			return p.Malformed(res.Obs, "no choices")
		}
	case r.responses():
		if id.Type != gjson.String || id.Str == "" {
			return p.Malformed(res.Obs, "a response without an id")
		}
	}
	return nil
}

// Sink receives a streamed answer: start once, before the first event,
// with what is known then; then every event in order. An error (the client
// went away) ends the stream.
type Sink interface {
	Start(m rpc.Meta, h http.Header) error
	Event(ev provider.Event) error
}

// opened is a stream held until its first content: until then a failure
// can still move to another backend.
type opened struct {
	stream *provider.Stream // nil when the stream ended before any content
	head   []provider.Event
	header http.Header
}

// stream makes the balanced, retried upstream call of a streamed answer
// and relays its events to out. The stream may move to another backend
// until its first content, never after. lc bounds it: the request's
// deadline until the first content, then an idle timeout between events.
func (pl *Pipeline) stream(ctx context.Context, lc *lifetime, r *Request, adm balance.Request, out Sink, m rpc.Meta, start time.Time) (answer, error) {
	var ans answer
	o, rep, done, err := balance.Open(ctx, pl.pool, adm,
		func(ctx context.Context, mem *balance.Member) (opened, balance.Outcome, error) {
			ans.served = mem.Config.Deployment(r.view.Model)
			c := r.call()
			c.HeaderTimeout = pl.config().Balance.HeaderTimeout.Duration
			s, err := mem.Provider.Open(ctx, c)
			res := balance.Outcome{Obs: s.Observation()}
			if err != nil {
				return opened{}, res, err
			}
			var head []provider.Event
			for {
				ev, err := s.Next()
				if errors.Is(err, io.EOF) {
					s.Close()
					if len(head) == 0 {
						return opened{}, res, mem.Provider.Malformed(res.Obs, "a stream that ended without an event")
					}
					return opened{head: head, header: res.Obs.Header}, res, nil
				}
				if err != nil {
					s.Close()
					return opened{}, res, err
				}
				head = append(head, ev)
				if hasContent(r, ev) {
					return opened{stream: s, head: head, header: res.Obs.Header}, res, nil
				}
			}
		})
	ans.rep = rep
	if err != nil {
		return ans, Error(err, nil)
	}
	lc.flowing()
	ans.header = passed(o.header)
	ans.status = http.StatusOK
	var streamErr error
	defer func() {
		pl.est.observe(ans.usage.Output)
		done(balance.Outcome{Tokens: r.charged(ans.usage)}, streamErr)
	}()
	m.Backend, m.Model, m.Attempts, m.QueuedUS = rep.Backend, ans.served, rep.Attempts, rep.Queued.Microseconds()
	if err := out.Start(m, ans.header); err != nil {
		closeStream(o.stream)
		return ans, Error(err, nil)
	}
	send := func(ev provider.Event) error {
		ans.events = append(ans.events, ev)
		if u, ok := eventUsage(r, ev); ok {
			ans.usage, ans.counted = u, true
			if r.chat() && !r.wantUsage() && isUsageChunk(ev.Data) {
				return nil // the usage chunk lbgpt asked for on its own account
			}
		}
		return out.Event(ev)
	}
	for _, ev := range o.head {
		if err := send(ev); err != nil {
			closeStream(o.stream)
			return ans, Error(err, partial(r, ans.events))
		}
	}
	if r.responses() && r.stateful() {
		ans.warning = pl.pin(o.head, rep.Backend)
	}
	upstream := rep.Upstream
	if o.stream != nil {
		defer o.stream.Close()
		for {
			t := time.Now()
			ev, err := o.stream.Next()
			upstream += time.Since(t)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				streamErr = err
				if ctx.Err() != nil { // the client canceled, a deadline passed, or lbgptd is stopping
					return ans, Error(context.Cause(ctx), partial(r, ans.events))
				}
				pe := provider.AsError(err)
				return ans, Error(&balance.Error{Kind: pe.Kind, Attempts: rep.Attempts, Last: pe,
					Message: "the stream broke after its first token, so it could not move to another backend: " + pe.Error()}, partial(r, ans.events))
			}
			lc.flowing()
			if err := send(ev); err != nil {
				return ans, Error(err, partial(r, ans.events))
			}
		}
	}
	ans.rep.Upstream = upstream
	if ctx.Err() != nil { // the end came, but the client or the deadline had gone first
		return ans, Error(context.Cause(ctx), partial(r, ans.events))
	}
	return ans, nil
}

func closeStream(s *provider.Stream) {
	if s != nil {
		s.Close()
	}
}

// hasContent reports whether ev carries the answer's first content: a chat
// chunk whose delta has anything but its role (text, a tool call, a
// refusal, audio, a compatible server's reasoning); a Responses delta, or
// its end; any event of another route's stream.
func hasContent(r *Request, ev provider.Event) bool {
	switch {
	case r.responses():
		return strings.HasSuffix(ev.Name, ".delta") || provider.Terminal(ev.Name) || ev.Name == "response.output_item.done"
	case !r.chat():
		return true
	}
	var c struct {
		Choices []struct {
			Delta map[string]json.RawMessage `json:"delta"`
		} `json:"choices"`
	}
	if json.Unmarshal(ev.Data, &c) != nil {
		return false
	}
	for _, ch := range c.Choices {
		for k, v := range ch.Delta {
			if k != "role" && notEmpty(v) {
				return true
			}
		}
	}
	return false
}

func notEmpty(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "[]", "{}", `""`:
		return false
	}
	return true
}

// eventUsage is the usage an event reports, if any: a chat chunk's usage,
// a Responses terminal event's response usage.
func eventUsage(r *Request, ev provider.Event) (spend.Usage, bool) {
	if r.chat() {
		if !strings.Contains(string(ev.Data), `"usage"`) {
			return spend.Usage{}, false
		}
	} else if !provider.Terminal(ev.Name) {
		return spend.Usage{}, false
	}
	u, ok := spend.ParseUsage(ev.Data)
	return u, ok && u.Input+u.Output > 0
}

// isUsageChunk reports whether a chat chunk is the usage chunk: no choices.
func isUsageChunk(data []byte) bool {
	var c struct {
		Choices []json.RawMessage `json:"choices"`
	}
	return json.Unmarshal(data, &c) == nil && len(c.Choices) == 0
}

// lifetime bounds a request: its deadline, until a stream's first content
// flows; from then on an idle timeout between events instead, so a long
// answer that keeps coming is never cut.
type lifetime struct {
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	idle    time.Duration
	started atomic.Bool // the first content went: the timer is the idle timeout
}

// errIdle ends a stream that went quiet for the idle timeout.
var errIdle = fmt.Errorf("the stream sent nothing for the stream idle timeout: %w", context.DeadlineExceeded)

func withLifetime(ctx context.Context, timeout, idle time.Duration) (context.Context, *lifetime) {
	ctx, cancel := context.WithCancelCause(ctx)
	l := &lifetime{cancel: cancel, idle: idle}
	l.timer = time.AfterFunc(timeout, func() {
		if l.started.Load() {
			cancel(errIdle)
			return
		}
		cancel(context.DeadlineExceeded)
	})
	return ctx, l
}

// flowing restarts the clock as an idle timeout.
func (l *lifetime) flowing() {
	if l != nil && l.idle > 0 {
		l.started.Store(true)
		l.timer.Reset(l.idle)
	}
}

// end releases the lifetime's timer and context.
func (l *lifetime) end() {
	l.timer.Stop()
	l.cancel(nil)
}
