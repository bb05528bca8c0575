package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/lbgpt/lbgpt/internal/wire"
	"github.com/lbgpt/lbgpt/provider"
)

// A cached answer is stored as the upstream sent it: a whole answer as its
// body (a JSON object), a streamed one as its events. Either is replayed in
// the form the request asks for; the other form comes from a faithful
// conversion (package wire) that keeps every field and invents none.

// streamMagic starts a stored stream; a whole answer starts with '{'.
const streamMagic = "\x00lbgpt-events-v1\n"

// encodeStored is the cache value of ans.
func encodeStored(ans answer) []byte {
	if ans.events == nil {
		return ans.body
	}
	n := len(streamMagic)
	for _, ev := range ans.events {
		n += len(ev.Name) + len(ev.Data) + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	b = append(b, streamMagic...)
	for _, ev := range ans.events {
		b = binary.AppendUvarint(b, uint64(len(ev.Name)))
		b = append(b, ev.Name...)
		b = binary.AppendUvarint(b, uint64(len(ev.Data)))
		b = append(b, ev.Data...)
	}
	return b
}

// decodeStored reads a cache value: a whole answer (body) or a stream.
func decodeStored(v []byte) (body []byte, events []provider.Event, err error) {
	rest, ok := bytes.CutPrefix(v, []byte(streamMagic))
	if !ok {
		return v, nil, nil
	}
	events = []provider.Event{}
	for len(rest) > 0 {
		var name, data []byte
		if name, rest, ok = cutChunk(rest); ok {
			data, rest, ok = cutChunk(rest)
		}
		if !ok {
			return nil, nil, errors.New("cached stream is damaged")
		}
		events = append(events, provider.Event{Name: string(name), Data: data})
	}
	return nil, events, nil
}

func cutChunk(b []byte) (chunk, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// whole is a stored answer for a request that wants it whole.
func whole(r *Request, body []byte, events []provider.Event) ([]byte, error) {
	if events == nil {
		return body, nil
	}
	if r.chat() {
		chunks := make([][]byte, len(events))
		for i, ev := range events {
			chunks[i] = ev.Data
		}
		return wire.AssembleChat(chunks)
	}
	if r.responses() {
		evs := make([]wire.Event, len(events))
		for i, ev := range events {
			evs[i] = wire.Event{Name: ev.Name, Data: ev.Data}
		}
		return wire.AssembleResponse(evs)
	}
	return nil, nil // another route's stream: relayed, never cached, no whole form
}

// streamForm is a stored answer for a request that wants it streamed; a chat
// client that did not ask for the usage chunk does not get it.
func streamForm(r *Request, body []byte, events []provider.Event) ([]provider.Event, error) {
	if events != nil {
		if !r.chat() || r.wantUsage() {
			return events, nil
		}
		out := make([]provider.Event, 0, len(events))
		for _, ev := range events {
			if !isUsageChunk(ev.Data) {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	switch {
	case r.chat():
		chunks, err := wire.ChatChunks(body, r.wantUsage())
		if err != nil {
			return nil, err
		}
		out := make([]provider.Event, len(chunks))
		for i, c := range chunks {
			out[i] = provider.Event{Data: c}
		}
		return out, nil
	case r.responses():
		evs, err := wire.ResponseEvents(body)
		if err != nil {
			return nil, err
		}
		out := make([]provider.Event, len(evs))
		for i, ev := range evs {
			out[i] = provider.Event{Name: ev.Name, Data: ev.Data}
		}
		return out, nil
	}
	return nil, fmt.Errorf("no streamed form of a %s answer", r.path)
}

// partial is what a broken stream had delivered, whole, for the error's
// data; nil when it cannot be put together.
func partial(r *Request, events []provider.Event) []byte {
	if len(events) == 0 || !r.chat() {
		return nil
	}
	b, err := whole(r, nil, events)
	if err != nil {
		return nil
	}
	return b
}
