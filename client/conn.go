package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// conn is one connection to the daemon, shared by concurrent calls. While
// no stream or watch is open on it, no goroutine of its own reads it: a
// call waiting for its response reads, handing what it reads for other
// calls to them, until it has what it waits for; then another waiting
// call takes the reading over, if any waits. A call answered at once costs
// no hand-off between goroutines, which on an idle machine means waking a
// thread (docs/design.md). While a stream or a watch is open, a goroutine
// reads (streamReader): what the daemon sends them must not wait in the
// socket for a consumer that is busy elsewhere, or the daemon, finding the
// client not reading, closes the connection.
type conn struct {
	nc  net.Conn
	max int // the longest request line this connection sends, in bytes

	// reading holds a token while a call reads nc; lr is that call's.
	reading chan struct{}
	lr      *rpc.LineReader

	wmu sync.Mutex // serialises writes to nc

	mu      sync.Mutex // guards the fields below
	nextID  int64
	pending map[int64]*pendingCall
	err     error        // set once the connection failed; no new calls start
	reader  *pendingCall // the call reading nc, if any
	streams int          // the calls open that keep notifications (streams, watches)
	// streamReading says a streamReader goroutine runs: it reads while
	// streams > 0.
	streamReading bool
}

// keep says what a call keeps of the notifications addressed to it (those
// whose params.id is the call's id).
type keep int

const (
	keepNone   keep = iota // a plain call: notifications are dropped
	keepAll                // a stream: every notification, in order
	keepLatest             // a subscription to full snapshots: only the newest
)

// notification is one notification addressed to a call.
type notification struct {
	Method string
	Params json.RawMessage // the whole params object, "id" included
}

// pendingCall collects what arrives for one request. The reader appends and
// never blocks, so a slow consumer of one stream does not stall the others.
type pendingCall struct {
	c    *conn
	id   int64
	keep keep

	mu    sync.Mutex // guards notes, resp, err
	notes []notification
	resp  *response
	err   error
	wake  chan struct{} // capacity 1: something arrived
}

type response struct {
	Result json.RawMessage `json:"result"`
	Error  *rpc.Error      `json:"error"`
}

func (r *response) decode(out any) error {
	if r.Error != nil {
		return r.Error
	}
	if out == nil {
		return nil
	}
	if res, ok := out.(*rpc.ChatResult); ok && splitChatResult(r.Result, res) {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("decode lbgptd result: %w", err)
	}
	return nil
}

// splitChatResult fills res from a chat or Responses result in the form
// lbgptd writes it, {"response":R,"lbgpt":M}, decoding M only: R is the
// upstream's answer, which the daemon checked and passed on as its bytes,
// and the caller reads it as it likes. ",\"lbgpt\":" cannot occur in M
// (its only objects are its own and have no such member) nor inside a
// JSON string (where a quote is escaped), so its last occurrence is the
// one between R and M. A result of any other form is not split.
func splitChatResult(b []byte, res *rpc.ChatResult) bool {
	const head, sep = `{"response":`, `,"lbgpt":`
	rest, ok := bytes.CutPrefix(b, []byte(head))
	if !ok || len(rest) == 0 || rest[len(rest)-1] != '}' {
		return false
	}
	i := bytes.LastIndex(rest, []byte(sep))
	if i <= 0 {
		return false
	}
	var meta rpc.Meta
	if json.Unmarshal(rest[i+len(sep):len(rest)-1], &meta) != nil {
		return false
	}
	*res = rpc.ChatResult{Response: rest[:i], Meta: meta}
	return true
}

// envelope is any message from the daemon: a response or a notification.
type envelope struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *rpc.Error      `json:"error"`
}

func newConn(nc net.Conn, max int) *conn {
	return &conn{nc: nc, max: max, pending: make(map[int64]*pendingCall),
		reading: make(chan struct{}, 1), lr: rpc.NewLineReader(nc, maxLine)}
}

func (c *conn) closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// start registers a call and writes its request. A request that does not
// encode, or whose line is longer than c.max, fails here without being
// sent and without harm to the connection: the other calls on it go on. A
// failed write fails the connection.
func (c *conn) start(method string, params any, k keep) (*pendingCall, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	id := c.nextID
	c.mu.Unlock()

	// "id" comes before "params", in the line's first bytes: a daemon that
	// refuses a line as too long reads the id there to say which call it
	// refused.
	line, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int64  `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", id, method, params})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	if len(line) > c.max {
		return nil, &rpc.Error{Code: rpc.CodeTooLarge,
			Message: fmt.Sprintf("request of %d bytes exceeds the %d-byte message limit (daemon.max_message_bytes)", len(line), c.max)}
	}

	pc := &pendingCall{c: c, id: id, keep: k, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = pc
	startReader := false
	if k != keepNone {
		c.streams++
		startReader = !c.streamReading
		c.streamReading = true
	}
	c.mu.Unlock()
	if startReader {
		go c.streamReader()
	}
	if err := c.writeLine(line); err != nil {
		c.finish(pc)
		cause := c.cause(err)
		c.fail(cause)
		if cause == err && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
			// The daemon had closed the connection: nothing of it went
			// through (not a Client.Close, which fails the call).
			return nil, &unsentError{err}
		}
		return nil, cause
	}
	return pc, nil
}

// unsentError is a request that did not reach the daemon: the connection
// failed as it was written (the daemon restarted since the last call, say).
// Sending it again on a new connection cannot do its work twice.
type unsentError struct{ err error }

func (e *unsentError) Error() string { return e.err.Error() }
func (e *unsentError) Unwrap() error { return e.err }

// write sends one message; it is meant for small ones (a cancel), which
// the message limit does not concern.
func (c *conn) write(msg any) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	return c.writeLine(b)
}

// writeLine sends line and its newline.
func (c *conn) writeLine(line []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.nc.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("send to lbgptd: %w", err)
	}
	return nil
}

// cause explains a failed write: when the daemon closed the connection on
// purpose (it refused this user, say), its last message says why. It is
// read within a second, when no call is reading.
func (c *conn) cause(writeErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	select {
	case c.reading <- struct{}{}:
		c.readUntil(ctx, c.closed)
		<-c.reading
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var re *rpc.Error
	if errors.As(c.err, &re) {
		return re
	}
	return writeErr
}

// finish forgets a call.
func (c *conn) finish(pc *pendingCall) {
	c.mu.Lock()
	_, open := c.pending[pc.id]
	delete(c.pending, pc.id)
	last := false
	if open && pc.keep != keepNone {
		c.streams--
		last = c.streams == 0
	}
	c.mu.Unlock()
	if last {
		c.nc.SetReadDeadline(aLongTimeAgo) // the stream reader stops
	}
}

// streamReader reads the connection while a stream or watch is open on it,
// once the call reading now (if any) has what it waited for.
func (c *conn) streamReader() {
	c.reading <- struct{}{}
	for {
		c.readUntil(context.Background(), c.noStreams)
		c.mu.Lock()
		if c.streams == 0 || c.err != nil {
			c.streamReading = false
			c.mu.Unlock()
			<-c.reading
			return
		}
		c.mu.Unlock()
	}
}

// noStreams reports whether the stream reader may stop.
func (c *conn) noStreams() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams == 0 || c.err != nil
}

// cancel asks the daemon to stop working on request id. Best effort.
func (c *conn) cancel(id int64) {
	_ = c.write(struct {
		JSONRPC string           `json:"jsonrpc"`
		Method  string           `json:"method"`
		Params  rpc.CancelParams `json:"params"`
	}{"2.0", rpc.MethodCancel, rpc.CancelParams{ID: json.RawMessage(strconv.FormatInt(id, 10))}})
}

// fail closes the connection and fails every pending call with err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	pending := c.pending
	c.pending = make(map[int64]*pendingCall)
	c.streams = 0
	c.mu.Unlock()
	c.nc.Close()
	for _, pc := range pending {
		pc.deliver(nil, err)
	}
}

// aLongTimeAgo is a read deadline that interrupts a read at once.
var aLongTimeAgo = time.Unix(1, 0)

// readUntil reads and dispatches lines until done reports true, the
// connection fails or ctx ends (it returns ctx's error then). The caller
// holds c.reading. A read is interrupted with a deadline in the past: by
// ctx, by an abort of the call reading, by the last stream's finish (or,
// late, by one meant for an earlier reader); the deadline is lifted and
// the reading goes on unless that was the end. The line reader keeps the
// part of a line it had.
func (c *conn) readUntil(ctx context.Context, done func() bool) error {
	if ctx.Done() != nil {
		interrupted := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.nc.SetReadDeadline(aLongTimeAgo)
			close(interrupted)
		})
		defer func() {
			if !stop() {
				<-interrupted
				c.nc.SetReadDeadline(time.Time{})
			}
		}()
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if done() {
			return nil
		}
		line, err := c.lr.Next()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.nc.SetReadDeadline(time.Time{})
			continue
		}
		if err != nil {
			if errors.Is(err, rpc.ErrLineTooLong) {
				err = fmt.Errorf("lbgptd sent a message over %d bytes", maxLine)
			} else {
				err = fmt.Errorf("connection to lbgptd lost: %w", err)
			}
			c.fail(err)
			return nil
		}
		if id, result, ok := ownResult(line); ok {
			// The daemon's own form of a result: the caller decodes it,
			// once, from a copy (the reader reuses its buffer).
			if pc := c.lookupID(id); pc != nil {
				pc.deliver(&response{Result: bytes.Clone(result)}, nil)
			}
			continue
		}
		var env envelope
		if err := json.Unmarshal(line, &env); err != nil {
			c.fail(fmt.Errorf("lbgptd sent invalid JSON: %w", err))
			return nil
		}
		c.dispatch(&env)
	}
}

// ownResult takes a result line apart without decoding it, when it has
// the form lbgptd writes: {"jsonrpc":"2.0","id":N,"result":R}. R is not
// checked here; decoding it does that. Any other line is decoded whole.
func ownResult(line []byte) (id int64, result []byte, ok bool) {
	const head, mid = `{"jsonrpc":"2.0","id":`, `,"result":`
	rest, ok := bytes.CutPrefix(line, []byte(head))
	if !ok {
		return 0, nil, false
	}
	n := 0
	for n < len(rest) && n < 18 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, nil, false
	}
	id, _ = strconv.ParseInt(string(rest[:n]), 10, 64)
	rest, ok = bytes.CutPrefix(rest[n:], []byte(mid))
	if !ok || len(rest) < 2 || rest[len(rest)-1] != '}' {
		return 0, nil, false
	}
	return id, rest[:len(rest)-1], true
}

func (c *conn) dispatch(env *envelope) {
	if env.Method != "" {
		// Every notification lbgptd sends names the request it belongs to
		// in params.id; the call decides what it means.
		var p struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(env.Params, &p) != nil {
			return
		}
		if pc := c.lookup(p.ID); pc != nil {
			// env.Params is a copy (json.RawMessage copies what it
			// decodes), not a slice of the reader's buffer.
			pc.notify(notification{Method: env.Method, Params: env.Params})
		}
		return
	}
	if bytes.Equal(env.ID, []byte("null")) || len(env.ID) == 0 {
		// An error not tied to a request. The daemon's refusal of this
		// user ends the connection for every call; any other (a line it
		// could not parse, or too long for it to find the id in) cannot
		// be matched to a call and leaves the calls alone.
		if env.Error != nil && env.Error.Code == rpc.CodePermission {
			c.fail(env.Error)
		}
		return
	}
	if pc := c.lookup(env.ID); pc != nil {
		pc.deliver(&response{Result: env.Result, Error: env.Error}, nil)
	}
}

func (c *conn) lookup(id json.RawMessage) *pendingCall {
	n, err := strconv.ParseInt(string(id), 10, 64)
	if err != nil {
		return nil
	}
	return c.lookupID(n)
}

func (c *conn) lookupID(n int64) *pendingCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending[n]
}

// notify queues a notification. Once the call has its response or failed,
// notifications are dropped: the daemon sends them all before the response.
// n.Params must not be shared with the reader's buffer.
func (pc *pendingCall) notify(n notification) {
	pc.mu.Lock()
	switch {
	case pc.keep == keepNone || pc.resp != nil || pc.err != nil:
		pc.mu.Unlock()
		return
	case pc.keep == keepLatest:
		clear(pc.notes)
		pc.notes = append(pc.notes[:0], n)
	default:
		pc.notes = append(pc.notes, n)
	}
	pc.mu.Unlock()
	pc.signal()
}

// deliver sets the call's response or error; the first one wins.
func (pc *pendingCall) deliver(resp *response, err error) {
	pc.mu.Lock()
	switch {
	case pc.resp != nil || pc.err != nil:
	case resp != nil:
		pc.resp = resp
	case err != nil:
		pc.err = err
	}
	pc.mu.Unlock()
	pc.signal()
}

// abort ends the call from the caller's side: what is queued is dropped and
// next returns err from now on, at once even if it is reading.
func (pc *pendingCall) abort(err error) {
	pc.mu.Lock()
	clear(pc.notes)
	pc.notes = nil
	pc.resp = nil
	pc.err = err
	pc.mu.Unlock()
	pc.signal()
	pc.c.mu.Lock()
	reading := pc.c.reader == pc
	pc.c.mu.Unlock()
	if reading {
		pc.c.nc.SetReadDeadline(aLongTimeAgo)
	}
}

// setReader records which call reads nc (nil: none), for abort.
func (c *conn) setReader(pc *pendingCall) {
	c.mu.Lock()
	c.reader = pc
	c.mu.Unlock()
}

func (pc *pendingCall) signal() {
	select {
	case pc.wake <- struct{}{}:
	default:
	}
}

// next returns the next notification, or the response once every
// notification before it has been returned, or an error. While nothing is
// there, the call reads the connection itself unless another call does.
func (pc *pendingCall) next(ctx context.Context) (*notification, *response, error) {
	for {
		if n, resp, err, ok := pc.take(); ok {
			return n, resp, err
		}
		select {
		case <-pc.wake:
		case pc.c.reading <- struct{}{}:
			pc.c.setReader(pc)
			err := pc.c.readUntil(ctx, pc.ready)
			pc.c.setReader(nil)
			<-pc.c.reading
			if err != nil {
				return nil, nil, ctxError(ctx)
			}
		case <-ctx.Done():
			return nil, nil, ctxError(ctx)
		}
	}
}

// take returns what is there to return, if anything.
func (pc *pendingCall) take() (n *notification, resp *response, err error, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	switch {
	case len(pc.notes) > 0:
		note := pc.notes[0]
		pc.notes[0] = notification{}
		pc.notes = pc.notes[1:]
		return &note, nil, nil, true
	case pc.resp != nil:
		return nil, pc.resp, nil, true
	case pc.err != nil:
		return nil, nil, pc.err, true
	}
	return nil, nil, nil, false
}

// ready reports whether next has something to return.
func (pc *pendingCall) ready() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.notes) > 0 || pc.resp != nil || pc.err != nil
}

// ctxError is the error of a call whose context ended first. It matches
// both the context's error and the rpc sentinel a daemon would have sent
// (rpc.ErrTimeout or rpc.ErrCanceled).
func ctxError(ctx context.Context) error {
	e := &rpc.Error{Code: rpc.CodeCanceled, Message: "canceled"}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		e = &rpc.Error{Code: rpc.CodeTimeout, Message: "deadline exceeded waiting for lbgptd"}
	}
	return &ctxErr{rpcErr: e, cause: ctx.Err()}
}

type ctxErr struct {
	rpcErr *rpc.Error
	cause  error
}

func (e *ctxErr) Error() string   { return e.rpcErr.Message }
func (e *ctxErr) Unwrap() []error { return []error{e.rpcErr, e.cause} }
