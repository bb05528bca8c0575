// Package daemon is lbgptd: it owns the pool of upstream backends and serves
// JSON-RPC 2.0 (package rpc) to local clients on a Unix socket.
//
// Lifecycle: New validates the configuration and builds the pool; Run listens
// on the socket and serves until its context ends, then stops accepting,
// cancels what is in flight and removes the socket. A Daemon serves many
// connections and many requests per connection concurrently.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/handler"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// Version is lbgptd's version, reported by the status method.
var Version = "0.1.0-dev"

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
	// StateDir holds what lbgptd keeps between runs (the HTTP endpoint's
	// token, the cache file unless [cache] path names another); "" means
	// rpc.DefaultStateDir().
	StateDir string
}

// Daemon is lbgptd.
type Daemon struct {
	cfg       *config.Config
	log       *slog.Logger
	simulated bool
	pool      *balance.Pool
	started   time.Time
	uid       int
	methods   map[string]jrpc2.Handler
	est       estimator
	calls     flights[answer]
	overhead  overhead
	cache     caches
	threshold float64   // the semantic cache's default threshold; 0 without one
	latency   latencies // per-backend histograms for /metrics
	stateDir  string
	http      httpListeners // the [http] endpoint's, once ListenHTTP opened them
	batches   batchRegistry // the batches running now, for status

	// base is the parent context of every handler; stop cancels it with
	// a cause at shutdown. active counts the handlers running.
	base   context.Context
	stop   context.CancelCauseFunc
	active sync.WaitGroup

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
	providers := make([]*provider.Provider, 0, len(opts.Config.Backends))
	for _, b := range opts.Config.Backends {
		p, err := provider.New(b, opts.Transport)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		providers = append(providers, p)
	}
	bal := opts.Config.Balance
	d := &Daemon{
		cfg:       opts.Config,
		log:       log,
		simulated: opts.Simulated,
		pool: balance.New(opts.Config.Backends, providers, balance.Options{
			Strategy:     bal.Strategy,
			Overallocate: bal.Overallocate,
			MaxAttempts:  opts.Config.Daemon.MaxAttempts,
			BackoffBase:  bal.BackoffBase.Duration,
			BackoffMax:   bal.BackoffMax.Duration,
			Reprobe:      bal.Reprobe.Duration,
		}),
		started:  time.Now(),
		uid:      os.Getuid(),
		conns:    make(map[net.Conn]struct{}),
		latency:  newLatencies(opts.Config.Backends),
		stateDir: cmp.Or(opts.StateDir, rpc.DefaultStateDir()),
	}
	if err := openCache(opts.Config.Cache, d); err != nil {
		return nil, err
	}
	d.base, d.stop = context.WithCancelCause(context.Background())
	d.methods = d.methodTable()
	// Load the tokenizers now: the first request should not pay for it.
	tokens.Count("gpt-4o", "")
	tokens.Count("gpt-4", "")
	return d, nil
}

// Close releases what New opened (the cache file, after saving what is
// pending). Serve calls it when it returns; a Daemon that never served
// must call it. It is idempotent.
func (d *Daemon) Close() error {
	d.closeCache()
	return nil
}

// errShuttingDown is the cause of the requests canceled by a shutdown.
var errShuttingDown = errors.New("lbgptd is shutting down")

// drainTimeout bounds how long a shutdown waits for canceled handlers to
// send their errors before it closes the connections.
const drainTimeout = 5 * time.Second

// Serve accepts connections on ln until ctx ends, then closes ln, cancels
// the requests in flight (their clients get a "shutting down" error),
// waits for every connection to close and closes the cache.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	d.log.Info("serving", "socket", ln.Addr().String(), "backends", len(d.cfg.Backends), "simulated", d.simulated)
	stopHTTP, err := d.serveHTTP()
	if err != nil {
		ln.Close()
		return err
	}
	defer stopHTTP()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer d.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				d.shutdown()
				return nil
			}
			if isTemporary(err) { // out of file descriptors, an aborted connection
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				d.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			d.shutdown()
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		wg.Go(func() { d.serveConn(nc) })
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || (errors.As(err, &ne) && ne.Timeout())
}

// serveConn checks the peer and serves one connection until it closes.
func (d *Daemon) serveConn(nc net.Conn) {
	if err := d.checkPeer(nc); err != nil {
		d.log.Warn("connection refused", "err", err)
		refuse(nc, &rpc.Error{Code: rpc.CodePermission, Message: err.Error()})
		return
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		refuse(nc, &rpc.Error{Code: rpc.CodeShuttingDown, Message: errShuttingDown.Error()})
		return
	}
	d.conns[nc] = struct{}{}
	d.mu.Unlock()
	ch := newLineChannel(nc, d.cfg.Daemon.MaxMessageBytes)
	srv := jrpc2.NewServer(handler.Map(d.methods), &jrpc2.ServerOptions{
		AllowPush:   true, // stream chunks are server notifications
		Concurrency: 4096, // the default (NumCPU) would queue cancels behind streams
		NewContext:  func() context.Context { return d.base },
	})
	srv.Start(ch)
	srv.Wait() // every response delivered
	nc.Close()
	d.mu.Lock()
	delete(d.conns, nc)
	d.mu.Unlock()
}

// shutdown cancels every request in flight with errShuttingDown, waits (a
// bounded time) for the handlers to return, then stops reading from every
// connection: each jrpc2 server then delivers the responses it owes and
// stops, and serveConn closes the connection. (Ending the reads rather than
// calling Server.Stop lets jrpc2's reader stop the server: Stop racing an
// incoming message panics in jrpc2 v1.3.6, and Stop drops the responses.)
func (d *Daemon) shutdown() {
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.stop(errShuttingDown)
	drained := make(chan struct{})
	go func() { d.active.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		d.log.Warn("handlers still running after the drain timeout; closing their connections")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for nc := range d.conns {
		closeRead(nc)
	}
}
