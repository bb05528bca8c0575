package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/creachadair/jrpc2/channel"

	"github.com/lbgpt/lbgpt/rpc"
)

// writeTimeout bounds one write to a client. A client that stops reading
// (a paused terminal, a stuck pager) would otherwise block its streams and
// keep their backend slots forever; instead its connection is closed, which
// cancels its requests.
const writeTimeout = 10 * time.Second

// maxQueued bounds the bytes waiting to be written to one client. Beyond
// it the client is not keeping up with its own answers, and its
// connection is closed.
const maxQueued = 64 << 20

// errSlowReader closes a connection whose client stopped reading.
var errSlowReader = errors.New("the client stopped reading: its answers passed the write queue's bound")

// lineChannel is jrpc2's newline framing with a bound on the line length:
// an over-long line is answered with a CodeTooLarge error (carrying the
// request's id when its first bytes name it) and skipped, and the
// connection goes on serving.
//
// Sends never wait for the client: they queue the line, and one writer
// at a time writes out what is queued, without holding the lock. A client
// that stops reading holds up no one else, and no handler.
type lineChannel struct {
	nc    net.Conn
	lr    *rpc.LineReader
	max   int
	limit int // maxQueued

	mu      sync.Mutex
	queue   net.Buffers // lines waiting to be written
	queued  int         // their bytes, and those being written
	writing bool        // a writer goroutine is running
	err     error       // the first write error; the connection is closed
	idle    sync.Cond   // on mu: signalled when the writer stops
}

var _ channel.Channel = (*lineChannel)(nil)

func newLineChannel(nc net.Conn, max int) *lineChannel {
	if max <= 0 {
		max = rpc.DefaultMaxMessageBytes
	}
	c := &lineChannel{nc: nc, lr: rpc.NewLineReader(nc, max), max: max, limit: maxQueued}
	c.idle.L = &c.mu
	return c
}

// Send queues msg and a newline for the client.
func (c *lineChannel) Send(msg []byte) error {
	if bytes.IndexByte(msg, '\n') >= 0 {
		return errors.New("message contains a newline")
	}
	line := make([]byte, len(msg)+1) // jrpc2 may reuse msg
	copy(line, msg)
	line[len(msg)] = '\n'
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.queued > 0 && c.queued+len(line) > c.limit {
		c.fail(errSlowReader)
		return c.err
	}
	c.queue = append(c.queue, line)
	c.queued += len(line)
	if !c.writing {
		c.writing = true
		go c.write()
	}
	return nil
}

// write writes out the queue until it is empty.
func (c *lineChannel) write() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 && c.err == nil {
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		n, err := q.WriteTo(c.nc)
		c.mu.Lock()
		c.queued -= int(n) // what is being written counts until written
		if err != nil {
			c.fail(err)
		}
	}
	c.writing = false
	c.idle.Broadcast()
}

// fail closes the connection on the first error: a half-written line
// leaves nothing to save. c.mu is held.
func (c *lineChannel) fail(err error) {
	if c.err == nil {
		c.err = err
		c.queue, c.queued = nil, 0
		c.nc.Close()
	}
}

// flush waits until everything queued is written, or the connection failed.
func (c *lineChannel) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.writing {
		c.idle.Wait()
	}
}

// idInPrefix finds a request id ("id": 7 or "id": "x") in the start of a
// line.
var idInPrefix = regexp.MustCompile(`"id"\s*:\s*(-?[0-9]+|"(?:[^"\\]|\\.)*")`)

func (c *lineChannel) Recv() ([]byte, error) {
	for {
		line, err := c.lr.Next()
		if errors.Is(err, rpc.ErrLineTooLong) {
			var id json.RawMessage
			if m := idInPrefix.FindSubmatch(c.lr.Prefix()); m != nil {
				id = bytes.Clone(m[1])
			}
			e := &rpc.Error{
				Code:    rpc.CodeTooLarge,
				Message: fmt.Sprintf("message too large: lines are limited to %d bytes (daemon.max_message_bytes); the line was skipped", c.max),
			}
			if err := c.Send(errorLine(id, e)); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		// A JSON value that is neither an object nor a batch: jrpc2 would
		// call it a parse error, JSON-RPC calls it an invalid request.
		if v := bytes.TrimSpace(line); len(v) > 0 && v[0] != '{' && v[0] != '[' && json.Valid(v) {
			e := &rpc.Error{Code: rpc.CodeInvalidRequest, Message: "invalid request: want a JSON-RPC request object, got a JSON " + jsonKindOf(v[0])}
			if err := c.Send(errorLine(nil, e)); err != nil {
				return nil, err
			}
			continue
		}
		// JSON text is UTF-8: a line that is not would have its id echoed
		// as invalid UTF-8, and its text sent upstream so.
		if !utf8.Valid(line) {
			e := &rpc.Error{Code: rpc.CodeParseError, Message: "parse error: the line is not valid UTF-8, which JSON text must be"}
			if err := c.Send(errorLine(nil, e)); err != nil {
				return nil, err
			}
			continue
		}
		// A request whose id is null would run (and pay upstream) as
		// jrpc2 treats it, yet never be answered: refuse it.
		if nullID(line) {
			e := &rpc.Error{Code: rpc.CodeInvalidRequest, Message: `invalid request: "id" is null; give a request a number or a string as its id (a request without an id is a notification, which is never answered)`}
			if err := c.Send(errorLine(nil, e)); err != nil {
				return nil, err
			}
			continue
		}
		// jrpc2 keeps slices of what Recv returns; the reader reuses its buffer.
		return bytes.Clone(line), nil
	}
}

// Close stops reading but leaves the write side open: jrpc2 closes the
// channel as soon as reading ends, yet still delivers the responses of the
// requests in flight. serveConn closes the connection once jrpc2 is done.
func (c *lineChannel) Close() error { return closeRead(c.nc) }

// closeRead shuts the read side of nc (all of it when it cannot be halved).
func closeRead(nc net.Conn) error {
	if uc, ok := nc.(*net.UnixConn); ok {
		return uc.CloseRead()
	}
	return nc.Close()
}

// idIsNull finds a null id; nullID confirms it is the top level's.
var idIsNull = regexp.MustCompile(`"id"\s*:\s*null`)

// nullID reports whether line is a request object whose "id" is null.
func nullID(line []byte) bool {
	if !idIsNull.Match(line) || bytes.TrimSpace(line)[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(line, &m) == nil && string(m["id"]) == "null"
}

// errorLine is a JSON-RPC error response; a nil id is sent as null.
func errorLine(id json.RawMessage, e *rpc.Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *rpc.Error      `json:"error"`
	}{"2.0", id, e})
	return b
}

// jsonKindOf names the kind of the JSON value starting with b.
func jsonKindOf(b byte) string {
	switch b {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}
