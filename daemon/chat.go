package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// chat is the handler of rpc.MethodChat: one chat completion, streamed as
// chat.chunk notifications when the request says so.
func (d *Daemon) chat(ctx context.Context, c *call) (any, error) {
	return d.socketCall(ctx, c, provider.PathChat)
}

// responses is the handler of rpc.MethodResponses: one Responses API
// request, streamed as responses.event notifications when it says so.
func (d *Daemon) responses(ctx context.Context, c *call) (any, error) {
	return d.socketCall(ctx, c, provider.PathResponses)
}

func (d *Daemon) socketCall(ctx context.Context, c *call, path string) (any, error) {
	start := time.Now()
	var p rpc.ChatParams
	if err := decodeParams(c, &p); err != nil {
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
		out = &chunkSink{c: c, chat: path == provider.PathChat}
	}
	res, err := d.pl.Serve(ctx, r, p.Options, out, start)
	if err != nil {
		return nil, err
	}
	return chatResult{Response: res.Body, Meta: res.Meta}, nil
}

// chatResult is an rpc.ChatResult that writes its JSON itself: the answer
// goes out as the upstream's (or the cache's) bytes, not encoded again.
type chatResult rpc.ChatResult

func (r chatResult) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"response":`...)
	b, err := appendRaw(b, r.Response)
	if err != nil {
		return b, err
	}
	meta, err := json.Marshal(r.Meta)
	if err != nil {
		return b, err
	}
	b = append(b, `,"lbgpt":`...)
	b = append(b, meta...)
	return append(b, '}'), nil
}

// chunkSink is the sink of a streamed socket request: each event is a
// notification.
type chunkSink struct {
	c    *call
	chat bool
}

func (n *chunkSink) Start(rpc.Meta, http.Header) error { return nil }

func (n *chunkSink) Event(ev provider.Event) error {
	// The event's data is the upstream's, checked JSON: it goes out as it
	// came, without a second encoding.
	b := append(make([]byte, 0, 64+len(ev.Data)), `{"id":`...)
	b = append(b, n.c.id...)
	method := rpc.NotifyChatChunk
	if n.chat {
		b = append(b, `,"chunk":`...)
	} else {
		method = rpc.NotifyResponsesEvent
		name, _ := json.Marshal(ev.Name)
		b = append(b, `,"event":`...)
		b = append(b, name...)
		b = append(b, `,"data":`...)
	}
	b, err := appendRaw(b, ev.Data)
	if err != nil {
		return err
	}
	return n.c.s.out.Send(notificationLine(method, append(b, '}')))
}
