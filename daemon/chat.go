package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/creachadair/jrpc2"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// chat is the handler of rpc.MethodChat: one chat completion, streamed as
// chat.chunk notifications when the request says so.
func (d *Daemon) chat(ctx context.Context, jreq *jrpc2.Request) (any, error) {
	return d.socketCall(ctx, jreq, provider.PathChat)
}

// responses is the handler of rpc.MethodResponses: one Responses API
// request, streamed as responses.event notifications when it says so.
func (d *Daemon) responses(ctx context.Context, jreq *jrpc2.Request) (any, error) {
	return d.socketCall(ctx, jreq, provider.PathResponses)
}

func (d *Daemon) socketCall(ctx context.Context, jreq *jrpc2.Request, path string) (any, error) {
	start := time.Now()
	var p rpc.ChatParams
	if err := decodeParams(jreq, &p); err != nil {
		return nil, err
	}
	if len(p.Request) == 0 || string(p.Request) == "null" {
		return nil, invalidParams("request", "params.request is missing: send a full OpenAI request, as it would be sent to /v1/%s", path)
	}
	r, err := parseRequest(path, p.Request)
	if err != nil {
		return nil, err
	}
	if err := checkOptions(p.Options); err != nil {
		return nil, err
	}
	var out sink
	if r.view.Stream {
		out = &chunkSink{srv: jrpc2.ServerFromContext(ctx), ctx: ctx, id: json.RawMessage(jreq.ID()), chat: r.chat()}
	}
	res, err := d.serve(ctx, r, p.Options, out, start)
	if err != nil {
		return nil, err
	}
	return rpc.ChatResult{Response: res.body, Meta: res.meta}, nil
}

// chunkSink is the sink of a streamed socket request: each event is a
// notification.
type chunkSink struct {
	srv  *jrpc2.Server
	ctx  context.Context
	id   json.RawMessage
	chat bool
}

func (n *chunkSink) start(rpc.Meta, http.Header) error { return nil }

func (n *chunkSink) event(ev provider.Event) error {
	if n.chat {
		return n.srv.Notify(n.ctx, rpc.NotifyChatChunk, rpc.ChunkParams{ID: n.id, Chunk: ev.Data})
	}
	return n.srv.Notify(n.ctx, rpc.NotifyResponsesEvent, rpc.EventParams{ID: n.id, Event: ev.Name, Data: ev.Data})
}

// served is how a request was answered: its whole body (for a stream,
// assembled from the events the sink got), its metadata and the upstream's
// headers a client may read.
type served struct {
	body   json.RawMessage
	meta   rpc.Meta
	header http.Header
	status int
}

// serve answers r, whoever asked (the socket methods, batch, the HTTP
// endpoint): from the exact cache, else the semantic cache, else upstream
// (identical requests in flight sharing one call), and then stores a paid
// answer, exact then semantic. A streamed request (r.view.Stream with a
// sink) hands its events to out before serve returns. start is when the
// request arrived.
func (d *Daemon) serve(ctx context.Context, r *apiRequest, opts rpc.Options, out sink, start time.Time) (served, error) {
	stream := r.view.Stream
	if stream && out == nil {
		out = discard{} // a batch item: the stream is read whole
	}
	cfg := d.config().Daemon
	var lc *lifetime
	if stream {
		ctx, lc = withLifetime(ctx, d.timeout(opts), cfg.StreamIdleTimeout.Duration)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout(opts))
		defer cancel()
	}
	if lc != nil {
		defer lc.end()
	}
	adm := d.admission(r)
	if r.responses() && r.view.PreviousResponseID != "" {
		b, err := d.pinned(r.view.PreviousResponseID, r.view.Model)
		if err != nil {
			return served{}, err
		}
		adm.Backend = b
	}
	p := d.plan(r, opts)
	if hit, ok := d.lookup(ctx, p); ok {
		return d.replay(r, hit, out, start)
	}
	var ans answer
	var err error
	var coalesced bool
	upstreamStart := time.Now()
	switch {
	case stream:
		ans, err = d.stream(ctx, lc, r, adm, out, rpc.Meta{Cache: rpc.CacheMiss, Streamed: isStreamed(out)}, start)
	case p.coalesce && p.key != "":
		ans, coalesced, err = d.calls.do(ctx, p.key, func(ctx context.Context) (answer, error) {
			return d.send(ctx, r, adm, r.plainCall())
		})
	default:
		ans, err = d.send(ctx, r, adm, r.plainCall())
	}
	if err != nil {
		d.log.Debug("request failed", "path", r.path, "model", r.view.Model, "attempts", ans.rep.Attempts, "err", err)
		return served{}, rpcError(err, nil)
	}
	if r.stateful() && !stream {
		ans.warning = d.pin([]provider.Event{{Data: ans.body}}, ans.rep.Backend)
	}
	res := served{header: ans.header, status: ans.status}
	if coalesced {
		// This request made no call; its wait for the shared answer is
		// its upstream time.
		res.meta = d.meta(balance.Report{Backend: ans.rep.Backend}, ans.served, false, start, time.Since(upstreamStart))
		res.meta.Cache = rpc.CacheCoalesced
	} else {
		res.meta = d.meta(ans.rep, ans.served, isStreamed(out), start, ans.rep.Upstream)
	}
	res.meta.Warning = ans.warning
	if res.body, err = whole(r, ans.body, ans.events); err != nil {
		return served{}, rpcError(err, nil)
	}
	res.meta.RequestID = ans.header.Get("X-Request-Id")
	d.remember(p, ans, &res.meta)
	return res, nil
}

// plainCall is r's call for a whole answer.
func (r *apiRequest) plainCall() provider.Call {
	c := r.call()
	c.Stream = false
	return c
}

// discard is the sink of a streamed request nobody reads as a stream.
type discard struct{}

func (discard) start(rpc.Meta, http.Header) error { return nil }
func (discard) event(provider.Event) error        { return nil }

// replay answers r from the caches, in the form it asks for.
func (d *Daemon) replay(r *apiRequest, hit cached, out sink, start time.Time) (served, error) {
	stream := r.view.Stream
	body, events, err := decodeStored(hit.entry.Value)
	if err != nil {
		return served{}, rpcError(err, nil)
	}
	res := served{status: http.StatusOK}
	if res.body, err = whole(r, body, events); err != nil {
		return served{}, rpcError(err, nil)
	}
	res.meta = d.hitMeta(hit, isStreamed(out), start)
	if !stream {
		return res, nil
	}
	evs, err := streamForm(r, body, events)
	if err != nil {
		return served{}, rpcError(err, nil)
	}
	if err := out.start(res.meta, nil); err != nil {
		return served{}, rpcError(err, nil)
	}
	for _, ev := range evs {
		if err := out.event(ev); err != nil {
			return served{}, rpcError(err, nil)
		}
	}
	return res, nil
}

// isStreamed reports whether out is a client's stream.
func isStreamed(out sink) bool {
	_, none := out.(discard)
	return out != nil && !none
}

// timeout is a request's deadline: its own, else the configured one.
func (d *Daemon) timeout(o rpc.Options) time.Duration {
	if t := time.Duration(o.Timeout); t > 0 {
		return t
	}
	return d.config().Daemon.RequestTimeout.Duration
}

// meta describes an answered request and records the daemon's overhead.
func (d *Daemon) meta(rep balance.Report, served string, streamed bool, start time.Time, upstream time.Duration) rpc.Meta {
	total := time.Since(start)
	own := max(total-upstream-rep.Queued, 0)
	d.overhead.record(own)
	d.latency.observe(rep.Backend, total, upstream)
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
