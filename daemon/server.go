package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/internal/jsonx"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/tidwall/gjson"
)

// The JSON-RPC 2.0 server of the socket (docs/protocol.md): one session
// per connection. The goroutine that reads a call runs it and writes its
// response, and another takes over the reading when the call has to wait
// or lines wait behind it: no hand-off between the socket and a quick
// call, none back. Those goroutines are the daemon's workers, kept between
// calls with the stack the last one grew. (jrpc2, used
// before, took three — its reader, its dispatch loop, a goroutine per
// request, then the line channel's writer — and encoded every result
// again; docs/design.md.)

// handler is a method's implementation: the result to send, or an error
// (*rpc.Error, or any error proxy.Error can classify).
type handler func(ctx context.Context, c *call) (any, error)

// call is one request (or notification) as its handler sees it.
type call struct {
	id     json.RawMessage // as the client sent it; nil for a notification
	method string
	params json.RawMessage // nil when absent or null
	s      *session
}

// notify sends the client a notification.
func (c *call) notify(method string, params any) error {
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	return c.s.out.Send(notificationLine(method, p))
}

// session is one connection's server.
type session struct {
	d     *Daemon
	out   *lineChannel
	wg    sync.WaitGroup // the readers and the calls running
	ended chan struct{}  // closed when the connection's read side ends

	mu    sync.Mutex                         // guards calls
	calls map[string]context.CancelCauseFunc // the calls running, by id
}

func newSession(d *Daemon, nc net.Conn) *session {
	return &session{d: d, out: newLineChannel(nc, d.config().Daemon.MaxMessageBytes),
		ended: make(chan struct{}), calls: map[string]context.CancelCauseFunc{}}
}

// errClientGone cancels the calls of a connection whose client stopped
// sending: it closed the connection, or the daemon stopped reading it.
var errClientGone = errors.New("the client's connection ended")

// serve serves the connection until its read side ends, then cancels
// what is still running, waits for it, and writes out what is queued.
func (s *session) serve() {
	s.spawn(s.read)
	<-s.ended
	s.mu.Lock()
	for _, cancel := range s.calls {
		cancel(errClientGone)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.out.flush()
}

// read reads and serves lines until the read side ends. A call of a
// method that may be quick (quickMethods) runs on the reader's goroutine
// when no line waits behind it, and hands the reading on to a new
// goroutine only once it has to wait on something (proxy.WithWait); any
// other call runs on a goroutine of its own. On two cores, starting a
// goroutine was most of what a small call cost.
func (s *session) read() {
	for {
		line, err := s.out.Recv()
		if err != nil {
			close(s.ended)
			return
		}
		c := s.handle(line)
		switch {
		case c == nil:
		case !quickMethods[c.m.method] || s.out.lr.Buffered():
			s.spawn(func() { c.run(c.ctx) })
		case !s.runInline(c):
			return // another goroutine reads on
		}
	}
}

// spawn runs f on one of the daemon's workers (a goroutine that keeps the
// stack a call grew, instead of a new one growing it again), counted in
// s.wg.
func (s *session) spawn(f func()) {
	s.wg.Add(1)
	s.d.workers.Go(func() {
		defer s.wg.Done()
		f()
	})
}

// quickMethods are the methods whose calls may end without waiting on
// anything: a status, a cache hit.
var quickMethods = map[string]bool{rpc.MethodStatus: true, rpc.MethodCacheStats: true, rpc.MethodChat: true, rpc.MethodResponses: true}

// runInline runs c on the reader's goroutine, and reports whether that
// goroutine is still the reader: a call that has to wait hands the
// reading on first.
func (s *session) runInline(c *pendingCall) (reader bool) {
	var handedOff atomic.Bool
	c.run(proxy.WithWait(c.ctx, func() {
		if handedOff.CompareAndSwap(false, true) {
			s.spawn(s.read)
		}
	}))
	return !handedOff.Load()
}

// pendingCall is a call read and registered, to run.
type pendingCall struct {
	s   *session
	m   message
	ctx context.Context
}

// run runs the call and sends its response.
func (c *pendingCall) run(ctx context.Context) {
	v, err := c.s.run(ctx, c.m)
	c.s.end(c.m.id)
	c.s.out.Send(responseLine(c.m.id, v, err))
}

// handle serves one line: a request, a notification or a batch of them.
// A request is returned to run; the rest is done when handle returns. The
// line is the session's (Recv copies it), and so are the slices of it that
// calls keep.
func (s *session) handle(line []byte) *pendingCall {
	if bytes.TrimSpace(line)[0] == '[' {
		s.batch(line)
		return nil
	}
	m, perr := parseMessage(line)
	switch {
	case perr != nil:
		s.out.Send(errorLine(m.id, perr))
	case m.id == nil:
		s.run(context.Background(), m) // in order, before the next line
	default:
		ctx, ok := s.begin(m.id)
		if !ok {
			s.out.Send(errorLine(m.id, duplicateID(m.id)))
			return nil
		}
		return &pendingCall{s: s, m: m, ctx: ctx}
	}
	return nil
}

// batch serves a JSON-RPC batch: its calls run concurrently, and their
// responses go out together, in the batch's order, as one line.
func (s *session) batch(line []byte) {
	var elems []span
	if err := json.Unmarshal(line, &elems); err != nil {
		s.out.Send(errorLine(nil, &rpc.Error{Code: rpc.CodeParseError, Message: "parse error: the batch is not a JSON array: " + err.Error()}))
		return
	}
	if len(elems) == 0 {
		s.out.Send(errorLine(nil, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "invalid request: the batch is empty"}))
		return
	}
	resps := make([][]byte, len(elems)) // nil: no response (a notification)
	var wg sync.WaitGroup
	for i, raw := range elems {
		m, perr := parseMessage(raw)
		if perr != nil {
			resps[i] = responseBody(m.id, nil, perr)
			continue
		}
		ctx := context.Background()
		if m.id != nil {
			var ok bool
			if ctx, ok = s.begin(m.id); !ok {
				resps[i] = responseBody(m.id, nil, duplicateID(m.id))
				continue
			}
		}
		wg.Go(func() {
			v, err := s.run(ctx, m)
			if m.id != nil {
				s.end(m.id)
				resps[i] = responseBody(m.id, v, err)
			}
		})
	}
	s.wg.Go(func() {
		wg.Wait()
		out := []byte{'['}
		for _, r := range resps {
			if r != nil {
				if len(out) > 1 {
					out = append(out, ',')
				}
				out = append(out, r...)
			}
		}
		if len(out) > 1 { // a batch of notifications only is not answered
			s.out.Send(append(out, "]\n"...))
		}
	})
}

// begin registers a call by its id, for cancel; false when a call of the
// same id is running on this connection.
func (s *session) begin(id json.RawMessage) (context.Context, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.calls[string(id)]; dup {
		return nil, false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	s.calls[string(id)] = cancel
	return ctx, true
}

// end forgets a call, before its response goes out: the client may reuse
// the id as soon as it has the response.
func (s *session) end(id json.RawMessage) {
	s.mu.Lock()
	cancel := s.calls[string(id)]
	delete(s.calls, string(id))
	s.mu.Unlock()
	if cancel != nil {
		cancel(nil)
	}
}

// cancelCall cancels the running call with the id (compact JSON), if any.
func (s *session) cancelCall(id string) {
	s.mu.Lock()
	cancel := s.calls[id]
	s.mu.Unlock()
	if cancel != nil {
		cancel(context.Canceled)
	}
}

// run runs m's method. A notification's outcome is dropped.
func (s *session) run(ctx context.Context, m message) (any, error) {
	h, ok := s.d.methods[m.method]
	if !ok {
		return nil, s.d.methodNotFound(m.method)
	}
	return h(ctx, &call{id: m.id, method: m.method, params: m.params, s: s})
}

// methodNotFound names the methods there are, with an error object as its
// data (field "method") like every other error.
func (d *Daemon) methodNotFound(method string) error {
	names := slices.Sorted(maps.Keys(d.methods))
	return &rpc.Error{Code: rpc.CodeMethodNotFound,
		Message: fmt.Sprintf("unknown method %q: lbgptd's methods are %s (docs/protocol.md)", method, strings.Join(names, ", ")),
		Data:    &rpc.ErrorData{Field: "method"}}
}

func duplicateID(id json.RawMessage) *rpc.Error {
	return &rpc.Error{Code: rpc.CodeInvalidRequest, Message: fmt.Sprintf("invalid request: a request with id %s is still running on this connection; ids must be unique among the requests in flight", id)}
}

// message is a parsed JSON-RPC request or notification.
type message struct {
	id     json.RawMessage // nil: a notification
	method string
	params json.RawMessage // nil when absent or null
}

// span is a JSON value as a slice of the text it was decoded from (no
// copy; json.RawMessage copies). Only for json.Unmarshal of a buffer that
// outlives the value: a json.Decoder reuses its buffer.
type span []byte

func (s *span) UnmarshalJSON(b []byte) error { *s = b; return nil }

// parseMessage parses one request object. On error, m.id is the request's
// id when it had a valid one (else nil: the response's id is null).
func parseMessage(raw []byte) (message, *rpc.Error) {
	if m, ok := quickMessage(raw); ok {
		return m, nil
	}
	return decodeMessage(raw)
}

// decodeMessage is parseMessage by encoding/json, for every line.
func decodeMessage(raw []byte) (m message, _ *rpc.Error) {
	var obj map[string]span
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		if json.Valid(raw) { // a batch's element that is not an object
			return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "invalid request: want a JSON-RPC request object, got a JSON " + jsonKindOf(bytes.TrimSpace(raw)[0])}
		}
		return m, &rpc.Error{Code: rpc.CodeParseError, Message: "parse error: " + err.Error()}
	}
	id, hasID := obj["id"]
	switch {
	case !hasID:
	case isNull(id):
		return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "id" is null; give a request a number or a string as its id (a request without an id is a notification, which is never answered)`}
	case id[0] == '"' || id[0] == '-' || id[0] >= '0' && id[0] <= '9':
		m.id = json.RawMessage(id)
	default:
		return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "id" must be a number or a string`, Data: &rpc.ErrorData{Field: "id"}}
	}
	for key, v := range obj {
		switch key {
		case "jsonrpc":
			if string(v) != `"2.0"` {
				return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "jsonrpc" must be "2.0"`, Data: &rpc.ErrorData{Field: "jsonrpc"}}
			}
		case "method":
			if json.Unmarshal(v, &m.method) != nil {
				return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "method" must be a string`, Data: &rpc.ErrorData{Field: "method"}}
			}
		case "params":
			switch {
			case isNull(v):
			case v[0] == '{' || v[0] == '[':
				m.params = json.RawMessage(v)
			default:
				return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "params" must be an object or an array`, Data: &rpc.ErrorData{Field: "params"}}
			}
		case "id":
		default:
			return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: fmt.Sprintf("invalid request: unknown member %q (a request has jsonrpc, id, method and params)", key), Data: &rpc.ErrorData{Field: key}}
		}
	}
	if _, ok := obj["jsonrpc"]; !ok {
		return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "jsonrpc": "2.0" is missing`, Data: &rpc.ErrorData{Field: "jsonrpc"}}
	}
	if m.method == "" {
		return m, &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "method" is missing or empty`, Data: &rpc.ErrorData{Field: "method"}}
	}
	return m, nil
}

// quickMessage parses a well-formed request, the usual line, in one fast
// pass over it (gjson's, which skips the params without decoding them:
// encoding/json read a long prompt twice here). Anything else — invalid
// JSON, an unknown or ill-typed member, a missing one, a method not in
// plain ASCII — is left to parseMessage's decoding, whose errors say what is
// wrong.
func quickMessage(raw []byte) (m message, ok bool) {
	if !jsonx.Valid(raw) {
		return m, false
	}
	v := gjson.Parse(string(raw))
	if !v.IsObject() {
		return m, false
	}
	var version bool
	ok = true
	v.ForEach(func(k, val gjson.Result) bool {
		switch k.Raw {
		case `"jsonrpc"`:
			version = val.Raw == `"2.0"`
			ok = version
		case `"id"`:
			ok = val.Type == gjson.Number || val.Type == gjson.String
			m.id = json.RawMessage(val.Raw)
		case `"method"`:
			ok = val.Type == gjson.String && plainASCII(val.Raw)
			m.method = val.Str
		case `"params"`:
			switch {
			case val.Type == gjson.Null:
				m.params = nil
			case val.IsObject() || val.IsArray():
				m.params = json.RawMessage(val.Raw)
			default:
				ok = false
			}
		default:
			ok = false
		}
		return ok
	})
	return m, ok && version && m.method != ""
}

// plainASCII reports whether s is printable ASCII without a backslash:
// a string token that reads the same to gjson and to encoding/json.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

func isNull(v []byte) bool { return string(v) == "null" }

// resultAppender is a result that writes its own JSON, faster than
// encoding/json would (passing through bytes it knows are valid JSON).
type resultAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

// responseLine is the line answering the call id: v, or err.
func responseLine(id json.RawMessage, v any, err error) []byte {
	return append(responseBody(id, v, err), '\n')
}

// responseBody is a response object: v, or err.
func responseBody(id json.RawMessage, v any, err error) []byte {
	if err == nil {
		b := append(make([]byte, 0, 256), `{"jsonrpc":"2.0","id":`...)
		b = append(b, id...)
		b = append(b, `,"result":`...)
		var rerr error
		switch r := v.(type) {
		case resultAppender:
			b, rerr = r.appendJSON(b)
		default:
			var res []byte
			if res, rerr = json.Marshal(v); rerr == nil {
				b = append(b, res...)
			}
		}
		if rerr == nil {
			return append(b, '}')
		}
		err = &rpc.Error{Code: rpc.CodeInternal, Message: "internal error: the result does not encode: " + rerr.Error()}
	}
	var e *rpc.Error
	if !errors.As(err, &e) {
		e = proxy.Error(err, nil)
	}
	return errorObject(id, e)
}

// errorLine is a JSON-RPC error response line; a nil id is sent as null.
func errorLine(id json.RawMessage, e *rpc.Error) []byte {
	return append(errorObject(id, e), '\n')
}

func errorObject(id json.RawMessage, e *rpc.Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	eb, err := json.Marshal(e)
	if err != nil { // a Received that is not JSON: drop it
		eb, _ = json.Marshal(&rpc.Error{Code: e.Code, Message: e.Message})
	}
	b := append(make([]byte, 0, 64+len(eb)), `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":`...)
	b = append(b, eb...)
	return append(b, '}')
}

// notificationLine is a server notification line; params is JSON.
func notificationLine(method string, params []byte) []byte {
	b := append(make([]byte, 0, 48+len(method)+len(params)), `{"jsonrpc":"2.0","method":`...)
	q, _ := json.Marshal(method)
	b = append(b, q...)
	b = append(b, `,"params":`...)
	b = append(b, params...)
	return append(b, "}\n"...)
}

// appendRaw appends v, JSON that lbgpt has already checked (an upstream
// body or event), as one line: compacted only when it spans lines.
func appendRaw(b []byte, v []byte) ([]byte, error) {
	if len(v) == 0 {
		return append(b, "null"...), nil
	}
	if bytes.IndexByte(v, '\n') < 0 && bytes.IndexByte(v, '\r') < 0 {
		return append(b, v...), nil
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, v); err != nil {
		return b, err
	}
	return buf.Bytes(), nil
}

// closeRead shuts the read side of nc (all of it when it cannot be halved).
func closeRead(nc net.Conn) error {
	if uc, ok := nc.(*net.UnixConn); ok {
		return uc.CloseRead()
	}
	return nc.Close()
}
