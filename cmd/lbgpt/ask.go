package main

import (
	"github.com/charmbracelet/x/term"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

const askUsage = `Usage: lbgpt ask [flags] [PROMPT...]

Sends one chat completion through lbgptd and prints the answer. The prompt is
the arguments joined by spaces; with no arguments (or "-") it is read from
stdin. When stdout is a terminal, the answer is streamed as it arrives. When
stderr is a terminal (or the answer was streamed), a line on stderr then
says which backend answered, in how many attempts and how fast.

With --json, stdout carries exactly one JSON object, the OpenAI response
and lbgpt's metadata, and nothing else: with --stream always the request
is still streamed from the daemon, but the text is not printed.

Flags:
`

// optFloat is a float flag that knows whether it was set.
type optFloat struct {
	v   float64
	set bool
}

func (o *optFloat) String() string {
	if !o.set {
		return ""
	}
	return strconv.FormatFloat(o.v, 'g', -1, 64)
}

func (o *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("want a number")
	}
	o.v, o.set = v, true
	return nil
}

func runAsk(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("ask", askUsage, e)
	var (
		df          daemonFlags
		temperature optFloat
		model       = fs.String("model", "gpt-4o-mini", "model to ask")
		system      = fs.String("system", "", "system prompt")
		maxTokens   = fs.Int("max-tokens", 0, "upper bound on answer tokens (0: the model's default)")
		jsonOut     = fs.Bool("json", false, "print the OpenAI response and lbgpt's metadata as one JSON object, and nothing else on stdout")
		stream      = fs.String("stream", "auto", "stream the answer: auto (when stdout is a terminal), always or never")
		timeout     = durationFlag(fs, "timeout", "deadline for the whole request, retries included: `seconds` (30) or a duration (1m30s); 0: the daemon's request_timeout")
		noCache     = fs.Bool("no-cache", false, "do not answer from the cache (the answer is still stored)")
		noStore     = fs.Bool("no-store", false, "do not store the answer in the cache")
		semantic    = fs.String("semantic", "", "semantic cache for this request: user_only, all, system_only or off (default: the daemon's)")
		namespace   = fs.String("namespace", "", "cache namespace: entries of one namespace never answer another's")
	)
	fs.Var(&temperature, "temperature", "sampling temperature, 0 to 2 (default: the model's)")
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	prompt, err := readPrompt(fs.Args(), e.stdin)
	if err != nil {
		return err
	}
	if *maxTokens < 0 {
		return usageErr("--max-tokens must not be negative")
	}
	if temperature.set && (temperature.v < 0 || temperature.v > 2) {
		return usageErr("--temperature must be between 0 and 2")
	}
	var streaming bool
	switch *stream {
	case "auto":
		streaming = isTerminal(e.stdout) && !*jsonOut
	case "always":
		streaming = true
	case "never":
	default:
		return usageErr("--stream must be auto, always or never")
	}

	req := map[string]any{"model": *model, "messages": messages(*system, prompt)}
	if temperature.set {
		req["temperature"] = temperature.v
	}
	if *maxTokens > 0 {
		req["max_tokens"] = *maxTokens
	}
	switch *semantic {
	case "", rpc.SemanticUserOnly, rpc.SemanticAll, rpc.SemanticSystemOnly, rpc.SemanticOff:
	default:
		return usageErr("--semantic must be user_only, all, system_only or off")
	}
	opts := rpc.Options{Timeout: rpc.Duration(*timeout), NoCache: *noCache, NoStore: *noStore, Semantic: *semantic, Namespace: *namespace}

	c, err := df.connect(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	start := time.Now()
	var res *rpc.ChatResult
	if streaming {
		text := e.stdout
		if *jsonOut {
			text = io.Discard // stdout carries the JSON object alone
		}
		res, err = askStream(ctx, c, req, opts, text)
	} else {
		res, err = c.Chat(ctx, req, opts)
	}
	if err != nil {
		envHint(ctx, c, err, e)
		return askError(err)
	}
	switch {
	case *jsonOut:
		return printJSON(e.stdout, res)
	case !streaming:
		text := client.AnswerText(res.Response)
		fmt.Fprint(e.stdout, text)
		if !strings.HasSuffix(text, "\n") {
			fmt.Fprintln(e.stdout)
		}
	}
	if isTerminal(e.stderr) || streaming {
		fmt.Fprintln(e.stderr, describe(res.Meta, time.Since(start)))
	}
	return nil
}

// askStream prints the answer as it arrives and returns the final result.
func askStream(ctx context.Context, c *client.Client, req any, opts rpc.Options, out io.Writer) (*rpc.ChatResult, error) {
	var res *rpc.ChatResult
	wrote := false
	for ev, err := range c.ChatStream(ctx, req, opts) {
		if err != nil {
			if wrote {
				fmt.Fprintln(out)
			}
			return nil, err
		}
		if ev.Result != nil {
			res = ev.Result
			break
		}
		if t := client.DeltaText(ev.Chunk); t != "" {
			fmt.Fprint(out, t)
			wrote = true
		}
	}
	fmt.Fprintln(out)
	return res, nil
}

// askError gives a daemon's error an exit code.
// envHint says, after a request failed on a refused key, when lbgptd was
// started with other keys than this shell has: it keeps the environment it
// started with, and a fixed key takes a restart.
func envHint(ctx context.Context, c *client.Client, err error, e env) {
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeAuth {
		return
	}
	st, serr := c.Status(ctx)
	if serr != nil {
		return
	}
	if diff := st.Env.Differs(e.getenv); len(diff) > 0 {
		fmt.Fprintln(e.stderr, "lbgpt: hint:", rpc.EnvAdvice(diff))
	}
}

func askError(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	if errors.Is(err, client.ErrDaemonNotRunning) {
		return &exitError{code: exitUnreachable, err: err}
	}
	if errors.Is(err, context.Canceled) {
		return interrupted()
	}
	return &exitError{code: exitFailed, err: err}
}

func describe(m rpc.Meta, elapsed time.Duration) string {
	daemon := (time.Duration(m.DaemonUS) * time.Microsecond).Round(10 * time.Microsecond)
	if elapsed < 10*time.Millisecond { // a cache hit: milliseconds would read 0s
		elapsed = elapsed.Round(10 * time.Microsecond)
	} else {
		elapsed = elapsed.Round(time.Millisecond)
	}
	from := ""
	if m.CacheHost != "" {
		from = " from " + m.CacheHost
	}
	money := ""
	switch {
	case m.Saved != nil:
		money = fmt.Sprintf(" · saved %v", spend.USD(*m.Saved))
	case m.Cost != nil:
		money = fmt.Sprintf(" · %v", spend.USD(*m.Cost))
	}
	switch m.Cache {
	case rpc.CacheExact:
		return fmt.Sprintf("[cache exact%s · entry %s · %s · daemon %s%s]", from, m.CacheEntry, elapsed, daemon, money)
	case rpc.CacheSemantic:
		return fmt.Sprintf("[cache semantic %.3f%s · entry %s · %s · daemon %s%s]", m.Similarity, from, m.CacheEntry, elapsed, daemon, money)
	}
	attempts := "1 attempt"
	if m.Attempts != 1 {
		attempts = fmt.Sprintf("%d attempts", m.Attempts)
	}
	return fmt.Sprintf("[%s · %s · cache %s · %s · daemon %s%s]", m.Backend, attempts, m.Cache, elapsed, daemon, money)
}

func messages(system, prompt string) []map[string]string {
	var msgs []map[string]string
	if system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": system})
	}
	return append(msgs, map[string]string{"role": "user", "content": prompt})
}

// readPrompt takes the prompt from args, or from stdin when there are none
// or the only one is "-".
func readPrompt(args []string, stdin io.Reader) (string, error) {
	if len(args) > 0 && !(len(args) == 1 && args[0] == "-") {
		p := strings.TrimSpace(strings.Join(args, " "))
		if p == "" {
			return "", usageErr("empty prompt: give the question as arguments or on stdin (lbgpt ask --help)")
		}
		return p, nil
	}
	if stdin == nil || isTerminal(stdin) {
		return "", usageErr("no prompt: give it as arguments or on stdin (lbgpt ask --help)")
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 64<<20))
	if err != nil {
		return "", fmt.Errorf("read prompt from stdin: %w", err)
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return "", usageErr("empty prompt on stdin")
	}
	return p, nil
}

// isTerminal reports whether v is a terminal (not any character device:
// /dev/null is one too).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}
