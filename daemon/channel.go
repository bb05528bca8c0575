package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sync"
	"time"
	"unicode/utf8"

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

// lineChannel is the socket's newline framing with a bound on the line
// length: an over-long line is answered with a CodeTooLarge error (carrying
// the request's id when its first bytes name it) and skipped, and the
// connection goes on serving.
//
// Sends never wait long for the client: the sender writes what is queued
// itself when no one else is writing, for at most inlineWrite; what the
// client has not taken by then is left to a writer goroutine, as is what
// others queue meanwhile. A client that stops reading holds up no one
// else, and no handler.
type lineChannel struct {
	nc    net.Conn
	lr    *rpc.LineReader
	max   int
	limit int // maxQueued

	mu      sync.Mutex
	queue   net.Buffers // lines waiting to be written
	queued  int         // their bytes, and those being written
	writing bool        // a sender or the writer goroutine is writing
	err     error       // the first write error; the connection is closed
	idle    sync.Cond   // on mu: signalled when writing stops
}

// inlineWrite bounds how long a sender writes before it leaves the rest to
// a writer goroutine. A client that keeps up takes a line in one write
// without waiting; the bound only matters for one that does not.
const inlineWrite = time.Millisecond

func newLineChannel(nc net.Conn, max int) *lineChannel {
	if max <= 0 {
		max = rpc.DefaultMaxMessageBytes
	}
	c := &lineChannel{nc: nc, lr: rpc.NewLineReader(nc, max), max: max, limit: maxQueued}
	c.idle.L = &c.mu
	return c
}

// Send queues line, which ends in its newline and is the channel's from
// now on, and writes out the queue unless someone else is.
func (c *lineChannel) Send(line []byte) error {
	if i := bytes.IndexByte(line, '\n'); i != len(line)-1 {
		return errors.New("daemon: a line to send must end in its only newline")
	}
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
	if c.writing {
		return nil
	}
	c.writing = true
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(inlineWrite))
	n, err := q.WriteTo(c.nc) // consumes q
	c.mu.Lock()
	c.queued -= int(n)
	switch {
	case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
		c.fail(err)
	case len(q) > 0 || len(c.queue) > 0:
		// The client is slow, or others queued lines while this one
		// wrote: the writer goroutine takes over, the rest first.
		c.queue = append(q, c.queue...)
		go c.write()
		return nil
	}
	c.writing = false
	c.idle.Broadcast()
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
		// A JSON value that is neither an object nor a batch is an
		// invalid request (a parse error is for what is not JSON).
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
		// Calls keep slices of what Recv returns; the reader reuses its buffer.
		return bytes.Clone(line), nil
	}
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
