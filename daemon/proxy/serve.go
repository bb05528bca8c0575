package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/internal/jsonx"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// Result is how a request was answered: its whole body (for a stream,
// assembled from the events the Sink got), its metadata and the upstream's
// headers a client may read.
type Result struct {
	Body   json.RawMessage
	Meta   rpc.Meta
	Header http.Header // the upstream's response headers a client may read
	Status int         // the upstream's HTTP status; 0 for an answer from the caches
}

// serve answers r, whoever asked (the socket methods, batch, the HTTP
// endpoint): from the exact cache, else the semantic cache, else upstream
// (identical requests in flight sharing one call), and then stores a paid
// answer, exact then semantic. A streamed request (r.view.Stream with a
// Sink) hands its events to out before serve returns. start is when the
// request arrived.
func (pl *Pipeline) Serve(ctx context.Context, r *Request, opts rpc.Options, out Sink, start time.Time) (Result, error) {
	stream := r.view.Stream
	if stream && out == nil {
		out = discard{} // a batch item: the stream is read whole
	}
	cfg := pl.config().Daemon
	var lc *lifetime
	if stream {
		ctx, lc = withLifetime(ctx, pl.timeout(opts), cfg.StreamIdleTimeout.Duration)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pl.timeout(opts))
		defer cancel()
	}
	if lc != nil {
		defer lc.end()
	}
	adm := pl.admission(r)
	if r.responses() && notEmpty(r.view.Conversation) && r.view.PreviousResponseID == "" {
		// A conversation lives on the account that made it, and lbgpt
		// keeps no record of conversations: with one backend that could
		// hold it, it goes there; with several, lbgpt cannot tell.
		waiting(ctx) // the affinity records, on disk
		b, err := pl.holder(string(r.view.Conversation), r.view.Model)
		if err != nil {
			return Result{}, InvalidParams("conversation", "lbgpt cannot tell which of several backends holds this conversation: continue it with previous_response_id instead (lbgpt keeps each response on its backend)")
		}
		adm.Backend = b
	}
	if r.responses() && r.view.PreviousResponseID != "" {
		waiting(ctx)
		b, err := pl.pinned(r.view.PreviousResponseID, r.view.Model)
		if err != nil {
			return Result{}, err
		}
		adm.Backend = b
	}
	p := pl.plan(r, opts)
	if hit, ok := pl.lookup(ctx, p); ok {
		res, err := pl.replay(r, opts.Namespace, hit, out, start)
		if !errors.Is(err, errDamagedEntry) {
			return res, err
		}
		// A damaged answer on disk or in the team's cache is no answer:
		// the request goes upstream, and its answer replaces it.
		pl.log.Warn("a cached answer is damaged; asking upstream", "entry", hit.meta.CacheEntry)
	}
	waiting(ctx)
	resv, err := pl.reserve(r, opts.Namespace)
	if err != nil {
		return Result{}, err
	}
	var ans answer
	var coalesced bool
	upstreamStart := time.Now()
	switch {
	case stream:
		ans, err = pl.stream(ctx, lc, r, adm, out, rpc.Meta{Cache: rpc.CacheMiss, Streamed: isStreamed(out)}, start)
	case p.coalesce && p.key != "":
		ans, coalesced, err = pl.calls.do(ctx, p.key, func(ctx context.Context) (answer, error) {
			return pl.send(ctx, r, adm, r.plainCall())
		})
	default:
		ans, err = pl.send(ctx, r, adm, r.plainCall())
	}
	if err != nil {
		resv.Release()
		pl.log.Debug("request failed", "path", r.path, "model", r.view.Model, "attempts", ans.rep.Attempts, "err", err)
		return Result{}, Error(err, nil)
	}
	if r.stateful() && !stream {
		ans.warning = pl.pin([]provider.Event{{Data: ans.body}}, ans.rep.Backend)
	}
	res := Result{Header: ans.header, Status: ans.status}
	if coalesced {
		// This request made no call; its wait for the shared answer is
		// its upstream time.
		res.Meta = pl.meta(balance.Report{Backend: ans.rep.Backend}, ans.served, false, start, time.Since(upstreamStart))
		res.Meta.Cache = rpc.CacheCoalesced
	} else {
		res.Meta = pl.meta(ans.rep, ans.served, isStreamed(out), start, ans.rep.Upstream)
	}
	res.Meta.Warning = ans.warning
	pl.account(r, opts.Namespace, ans, coalesced, resv, &res.Meta)
	if res.Body, err = whole(r, ans.body, ans.events); err != nil {
		return Result{}, Error(err, nil)
	}
	res.Meta.RequestID = ans.header.Get("X-Request-Id")
	if r.responses() && failed(res.Body) {
		p.write = false // a failure is not an answer to replay
	}
	pl.remember(p, ans, &res.Meta)
	return res, nil
}

// plainCall is r's call for a whole answer.
func (r *Request) plainCall() provider.Call {
	c := r.call()
	c.Stream = false
	return c
}

// discard is the Sink of a streamed request nobody reads as a stream.
type discard struct{}

func (discard) Start(rpc.Meta, http.Header) error { return nil }
func (discard) Event(provider.Event) error        { return nil }

// errDamagedEntry is replay's verdict on a stored answer that does not
// read (a damaged file, a team host's bad write): a miss.
var errDamagedEntry = errors.New("the cached answer is damaged")

// replay answers r from the caches, in the form it asks for.
func (pl *Pipeline) replay(r *Request, ns string, hit cached, out Sink, start time.Time) (Result, error) {
	stream := r.view.Stream
	body, events, err := decodeStored(hit.entry.Value)
	if err != nil {
		return Result{}, errDamagedEntry
	}
	res := Result{Status: http.StatusOK}
	if res.Body, err = whole(r, body, events); err != nil || !jsonx.Valid(res.Body) {
		return Result{}, errDamagedEntry
	}
	res.Meta = pl.hitMeta(hit, isStreamed(out), start)
	pl.accountHit(r, ns, res.Body, &res.Meta)
	if !stream {
		return res, nil
	}
	evs, err := streamForm(r, body, events)
	if err != nil {
		return Result{}, Error(err, nil)
	}
	if err := out.Start(res.Meta, nil); err != nil {
		return Result{}, Error(err, nil)
	}
	for _, ev := range evs {
		if err := out.Event(ev); err != nil {
			return Result{}, Error(err, nil)
		}
	}
	return res, nil
}

// isStreamed reports whether out is a client's stream.
func isStreamed(out Sink) bool {
	_, none := out.(discard)
	return out != nil && !none
}

// timeout is a request's deadline: its own, else the configured one.
func (pl *Pipeline) timeout(o rpc.Options) time.Duration {
	if t := time.Duration(o.Timeout); t > 0 {
		return t
	}
	return pl.config().Daemon.RequestTimeout.Duration
}

// meta describes an answered request and records the daemon's overhead.
func (pl *Pipeline) meta(rep balance.Report, served string, streamed bool, start time.Time, upstream time.Duration) rpc.Meta {
	total := time.Since(start)
	own := max(total-upstream-rep.Queued, 0)
	pl.overhead.record(own)
	pl.latency.Observe(rep.Backend, total, upstream)
	return rpc.Meta{
		Backend:    rep.Backend,
		Model:      served,
		Attempts:   rep.Attempts,
		Cache:      rpc.CacheMiss,
		Streamed:   streamed,
		UpstreamUS: upstream.Microseconds(),
		QueuedUS:   rep.Queued.Microseconds(),
		DaemonUS:   own.Microseconds(),
	}
}

// failed reports whether a whole response says it failed.
func failed(body []byte) bool {
	var v struct {
		Status string `json:"status"`
	}
	return json.Unmarshal(body, &v) == nil && v.Status == "failed"
}
