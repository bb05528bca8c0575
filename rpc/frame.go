package rpc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
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

	// A read that passed its deadline leaves the line it was in the middle
	// of here, to go on with at the next call: partial says buf (or, for
	// an over-long line, prefix) holds its start.
	partial, tooLong bool
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
// returned first, then io.EOF. A read that passes its deadline returns
// os.ErrDeadlineExceeded and loses nothing: the next call goes on with the
// line it was in.
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
	if !l.partial {
		l.buf = l.buf[:0]
		l.tooLong = false
	}
	l.partial = false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !l.tooLong && len(l.buf)+len(chunk) > l.max+1 { // +1: the newline
			l.tooLong = true
			l.prefix = append(l.prefix[:0], l.buf[:min(len(l.buf), prefixLen)]...)
			l.buf = l.buf[:0]
		}
		if l.tooLong {
			l.prefix = append(l.prefix, chunk[:min(len(chunk), prefixLen-len(l.prefix))]...)
		} else {
			l.buf = append(l.buf, chunk...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			l.partial = true
			return nil, err
		case err != nil:
			if !l.tooLong && len(l.buf) > l.max {
				l.prefix = append(l.prefix[:0], l.buf[:min(len(l.buf), prefixLen)]...)
				l.tooLong = true
			}
			if l.tooLong {
				return nil, ErrLineTooLong
			}
			return l.buf, err
		case l.tooLong:
			return nil, ErrLineTooLong
		default:
			return l.buf[:len(l.buf)-1], nil
		}
	}
}
