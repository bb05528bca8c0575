// Package daemon is lbgptd: it owns the pool of upstream backends and serves
// JSON-RPC 2.0 (package rpc) to local clients on a Unix socket.
//
// Lifecycle: New validates the configuration and builds the pool; Run listens
// on the socket and serves until its context ends, then stops accepting,
// cancels what is in flight and removes the socket. A Daemon serves many
// connections and many requests per connection concurrently.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/creachadair/jrpc2"

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

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
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
		started: time.Now(),
		uid:     os.Getuid(),
		conns:   make(map[net.Conn]struct{}),
	}
	d.methods = d.methodTable()
	// Load the tokenizers now: the first request should not pay for it.
	tokens.Count("gpt-4o", "")
	tokens.Count("gpt-4", "")
	return d, nil
}

// Run listens on socket (see Listen) and serves until ctx ends.
func (d *Daemon) Run(ctx context.Context, socket string) error {
	ln, err := Listen(socket)
	if err != nil {
		return err
	}
	return d.Serve(ctx, ln)
}

// Serve accepts connections on ln until ctx ends, then closes ln, cancels
// the requests in flight and waits for their handlers to return.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	d.log.Info("serving", "socket", ln.Addr().String(), "backends", len(d.cfg.Backends), "simulated", d.simulated)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				d.shutdown()
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			d.shutdown()
			return fmt.Errorf("accept: %w", err)
		}
		wg.Go(func() { d.serveConn(nc) })
	}
}

// serveConn checks the peer and serves one connection until it closes.
func (d *Daemon) serveConn(nc net.Conn) {
	if err := d.checkPeer(nc); err != nil {
		d.log.Warn("connection refused", "err", err)
		refuse(nc, &rpc.Error{Code: rpc.CodePermission, Message: err.Error()})
		return
	}
	ch := newLineChannel(nc, d.cfg.Daemon.MaxMessageBytes)
	srv := jrpc2.NewServer(methodMap(d.methods), &jrpc2.ServerOptions{
		AllowPush:   true, // stream chunks are server notifications
		Concurrency: 4096, // the default (NumCPU) would queue cancels behind streams
	})
	d.mu.Lock()
	d.conns[nc] = struct{}{}
	d.mu.Unlock()
	srv.Start(ch)
	srv.Wait()
	d.mu.Lock()
	delete(d.conns, nc)
	d.mu.Unlock()
}

// shutdown closes every connection: each server then stops and cancels its
// requests in flight. (Closing the connection rather than calling
// Server.Stop lets jrpc2's reader stop the server itself: Stop racing an
// incoming message panics in jrpc2 v1.3.6.)
func (d *Daemon) shutdown() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for nc := range d.conns {
		nc.Close()
	}
}
