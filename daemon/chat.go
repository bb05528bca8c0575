package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/creachadair/jrpc2"

	"github.com/lbgpt/lbgpt/daemon/proxy"
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
		return nil, proxy.InvalidParams("request", "params.request is missing: send a full OpenAI request, as it would be sent to /v1/%s", path)
	}
	r, err := proxy.Parse(path, p.Request)
	if err != nil {
		return nil, err
	}
	if err := proxy.CheckOptions(p.Options); err != nil {
		return nil, err
	}
	var out proxy.Sink
	if r.Stream() {
		out = &chunkSink{srv: jrpc2.ServerFromContext(ctx), ctx: ctx, id: json.RawMessage(jreq.ID()), chat: path == provider.PathChat}
	}
	res, err := d.pl.Serve(ctx, r, p.Options, out, start)
	if err != nil {
		return nil, err
	}
	return rpc.ChatResult{Response: res.Body, Meta: res.Meta}, nil
}

// chunkSink is the sink of a streamed socket request: each event is a
// notification.
type chunkSink struct {
	srv  *jrpc2.Server
	ctx  context.Context
	id   json.RawMessage
	chat bool
}

func (n *chunkSink) Start(rpc.Meta, http.Header) error { return nil }

func (n *chunkSink) Event(ev provider.Event) error {
	if n.chat {
		return n.srv.Notify(n.ctx, rpc.NotifyChatChunk, rpc.ChunkParams{ID: n.id, Chunk: ev.Data})
	}
	return n.srv.Notify(n.ctx, rpc.NotifyResponsesEvent, rpc.EventParams{ID: n.id, Event: ev.Name, Data: ev.Data})
}
