// Package client is the Go client of lbgptd, the lbgpt daemon.
//
// The zero Client is ready to use: it connects to rpc.DefaultSocketPath()
// on the first call and keeps one connection, shared by every call made
// through it, for its lifetime. A Client is safe for concurrent use; calls
// are multiplexed over the connection by JSON-RPC id. If the connection
// breaks, the calls on it fail and the next call dials again.
//
// On connecting, the client checks who serves the socket (SO_PEERCRED): a
// daemon run by anyone but the calling user or root is refused, so that no
// other user's process sees the prompts.
//
// A request whose line would be longer than the daemon accepts
// (MaxMessageBytes) fails with an *rpc.Error of code rpc.CodeTooLarge
// without being sent; the other calls on the connection go on.
//
// Errors the daemon answered are *rpc.Error and match the rpc sentinels with
// errors.Is (errors.Is(err, rpc.ErrTimeout)). When no daemon listens on the
// socket, calls fail with an error that matches ErrDaemonNotRunning and says
// how to start one.
//
// Bounded streams are iterators (iter.Seq2): ChatStream yields a chat's
// chunks, Batch a batch's items and progress; stopping the iteration early
// cancels the request in the daemon. The long-lived status subscription is
// a Watcher from Watch: Next returns a snapshot at once, then one per
// change, until Close.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net"
	"sync"
	"syscall"

	"github.com/lbgpt/lbgpt/rpc"
)

// ErrDaemonNotRunning matches the error of a call made when nothing listens
// on the socket.
var ErrDaemonNotRunning = errors.New("lbgptd is not running")

// NotRunningError is returned when the daemon's socket does not exist or
// refuses connections. It matches ErrDaemonNotRunning.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("lbgptd is not running (nothing listens on %s): start it with `lbgptd` "+
		"(or `systemctl --user start lbgptd.socket` when installed as a service), or try `lbgpt demo`", e.Socket)
}

func (e *NotRunningError) Unwrap() []error { return []error{ErrDaemonNotRunning, e.Err} }

// maxLine bounds one message from the daemon.
const maxLine = 256 << 20

// Client talks to lbgptd. The zero value uses the default socket.
type Client struct {
	// Socket is the daemon's Unix socket; "" means rpc.DefaultSocketPath().
	Socket string
	// MaxMessageBytes is the longest request line the daemon accepts (its
	// daemon.max_message_bytes); 0 means rpc.DefaultMaxMessageBytes. A
	// longer request fails with rpc.CodeTooLarge without being sent. Set
	// it before the first call.
	MaxMessageBytes int

	mu   sync.Mutex // guards conn
	conn *conn
}

// SocketPath is the socket the client connects to.
func (c *Client) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	return rpc.DefaultSocketPath()
}

// MessageLimit is the longest request line the client sends, in bytes:
// MaxMessageBytes, or rpc.DefaultMaxMessageBytes when that is 0.
func (c *Client) MessageLimit() int {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return rpc.DefaultMaxMessageBytes
}

// Close closes the connection, failing the calls in flight. The Client may
// be used again afterwards; it dials anew.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.conn
	c.conn = nil
	c.mu.Unlock()
	if cn == nil {
		return nil
	}
	cn.fail(net.ErrClosed)
	return nil
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Status(ctx)
	return err
}

// Status reports the daemon and its backends.
func (c *Client) Status(ctx context.Context) (*rpc.StatusResult, error) {
	var res rpc.StatusResult
	if err := c.call(ctx, rpc.MethodStatus, nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Chat answers one chat completion request. req is a full OpenAI chat
// completion request: anything that marshals to one (a go-openai
// ChatCompletionRequest, a map, json.RawMessage). A request with
// "stream": true is answered whole here; use ChatStream to see its chunks.
func (c *Client) Chat(ctx context.Context, req any, opts rpc.Options) (*rpc.ChatResult, error) {
	params, err := chatParams(req, opts)
	if err != nil {
		return nil, err
	}
	var res rpc.ChatResult
	if err := c.call(ctx, rpc.MethodChat, params, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Event is one step of a streamed chat answer: a chunk, or at the end the
// result with the assembled response and lbgpt's metadata.
type Event struct {
	Chunk  json.RawMessage // an OpenAI chat.completion.chunk; nil on the final event
	Result *rpc.ChatResult // set on the final event only
}

// ChatStream answers req as a stream ("stream": true is set for you). The
// sequence yields every chunk as it arrives, then one final Event with the
// Result. Stopping the iteration early cancels the request in the daemon.
func (c *Client) ChatStream(ctx context.Context, req any, opts rpc.Options) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		raw, err := marshalRequest(req)
		if err == nil {
			raw, err = setStream(raw)
		}
		var params rpc.ChatParams
		if err == nil {
			params = rpc.ChatParams{Request: raw, Options: opts}
		}
		if err != nil {
			yield(Event{}, err)
			return
		}
		for ev, err := range stream(ctx, c, rpc.MethodChat, params, chatEvent) {
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// chatEvent decodes a chat notification or the final result; ok is false
// for a notification that is not a chunk.
func chatEvent(n *notification, resp *response) (ev Event, ok bool, err error) {
	if n == nil {
		var res rpc.ChatResult
		if err := resp.decode(&res); err != nil {
			return ev, true, err
		}
		return Event{Result: &res}, true, nil
	}
	var p rpc.ChunkParams
	if n.Method != rpc.NotifyChatChunk || json.Unmarshal(n.Params, &p) != nil || p.Chunk == nil {
		return ev, false, nil
	}
	return Event{Chunk: p.Chunk}, true, nil
}

// stream runs a call whose notifications come before its result: decode
// turns each notification (ok false: skip it) and then the final response
// (n nil) into events. Stopping the iteration, or ctx ending, cancels the
// call in the daemon.
func stream[E any](ctx context.Context, c *Client, method string, params any, decode func(n *notification, resp *response) (E, bool, error)) iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		var zero E
		cn, pc, err := c.open(ctx, method, params, keepAll)
		if err != nil {
			yield(zero, err)
			return
		}
		defer cn.finish(pc)
		for {
			n, resp, err := pc.next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					cn.cancel(pc.id)
				}
				yield(zero, err)
				return
			}
			ev, ok, err := decode(n, resp)
			if !ok {
				continue
			}
			if !yield(ev, err) || err != nil || n == nil {
				if n != nil {
					cn.cancel(pc.id)
				}
				return
			}
		}
	}
}

// call makes one request and decodes its result into out.
func (c *Client) call(ctx context.Context, method string, params, out any) error {
	cn, pc, err := c.open(ctx, method, params, keepNone)
	if err != nil {
		return err
	}
	defer cn.finish(pc)
	_, resp, err := pc.next(ctx)
	if err != nil {
		if ctx.Err() != nil {
			cn.cancel(pc.id)
		}
		return err
	}
	return resp.decode(out)
}

// open starts a call on the live connection. The caller finishes it. No
// goroutine watches an idle connection, so one the daemon closed (it
// restarted) is found out by the next write: a request it did not reach
// is sent again, once, on a new connection.
func (c *Client) open(ctx context.Context, method string, params any, k keep) (*conn, *pendingCall, error) {
	for retried := false; ; retried = true {
		cn, err := c.connect(ctx)
		if err != nil {
			return nil, nil, err
		}
		pc, err := cn.start(method, params, k)
		var unsent *unsentError
		if err != nil && !retried && errors.As(err, &unsent) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return cn, pc, nil
	}
}

// connect returns the live connection, dialing if there is none.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.closed() {
		return c.conn, nil
	}
	path := c.SocketPath()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &NotRunningError{Socket: path, Err: err}
		}
		return nil, fmt.Errorf("connect to lbgptd at %s: %w", path, err)
	}
	if err := checkPeer(nc, path); err != nil {
		nc.Close()
		return nil, err
	}
	c.conn = newConn(nc, c.MessageLimit())
	return c.conn, nil
}

func chatParams(req any, opts rpc.Options) (rpc.ChatParams, error) {
	raw, err := marshalRequest(req)
	if err != nil {
		return rpc.ChatParams{}, err
	}
	return rpc.ChatParams{Request: raw, Options: opts}, nil
}

func marshalRequest(req any) (json.RawMessage, error) {
	var raw []byte
	switch r := req.(type) {
	case json.RawMessage:
		raw = r
	case []byte:
		raw = r
	default:
		b, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, errors.New("encode request: not a JSON object")
	}
	return raw, nil
}

// setStream returns the request with "stream": true.
func setStream(raw json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	m["stream"] = json.RawMessage("true")
	return json.Marshal(m)
}
