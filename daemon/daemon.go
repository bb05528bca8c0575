// Package daemon is lbgptd: it owns the pool of upstream backends and serves
// JSON-RPC 2.0 (package rpc) to local clients on a Unix socket.
//
// Lifecycle: New validates the configuration and builds the pool; Serve
// serves a listener (Listen, or one handed over by systemd: Activated)
// until its context ends, then stops accepting, lets the requests in flight
// finish for up to [daemon] drain_timeout, cancels the rest with a
// "shutting down" error, and returns. Reload swaps in a new configuration
// while serving. Serve tells the service manager (sd_notify) when it is
// ready, reloading or stopping, what it is doing (STATUS=), and pings the
// watchdog while a health check of the request path passes. A Daemon
// serves many connections and many requests per connection concurrently.
//
// The daemon wires two packages of its own: proxy, the request pipeline
// (caches, single-flight, upstream calls through the pool, the Responses
// API's affinity), and httpapi, the OpenAI-compatible HTTP endpoint over
// that pipeline. This package keeps the lifecycle, the listeners, the
// JSON-RPC method table and its handlers, batches and status.
package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/lbgpt/lbgpt/internal/workers"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/shared"
)

// Options configure a Daemon.
type Options struct {
	Config *config.Config // required, with keys resolved
	Logger *slog.Logger   // nil: discard
	// Simulated marks a daemon whose backends are lbgpt's simulator
	// (lbgptd --demo); status reports it so every client can say so.
	Simulated bool
	// Transport is the HTTP transport for upstream calls; nil gives each
	// provider its own tuned transport.
	Transport http.RoundTripper
	// Getenv is the environment the configuration's keys were read from,
	// stamped in the status (rpc.EnvStamps); nil means os.Getenv.
	Getenv func(string) string
	// StateDir holds what lbgptd keeps between runs (the HTTP endpoint's
	// token, the cache file unless [cache] path names another); "" means
	// rpc.DefaultStateDir().
	StateDir string

	// Notify sends one sd_notify message; nil sends it to $NOTIFY_SOCKET
	// (nothing without one).
	Notify func(state string) error
	// Watchdog is the watchdog timeout: Serve pings at half of it while
	// HealthCheck passes. 0 reads $WATCHDOG_USEC (no pings without it).
	Watchdog time.Duration
	// HealthCheck checks the request path before each watchdog ping; nil
	// is a status request through the daemon's own dispatcher.
	HealthCheck func(ctx context.Context) error
	// StatusEvery is how often STATUS= is sent; default 5s.
	StatusEvery time.Duration
}

// Daemon is lbgptd.
type Daemon struct {
	cfg       atomic.Pointer[config.Config] // swapped by Reload
	transport http.RoundTripper
	notify    notifier
	lifeOpts  lifeOptions
	log       *slog.Logger
	simulated bool
	pool      *balance.Pool
	workers   workers.Pool // the goroutines the socket's sessions hand calls and reading to
	started   time.Time
	uid       int
	envSalt   string // salts the status's stamps of the environment
	envMemo   atomic.Pointer[envMemo]
	getenv    func(string) string
	group     string // gid whose members may connect too ([daemon] socket_group); "" none
	groupName string
	methods   map[string]handler
	pl        *proxy.Pipeline // the request pipeline: caches, upstream calls
	stateDir  string
	http      httpListeners // the [http] endpoint's, once ListenHTTP opened them
	batches   batchRegistry // the batches running now, for status

	// base is the parent context of every handler; stop cancels it with
	// a cause at the end of a shutdown's drain. draining ends when the
	// shutdown starts: long-lived subscriptions (watch) end with it, as
	// they would hold the drain for nothing. active counts the handlers
	// running.
	team       *shared.Team // nil: nothing shared
	base       context.Context
	stop       context.CancelCauseFunc
	draining   context.Context
	startDrain context.CancelFunc
	active     sync.WaitGroup

	stoppingMu     sync.Mutex // orders the drain's start and STOPPING=1 against a watchdog ping
	reloadMu       sync.Mutex // serializes Reload
	resultMu       sync.Mutex // guards reloadedAt, reloadErr and restartPending
	reloadedAt     time.Time  // the last Reload
	reloadErr      error      // why it was rejected
	restartPending []string   // settings the last applied reload left for the next start

	mu      sync.Mutex // guards conns and closing
	conns   map[net.Conn]struct{}
	closing bool // shutting down: new connections are refused
}

// New checks the configuration and builds the backends.
func New(opts Options) (*Daemon, error) {
	if opts.Config == nil {
		return nil, errors.New("daemon: no config")
	}
	if len(opts.Config.Backends) == 0 {
		return nil, config.ErrNoBackends
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	providers, err := newProviders(opts.Config.Backends, opts.Transport)
	if err != nil {
		return nil, err
	}
	var team *shared.Team
	if sc := opts.Config.Shared; sc.Enabled() {
		state := cmp.Or(opts.StateDir, rpc.DefaultStateDir())
		if team, err = shared.Open(shared.Options{Config: sc, Logger: log, StateDir: state}); err != nil {
			return nil, err
		}
		log.Info("sharing limits and answers with the team", "redis", shared.Where(sc.Redis), "host", team.Host())
	}
	d := &Daemon{
		team:      team,
		transport: opts.Transport,
		notify:    newNotifier(opts),
		log:       log,
		simulated: opts.Simulated,
		pool:      balance.New(opts.Config.Backends, providers, poolOptions(opts.Config, team)),
		started:   time.Now(),
		uid:       os.Getuid(),
		envSalt:   rand.Text(),
		getenv:    opts.Getenv,
		conns:     make(map[net.Conn]struct{}),
		stateDir:  cmp.Or(opts.StateDir, rpc.DefaultStateDir()),
	}
	if d.getenv == nil {
		d.getenv = os.Getenv
	}
	if g := opts.Config.Daemon.SocketGroup; g != "" {
		grp, err := user.LookupGroup(g)
		if err != nil {
			return nil, fmt.Errorf("daemon.socket_group: %w", err)
		}
		d.group, d.groupName = grp.Gid, g
	}
	d.cfg.Store(opts.Config)
	d.base, d.stop = context.WithCancelCause(context.Background())
	d.draining, d.startDrain = context.WithCancel(context.Background())
	d.pl, err = proxy.New(proxy.Options{Config: d.config, Pool: d.pool, Logger: log, StateDir: d.stateDir, Base: d.base, Team: team})
	if err != nil {
		return nil, err
	}
	d.lifeOpts = d.lifeOptions(opts)
	d.methods = d.methodTable()
	// Load the tokenizers (about a second of CPU) beside start-up rather
	// than in it, so readiness does not wait and the first requests rarely
	// do; a request that comes sooner waits for the load it needs.
	go tokens.Load()
	return d, nil
}

// newProviders builds a provider per backend.
func newProviders(backends []config.Backend, transport http.RoundTripper) ([]*provider.Provider, error) {
	providers := make([]*provider.Provider, 0, len(backends))
	for _, b := range backends {
		p, err := provider.New(b, transport)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		providers = append(providers, p)
	}
	return providers, nil
}

func poolOptions(c *config.Config, team *shared.Team) balance.Options {
	var limits func(config.Backend, func()) (balance.Limit, balance.Limit)
	if team != nil {
		limits = team.Limits
	}
	return balance.Options{
		Limits:       limits,
		Strategy:     c.Balance.Strategy,
		Overallocate: c.Balance.Overallocate,
		MaxAttempts:  c.Daemon.MaxAttempts,
		BackoffBase:  c.Balance.BackoffBase.Duration,
		BackoffMax:   c.Balance.BackoffMax.Duration,
		Reprobe:      c.Balance.Reprobe.Duration,
	}
}

// config is the configuration in force.
func (d *Daemon) config() *config.Config { return d.cfg.Load() }

// Close releases what New opened (the cache file, after saving what is
// pending) and ends its idle workers. Serve calls it when it returns; a
// Daemon that never served must call it. It is idempotent.
func (d *Daemon) Close() error {
	d.workers.Close()
	d.pool.Close()
	d.pl.Close()
	if d.team != nil {
		d.team.Close()
	}
	return nil
}

// errShuttingDown is the cause of the requests canceled by a shutdown.
var errShuttingDown = proxy.ErrShuttingDown

// cancelGrace bounds how long a shutdown waits for canceled handlers to
// send their errors before it closes the connections.
const cancelGrace = 5 * time.Second

// Serve accepts connections on ln until ctx ends, then drains: it refuses
// new requests and connections (-32010), lets the requests in flight
// finish for up to [daemon] drain_timeout, cancels the rest (their clients
// get the same "shutting down" error), closes ln and waits for every
// connection to close. It tells the
// service manager READY=1 once it accepts, and STOPPING=1 when it stops.
// It closes the cache when it returns.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	d.log.Info("serving", "socket", ln.Addr().String(), "backends", len(d.config().Backends), "simulated", d.simulated)
	if !isUnix(ln) {
		d.log.Error("the listener is not a Unix socket: every connection will be refused (no peer credentials to check)", "network", ln.Addr().Network())
	}
	defer d.Close() // last: after every connection and handler is done
	stopHTTP, err := d.serveHTTP()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopHTTP()
	// The socket stays open through the drain, so a client connecting
	// then is told -32010 rather than finding no daemon (and starting
	// another); the connections still queued when it closes are answered
	// the same way.
	var wg sync.WaitGroup
	defer wg.Wait()
	handle := func(nc net.Conn) {
		wg.Go(func() {
			if err := d.checkPeer(nc); err != nil {
				d.log.Warn("connection refused", "err", err)
				refuse(nc, &rpc.Error{Code: rpc.CodePermission, Message: err.Error()})
				return
			}
			d.serveConn(nc)
		})
	}
	var once sync.Once
	shut := func() {
		once.Do(func() {
			d.shutdown()
			refuseQueued(ln, time.Now().Add(queuedGrace), handle)
			ln.Close()
		})
	}
	stop := context.AfterFunc(ctx, shut)
	defer stop()
	lifeCtx, endLife := context.WithCancel(context.Background())
	wg.Go(func() { d.life(lifeCtx, d.lifeOpts) })
	defer endLife()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				shut() // waits for the drain the cancel started
				return nil
			}
			if isTemporary(err) { // out of file descriptors, an aborted connection
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				d.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			shut()
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		handle(nc)
	}
}

// queuedGrace bounds how long a stopping daemon goes on taking the
// connections queued on its socket, and the requests its clients have
// already sent, to refuse them.
const queuedGrace = 50 * time.Millisecond

// refuseQueued makes a socket the daemon created unreachable (its path
// removed), then accepts the connections already queued on it until
// deadline and hands each to serve (which refuses their requests -32010),
// so that none of them is reset when it closes. A socket systemd passed is
// left alone: what is queued on it waits for the next start.
func refuseQueued(ln net.Listener, deadline time.Time, serve func(net.Conn)) {
	s, ok := ln.(*ownedSocket)
	if !ok {
		return
	}
	s.unlink()
	if s.SetDeadline(deadline) != nil {
		return
	}
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		serve(nc)
	}
}

// isUnix reports whether ln is a Unix socket, whose peers can be checked.
func isUnix(ln net.Listener) bool {
	switch ln.(type) {
	case *net.UnixListener, *ownedSocket:
		return true
	}
	return false
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || (errors.As(err, &ne) && ne.Timeout())
}

// serveConn serves one connection until it closes: one that Serve
// accepted from a peer checkPeer let in, or the daemon's own (the health
// check's).
func (d *Daemon) serveConn(nc net.Conn) {
	d.mu.Lock()
	if d.closing {
		// Stopping: read what the client sends at once and answer each
		// request -32010 under its own id (guard refuses them all), so
		// that no client meets a reset or an answer to nothing.
		d.mu.Unlock()
		nc.SetReadDeadline(time.Now().Add(queuedGrace))
	} else {
		d.conns[nc] = struct{}{}
		d.mu.Unlock()
	}
	newSession(d, nc).serve() // every response written
	nc.Close()
	d.mu.Lock()
	delete(d.conns, nc)
	d.mu.Unlock()
}

// shutdown refuses new connections and requests, ends the watches, waits
// up to the drain timeout for the handlers in flight, then cancels the
// rest with errShuttingDown and waits (a bounded time) for them to return.
// Then it stops reading from every connection (after a short grace for
// what is already on its way): each session writes the responses it
// owes and ends, and serveConn closes the connection.
func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.stoppingMu.Lock()
	d.startDrain()
	d.sendNotify("STOPPING=1\nSTATUS=draining the requests in flight")
	d.stoppingMu.Unlock()
	drained := make(chan struct{})
	go func() { d.active.Wait(); close(drained) }()
	timeout := d.config().Daemon.DrainTimeout.Duration
	d.log.Info("stopping: new requests refused, draining those in flight", "drain_timeout", timeout)
	if !waitClosed(drained, timeout) {
		d.log.Warn("requests still in flight after the drain timeout; canceling them", "drain_timeout", timeout)
		d.stop(errShuttingDown)
		if !waitClosed(drained, cancelGrace) {
			d.log.Warn("handlers still running after their cancel; closing their connections")
		}
	}
	d.stop(errShuttingDown)
	// Stop reading from every connection once what its client has sent
	// already is read (and refused -32010): a request that was on its way
	// is answered rather than dropped with the connection.
	d.mu.Lock()
	defer d.mu.Unlock()
	for nc := range d.conns {
		nc.SetReadDeadline(time.Now().Add(queuedGrace))
	}
}

// waitClosed reports whether done closed within d (at once when d <= 0).
func waitClosed(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
