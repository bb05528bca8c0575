package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/cache"
	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

// semanticRun is what one cache file of n entries gave through a real
// lbgptd process.
type semanticRun struct {
	n                int
	fill             time.Duration // writing the file through package cache
	ready            time.Duration // process start to the first status answered
	rssMB            float64       // VmRSS once ready
	rssFileMB        float64       // the part of it that is mapped file pages (bbolt's mmap of the cache file)
	hit, hitHandler  []time.Duration
	miss             []time.Duration
	asked, hits      int
	missesThatMissed int
}

// semanticText is a synthetic prompt: a template, words and a number drawn
// from r, so prompts are mostly distinct and spread over the space.
func semanticText(r *rand.Rand) string {
	pick := func(ws []string) string { return ws[r.IntN(len(ws))] }
	return fmt.Sprintf(pick(semTemplates), pick(semTopics), pick(semTopics), pick(semPlaces)) + " " + strconv.Itoa(r.IntN(10000))
}

var (
	semTemplates = []string{"How should I %s and %s in %s?", "What is the difference between %s and %s for %s?",
		"Give me three tips about %s and %s when in %s.", "Why is %s harder than %s in %s?", "Summarize the history of %s and %s in %s."}
	semTopics = strings.Fields(`baking sourdough pruning roses tuning guitars learning chess repairing bikes
		brewing coffee saving money writing essays training dogs painting walls growing tomatoes
		running marathons fixing leaks packing luggage reading maps sorting lists caching answers
		indexing tables parsing logs hiring engineers filing taxes planting trees cooking rice`)
	semPlaces = strings.Fields(`winter summer Paris Tokyo school kitchen garden office prison orbit
		Canada Kenya Peru Norway Chile Egypt Vietnam Iceland Texas Bavaria`)
)

// semanticRequest is the chat request asking text.
func semanticRequest(text string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 16,
		"messages": []map[string]string{{"role": "user", "content": text}}})
	return b
}

// fillCacheFile writes n answered requests, exact and semantic (user_only,
// the local embedder), into a new cache file at path, as a daemon that ran
// for long would have left it. It returns the stored texts.
func fillCacheFile(ctx context.Context, path string, n int, r *rand.Rand) ([]string, error) {
	st, err := cache.Open(path, cache.Options{FlushEvery: -1})
	if err != nil {
		return nil, err
	}
	// No fsync at all: the file only has to outlive this process, not the
	// machine. Set before the first Put, so the store's writer sees it.
	st.DB().NoSync = true
	sem, err := cache.OpenSemantic(st.DB(), cache.NewLocalEmbedder(), cache.SemanticOptions{})
	if err != nil {
		st.Close()
		return nil, err
	}
	answer := []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"a cached answer"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}`)
	texts := make([]string, 0, n)
	seen := map[string]bool{}
	now := time.Now()
	for len(texts) < n {
		text := semanticText(r)
		if seen[text] {
			continue
		}
		seen[text] = true
		raw := semanticRequest(text)
		key, err := cache.Key(raw, cache.KeyParams{})
		if err != nil {
			return nil, err
		}
		q, ok, err := cache.SemanticQuery(raw, rpc.SemanticUserOnly, cache.KeyParams{})
		if err != nil || !ok {
			return nil, fmt.Errorf("semantic query of %q: %v", text, err)
		}
		if err := st.Put(cache.Entry{Key: key, Value: answer, Model: "gpt-4o-mini", Created: now}); err != nil {
			return nil, err
		}
		if err := sem.Add(ctx, cache.SemanticEntry{Partition: q.Partition, Text: q.Text, Target: key, Created: now}); err != nil {
			return nil, err
		}
		texts = append(texts, text)
	}
	return texts, st.Close()
}

// startLbgptd starts bin with dir as its state directory (so its cache
// file is dir/cache.db) and the semantic cache on by default, and returns
// once a status call is answered, with the time that took from the start.
func startLbgptd(ctx context.Context, bin, dir, upstreamURL, key string) (*lbgptdProc, time.Duration, error) {
	cfg := fmt.Sprintf("version = 1\n[cache]\nsemantic = %q\n[[backend]]\nname = \"sim\"\ntype = \"openai\"\nbase_url = %q\napi_key = %q\nmax_concurrent = 64\n",
		rpc.SemanticUserOnly, upstreamURL, key)
	return startProc(ctx, bin, dir, cfg, "--log-level", "warn")
}

// rssMB is the process's resident set (VmRSS) and the part of it that is
// file pages (RssFile: bbolt maps the cache file, and reading it at start
// makes those pages resident; the kernel can drop them under pressure), in MB.
func (p *lbgptdProc) rssMB() (rss, file float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	field := func(name string) (float64, error) {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, name+":"); ok {
				kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				return float64(kb) / 1024, err
			}
		}
		return 0, fmt.Errorf("no %s in /proc/PID/status", name)
	}
	if rss, err = field("VmRSS"); err != nil {
		return 0, 0, err
	}
	file, err = field("RssFile")
	return rss, file, err
}

// runSemanticSize fills a cache file with n entries, starts lbgptd on it,
// and asks lookups entries over the socket: rewordings of stored prompts
// (lower case after "Please: ": semantic, not exact, hits) and new
// prompts of the same shapes (near misses, answered upstream).
func runSemanticSize(ctx context.Context, bin, upstreamURL, key string, n, lookups int) (*semanticRun, error) {
	dir, err := os.MkdirTemp("", "lbgpt-bench-sem-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	run := &semanticRun{n: n}
	r := rand.New(rand.NewPCG(uint64(n), 7))
	t := time.Now()
	texts, err := fillCacheFile(ctx, filepath.Join(dir, cache.FileName), n, r)
	if err != nil {
		return nil, fmt.Errorf("fill %d entries: %w", n, err)
	}
	run.fill = time.Since(t)
	p, ready, err := startLbgptd(ctx, bin, dir, upstreamURL, key)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	run.ready = ready
	if run.rssMB, run.rssFileMB, err = p.rssMB(); err != nil {
		return nil, err
	}
	c := &client.Client{Socket: p.socket}
	defer c.Close()
	for i := range lookups + 20 { // the first 20 warm up
		hitWanted := i%2 == 0
		text := semanticText(r)
		if hitWanted {
			text = "Please: " + strings.ToLower(texts[r.IntN(len(texts))])
		}
		t := time.Now()
		res, err := c.Chat(ctx, semanticRequest(text), rpc.Options{})
		if err != nil {
			return nil, err
		}
		took := time.Since(t)
		if i < 20 {
			continue
		}
		switch {
		case hitWanted:
			run.asked++
			if res.Meta.Cache == rpc.CacheSemantic {
				run.hits++
				run.hit = append(run.hit, took)
				run.hitHandler = append(run.hitHandler, time.Duration(res.Meta.DaemonUS)*time.Microsecond)
			}
		default:
			run.miss = append(run.miss, took)
			if res.Meta.Cache == rpc.CacheMiss {
				run.missesThatMissed++
			}
		}
	}
	slices.Sort(run.hit)
	slices.Sort(run.hitHandler)
	slices.Sort(run.miss)
	return run, nil
}

// report adds the run's figures, suffixed by its size ("10k"), and prints
// them.
func (run *semanticRun) report(out io.Writer, figures map[string]any) {
	sfx := fmt.Sprintf("%dk", run.n/1000)
	if run.n%1000 != 0 {
		sfx = strconv.Itoa(run.n)
	}
	figures["semantic_p50_ms_"+sfx] = percentileMS(run.hit, 50)
	figures["semantic_handler_p50_ms_"+sfx] = percentileMS(run.hitHandler, 50)
	figures["semantic_miss_p50_ms_"+sfx] = percentileMS(run.miss, 50)
	figures["semantic_hits_"+sfx] = fmt.Sprintf("%d/%d", run.hits, run.asked)
	figures["ready_ms_"+sfx] = run.ready.Milliseconds()
	figures["rss_mb_"+sfx] = round1(run.rssMB)
	figures["rss_file_mb_"+sfx] = round1(run.rssFileMB)
	fmt.Fprintf(out, "semantic, one partition of %d entries (file written in %s): lbgptd ready in %d ms, RSS %.1f MB (%.1f MB of it the mapped cache file)\n",
		run.n, run.fill.Round(time.Millisecond), run.ready.Milliseconds(), run.rssMB, run.rssFileMB)
	fmt.Fprintf(out, "  semantic hits %d of %d rewordings: round trip p50 %.2f ms (in the daemon %.2f ms); near misses (answered upstream) p50 %.2f ms, %d of %d missed\n",
		run.hits, run.asked, percentileMS(run.hit, 50), percentileMS(run.hitHandler, 50), percentileMS(run.miss, 50), run.missesThatMissed, len(run.miss))
}
