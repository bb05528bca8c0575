package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
)

// Event is one server-sent event of a stream.
type Event struct {
	Name string // the "event:" field; "" for chat completion chunks
	Data []byte // the "data:" payload, lines joined by "\n"
}

// Stream is an open streamed answer. Next is for one goroutine at a time;
// Close may be called from another to abort a blocked Next. A Stream must be
// closed.
type Stream struct {
	p       *Provider
	ctx     context.Context // the call's: tells a cancel from a broken stream
	obs     Observation
	body    io.ReadCloser
	release func() // ends the call's context
	rd      *bufio.Reader
	chat    bool // a chat completion stream: it ends with "data: [DONE]"
	// other: neither chat nor the Responses API (images, legacy
	// completions): the end of the body between two events ends it too.
	other bool

	err       error // what Next returns from now on, once set; owned by Next
	last      string
	closed    atomic.Bool
	closeOnce sync.Once
}

// maxEvent bounds one event's data.
const maxEvent = 16 << 20

// Open makes a streamed call. A chat completion stream ends at
// "data: [DONE]"; a Responses API stream at the end of the body after its
// terminal event (response.completed, .incomplete, .failed); any other
// (images, legacy completions) at "data: [DONE]" or the end of the body
// between two events.
//
// When the stream cannot be opened, Open returns a *Error and also a
// non-nil Stream whose Observation describes the refusing response (a 429's
// Retry-After and rate-limit headers, say); its Next returns the same error
// and its Close does nothing.
func (p *Provider) Open(ctx context.Context, c Call) (*Stream, error) {
	c.Stream = true
	ctx, release := p.bound(ctx, c)
	resp, obs, err := p.do(ctx, c)
	if err != nil {
		release()
		return &Stream{obs: obs, err: err}, err
	}
	return &Stream{
		p: p, ctx: ctx, obs: obs, body: resp.Body, release: release,
		rd:    bufio.NewReaderSize(resp.Body, 32<<10),
		chat:  c.Path == PathChat,
		other: c.Path != PathChat && c.Path != PathResponses && !strings.HasPrefix(c.Path, PathResponses+"/"),
	}, nil
}

// Observation describes the response that opened the stream.
func (s *Stream) Observation() Observation { return s.obs }

// Next returns the next event, exactly as the upstream sent its data, or
// io.EOF after the stream's proper end. Every other error is a *Error: a
// stream cut before its end is KindNetwork, an error event from the
// upstream is classified by its code, a chat chunk that is not JSON is
// KindServer. After an error or io.EOF, Next keeps returning it.
func (s *Stream) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	if !s.chat && Terminal(s.last) { // the answer is whole: what follows does not matter
		s.err = io.EOF
		return Event{}, s.err
	}
	ev, err := s.read()
	if err == nil {
		err = s.check(ev)
	}
	if err != nil {
		s.err = err
		return Event{}, err
	}
	s.last = ev.Name
	return ev, nil
}

// check classifies the events that end a stream or report an error.
func (s *Stream) check(ev Event) error {
	if s.chat {
		if string(ev.Data) == "[DONE]" {
			return io.EOF
		}
		if !json.Valid(ev.Data) {
			return s.p.malformed(s.obs, "a stream chunk is not JSON")
		}
		var e struct {
			Error *apiError `json:"error"`
		}
		if bytes.Contains(ev.Data, []byte(`"error"`)) && json.Unmarshal(ev.Data, &e) == nil && e.Error != nil {
			return s.p.eventError(s.obs, e.Error)
		}
		return nil
	}
	if string(ev.Data) == "[DONE]" { // some compatible servers end every stream so
		return io.EOF
	}
	if ev.Name == "error" {
		var e apiError
		if json.Unmarshal(ev.Data, &e) != nil || e.Message == "" {
			var wrapped struct {
				Error apiError `json:"error"`
			}
			json.Unmarshal(ev.Data, &wrapped)
			e = wrapped.Error
		}
		return s.p.eventError(s.obs, &e)
	}
	return nil
}

// Terminal reports whether a Responses API event ends its stream.
func Terminal(name string) bool {
	switch name {
	case "response.completed", "response.incomplete", "response.failed":
		return true
	}
	return false
}

// read reads one event: its lines up to a blank line. Comments (lines that
// start with ":") are skipped.
func (s *Stream) read() (Event, error) {
	var ev Event
	var data []byte
	have := false
	size := 0 // the event's bytes on the wire
	for {
		line, err := s.rd.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			full := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(full) <= maxEvent {
				line, err = s.rd.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if size += len(line); size > maxEvent {
			return ev, s.p.malformed(s.obs, "a stream event larger than 16 MiB")
		}
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			if errors.Is(err, io.EOF) {
				if s.other && !have {
					return ev, io.EOF // ended between two events
				}
				// An event not ended by a blank line is cut short:
				// discarded, as the SSE specification says.
				return ev, s.broken(errBrokenStream)
			}
			return ev, s.broken(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if have {
				ev.Data = data
				return ev, nil
			}
		case line[0] == ':':
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			switch string(field) {
			case "event":
				ev.Name = string(value)
				have = true
			case "data":
				if data != nil {
					data = append(data, '\n')
				}
				data = append(data, value...)
				if data == nil {
					data = []byte{}
				}
				have = true
			}
		}
		if errors.Is(err, io.EOF) { // a last line without a newline: cut short, but for a final [DONE]
			if have && string(data) == "[DONE]" {
				ev.Data = data
				return ev, nil
			}
			return ev, s.broken(errBrokenStream)
		}
	}
}

// broken classifies a failure to read the stream.
func (s *Stream) broken(err error) error {
	if s.closed.Load() {
		return &Error{Kind: KindCanceled, Backend: s.p.name, Status: s.obs.Status, Message: "stream closed", Err: err}
	}
	return s.p.transportError(s.ctx, s.obs, err)
}

var errBrokenStream = fmt.Errorf("stream ended before its end: %w", io.ErrUnexpectedEOF)

// Close releases the stream's connection. It is safe to call more than once
// and concurrently with Next.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		if s.body == nil {
			return
		}
		s.closed.Store(true)
		s.body.Close()
		s.release()
	})
	return nil
}
