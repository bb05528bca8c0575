// Command lbgptd is the lbgpt daemon: it owns a pool of OpenAI, Azure OpenAI
// and OpenAI-compatible backends and serves JSON-RPC 2.0 on a Unix socket.
// See docs/protocol.md for the protocol and lbgpt.toml.example for the
// configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/daemon"
	"github.com/lbgpt/lbgpt/rpc"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
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
no real API calls.

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("lbgptd", flag.ContinueOnError)
	fset.SetOutput(stderr)
	var (
		configPath = fset.String("config", "", "config file (default "+config.DefaultPath()+")")
		socket     = fset.String("socket", "", "Unix socket to listen on (default: daemon.socket from the config, else "+rpc.DefaultSocketPath()+")")
		demo       = fset.Bool("demo", false, "serve lbgpt's built-in SIMULATED backends (no keys, no real API calls)")
		logLevel   = fset.String("log-level", "info", "log level: debug, info, warn or error")
		version    = fset.Bool("version", false, "print the version and exit")
	)
	fset.Usage = func() {
		fmt.Fprintf(fset.Output(), usage, config.DefaultPath())
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (see lbgptd --help)", fset.Arg(0))}
	}
	if *version {
		fmt.Fprintln(stdout, "lbgptd", daemon.Version)
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

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
	} else {
		var err error
		if cfg, err = loadConfig(*configPath, getenv, log); err != nil {
			return err
		}
	}
	path := *socket
	if path == "" {
		path = cfg.Daemon.Socket
	}
	if path == "" {
		path = rpc.DefaultSocketPath()
	}
	// The socket first: of two daemons started at once, the loser learns
	// that the other runs before it waits for the cache file's lock.
	ln, err := daemon.Listen(path)
	if err != nil {
		if errors.Is(err, daemon.ErrAlreadyRunning) {
			return fmt.Errorf("%w; stop it first, or give this one another --socket", err)
		}
		return err
	}
	if *demo {
		// The demo's answers are simulated: keep them out of the real cache.
		dir, err := os.MkdirTemp("", "lbgptd-demo-")
		if err != nil {
			ln.Close()
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Cache.Path = filepath.Join(dir, "cache.db")
	}
	d, err := daemon.New(daemon.Options{Config: cfg, Logger: log, Simulated: *demo})
	if err != nil {
		ln.Close()
		return usageError{err}
	}
	if err := d.ListenHTTP(); err != nil { // [http]: a busy port fails the start
		ln.Close()
		d.Close()
		return err
	}
	return d.Serve(ctx, ln)
}

// loadConfig reads the config file, or builds one from the environment
// when no file was named and the default one does not exist.
func loadConfig(path string, getenv func(string) string, log *slog.Logger) (*config.Config, error) {
	explicit := path != ""
	if !explicit {
		path = config.DefaultPath()
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
