package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// embedRequest is an OpenAI embeddings request.
type embedRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     int             `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`
}

// Embed answers one OpenAI embeddings request, whoever asked (the
// embeddings method, the HTTP endpoint). Each input is looked up in the
// exact cache on its own; only the inputs not cached go upstream, in one
// request through the pool (limits, retries, failover), and their vectors
// are then stored. The response has one embedding per input, in input
// order; Cached flags the ones that came from the cache.
func (pl *Pipeline) Embed(ctx context.Context, raw json.RawMessage, opts rpc.Options) (rpc.EmbeddingsResult, error) {
	start := time.Now()
	var req *embedRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		return rpc.EmbeddingsResult{}, DecodeError(err, "request")
	}
	if err := CheckOptions(opts); err != nil {
		return rpc.EmbeddingsResult{}, err
	}
	switch {
	case req == nil:
		return rpc.EmbeddingsResult{}, InvalidParams("request", "params.request is missing: send a full OpenAI embeddings request")
	case req.Model == "":
		return rpc.EmbeddingsResult{}, InvalidParams("model", "request: model is required")
	case req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64":
		return rpc.EmbeddingsResult{}, InvalidParams("encoding_format", `request: encoding_format must be "float" or "base64"`)
	}
	inputs, err := splitInputs(req.Input)
	if err != nil {
		return rpc.EmbeddingsResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, pl.timeout(opts))
	defer cancel()

	model := req.Model
	if opts.ModelAlias != "" {
		model = opts.ModelAlias
	}
	store := pl.cache.store
	keys := make([]string, len(inputs))
	vecs := make([][]float32, len(inputs))
	cached := make([]bool, len(inputs))
	var missing []int
	for i, in := range inputs {
		keys[i] = embedKey(model, req.Dimensions, in, opts.Namespace)
		if store != nil && !opts.NoCache && keys[i] != "" {
			if e, ok := store.Get(keys[i]); ok {
				if v, ok := decodeVector(e.Value); ok {
					vecs[i], cached[i] = v, true
					pl.cache.hitsExact.Add(1)
					continue
				}
			}
		}
		missing = append(missing, i)
	}

	m := rpc.Meta{Cache: rpc.CacheExact}
	var usage openai.Usage
	if len(missing) > 0 {
		up := make([]json.RawMessage, len(missing))
		for j, i := range missing {
			up[j] = inputs[i]
		}
		resp, rep, served, err := pl.embedUpstream(ctx, raw, req, up)
		if err != nil {
			pl.log.Debug("embeddings failed", "model", req.Model, "attempts", rep.Attempts, "err", err)
			return rpc.EmbeddingsResult{}, Error(err, nil)
		}
		usage = resp.Usage
		pl.accountEmbeddings(rep.Backend, req.Model, opts.Namespace, usage.PromptTokens)
		for _, e := range resp.Data {
			if e.Index < 0 || e.Index >= len(missing) {
				return rpc.EmbeddingsResult{}, Error(fmt.Errorf("upstream answered embedding %d of %d", e.Index, len(missing)), nil)
			}
			vecs[missing[e.Index]] = e.vector
		}
		for _, i := range missing {
			if vecs[i] == nil {
				return rpc.EmbeddingsResult{}, Error(errors.New("upstream left out an embedding"), nil)
			}
		}
		m = pl.meta(rep, served, false, start, rep.Upstream)
		if store != nil {
			pl.cache.misses.Add(int64(len(missing)))
			if !opts.NoStore {
				m.Warning = pl.storeVectors(keys, vecs, missing, model, opts)
			}
		}
	} else {
		m = pl.meta(balance.Report{}, model, false, start, 0)
		m.Cache = rpc.CacheExact
	}

	out, err := embedResponse(vecs, req, usage)
	if err != nil {
		return rpc.EmbeddingsResult{}, Error(err, nil)
	}
	return rpc.EmbeddingsResult{Response: out, Cached: cached, Meta: m}, nil
}

// splitInputs returns an embeddings request's inputs: a string or an
// array of tokens is one input; an array of strings or of token arrays is
// one input each.
func splitInputs(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	bad := InvalidParams("input", "request: input must be a string, an array of strings, an array of tokens or an array of token arrays, not empty")
	if len(raw) == 0 {
		return nil, bad
	}
	if raw[0] != '[' {
		var s string
		if json.Unmarshal(raw, &s) != nil || s == "" {
			return nil, bad
		}
		return []json.RawMessage{raw}, nil
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return nil, bad
	}
	var n json.Number
	if json.Unmarshal(items[0], &n) == nil {
		var toks []int
		if json.Unmarshal(raw, &toks) != nil {
			return nil, bad
		}
		return []json.RawMessage{raw}, nil
	}
	for _, it := range items {
		var s string
		var toks []int
		if (json.Unmarshal(it, &s) != nil || s == "") && (json.Unmarshal(it, &toks) != nil || len(toks) == 0) {
			return nil, bad
		}
	}
	return items, nil
}

// embedKey is the cache key of one input's vector; "" if it cannot be
// keyed. The encoding format is not in it: the vector is stored as
// floats and encoded per request.
func embedKey(model string, dims int, input json.RawMessage, ns string) string {
	b, err := json.Marshal(struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions,omitempty"`
	}{model, input, dims})
	if err != nil {
		return ""
	}
	k, err := cache.QuickKey(b, cache.KeyParams{Kind: cache.KindEmbedding, Namespace: ns})
	if err != nil {
		return ""
	}
	return k
}

// embedResult is an upstream embeddings answer.
type embedResult struct {
	Data []struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
		vector    []float32
	} `json:"data"`
	Usage openai.Usage `json:"usage"`
}

// embedUpstream asks the pool for the embeddings of inputs: the client's
// request (raw; nil for the semantic cache's own) with its input replaced
// by them.
func (pl *Pipeline) embedUpstream(ctx context.Context, raw json.RawMessage, req *embedRequest, inputs []json.RawMessage) (embedResult, balance.Report, string, error) {
	adm := balance.Request{Model: req.Model}
	for _, in := range inputs {
		adm.Tokens += len(in) // a bound, as for chat (Pipeline.admission)
	}
	switch pl.pool.Counting(adm) {
	case balance.CountNone:
		adm.Tokens = 0
	case balance.CountExact:
		adm.Tokens = 0
		for _, in := range inputs {
			var s string
			if json.Unmarshal(in, &s) == nil {
				adm.Tokens += tokens.Estimate(req.Model, s)
			} else {
				adm.Tokens += bytes.Count(in, []byte(",")) + 1
			}
		}
	}
	fields := map[string]json.RawMessage{}
	if raw != nil && json.Unmarshal(raw, &fields) != nil {
		return embedResult{}, balance.Report{}, "", InvalidParams("request", "request: want a JSON object")
	}
	fields["model"], _ = json.Marshal(req.Model)
	fields["input"], _ = json.Marshal(inputs)
	body, err := json.Marshal(fields)
	if err != nil {
		return embedResult{}, balance.Report{}, "", err
	}
	var served string
	var out embedResult
	_, rep, err := balance.Do(ctx, pl.pool, adm,
		func(ctx context.Context, m *balance.Member) (struct{}, balance.Outcome, error) {
			served = m.Config.Deployment(req.Model)
			res, err := m.Provider.Send(ctx, provider.Call{Path: provider.PathEmbeddings, Model: req.Model, Body: body})
			o := balance.Outcome{Obs: res.Obs}
			if err != nil {
				return struct{}{}, o, err
			}
			out = embedResult{}
			if err := json.Unmarshal(res.Body, &out); err != nil || len(out.Data) == 0 {
				return struct{}{}, o, m.Provider.Malformed(res.Obs, "no embeddings")
			}
			for i := range out.Data {
				v, ok := readVector(out.Data[i].Embedding)
				if !ok {
					return struct{}{}, o, m.Provider.Malformed(res.Obs, "an embedding is neither floats nor base64")
				}
				out.Data[i].vector = v
			}
			o.Tokens = out.Usage.TotalTokens
			return struct{}{}, o, nil
		})
	return out, rep, served, err
}

// readVector reads an embedding as floats or as base64 float32s.
func readVector(raw json.RawMessage) ([]float32, bool) {
	var v []float32
	if json.Unmarshal(raw, &v) == nil && len(v) > 0 {
		return v, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	return decodeVector(b)
}

// storeVectors stores the vectors of the missing inputs; it returns a
// warning when some could not be stored.
func (pl *Pipeline) storeVectors(keys []string, vecs [][]float32, missing []int, model string, opts rpc.Options) string {
	now := time.Now()
	ttl := pl.config().Cache.TTL.Duration
	if t := time.Duration(opts.CacheTTL); t > 0 {
		ttl = t
	}
	var firstErr error
	for _, i := range missing {
		if keys[i] == "" {
			continue
		}
		e := cache.Entry{Key: keys[i], Value: encodeVector(vecs[i]), Namespace: opts.Namespace, Model: model, Created: now}
		if ttl > 0 {
			e.Expires = now.Add(ttl)
		}
		if err := pl.cache.store.Put(e); err != nil {
			pl.cache.writeErrors.Add(1)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		pl.log.Warn("cache write failed; the embeddings were delivered", "err", firstErr)
		return "some embeddings could not be cached: " + firstErr.Error()
	}
	return ""
}

// A cached vector is its float32s, little endian.
func encodeVector(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func decodeVector(b []byte) ([]float32, bool) {
	if len(b) == 0 || len(b)%4 != 0 {
		return nil, false
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, true
}

// embedResponse is the OpenAI embeddings response for vecs, each as floats
// or base64 as the request asked.
func embedResponse(vecs [][]float32, req *embedRequest, usage openai.Usage) (json.RawMessage, error) {
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, len(vecs))
	for i, v := range vecs {
		data[i] = item{Object: "embedding", Index: i, Embedding: v}
		if req.EncodingFormat == "base64" {
			data[i].Embedding = base64.StdEncoding.EncodeToString(encodeVector(v))
		}
	}
	type embedUsage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	return json.Marshal(struct {
		Object string     `json:"object"`
		Data   []item     `json:"data"`
		Model  string     `json:"model"`
		Usage  embedUsage `json:"usage"`
	}{Object: "list", Data: data, Model: req.Model, Usage: embedUsage{usage.PromptTokens, usage.TotalTokens}})
}

// poolEmbedder is the semantic cache's "backend" embedder: an embeddings
// model called through the pool, so its limits, retries and failover
// apply. Its vectors are scaled to unit length.
type poolEmbedder struct {
	pl    *Pipeline
	model string
}

// Embed returns one unit vector per text, in order. Without a deadline of
// its own (the semantic index opening), the call gets the daemon's request
// timeout and ends with the daemon.
func (e poolEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(e.pl.base, e.pl.timeout(rpc.Options{}))
		defer cancel()
	}
	inputs := make([]json.RawMessage, len(texts))
	for i, t := range texts {
		b, err := json.Marshal(t)
		if err != nil {
			return nil, err
		}
		inputs[i] = b
	}
	resp, rep, _, err := e.pl.embedUpstream(ctx, nil, &embedRequest{Model: e.model}, inputs)
	if err != nil {
		return nil, fmt.Errorf("embed with %s: %w", e.model, err)
	}
	e.pl.accountEmbeddings(rep.Backend, e.model, "", resp.Usage.PromptTokens)
	out := make([][]float32, len(texts))
	for _, item := range resp.Data {
		if item.Index < 0 || item.Index >= len(texts) {
			return nil, fmt.Errorf("embed with %s: embedding %d of %d", e.model, item.Index, len(texts))
		}
		out[item.Index] = unit(item.vector)
	}
	for i, v := range out {
		if v == nil {
			return nil, fmt.Errorf("embed with %s: no embedding for text %d", e.model, i)
		}
	}
	return out, nil
}

// unit is v scaled to length 1; a zero vector stays zero.
func unit(v []float32) []float32 {
	var sum float64
	for _, f := range v {
		sum += float64(f) * float64(f)
	}
	if sum == 0 {
		return v
	}
	n := float32(1 / math.Sqrt(sum))
	out := make([]float32, len(v))
	for i, f := range v {
		out[i] = f * n
	}
	return out
}
