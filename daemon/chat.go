package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
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
	var p rpc.ChatParams
	if err := decodeParams(jreq, &p); err != nil {
		return nil, err
	}
	req, err := parseChatRequest(p.Request)
	if err != nil {
		return nil, err
	}
	if err := checkOptions(p.Options); err != nil {
		return nil, err
	}
	var emit func(json.RawMessage) error
	if req.req.Stream {
		srv := jrpc2.ServerFromContext(ctx)
		id := json.RawMessage(jreq.ID())
		emit = func(chunk json.RawMessage) error {
			return srv.Notify(ctx, rpc.NotifyChatChunk, rpc.ChunkParams{ID: id, Chunk: chunk})
		}
	}
	return d.answer(ctx, req, p.Options, emit, start)
}

// answer answers one chat request, whoever asked (the chat and batch
// methods, the HTTP endpoint): from the exact cache, else the semantic
// cache, else upstream (identical requests in flight sharing one call),
// and then stores a paid answer, exact then semantic. A streamed request
// (req.req.Stream) hands every chunk to emit, in order, before answer
// returns the assembled response (a cached answer is replayed as chunks);
// emit is not used otherwise. start is when the request arrived.
func (d *Daemon) answer(ctx context.Context, req chatRequest, opts rpc.Options, emit func(json.RawMessage) error, start time.Time) (rpc.ChatResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout(opts))
	defer cancel()
	stream := req.req.Stream && emit != nil
	p := d.plan(req, opts)
	if hit, ok := d.lookup(ctx, p); ok {
		if stream {
			wantUsage := req.req.StreamOptions != nil && req.req.StreamOptions.IncludeUsage
			if err := replay(hit.entry.Value, wantUsage, emit); err != nil {
				return rpc.ChatResult{}, rpcError(err, nil)
			}
		}
		return d.hitResult(hit, stream, start), nil
	}
	var res rpc.ChatResult
	var err error
	if stream {
		res, err = d.chatStream(ctx, req.req, emit, start)
	} else {
		req.req.Stream, req.req.StreamOptions = false, nil
		key := p.key
		if !p.coalesce {
			key = ""
		}
		res, err = d.complete(ctx, req.req, key, start)
	}
	if err != nil {
		return res, err
	}
	d.remember(p, &res)
	return res, nil
}

// chatRequest is one decoded chat request and the JSON it came from.
type chatRequest struct {
	raw json.RawMessage
	req openai.ChatCompletionRequest
}

// parseChatRequest decodes and checks one OpenAI chat request strictly: a
// field lbgpt would not pass upstream is an error naming it, not silently
// dropped.
func parseChatRequest(raw json.RawMessage) (chatRequest, error) {
	var req *openai.ChatCompletionRequest
	if err := strictUnmarshal(raw, &req, "request"); err != nil {
		return chatRequest{}, err
	}
	switch {
	case req == nil:
		return chatRequest{}, invalidParams("request", "params.request is missing: send a full OpenAI chat completion request")
	case req.Model == "":
		return chatRequest{}, invalidParams("model", "request: model is required")
	case len(req.Messages) == 0:
		return chatRequest{}, invalidParams("messages", "request: messages must not be empty")
	}
	keepZeros(raw, req)
	return chatRequest{raw: raw, req: *req}, nil
}

// keepZeros keeps an explicit "temperature": 0 or "top_p": 0. go-openai
// omits zero floats when it encodes a request, which would turn the
// greedy sampling the caller asked for into the model's default (1);
// the smallest float32 above zero encodes, and samples, as zero does.
func keepZeros(raw json.RawMessage, req *openai.ChatCompletionRequest) {
	var z struct {
		Temperature *float64 `json:"temperature"`
		TopP        *float64 `json:"top_p"`
	}
	if json.Unmarshal(raw, &z) != nil {
		return
	}
	if z.Temperature != nil && *z.Temperature == 0 {
		req.Temperature = math.SmallestNonzeroFloat32
	}
	if z.TopP != nil && *z.TopP == 0 {
		req.TopP = math.SmallestNonzeroFloat32
	}
}

// admission is what the pool needs to admit req. Its tokens are counted
// only when a backend that could take it has a TPM limit to respect.
func (d *Daemon) admission(req *openai.ChatCompletionRequest) balance.Request {
	if !d.pool.CountsTokens(req.Model) {
		return balance.Request{Model: req.Model}
	}
	return d.est.request(req)
}

// timeout is a request's deadline: its own, else the configured one.
func (d *Daemon) timeout(o rpc.Options) time.Duration {
	if t := time.Duration(o.Timeout); t > 0 {
		return t
	}
	return d.config().Daemon.RequestTimeout.Duration
}

// answer is one upstream answer, shareable by coalesced requests.
type answer struct {
	response json.RawMessage
	rep      balance.Report
	served   string // model or deployment sent upstream
}

// complete answers a whole (not streamed) chat request. Identical requests
// (same key, the cache key) in flight at the same time share one upstream
// call.
func (d *Daemon) complete(ctx context.Context, req openai.ChatCompletionRequest, key string, start time.Time) (rpc.ChatResult, error) {
	var ans answer
	var shared bool
	var err error
	waitStart := time.Now()
	if key != "" {
		ans, shared, err = d.calls.do(ctx, key, func(ctx context.Context) (answer, error) { return d.upstream(ctx, req) })
	} else {
		ans, err = d.upstream(ctx, req)
	}
	if err != nil {
		d.log.Debug("chat failed", "model", req.Model, "attempts", ans.rep.Attempts, "err", err)
		return rpc.ChatResult{}, rpcError(err, nil)
	}
	if shared {
		// This request made no call; its wait for the shared answer is its
		// upstream time.
		rep := balance.Report{Backend: ans.rep.Backend}
		m := d.meta(rep, ans.served, false, start, time.Since(waitStart))
		m.Cache = rpc.CacheCoalesced
		return rpc.ChatResult{Response: ans.response, Meta: m}, nil
	}
	m := d.meta(ans.rep, ans.served, false, start, ans.rep.Upstream)
	return rpc.ChatResult{Response: ans.response, Meta: m}, nil
}

// upstream makes the balanced, retried upstream call for req.
func (d *Daemon) upstream(ctx context.Context, req openai.ChatCompletionRequest) (answer, error) {
	var served string
	var body []byte // the upstream's answer as it sent it
	resp, rep, err := balance.Do(ctx, d.pool, d.admission(&req),
		func(ctx context.Context, m *balance.Member) (openai.ChatCompletionResponse, balance.Outcome, error) {
			served = m.Config.Deployment(req.Model)
			r, obs, err := m.Provider.Chat(ctx, req)
			body, obs.Body = obs.Body, nil
			return r, balance.Outcome{Obs: obs, Tokens: charged(&req, r.Usage)}, err
		})
	if err != nil {
		return answer{rep: rep}, err
	}
	d.est.observe(resp.Usage.CompletionTokens)
	raw := json.RawMessage(body)
	if len(raw) == 0 { // a transport that did not record it
		if raw, err = json.Marshal(resp); err != nil {
			return answer{rep: rep}, err
		}
	}
	return answer{response: raw, rep: rep, served: served}, nil
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

// streamChunk is one chunk of a stream, decoded and as the upstream sent it.
type streamChunk struct {
	chunk openai.ChatCompletionStreamResponse
	raw   json.RawMessage
}

// opened is a stream held until its first content token: until then a
// failure can still move to another backend.
type opened struct {
	stream *provider.Stream
	head   []streamChunk
}

// chatStream answers a streamed request: chunks go to the client as
// notifications, the assembled response is the result. The stream may move
// to another backend until its first content token, never after.
func (d *Daemon) chatStream(ctx context.Context, req openai.ChatCompletionRequest, emit func(json.RawMessage) error, start time.Time) (rpc.ChatResult, error) {
	wantUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	var served string
	o, rep, done, err := balance.Open(ctx, d.pool, d.admission(&req),
		func(ctx context.Context, m *balance.Member) (opened, balance.Outcome, error) {
			served = m.Config.Deployment(req.Model)
			s, err := m.Provider.ChatStream(ctx, req)
			if err != nil {
				out := balance.Outcome{}
				if s != nil {
					out.Obs = s.Observation()
				}
				return opened{}, out, err
			}
			out := balance.Outcome{Obs: s.Observation()}
			var head []streamChunk
			for {
				chunk, raw, err := s.Next()
				if errors.Is(err, io.EOF) {
					s.Close()
					return opened{head: head}, out, nil
				}
				if err != nil {
					s.Close()
					return opened{}, out, err
				}
				head = append(head, streamChunk{chunk, raw})
				if hasContent(chunk) {
					return opened{stream: s, head: head}, out, nil
				}
			}
		})
	if err != nil {
		return rpc.ChatResult{}, rpcError(err, nil)
	}
	var asm assembler
	var streamErr error
	defer func() {
		usage := asm.resp.Usage
		d.est.observe(usage.CompletionTokens)
		done(balance.Outcome{Tokens: charged(&req, usage)}, streamErr)
	}()

	send := func(chunk openai.ChatCompletionStreamResponse, raw json.RawMessage) error {
		asm.add(chunk)
		if len(chunk.Choices) == 0 && !wantUsage {
			return nil // the usage chunk lbgpt asked for on its own account
		}
		return emit(raw) // as the upstream sent it
	}
	for _, c := range o.head {
		if err := send(c.chunk, c.raw); err != nil {
			closeStream(o.stream)
			return rpc.ChatResult{}, rpcError(err, asm.partial())
		}
	}
	upstream := rep.Upstream
	if o.stream != nil {
		defer o.stream.Close()
		for {
			t := time.Now()
			chunk, raw, err := o.stream.Next()
			upstream += time.Since(t)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				streamErr = err
				if ctx.Err() != nil { // the client canceled, the deadline passed, or lbgptd is stopping
					return rpc.ChatResult{}, rpcError(context.Cause(ctx), asm.partial())
				}
				pe := provider.AsError(err)
				return rpc.ChatResult{}, rpcError(&balance.Error{Kind: pe.Kind, Attempts: rep.Attempts, Last: pe,
					Message: "the stream broke after its first token, so it could not move to another backend: " + pe.Error()}, asm.partial())
			}
			if err := send(chunk, raw); err != nil {
				return rpc.ChatResult{}, rpcError(err, asm.partial())
			}
		}
	}
	raw, err := json.Marshal(asm.response())
	if err != nil {
		return rpc.ChatResult{}, rpcError(err, nil)
	}
	return rpc.ChatResult{Response: raw, Meta: d.meta(rep, served, true, start, upstream)}, nil
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
