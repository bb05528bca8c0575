package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/creachadair/jrpc2"
	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// chat answers one chat completion, streamed when the request says so.
func (d *Daemon) chat(ctx context.Context, jreq *jrpc2.Request) (any, error) {
	start := time.Now()
	var p chatParams
	if err := decodeParams(jreq, &p); err != nil {
		return nil, err
	}
	req, err := checkChatRequest(p.Request)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(p.Options.Timeout)
	if timeout <= 0 {
		timeout = d.cfg.Daemon.RequestTimeout.Duration
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if req.Stream {
		return d.chatStream(ctx, jreq, req, start)
	}

	var served string
	resp, rep, err := balance.Do(ctx, d.pool, req.Model, func(ctx context.Context, m *balance.Member) (openai.ChatCompletionResponse, error) {
		served = m.Config.Deployment(req.Model)
		r, _, err := m.Provider.Chat(ctx, req)
		return r, err
	})
	if err != nil {
		d.log.Debug("chat failed", "model", req.Model, "attempts", rep.Attempts, "err", err)
		return nil, rpcError(err, nil)
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, rpcError(err, nil)
	}
	return rpc.ChatResult{Response: raw, Meta: meta(rep, served, false, start, rep.Upstream)}, nil
}

// chatParams is rpc.ChatParams with the request decoded in the same pass:
// strictly, so a field lbgpt would not pass upstream is an error naming it,
// not silently dropped.
type chatParams struct {
	Request *openai.ChatCompletionRequest `json:"request"`
	Options rpc.Options                   `json:"options"`
}

func checkChatRequest(req *openai.ChatCompletionRequest) (openai.ChatCompletionRequest, error) {
	switch {
	case req == nil:
		return openai.ChatCompletionRequest{}, invalidParams("request", "params.request is missing: send a full OpenAI chat completion request")
	case req.Model == "":
		return *req, invalidParams("model", "request: model is required")
	case len(req.Messages) == 0:
		return *req, invalidParams("messages", "request: messages must not be empty")
	}
	return *req, nil
}

func meta(rep balance.Report, served string, streamed bool, start time.Time, upstream time.Duration) rpc.Meta {
	total := time.Since(start)
	return rpc.Meta{
		Backend:    rep.Backend,
		Model:      served,
		Attempts:   rep.Attempts,
		Cache:      rpc.CacheMiss,
		Streamed:   streamed,
		UpstreamUS: upstream.Microseconds(),
		DaemonUS:   max(total-upstream, 0).Microseconds(),
	}
}

// opened is a stream held until its first content token: until then a
// failure can still move to another backend.
type opened struct {
	stream *provider.Stream
	head   []openai.ChatCompletionStreamResponse
}

// chatStream answers a streamed request: chunks go to the client as
// notifications, the assembled response is the result. The stream may move
// to another backend until its first content token, never after.
func (d *Daemon) chatStream(ctx context.Context, jreq *jrpc2.Request, req openai.ChatCompletionRequest, start time.Time) (any, error) {
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	var served string
	o, rep, done, err := balance.Open(ctx, d.pool, req.Model, func(ctx context.Context, m *balance.Member) (opened, error) {
		served = m.Config.Deployment(req.Model)
		s, err := m.Provider.ChatStream(ctx, req)
		if err != nil {
			return opened{}, err
		}
		var head []openai.ChatCompletionStreamResponse
		for {
			chunk, err := s.Recv()
			if errors.Is(err, io.EOF) {
				s.Close()
				return opened{head: head}, nil
			}
			if err != nil {
				s.Close()
				return opened{}, err
			}
			head = append(head, chunk)
			if hasContent(chunk) {
				return opened{stream: s, head: head}, nil
			}
		}
	})
	if err != nil {
		return nil, rpcError(err, nil)
	}
	defer done()

	srv := jrpc2.ServerFromContext(ctx)
	id := json.RawMessage(jreq.ID())
	var asm assembler
	send := func(chunk openai.ChatCompletionStreamResponse) error {
		asm.add(chunk)
		if len(chunk.Choices) == 0 && !wantUsage {
			return nil // the usage chunk lbgpt asked for on its own account
		}
		raw, err := json.Marshal(chunk)
		if err != nil {
			return err
		}
		return srv.Notify(ctx, rpc.NotifyChatChunk, rpc.ChunkParams{ID: id, Chunk: raw})
	}
	for _, chunk := range o.head {
		if err := send(chunk); err != nil {
			closeStream(o.stream)
			return nil, rpcError(err, asm.partial())
		}
	}
	upstream := rep.Upstream
	if o.stream != nil {
		defer o.stream.Close()
		for {
			t := time.Now()
			chunk, err := o.stream.Recv()
			upstream += time.Since(t)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, rpcError(&balance.Error{Kind: kindOf(err), Attempts: rep.Attempts, Last: asProviderError(err)}, asm.partial())
			}
			if err := send(chunk); err != nil {
				return nil, rpcError(err, asm.partial())
			}
		}
	}
	raw, err := json.Marshal(asm.response())
	if err != nil {
		return nil, rpcError(err, nil)
	}
	return rpc.ChatResult{Response: raw, Meta: meta(rep, served, true, start, upstream)}, nil
}

func closeStream(s *provider.Stream) {
	if s != nil {
		s.Close()
	}
}

func hasContent(c openai.ChatCompletionStreamResponse) bool {
	for _, ch := range c.Choices {
		if ch.Delta.Content != "" || len(ch.Delta.ToolCalls) > 0 || ch.Delta.FunctionCall != nil || ch.Delta.Refusal != "" {
			return true
		}
	}
	return false
}

func asProviderError(err error) *provider.Error {
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &provider.Error{Kind: kindOf(err), Message: err.Error(), Err: err}
}

func kindOf(err error) provider.Kind {
	var pe *provider.Error
	switch {
	case errors.As(err, &pe):
		return pe.Kind
	case errors.Is(err, context.DeadlineExceeded):
		return provider.KindTimeout
	case errors.Is(err, context.Canceled):
		return provider.KindCanceled
	}
	return provider.KindNetwork
}
