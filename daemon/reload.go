package daemon

import (
	"reflect"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon/proxy"
)

// Reload loads a new configuration with load and puts it in force without
// a restart: backends are added, removed and retuned by name (see
// balance.Pool.Reconfigure), so the live rate-limit state, the stats, the
// caches and the requests in flight all carry over; [balance] and the
// request settings of [daemon] apply to new requests. A configuration that
// fails to load or to build is rejected: the reason is logged, returned and
// shown in status (reload_error), and the old configuration stays.
//
// The socket and socket_group cannot change while serving (nor [http]
// listen, the cache file, [shared]): a new value is logged, shown in status
// (restart_pending) and applies at the next start. Reload tells the service manager
// RELOADING=1 (with MONOTONIC_USEC) and READY=1 around its work.
func (d *Daemon) Reload(load func() (*config.Config, error)) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.sendNotify("RELOADING=1\n" + sd.SdNotifyMonotonicUsec() + "STATUS=reloading the configuration")
	defer func() { d.sendNotify("READY=1\nSTATUS=" + d.statusLine()) }()
	at := time.Now()
	pending, err := d.reload(load)
	d.resultMu.Lock()
	d.reloadedAt, d.reloadErr = at, err
	if err == nil {
		d.restartPending = pending
	}
	d.resultMu.Unlock()
	if err != nil {
		d.log.Error("reload rejected; the previous configuration stays in force", "err", err)
		return err
	}
	return nil
}

// reload applies the configuration load returns, and returns the
// settings that changed in it but apply only at the next start (the
// running values kept).
func (d *Daemon) reload(load func() (*config.Config, error)) (pending []string, err error) {
	cfg, err := load()
	if err != nil {
		return nil, err
	}
	if len(cfg.Backends) == 0 {
		return nil, config.ErrNoBackends
	}
	old := d.config() // what runs: the settings fixed at the start as they started
	if cfg.Daemon.Socket != old.Daemon.Socket || cfg.Daemon.SocketGroup != old.Daemon.SocketGroup {
		d.log.Warn("the socket settings changed; they apply at the next start", "socket", cfg.Daemon.Socket, "socket_group", cfg.Daemon.SocketGroup)
		cfg.Daemon.Socket, cfg.Daemon.SocketGroup = old.Daemon.Socket, old.Daemon.SocketGroup
		pending = append(pending, "[daemon] socket, socket_group")
	}
	if cfg.HTTP.Listen != old.HTTP.Listen || cfg.HTTP.Socket != old.HTTP.Socket {
		d.log.Warn("the [http] listen and socket settings changed; they apply at the next start", "listen", cfg.HTTP.Listen, "socket", cfg.HTTP.Socket)
		cfg.HTTP.Listen, cfg.HTTP.Socket = old.HTTP.Listen, old.HTTP.Socket
		pending = append(pending, "[http] listen, socket")
	}
	if proxy.KeepCacheFile(cfg, old, d.log) {
		pending = append(pending, "[cache] enabled, path, max_bytes, embedder, embedding_model")
	}
	if !reflect.DeepEqual(cfg.Shared, old.Shared) {
		d.log.Warn("the [shared] settings changed; they apply at the next start")
		cfg.Shared = old.Shared
		pending = append(pending, "[shared]")
	}
	providers, err := newProviders(cfg.Backends, d.transport)
	if err != nil {
		return nil, err
	}
	d.pool.Reconfigure(cfg.Backends, providers, poolOptions(cfg, d.team))
	d.cfg.Store(cfg)
	d.pl.ForgetModels() // the backends may have changed: ask again when next wanted
	names := make([]string, len(cfg.Backends))
	for i, b := range cfg.Backends {
		names[i] = b.Name
	}
	d.log.Info("configuration reloaded", "config", cfg.Path, "backends", names)
	return pending, nil
}

// reloadState is when the last reload happened, why it was rejected, and
// the settings the last applied one left for the next start, for status.
func (d *Daemon) reloadState() (at time.Time, rejected string, pending []string) {
	d.resultMu.Lock()
	defer d.resultMu.Unlock()
	if d.reloadErr != nil {
		rejected = d.reloadErr.Error()
	}
	return d.reloadedAt, rejected, d.restartPending
}
