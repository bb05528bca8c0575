package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/tui"
)

const demoUsage = `Usage: lbgpt demo

Starts a private lbgptd on SIMULATED backends (lbgpt's built-in simulator:
an OpenAI, an Azure OpenAI and an OpenAI-compatible account with different
limits and speeds). On a terminal it opens the TUI on that daemon with a
sample batch already running, so the panel moves from the first second;
chat with it, and quit to stop the daemon. Without a terminal it sends a
handful of prompts through it, prints which backend answered each and how
fast, and stops the daemon. It needs no API key and calls no real API.

Flags:
`

var demoPrompts = []string{
	"What is a load balancer, in one sentence?",
	"Name three prime numbers greater than 100.",
	"Why do APIs return HTTP 429?",
	"Write a haiku about rate limits.",
	"What does exponential backoff with jitter avoid?",
	"Translate 'good morning' into French.",
	"Summarise the CAP theorem for a new engineer.",
	"How many minutes are there in a day?",
}

func runDemo(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("demo", demoUsage, e)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("demo takes no arguments")
	}
	// A reader that goes away (lbgpt demo | head) must not kill lbgpt
	// before it stops its daemon: a write to the closed pipe fails
	// instead, and stops the demo.
	signal.Ignore(syscall.SIGPIPE)
	defer signal.Reset(syscall.SIGPIPE)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	terminal := isTerminal(e.stdin) && isTerminal(e.stdout)
	out := &demoOutput{w: e.stdout, stop: stop}

	dir, err := os.MkdirTemp("", "lbgpt-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := &client.Client{Socket: filepath.Join(dir, "lbgptd.sock")}
	defer c.Close()

	if !terminal {
		fmt.Fprintln(out, "lbgpt demo — every backend below is SIMULATED by lbgpt's built-in simulator.")
		fmt.Fprintln(out, "No API key is used and no real API is called; answers are placeholder text.")
		fmt.Fprintln(out)
	}

	bin, err := findDaemon()
	if err != nil {
		return &exitError{code: exitUnreachable, err: err}
	}
	// The daemon's own temporary state goes inside dir too: a daemon
	// killed before it could clean up (Ctrl-C while it starts) leaves
	// nothing that lbgpt does not remove.
	pid, ours, err := startDaemon(ctx, c, bin, []string{"--demo", "--http", "127.0.0.1:0", "--socket", c.Socket}, filepath.Join(dir, "lbgptd.log"), false, "TMPDIR="+dir)
	if err != nil {
		if stopped := demoStopped(ctx); stopped != nil {
			return stopped
		}
		return &exitError{code: exitUnreachable, err: err}
	}
	if !ours {
		return &exitError{code: exitUnreachable, err: fmt.Errorf("another daemon (pid %d) answered on the demo's private socket %s", pid, c.Socket)}
	}
	defer stopDaemon(pid)

	st, err := c.Status(ctx)
	if err != nil {
		if stopped := demoStopped(ctx); stopped != nil {
			return stopped
		}
		return err
	}
	if !st.Simulated {
		return fmt.Errorf("the daemon on %s is not the simulated demo daemon", c.Socket)
	}
	if terminal {
		return tui.Run(ctx, tui.Options{Daemon: tui.Client(c), Batch: demoBatch(), BatchName: "demo", NoColor: e.getenv("NO_COLOR") != ""}, e.stdin, e.stdout)
	}
	fmt.Fprintf(out, "Started a private lbgptd (pid %d) with %d simulated backends:\n", pid, len(st.Backends))
	printStatus(out, st, "  ")
	fmt.Fprintln(out)

	fmt.Fprintf(out, "Sending %d prompts at once:\n", len(demoPrompts))
	type answer struct {
		res     *rpc.ChatResult
		err     error
		elapsed time.Duration
	}
	answers := make([]answer, len(demoPrompts))
	var wg sync.WaitGroup
	for i, p := range demoPrompts {
		wg.Go(func() {
			start := time.Now()
			res, err := c.Chat(ctx, map[string]any{
				"model":    "gpt-4o-mini",
				"messages": []map[string]string{{"role": "user", "content": p}},
			}, rpc.Options{Semantic: rpc.SemanticUserOnly})
			answers[i] = answer{res, err, time.Since(start)}
		})
	}
	wg.Wait()
	if err := demoStopped(ctx); err != nil {
		return err
	}
	perBackend := map[string]int{}
	failed := 0
	for i, a := range answers {
		if a.err != nil {
			failed++
			fmt.Fprintf(out, "  %d. %-52s  FAILED: %v\n", i+1, clip(demoPrompts[i], 52), a.err)
			continue
		}
		perBackend[a.res.Meta.Backend]++
		fmt.Fprintf(out, "  %d. %-52s  %-10s %6s  %q\n", i+1, clip(demoPrompts[i], 52), a.res.Meta.Backend,
			a.elapsed.Round(time.Millisecond), clip(client.AnswerText(a.res.Response), 48))
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "One more, streamed token by token:")
	fmt.Fprint(out, "  ")
	start := time.Now()
	res, err := askStream(ctx, c, map[string]any{
		"model":    "gpt-4o",
		"messages": []map[string]string{{"role": "user", "content": "Explain in two sentences why a daemon shares one rate-limit budget."}},
	}, rpc.Options{}, out)
	if err := demoStopped(ctx); err != nil {
		return err
	}
	if err != nil {
		failed++
		fmt.Fprintf(out, "  FAILED: %v\n", err)
	} else {
		perBackend[res.Meta.Backend]++
		fmt.Fprintf(out, "  %s\n", describe(res.Meta, time.Since(start)))
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "Asked again: the same question, a rewording, and a different number:")
	for _, q := range demoRepeats {
		start := time.Now()
		res, err := c.Chat(ctx, map[string]any{
			"model":    "gpt-4o-mini",
			"messages": []map[string]string{{"role": "user", "content": q}},
		}, rpc.Options{Semantic: rpc.SemanticUserOnly})
		if err := demoStopped(ctx); err != nil {
			return err
		}
		if err != nil {
			failed++
			fmt.Fprintf(out, "  %-52s  FAILED: %v\n", clip(q, 52), err)
			continue
		}
		if res.Meta.Backend != "" {
			perBackend[res.Meta.Backend]++
		}
		fmt.Fprintf(out, "  %-52s  %s\n", clip(q, 52), describe(res.Meta, time.Since(start)))
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, answeredBy(st, perBackend))
	fmt.Fprintln(out, "Simulated backends only. To use real ones: set OPENAI_API_KEY (or write a config,")
	fmt.Fprintln(out, "see lbgpt.toml.example) and run `lbgpt ask \"...\"`.")
	if err := demoStopped(ctx); err != nil {
		return err
	}
	if failed > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%d demo requests failed", failed)}
	}
	return nil
}

// errOutputClosed stops a demo whose output cannot be written any more.
var errOutputClosed = errors.New("its output was closed")

// demoOutput is the demo's output: the first write that fails stops the
// demo.
type demoOutput struct {
	w    io.Writer
	stop context.CancelCauseFunc
}

func (o *demoOutput) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.stop(fmt.Errorf("%w: %w", errOutputClosed, err))
	}
	return n, err
}

// demoStopped is the error of a demo stopped by Ctrl-C or by its output
// going away; nil while it runs.
func demoStopped(ctx context.Context) error {
	switch err := context.Cause(ctx); {
	case err == nil:
		return nil
	case errors.Is(err, errOutputClosed):
		return &exitError{code: exitFailed, err: fmt.Errorf("demo stopped: %w", err)}
	default:
		return interrupted()
	}
}

// demoRepeats follow the demo prompts: an exact repeat (an exact cache
// hit), a rewording (a semantic hit) and a question that differs in a
// number (the semantic cache must refuse it: it goes upstream).
var demoRepeats = []string{
	demoPrompts[0],
	"In one sentence, what is a load balancer?",
	"Name three prime numbers greater than 200.",
}

// demoBatchSize is the sample batch of the demo's TUI: at the simulated
// accounts' limits (about 32 requests a second together) it runs for
// about twenty seconds.
const demoBatchSize = 600

// demoBatch is the sample batch: the demo prompts over and over, each
// numbered so that neither the cache nor coalescing answers it.
func demoBatch() []any {
	reqs := make([]any, demoBatchSize)
	for i := range reqs {
		reqs[i] = map[string]any{
			"model":    "gpt-4o-mini",
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("%s (sample %d)", demoPrompts[i%len(demoPrompts)], i+1)}},
		}
	}
	return reqs
}

// answeredBy is the demo's tally: the answers of each backend, in the
// order status lists them (backends it does not list last, by name), and
// the balancing strategy as the daemon reports it.
func answeredBy(st *rpc.StatusResult, perBackend map[string]int) string {
	var parts []string
	listed := map[string]bool{}
	for _, b := range st.Backends {
		listed[b.Name] = true
		parts = append(parts, fmt.Sprintf("%s %d", b.Name, perBackend[b.Name]))
	}
	var others []string
	for n := range perBackend {
		if !listed[n] {
			others = append(others, n)
		}
	}
	sort.Strings(others)
	for _, n := range others {
		parts = append(parts, fmt.Sprintf("%s %d", n, perBackend[n]))
	}
	line := "Answered by: " + strings.Join(parts, ", ")
	if st.Strategy != "" {
		line += " (balancing strategy: " + st.Strategy + ")"
	}
	return line + "."
}

// stopDaemon asks the demo daemon to stop and waits briefly for it.
func stopDaemon(pid int) {
	if pid <= 0 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	for range 50 {
		if p.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.Kill()
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
