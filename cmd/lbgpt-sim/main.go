// Command lbgpt-sim serves a simulated OpenAI / Azure OpenAI upstream over
// HTTP, for demos, end-to-end tests and benchmarks of lbgpt. It answers with
// deterministic made-up text, never with a real model. See package
// internal/sim for what it simulates, and -h for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lbgpt-sim:", err)
		os.Exit(1)
	}
}

const usage = `Usage: lbgpt-sim [flags]

Serves a simulated OpenAI and Azure OpenAI API over HTTP: deterministic
made-up answers, per-account rate limits and injected faults. It is not a
real API and is meant for tests, demos and benchmarks.

Endpoints (OpenAI base URL http://HOST:PORT/v1, key as "Authorization: Bearer KEY"):
  POST /v1/chat/completions   POST /v1/embeddings   GET /v1/models
  POST /v1/responses          GET|DELETE /v1/responses/{id}
  POST /v1/responses/{id}/cancel   GET /v1/responses/{id}/input_items
  POST /v1/completions (legacy)    POST /v1/moderations
Azure (endpoint http://HOST:PORT, key as "api-key: KEY", ?api-version= required
except under /openai/v1/):
  POST /openai/deployments/{deployment}/chat/completions
  POST /openai/deployments/{deployment}/embeddings
  GET  /openai/models
  POST /openai/v1/responses and /openai/responses (body model = deployment),
       with the same /{id}, /{id}/cancel and /{id}/input_items routes
Control, for tests:
  GET  /_sim/log                      every request received, as a JSON array
  GET  /_sim/stats                    counters per account name, as JSON
  POST /_sim/faults?account=NAME      replace that account's faults (JSON body
                                      with error_500, error_502, error_503,
                                      reset, hang, malformed, stream_break)

On start it prints one line to stdout:
  lbgpt-sim listening on http://HOST:PORT (simulated OpenAI/Azure upstream, not a real API)
and stops cleanly on SIGINT or SIGTERM.

Without -config it serves one account named "default" configured by the
flags below. With -config FILE the accounts come from a TOML file instead,
and the account flags (-key, -rpm, -tpm, -ttft, -per-token, -fault-*) may
not be given:

  seed = 1                               # PRNG seed for faults
  models = ["gpt-4o-mini", "gpt-4o"]     # default: gpt-4o-mini, gpt-4o, gpt-4.1-mini, text-embedding-3-small
  [deployments]                          # Azure deployment -> model; absent: a deployment is named after its model
  prod = "gpt-4o-mini"
  [[account]]
  name = "east"
  key = "sk-east"
  rpm = 60                               # 0 or absent: unlimited
  tpm = 100000
  ttft = "200ms"                         # durations as strings
  per_token = "5ms"
  [account.faults]                       # probabilities per request
  error_503 = 0.05
  hang = 0.01

Unknown keys in the file are an error.

Flags:
`

// accountFlags are the flags that describe the single flag-configured account.
var accountFlags = []string{
	"key", "rpm", "tpm", "ttft", "per-token",
	"fault-500", "fault-502", "fault-503", "fault-reset", "fault-hang", "fault-malformed", "fault-stream-break",
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lbgpt-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:8089", "listen `address` (port 0 picks a free port)")
	configFile := fs.String("config", "", "TOML `file` with the accounts, models and deployments")
	verbose := fs.Bool("v", false, "log every request to stderr (account names, never keys)")
	logLimit := fs.Int("log-limit", 1_000_000, "`number` of most recent requests kept for /_sim/log, about 250 bytes each (negative = no limit)")
	seed := fs.Int64("seed", 0, "PRNG seed for faults (without -config)")
	models := fs.String("models", "", "comma-separated `list` of models served (without -config; default gpt-4o-mini,gpt-4o,gpt-4.1-mini,text-embedding-3-small)")
	var acct sim.Account
	fs.StringVar(&acct.Key, "key", "sk-sim", "API `key` of the account")
	fs.IntVar(&acct.RPM, "rpm", 0, "requests per minute of the account (0 = unlimited)")
	fs.IntVar(&acct.TPM, "tpm", 0, "tokens per minute of the account (0 = unlimited)")
	fs.DurationVar(&acct.TTFT, "ttft", 0, "time to first token")
	fs.DurationVar(&acct.PerToken, "per-token", 0, "time per completion token after the first")
	fs.Float64Var(&acct.Faults.Error500, "fault-500", 0, "probability of a 500 answer")
	fs.Float64Var(&acct.Faults.Error502, "fault-502", 0, "probability of a 502 answer")
	fs.Float64Var(&acct.Faults.Error503, "fault-503", 0, "probability of a 503 answer")
	fs.Float64Var(&acct.Faults.Reset, "fault-reset", 0, "probability of a connection reset without an answer")
	fs.Float64Var(&acct.Faults.Hang, "fault-hang", 0, "probability of never answering")
	fs.Float64Var(&acct.Faults.Malformed, "fault-malformed", 0, "probability of a 200 whose body is not valid JSON")
	fs.Float64Var(&acct.Faults.StreamBreak, "fault-stream-break", 0, "probability that a stream is cut after about half its chunks")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	var opts sim.Options
	if *configFile != "" {
		var clash []string
		fs.Visit(func(f *flag.Flag) {
			for _, name := range append(accountFlags, "seed", "models") {
				if f.Name == name {
					clash = append(clash, "-"+name)
				}
			}
		})
		if len(clash) > 0 {
			return fmt.Errorf("%s cannot be combined with -config", strings.Join(clash, ", "))
		}
		var err error
		if opts, err = loadConfig(*configFile); err != nil {
			return err
		}
	} else {
		acct.Name = "default"
		opts = sim.Options{Accounts: []sim.Account{acct}, Seed: *seed}
		if *models != "" {
			opts.Models = strings.Split(*models, ",")
		}
	}
	if *logLimit == 0 {
		return errors.New("-log-limit must be positive, or negative for no limit")
	}
	opts.LogLimit = *logLimit
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *verbose {
		opts.Logger = logger
	}
	s := sim.New(opts)
	// Load the token encodings now rather than in the first request, whose
	// latency would otherwise include it.
	served := opts.Models
	if served == nil {
		served = sim.DefaultModels
	}
	for _, m := range served {
		tokens.Count(m, "warm up")
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           withControl(s),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "lbgpt-sim listening on http://%s (simulated OpenAI/Azure upstream, not a real API)\n", ln.Addr())
	logger.Info("serving", "addr", ln.Addr().String(), "accounts", len(opts.Accounts))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.Close() // release hung requests, cut simulated latency short
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-errc // http.ErrServerClosed
	logger.Info("stopped")
	return nil
}
