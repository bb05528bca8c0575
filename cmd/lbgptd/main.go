// Command lbgptd is the lbgpt daemon: it owns a pool of OpenAI, Azure OpenAI
// and OpenAI-compatible backends and serves JSON-RPC 2.0 on a Unix socket.
// See docs/protocol.md for the protocol and lbgpt.toml.example for the
// configuration.
package main

import (
	"github.com/lbgpt/lbgpt/rpc"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Getenv, hup, os.Stdout, os.Stderr)
	stop()
	signal.Stop(hup)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, new(usageError)):
		fmt.Fprintln(os.Stderr, "lbgptd:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "lbgptd:", err)
		os.Exit(1)
	}
}

// usageError is a problem with the command line or the configuration: exit 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

const usage = `Usage: lbgptd [flags]

lbgptd is the lbgpt daemon. It balances OpenAI-style chat requests over a pool
of API accounts and serves JSON-RPC 2.0 on a Unix socket (docs/protocol.md).

Backends come from the config file (default %s,
see lbgpt.toml.example); without one, from OPENAI_API_KEY (one OpenAI backend)
and AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT (one Azure backend).
With --demo it runs on lbgpt's built-in simulated backends instead: no keys,
no real API calls, and it serves the OpenAI-compatible HTTP endpoint on
--http (127.0.0.1:8088) for any API key, so an OpenAI app can try it:
OPENAI_BASE_URL=http://127.0.0.1:8088/v1 OPENAI_API_KEY=demo node app.js

Signals: SIGTERM or SIGINT stops it after the requests in flight finish
([daemon] drain_timeout); SIGHUP reloads the config file, keeping the cache,
the stats, the rate-limit state and the requests in flight (a config that
does not load is rejected and the old one stays; lbgpt status shows why).
Under systemd it is socket-activated (packaging/lbgptd.socket), reports
readiness and status with sd_notify and pings the watchdog; the directories
systemd gives it replace the defaults: $CONFIGURATION_DIRECTORY (lbgpt.toml),
$RUNTIME_DIRECTORY (the socket), $STATE_DIRECTORY (the answer cache,
cache.db, the Responses API's records of which backend holds each response,
responses.db, the spend ledger, spend.json and spend.journal.N, and the
HTTP endpoint's token; else $XDG_STATE_HOME/lbgpt). It
keeps nothing in a cache directory: cached answers were paid for, so they
are state, not something to regenerate.

With [shared] redis = "redis://..." in the config, the lbgptd of several
hosts share one rate-limit budget per account and one answer cache through
that Redis (docs/teams.md); if Redis does not answer, each host spends its
share of the limits until it does.

Flags:
`

// run is lbgptd; each value received on hup reloads the configuration.
func run(ctx context.Context, args []string, getenv func(string) string, hup <-chan os.Signal, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("lbgptd", flag.ContinueOnError)
	// --help prints the usage on stdout; a bad flag is said once, by main,
	// on stderr.
	fset.SetOutput(io.Discard)
	var (
		configPath = fset.String("config", "", "config file (default "+defaultConfigPath(getenv)+")")
		socket     = fset.String("socket", "", "Unix socket to listen on when not socket-activated (default: daemon.socket from the config, else "+socketPath("", "", getenv)+")")
		demo       = fset.Bool("demo", false, "serve lbgpt's built-in SIMULATED backends (no keys, no real API calls), with the OpenAI-compatible endpoint on --http")
		httpAddr   = fset.String("http", "127.0.0.1:8088", "with --demo: the loopback address of its OpenAI-compatible HTTP endpoint (any API key accepted; when the default port is taken, a free one, logged)")
		logLevel   = fset.String("log-level", "info", "log level: debug, info, warn or error")
		logFormat  = fset.String("log-format", "text", "log format: text or json")
		version    = fset.Bool("version", false, "print the version and exit")
	)
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), usage, defaultConfigPath(getenv))
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fset.SetOutput(stdout)
			fset.Usage()
			return err
		}
		return usageError{fmt.Errorf("%w (see lbgptd --help)", err)}
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (see lbgptd --help)", fset.Arg(0))}
	}
	if *version {
		fmt.Fprintln(stdout, "lbgptd", rpc.Release)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	log, err := newLogger(stderr, *logFormat, level, getenv)
	if err != nil {
		return usageError{err}
	}

	var cfg *config.Config
	if *demo {
		if *configPath != "" {
			return usageError{errors.New("--demo and --config exclude each other: the demo uses its own simulated backends")}
		}
		d, err := daemon.StartDemo()
		if err != nil {
			return err
		}
		defer d.Close()
		log.Warn("demo mode: every backend is SIMULATED by lbgpt's built-in simulator; no real API is called", "simulator", d.URL)
		cfg = d.Config
		cfg.HTTP.Listen = demoHTTPAddr(fset, *httpAddr)
	}
	load := func() (*config.Config, error) { return loadConfig(*configPath, getenv, log) }
	if !*demo {
		if cfg, err = load(); err != nil {
			return err
		}
	}
	// The socket first: of two daemons started at once, the loser learns
	// that the other runs before it waits for the cache file's lock.
	ln, err := listen(*socket, cfg, getenv, log)
	if err != nil {
		return err
	}
	stateDir := "" // the default
	if *demo {
		// The demo's answers are simulated: keep them out of the real cache.
		dir, err := os.MkdirTemp("", "lbgptd-demo-")
		if err != nil {
			ln.Close()
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Cache.Path = filepath.Join(dir, "cache.db")
		stateDir = dir // its Responses records too: the real daemon's are not the demo's
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Simulated: *demo, StateDir: stateDir})
	if err != nil {
		ln.Close()
		return usageError{err}
	}
	if err := d.ListenHTTP(); err != nil { // [http]: a busy port fails the start
		ln.Close()
		d.Close()
		return err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-hup:
				if *demo {
					log.Warn("SIGHUP ignored: the demo has no config file to reload")
					continue
				}
				log.Info("SIGHUP: reloading the configuration")
				d.Reload(load) // logs and records a rejection itself
			case <-done:
				return
			}
		}
	}()
	return d.Serve(ctx, ln)
}

// demoHTTPAddr is the demo's HTTP address: --http, or when it was not
// given and its default port is taken, any free loopback port.
func demoHTTPAddr(fset *flag.FlagSet, addr string) string {
	given := false
	fset.Visit(func(f *flag.Flag) { given = given || f.Name == "http" })
	if given {
		return addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "127.0.0.1:0"
	}
	ln.Close()
	return addr
}

// listen returns the socket systemd passed (socket activation), else
// creates one: --socket, [daemon] socket, $RUNTIME_DIRECTORY/lbgptd.sock
// or the clients' default, group-accessible when [daemon] socket_group.
func listen(flagPath string, cfg *config.Config, getenv func(string) string, log *slog.Logger) (net.Listener, error) {
	ln, ok, err := daemon.Activated()
	if err != nil {
		return nil, err
	}
	if ok {
		if flagPath != "" {
			log.Warn("socket-activated: --socket is ignored", "socket", flagPath)
		}
		log.Info("socket-activated", "socket", ln.Addr().String())
		return ln, nil
	}
	path := socketPath(flagPath, cfg.Daemon.Socket, getenv)
	if g := cfg.Daemon.SocketGroup; g != "" {
		ln, err = daemon.ListenGroup(path, g)
	} else {
		ln, err = daemon.Listen(path)
	}
	if errors.Is(err, daemon.ErrAlreadyRunning) {
		return nil, fmt.Errorf("%w; stop it first, or give this one another --socket", err)
	}
	return ln, err
}

// loadConfig reads the config file, or builds one from the environment
// when no file was named and the default one does not exist.
func loadConfig(path string, getenv func(string) string, log *slog.Logger) (*config.Config, error) {
	explicit := path != ""
	if !explicit {
		path = defaultConfigPath(getenv)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && !explicit {
		cfg, err := config.FromEnv(getenv)
		if err != nil {
			return nil, usageError{err}
		}
		log.Info("no config file; backends from the environment", "path", path, "backends", len(cfg.Backends))
		return cfg, nil
	}
	cfg, warnings, err := config.Load(path, getenv)
	if err != nil {
		return nil, usageError{err}
	}
	for _, w := range warnings {
		log.Warn("config warning", "warning", w)
	}
	return cfg, nil
}
