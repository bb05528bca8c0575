package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/creachadair/jrpc2"

	"github.com/lbgpt/lbgpt/rpc"
)

// methodTable maps every method of the protocol to its handler: the one
// place where wire names meet code. Sorted by name.
func (d *Daemon) methodTable() map[string]jrpc2.Handler {
	m := map[string]jrpc2.Handler{
		rpc.MethodBatch:        d.batch,
		rpc.MethodCacheCompact: d.cacheCompact,
		rpc.MethodCacheForget:  d.cacheForget,
		rpc.MethodCachePurge:   d.cachePurge,
		rpc.MethodCacheStats:   d.cacheStats,
		rpc.MethodCancel:       d.cancel,
		rpc.MethodChat:         d.chat,
		rpc.MethodEmbeddings:   d.embeddings,
		rpc.MethodResponses:    d.responses,
		rpc.MethodStatus:       d.status,
		rpc.MethodWatch:        d.watch,
	}
	for name, h := range m {
		m[name] = d.guard(h)
	}
	return m
}

// guard counts a handler as active while it runs, and turns a panic into
// an internal error for its client instead of taking the daemon down.
func (d *Daemon) guard(h jrpc2.Handler) jrpc2.Handler {
	return func(ctx context.Context, req *jrpc2.Request) (v any, err error) {
		d.mu.Lock()
		if d.closing {
			d.mu.Unlock()
			return nil, &jrpc2.Error{Code: rpc.CodeShuttingDown, Message: errShuttingDown.Error()}
		}
		d.active.Add(1) // under mu: never concurrent with shutdown's Wait
		d.mu.Unlock()
		defer d.active.Done()
		defer func() {
			if r := recover(); r != nil {
				d.log.Error("handler panicked", "method", req.Method(), "panic", r, "stack", string(debug.Stack()))
				v, err = nil, &jrpc2.Error{Code: rpc.CodeInternal, Message: fmt.Sprintf("internal error in %s: %v", req.Method(), r)}
			}
		}()
		return h(ctx, req)
	}
}

// cancel stops an in-flight request of the same connection.
func (d *Daemon) cancel(ctx context.Context, req *jrpc2.Request) (any, error) {
	var p rpc.CancelParams
	if err := decodeParams(req, &p); err != nil {
		return nil, err
	}
	if len(p.ID) == 0 {
		return nil, invalidParams("id", "cancel needs the id of the request to cancel")
	}
	jrpc2.ServerFromContext(ctx).CancelRequest(string(compactJSON(p.ID)))
	return nil, nil
}

// status reports the daemon and its backends.
func (d *Daemon) status(ctx context.Context, req *jrpc2.Request) (any, error) {
	if err := decodeParams(req, &struct{}{}); err != nil {
		return nil, err
	}
	return d.snapshot(), nil
}

// snapshot is the daemon's status now.
func (d *Daemon) snapshot() rpc.StatusResult {
	p50, p99 := d.overhead.percentiles()
	cfg := d.config()
	res := rpc.StatusResult{
		Version:     Version,
		Protocol:    rpc.Version,
		PID:         os.Getpid(),
		StartedAt:   d.started,
		UptimeS:     time.Since(d.started).Seconds(),
		Simulated:   d.simulated,
		Config:      cfg.Path,
		Strategy:    cfg.Balance.Strategy,
		Queue:       d.pool.QueueLen(),
		DaemonP50US: p50.Microseconds(),
		DaemonP99US: p99.Microseconds(),
		Cache:       d.cacheSnapshot(),
		Batches:     d.batches.statuses(time.Now()),
	}
	res.ReloadedAt, res.ReloadError = d.reloadState()
	for _, st := range d.pool.State() {
		b := rpc.BackendStatus{
			Name:          st.Name,
			Type:          st.Config.Type,
			BaseURL:       st.Config.BaseURL,
			Models:        st.Config.Models,
			State:         st.State,
			Requests:      st.Requests,
			Errors:        st.Errors,
			Status429:     st.Status429,
			Retries:       st.Retries,
			Tokens:        st.Tokens,
			InFlight:      int64(st.InFlight),
			LimitRPM:      st.LimitRPM,
			LimitTPM:      st.LimitTPM,
			UsedRPM:       st.UsedRPM,
			UsedTPM:       st.UsedTPM,
			RemainingRPM:  st.RemainingRPM,
			RemainingTPM:  st.RemainingTPM,
			LatencyP50MS:  ms(st.LatencyP50),
			LatencyP95MS:  ms(st.LatencyP95),
			CooldownUntil: st.CooldownUntil,
			Traffic:       st.Traffic,
		}
		if b.Models == nil {
			b.Models = []string{}
		}
		res.Backends = append(res.Backends, b)
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// decodeParams decodes a request's params strictly: an unknown field is an
// invalid-params error that names it.
func decodeParams(req *jrpc2.Request, v any) error {
	if !req.HasParams() {
		return nil
	}
	return strictUnmarshal([]byte(req.ParamString()), v, "params")
}

// compactJSON is b without insignificant space, as jrpc2 keeps request ids.
func compactJSON(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
