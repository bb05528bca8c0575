package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/lbgpt/lbgpt/rpc"
)

// BatchEvent is one step of a batch: exactly one field is set. Items and
// Progress arrive while the batch runs, items in the order they finish;
// Result comes last, with every item in input order.
type BatchEvent struct {
	Item     *rpc.BatchItem     // one finished item (rpc.NotifyBatchItem)
	Progress *rpc.BatchProgress // the counts so far (rpc.NotifyBatchProgress)
	Result   *rpc.BatchResult   // the final result; nothing follows it
}

// Batch answers reqs, each a full OpenAI chat completion request (anything
// that marshals to one, as for Chat), as one batch: opts apply to every item
// (opts.Timeout bounds each item), and at most concurrency items are in
// flight at once (0: the daemon's default). One item's failure is that
// item's Error; the sequence yields an error only when the batch itself
// fails (a request that does not encode, the connection, ctx). Stopping the
// iteration early, or ctx ending, cancels the remaining items in the daemon.
//
// The final Result holds every item in input order, so a caller that only
// wants the answers can skip the Item events. Batch asks the daemon for
// the summary only (rpc.BatchParams.SummaryOnly) and fills Result.Items
// from the Item events, so each answer crosses the socket and is decoded
// once; an item the daemon never notified (a notification that does not
// decode) is an internal error in its slot.
func (c *Client) Batch(ctx context.Context, reqs []any, opts rpc.Options, concurrency int) iter.Seq2[BatchEvent, error] {
	return func(yield func(BatchEvent, error) bool) {
		params := rpc.BatchParams{Requests: make([]json.RawMessage, len(reqs)), Options: opts, Concurrency: concurrency, SummaryOnly: true}
		for i, req := range reqs {
			raw, err := marshalRequest(req)
			if err != nil {
				yield(BatchEvent{}, fmt.Errorf("batch request %d: %w", i, err))
				return
			}
			params.Requests[i] = raw
		}
		items := make([]rpc.BatchItem, len(reqs))
		seen := make([]bool, len(reqs))
		for ev, err := range stream(ctx, c, rpc.MethodBatch, params, batchEvent) {
			switch {
			case err != nil:
			case ev.Item != nil:
				if i := ev.Item.Index; i >= 0 && i < len(items) && !seen[i] {
					items[i], seen[i] = *ev.Item, true
				}
			case ev.Result != nil && ev.Result.Items == nil:
				ev.Result.Items = items
				for i, ok := range seen {
					if !ok {
						items[i] = rpc.BatchItem{Index: i, Error: &rpc.Error{Code: rpc.CodeInternal, Message: "lbgptd sent no notification for this request"}}
					}
				}
			}
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// batchEvent decodes a batch notification or the final result; ok is false
// for a notification it does not know.
func batchEvent(n *notification, resp *response) (ev BatchEvent, ok bool, err error) {
	if n == nil {
		var res rpc.BatchResult
		if err := resp.decode(&res); err != nil {
			return ev, true, err
		}
		return BatchEvent{Result: &res}, true, nil
	}
	switch n.Method {
	case rpc.NotifyBatchItem:
		var p rpc.BatchItemParams
		if json.Unmarshal(n.Params, &p) != nil {
			return ev, false, nil
		}
		return BatchEvent{Item: &p.Item}, true, nil
	case rpc.NotifyBatchProgress:
		var p rpc.BatchProgress
		if json.Unmarshal(n.Params, &p) != nil {
			return ev, false, nil
		}
		return BatchEvent{Progress: &p}, true, nil
	}
	return ev, false, nil
}
