package client

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/lbgpt/lbgpt/rpc"
)

// Responses answers one request of OpenAI's Responses API (req is what
// would be sent to POST /v1/responses: a struct, a map or raw JSON). A
// request that continues a previous response goes to the backend that
// made it.
func (c *Client) Responses(ctx context.Context, req any, opts rpc.Options) (*rpc.ChatResult, error) {
	params, err := chatParams(req, opts)
	if err != nil {
		return nil, err
	}
	var res rpc.ChatResult
	if err := c.call(ctx, rpc.MethodResponses, params, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// ResponseEvent is one step of a streamed Responses answer: an event as
// the upstream sent it, or at the end the result with the response object
// and lbgpt's metadata.
type ResponseEvent struct {
	Name   string          // such as "response.output_text.delta"; "" on the final event
	Data   json.RawMessage // the event's payload; nil on the final event
	Result *rpc.ChatResult // set on the final event only
}

// ResponsesStream answers req as a stream ("stream": true is set for you).
// The sequence yields every event as it arrives, then one final
// ResponseEvent with the Result. Stopping the iteration early cancels the
// request in the daemon.
func (c *Client) ResponsesStream(ctx context.Context, req any, opts rpc.Options) iter.Seq2[ResponseEvent, error] {
	return func(yield func(ResponseEvent, error) bool) {
		raw, err := marshalRequest(req)
		if err == nil {
			raw, err = setStream(raw)
		}
		if err != nil {
			yield(ResponseEvent{}, err)
			return
		}
		params := rpc.ChatParams{Request: raw, Options: opts}
		for ev, err := range stream(ctx, c, rpc.MethodResponses, params, responseEvent) {
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// responseEvent decodes a responses.event notification or the final result.
func responseEvent(n *notification, resp *response) (ev ResponseEvent, ok bool, err error) {
	if n == nil {
		var res rpc.ChatResult
		if err := resp.decode(&res); err != nil {
			return ev, true, err
		}
		return ResponseEvent{Result: &res}, true, nil
	}
	var p rpc.EventParams
	if n.Method != rpc.NotifyResponsesEvent || json.Unmarshal(n.Params, &p) != nil || p.Data == nil {
		return ev, false, nil
	}
	return ResponseEvent{Name: p.Event, Data: p.Data}, true, nil
}
