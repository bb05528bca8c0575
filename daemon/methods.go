package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/shared"
	"github.com/tidwall/gjson"
)

// methodTable maps every method of the protocol to its handler: the one
// place where wire names meet code. Sorted by name.
func (d *Daemon) methodTable() map[string]handler {
	m := map[string]handler{
		rpc.MethodBatch:        d.batch,
		rpc.MethodCacheCompact: d.cacheCompact,
		rpc.MethodCacheForget:  d.cacheForget,
		rpc.MethodCachePurge:   d.cachePurge,
		rpc.MethodCacheStats:   d.cacheStats,
		rpc.MethodCancel:       d.cancel,
		rpc.MethodChat:         d.chat,
		rpc.MethodEmbeddings:   d.embeddings,
		rpc.MethodResponses:    d.responses,
		rpc.MethodSpend:        d.spendReport,
		rpc.MethodStatus:       d.status,
		rpc.MethodWatch:        d.watch,
	}
	for name, h := range m {
		m[name] = d.guard(h)
	}
	return m
}

// enter counts a request as active while it runs (shutdown waits for
// it); ok false: the daemon is stopping, the request is refused.
func (d *Daemon) enter() (leave func(), ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return nil, false
	}
	d.active.Add(1) // under mu: never concurrent with shutdown's Wait
	return d.active.Done, true
}

// guard counts a handler as active while it runs, and turns a panic into
// an internal error for its client instead of taking the daemon down.
func (d *Daemon) guard(h handler) handler {
	return func(ctx context.Context, c *call) (v any, err error) {
		leave, ok := d.enter()
		if !ok {
			return nil, &rpc.Error{Code: rpc.CodeShuttingDown, Message: errShuttingDown.Error()}
		}
		defer leave()
		// A shutdown cancels the handlers in flight with its cause.
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(d.base, func() { cancel(context.Cause(d.base)) })()
		defer func() {
			if r := recover(); r != nil {
				d.log.Error("handler panicked", "method", c.method, "panic", r, "stack", string(debug.Stack()))
				v, err = nil, &rpc.Error{Code: rpc.CodeInternal, Message: fmt.Sprintf("internal error in %s: %v", c.method, r)}
			}
		}()
		return h(ctx, c)
	}
}

// cancel stops an in-flight request of the same connection.
func (d *Daemon) cancel(ctx context.Context, c *call) (any, error) {
	var p rpc.CancelParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	if len(p.ID) == 0 {
		return nil, proxy.InvalidParams("id", "cancel needs the id of the request to cancel")
	}
	c.s.cancelCall(string(compactJSON(p.ID)))
	return nil, nil
}

// status reports the daemon and its backends.
func (d *Daemon) status(ctx context.Context, c *call) (any, error) {
	if err := decodeParams(c, &struct{}{}); err != nil {
		return nil, err
	}
	return d.snapshot(), nil
}

// pid is the daemon's process id: os.Getpid is a system call each time.
var pid = os.Getpid()

// snapshot is the daemon's status now.
func (d *Daemon) snapshot() rpc.StatusResult {
	p50, p99 := d.pl.Overhead()
	cfg := d.config()
	res := rpc.StatusResult{
		Version:     rpc.Release,
		Protocol:    rpc.Version,
		PID:         pid,
		StartedAt:   d.started,
		UptimeS:     time.Since(d.started).Seconds(),
		Simulated:   d.simulated,
		Config:      cfg.Path,
		Env:         d.envStamps(cfg),
		Strategy:    cfg.Balance.Strategy,
		Queue:       d.pool.QueueLen(),
		DaemonP50US: p50.Microseconds(),
		DaemonP99US: p99.Microseconds(),
		Cache:       d.cacheSnapshot(),
		Batches:     d.batches.statuses(time.Now()),
	}
	res.ReloadedAt, res.ReloadError, res.RestartPending = d.reloadState()
	res.Team = d.teamStatus(cfg)
	res.Spend, res.SpendError = d.pl.SpendStatus(), d.pl.SpendError()
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
			Reason:        st.Reason,
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

// decodeParams decodes a request's params strictly: an unknown field or
// trailing data is an invalid-params error that names it.
func decodeParams(c *call, v any) error {
	if c.params == nil {
		return nil
	}
	if p, ok := v.(*rpc.ChatParams); ok && splitChatParams(c.params, p) {
		return nil
	}
	switch err := decodeStrict(c.params, v); {
	case errors.Is(err, errTrailing):
		return proxy.InvalidParams("", "params: unexpected data after the JSON value")
	case err != nil:
		return proxy.DecodeError(err, "params")
	}
	return nil
}

// splitChatParams fills p from chat params of the usual form in one fast
// pass: the request is taken as the bytes it is (the line they came in was
// checked JSON) and only the options are decoded. A member it does not
// know, or options that do not decode, leave it to decodeParams' strict
// decoder, whose error names the field.
func splitChatParams(params []byte, p *rpc.ChatParams) bool {
	v := gjson.Parse(string(params))
	if !v.IsObject() {
		return false
	}
	var out rpc.ChatParams
	ok := true
	v.ForEach(func(k, val gjson.Result) bool {
		switch k.Raw {
		case `"request"`:
			out.Request = json.RawMessage(val.Raw)
		case `"options"`: // a repeated one merges, as encoding/json's does
			ok = val.IsObject() && decodeStrict([]byte(val.Raw), &out.Options) == nil
		default:
			ok = false
		}
		return ok
	})
	if ok {
		*p = out
	}
	return ok
}

// decodeStrict decodes b into v, refusing unknown fields and, with
// errTrailing, data after the value.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("unexpected data after the JSON value")

// cacheSnapshot is the caches' stats for status; nil with the cache off.
func (d *Daemon) cacheSnapshot() *rpc.CacheStats {
	st, _ := d.pl.CacheStats()
	return st
}

// The cache methods, and embeddings: params in, the pipeline's answer out.

func (d *Daemon) cacheStats(ctx context.Context, c *call) (any, error) {
	if err := decodeParams(c, &struct{}{}); err != nil {
		return nil, err
	}
	return d.pl.CacheStats()
}

func (d *Daemon) cachePurge(ctx context.Context, c *call) (any, error) {
	var p rpc.CachePurgeParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	return d.pl.CachePurge(ctx, p)
}

func (d *Daemon) cacheForget(ctx context.Context, c *call) (any, error) {
	var p rpc.CacheForgetParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	return d.pl.CacheForget(ctx, p.ID)
}

func (d *Daemon) cacheCompact(ctx context.Context, c *call) (any, error) {
	if err := decodeParams(c, &struct{}{}); err != nil {
		return nil, err
	}
	return d.pl.CacheCompact()
}

func (d *Daemon) embeddings(ctx context.Context, c *call) (any, error) {
	var p rpc.EmbeddingsParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	return d.pl.Embed(ctx, p.Request, p.Options)
}

// compactJSON is b without insignificant space, as the session keeps
// request ids.
func compactJSON(b json.RawMessage) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// envStamps stamps the environment variables cfg reads (rpc.EnvStamps):
// the daemon's environment is the one it started with, so the stamps of a
// config are made once (and read-only since).
func (d *Daemon) envStamps(cfg *config.Config) *rpc.EnvStamps {
	if m := d.envMemo.Load(); m != nil && m.cfg == cfg {
		return m.stamps
	}
	e := d.stampEnv(cfg)
	d.envMemo.Store(&envMemo{cfg, e})
	return e
}

// envMemo is the stamps of one config.
type envMemo struct {
	cfg    *config.Config
	stamps *rpc.EnvStamps
}

func (d *Daemon) stampEnv(cfg *config.Config) *rpc.EnvStamps {
	names := map[string]bool{}
	for _, b := range cfg.Backends {
		if b.APIKeyEnv != "" {
			names[b.APIKeyEnv] = true
		}
	}
	if cfg.Shared.PasswordEnv != "" {
		names[cfg.Shared.PasswordEnv] = true
	}
	if cfg.Path == "" && !d.simulated {
		names["OPENAI_BASE_URL"], names["AZURE_OPENAI_ENDPOINT"] = true, true
	}
	if len(names) == 0 {
		return nil
	}
	e := &rpc.EnvStamps{Salt: d.envSalt, Vars: make(map[string]string, len(names))}
	for n := range names {
		e.Vars[n] = rpc.EnvStamp(d.envSalt, n, strings.TrimSpace(d.getenv(n)))
	}
	return e
}

// teamStatus is the team as this daemon sees it; nil without one.
func (d *Daemon) teamStatus(cfg *config.Config) *rpc.TeamStatus {
	if d.team == nil {
		return nil
	}
	h := d.team.Health()
	ts := &rpc.TeamStatus{Redis: h.Redis, Host: h.Host, Hosts: h.Hosts, DegradedSince: h.DegradedSince, LastError: h.LastError, RTTUS: h.RTT.Microseconds()}
	backends := map[string][]string{}
	for _, b := range cfg.Backends {
		n := shared.ScopeName(b)
		backends[n] = append(backends[n], b.Name)
	}
	for _, s := range d.team.Scopes() {
		ts.Scopes = append(ts.Scopes, rpc.ScopeStatus{
			Name: s.Name, Backends: backends[s.Name], Hosts: s.Hosts,
			LevelRPM: s.LevelRPM, LevelTPM: s.LevelTPM,
			LeaseRPM: int64(s.LeaseRPM), LeaseTPM: int64(s.LeaseTPM),
			CoolingUntil: s.CoolingUntil, Degraded: s.Degraded,
			ShareRPM: int64(s.ShareRPM), ShareTPM: int64(s.ShareTPM),
		})
	}
	return ts
}
