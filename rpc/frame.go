package rpc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxMessageBytes is the longest line the daemon accepts unless its
// config says otherwise.
const DefaultMaxMessageBytes = 8 << 20

// ErrLineTooLong is returned by LineReader.Next for a line longer than the
// reader's limit. The line has been skipped, but for its first bytes
// (LineReader.Prefix); the reader is still usable.
var ErrLineTooLong = errors.New("line too long")

// A LineReader splits a stream into newline-terminated messages of bounded
// length. It is not safe for concurrent use.
type LineReader struct {
	r      *bufio.Reader
	max    int
	buf    []byte
	prefix []byte // the start of the last over-long line
}

// prefixLen is how much of an over-long line Prefix keeps: enough for the
// envelope of a JSON-RPC request written in the usual order.
const prefixLen = 512

// Prefix returns the first bytes of the line skipped by the last
// ErrLineTooLong, so that a server can still find the request's id.
func (l *LineReader) Prefix() []byte { return l.prefix }

// Buffered reports whether more of the stream is already read: the next
// line, or the start of it, came with the last one.
func (l *LineReader) Buffered() bool { return l.r.Buffered() > 0 }

// NewLineReader returns a LineReader that reads from r and refuses lines
// longer than max bytes (not counting the newline). max <= 0 means
// DefaultMaxMessageBytes.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxMessageBytes
	}
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next line without its newline (and without a trailing
// carriage return). Blank lines are skipped. The returned slice is valid
// until the next call. At the end of the stream a final unterminated line is
// returned first, then io.EOF.
func (l *LineReader) Next() ([]byte, error) {
	for {
		line, err := l.next()
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return nil, err
			}
			continue
		}
		return line, nil
	}
}

func (l *LineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+1 { // +1: the newline
				tooLong = true
				l.prefix = append(append(l.prefix[:0], l.buf[:min(len(l.buf), prefixLen)]...), chunk[:min(len(chunk), prefixLen-min(len(l.buf), prefixLen))]...)
				l.buf = l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			if !tooLong && len(l.buf) > l.max {
				l.prefix = append(l.prefix[:0], l.buf[:min(len(l.buf), prefixLen)]...)
				tooLong = true
			}
			if tooLong {
				return nil, ErrLineTooLong
			}
			return l.buf, err
		case tooLong:
			return nil, ErrLineTooLong
		default:
			return l.buf[:len(l.buf)-1], nil
		}
	}
}
