package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/creachadair/jrpc2/channel"

	"github.com/lbgpt/lbgpt/rpc"
)

// lineChannel is jrpc2's newline framing with a bound on the line length:
// an over-long line is answered with a CodeTooLarge error and skipped, and
// the connection goes on serving.
type lineChannel struct {
	nc  net.Conn
	lr  *rpc.LineReader
	max int

	mu sync.Mutex // serialises writes
}

var _ channel.Channel = (*lineChannel)(nil)

func newLineChannel(nc net.Conn, max int) *lineChannel {
	if max <= 0 {
		max = rpc.DefaultMaxMessageBytes
	}
	return &lineChannel{nc: nc, lr: rpc.NewLineReader(nc, max), max: max}
}

func (c *lineChannel) Send(msg []byte) error {
	if bytes.IndexByte(msg, '\n') >= 0 {
		return errors.New("message contains a newline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.Write(append(msg, '\n'))
	return err
}

func (c *lineChannel) Recv() ([]byte, error) {
	for {
		line, err := c.lr.Next()
		if errors.Is(err, rpc.ErrLineTooLong) {
			b, _ := json.Marshal(struct {
				JSONRPC string     `json:"jsonrpc"`
				ID      *int       `json:"id"`
				Error   *rpc.Error `json:"error"`
			}{"2.0", nil, &rpc.Error{
				Code:    rpc.CodeTooLarge,
				Message: fmt.Sprintf("message too large: lines are limited to %d bytes (daemon.max_message_bytes); the line was skipped", c.max),
			}})
			if err := c.Send(b); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		// jrpc2 keeps slices of what Recv returns; the reader reuses its buffer.
		return bytes.Clone(line), nil
	}
}

func (c *lineChannel) Close() error { return c.nc.Close() }
