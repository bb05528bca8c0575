// Command lbgpt-bench measures lbgpt against its targets. Each scenario
// prints a readable report and, as its last line with -json, one JSON object
// of figures (recorded in docs/benchmarks.md).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	if spec := os.Getenv(peerEnv); spec != "" {
		if err := peer(spec); err != nil {
			fmt.Fprintln(os.Stderr, "lbgpt-bench peer:", err)
			os.Exit(2)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "lbgpt-bench:", err)
		}
		os.Exit(2)
	}
}

// A scenario registers its flags on fs and returns the function that runs
// it once the flags are parsed.
type scenario func(fs *flag.FlagSet) func(ctx context.Context, out io.Writer) (map[string]any, error)

// scenarios maps -scenario names to their runners, sorted by name.
var scenarios = map[string]scenario{
	"cache":            cacheScenario,
	"faults":           faults,
	"goodput":          goodput,
	"http":             httpScenario,
	"multihost":        multihost,
	"overhead":         overhead,
	"semantic-quality": semanticQuality,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lbgpt-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := scenarioArg(args)
	fs.String("scenario", name, "scenario to run: "+strings.Join(names(), ", "))
	jsonOut := fs.Bool("json", false, "print the figures as one JSON object on the last line")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process over the whole run to this file (an lbgptd or simulator the scenario starts as a process of its own is not in it)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: lbgpt-bench [-json] -scenario NAME [flags]\n\nScenarios: %s\nFlags (those after -json belong to scenario %s):\n", strings.Join(names(), ", "), name)
		fs.PrintDefaults()
	}
	sc, ok := scenarios[name]
	if !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(names(), ", "))
	}
	runner := sc(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	figures, err := runner(ctx, stdout)
	if err != nil {
		return err
	}
	if *jsonOut {
		b, err := json.Marshal(figures)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return nil
}

// scenarioArg finds -scenario's value before the flags are parsed, because
// the scenario decides which flags exist.
func scenarioArg(args []string) string {
	for i, a := range args {
		for _, prefix := range []string{"-scenario", "--scenario"} {
			if a == prefix && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, prefix+"="); ok {
				return v
			}
		}
	}
	return "overhead"
}

func names() []string {
	var n []string
	for k := range scenarios {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// percentile of sorted durations, in microseconds.
func percentile(sorted []time.Duration, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted)-1) + 0.5)
	return sorted[i].Microseconds()
}
