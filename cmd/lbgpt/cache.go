package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const cacheUsage = `Usage: lbgpt cache COMMAND [flags]

Manages lbgptd's answer caches.

  stats [--json]                              entries, size, hits by kind (exact,
                                              semantic, coalesced), misses, hit rate
  purge [--namespace N] [--older-than D]      remove the entries of namespace N, or
                                              stored longer ago than D (a Go duration
                                              such as 12h, or days: 7d), or both; with
                                              neither flag, every entry (asked first
                                              on a terminal, unless --yes)
  forget ID                                   remove one entry by the id an answer's
                                              metadata gave (lbgpt ask --json:
                                              lbgpt.cache_entry), exact or semantic
  compact                                     rewrite the cache file without its free
                                              pages (the daemon keeps serving)

Flags:
`

func runCache(ctx context.Context, args []string, e env) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, withoutFlags(cacheUsage))
		return usageErr("cache needs a command: stats, purge, forget or compact")
	}
	fs := newFlagSet("cache "+args[0], cacheUsage, e)
	var df daemonFlags
	df.register(fs)
	var (
		jsonOut   *bool
		namespace *string
		olderThan *string
		yes       *bool
	)
	switch args[0] {
	case "stats":
		jsonOut = fs.Bool("json", false, "print the stats as JSON")
	case "purge":
		namespace = fs.String("namespace", "", "only this namespace (\"\" is the default one; give --namespace= for it)")
		olderThan = fs.String("older-than", "", "only entries stored longer ago than this: 90m, 12h, 7d")
		yes = fs.Bool("yes", false, "purge every entry without asking (on a terminal, lbgpt asks first)")
	case "forget", "compact":
	case "help", "-h", "-help", "--help":
		// Every command's flags at once, for the man page and completions.
		all := newFlagSet("cache", cacheUsage, e)
		df.register(all)
		all.Bool("json", false, "stats: print the stats as JSON")
		all.String("namespace", "", "purge: only this namespace (\"\" is the default one; give --namespace= for it)")
		all.String("older-than", "", "purge: only entries stored longer ago than this: 90m, 12h, 7d")
		all.Bool("yes", false, "purge: every entry without asking (on a terminal, lbgpt asks first)")
		all.SetOutput(e.stdout)
		all.Usage()
		return nil
	default:
		return usageErr("unknown cache command %q: want stats, purge, forget or compact", args[0])
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	want := 0
	if args[0] == "forget" {
		want = 1
	}
	if fs.NArg() != want {
		if want == 1 {
			return usageErr("cache forget takes one entry id")
		}
		return usageErr("cache %s takes no arguments", args[0])
	}
	var age time.Duration
	var ns *string
	if args[0] == "purge" {
		var err error
		if age, err = parseAge(*olderThan); err != nil {
			return usageErr("--older-than: %v", err)
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "namespace" {
				ns = namespace
			}
		})
	}

	c, err := df.connect(ctx, e)
	if err != nil {
		return err
	}
	defer c.Close()
	switch args[0] {
	case "stats":
		st, err := c.CacheStats(ctx)
		if err != nil {
			return askError(err)
		}
		if *jsonOut {
			return printJSON(e.stdout, st)
		}
		capText := "no cap"
		if st.MaxBytes > 0 {
			capText = "cap " + bytesText(st.MaxBytes)
		}
		fmt.Fprintf(e.stdout, "file         %s (%s, %s)\n", st.Path, bytesText(st.Bytes), capText)
		fmt.Fprintf(e.stdout, "entries      %d exact, %d semantic\n", st.Entries, st.SemanticEntries)
		fmt.Fprintf(e.stdout, "hits         %d exact, %d semantic, %d coalesced\n", st.Hits.Exact, st.Hits.Semantic, st.Hits.Coalesced)
		fmt.Fprintf(e.stdout, "misses       %d\n", st.Misses)
		fmt.Fprintf(e.stdout, "hit rate     %.1f %%\n", 100*st.HitRate)
		fmt.Fprintf(e.stdout, "evictions    %d\n", st.Evictions)
		fmt.Fprintf(e.stdout, "write errors %d\n", st.WriteErrors)
		fmt.Fprintf(e.stdout, "embedder     %s\n", st.Embedder)
		if sh := st.Shared; sh != nil {
			fmt.Fprintf(e.stdout, "shared       as %s: %d hits, %d misses, %d puts, %d drops, %d errors, %d queued\n",
				sh.Host, sh.Hits, sh.Misses, sh.Puts, sh.Drops, sh.Errors, sh.Queued)
			fmt.Fprintf(e.stdout, "             semantic entries %d sent, %d received, %d skipped; %d removals received\n",
				sh.SemanticSent, sh.SemanticReceived, sh.SemanticSkipped, sh.Removals)
		}
	case "purge":
		if ns == nil && age == 0 && !*yes && isTerminal(e.stdin) && isTerminal(e.stderr) {
			st, err := c.CacheStats(ctx)
			if err != nil {
				return askError(err)
			}
			if st.Entries == 0 && st.SemanticEntries == 0 && st.Shared == nil {
				fmt.Fprintln(e.stdout, "removed 0 entries: the cache is empty")
				return nil
			}
			fmt.Fprintf(e.stderr, "Remove every cached answer (%s, paid for once)? [y/N] ", plural(int(st.Entries), "entry", "entries"))
			line, _ := bufio.NewReader(e.stdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				fmt.Fprintln(e.stderr, "nothing removed")
				return nil
			}
		}
		res, err := c.CachePurge(ctx, ns, age)
		if err != nil {
			return askError(err)
		}
		fmt.Fprintf(e.stdout, "removed %s\n", plural(int(res.Removed), "entry", "entries"))
		if res.SharedRemoved > 0 {
			fmt.Fprintf(e.stdout, "removed %s from the team's shared cache; the other hosts purge theirs as they read it\n", plural(int(res.SharedRemoved), "answer", "answers"))
		}
		if res.Warning != "" {
			fmt.Fprintf(e.stderr, "lbgpt: warning: %s\n", res.Warning)
		}
	case "forget":
		ok, err := c.CacheForget(ctx, fs.Arg(0))
		if err != nil {
			return askError(err)
		}
		if !ok {
			return &exitError{code: exitFailed, err: fmt.Errorf("no cache entry %q", fs.Arg(0))}
		}
		fmt.Fprintln(e.stdout, "forgotten")
	case "compact":
		res, err := c.CacheCompact(ctx)
		if err != nil {
			return askError(err)
		}
		fmt.Fprintf(e.stdout, "compacted: %s -> %s in %d ms\n", bytesText(res.BytesBefore), bytesText(res.BytesAfter), res.TookMS)
	}
	return nil
}

// parseAge reads a Go duration or a number of days ("7d"); "" is zero.
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
