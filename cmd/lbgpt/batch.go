package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

const batchUsage = `Usage: lbgpt batch [flags] [FILE]

Answers a batch of chat completion requests through lbgptd. FILE (stdin when
it is "-" or missing) holds one full OpenAI chat completion request per line
(JSONL); blank lines are skipped. Every line is checked before anything is
sent: a line that is not a JSON object, or names no model when --model is
not given, stops the command with exit status 2, naming the line.

The results are JSONL in input order, one line per request; "index" counts
the requests from 0 (blank lines are not counted):

  {"index":0,"response":{...the OpenAI response...},"lbgpt":{"backend":...}}
  {"index":1,"error":{"code":-32004,"message":"...","data":{...}}}

A line is written as soon as it and every line before it are answered, so
the output streams. With --out FILE the lines go to FILE.partial, which is
renamed to FILE (atomically) once the batch has completed; when the batch is
interrupted or fails, FILE is left as it was and FILE.partial keeps the
lines written so far.

On a terminal, stderr shows a progress bar (done/total, rate, ETA, retries,
coalesced requests, failures); a summary line follows in any case.

One failed request never stops the batch: its line carries its error and the
exit status is 1. Ctrl-C cancels the requests not yet answered; what was
written stays valid JSONL.

Flags:
`

// maxInputLine bounds one request line of the input.
const maxInputLine = 64 << 20

func runBatch(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("batch", batchUsage, e)
	var (
		df          daemonFlags
		model       = fs.String("model", "", "model for the requests that name none (those that do keep theirs)")
		concurrency = fs.Int("concurrency", 0, "requests in flight at once (0: the daemon's default, 64); backend limits apply whatever it is")
		timeout     = fs.Duration("timeout", 0, "deadline for each request, retries included (0: the daemon's request_timeout)")
		out         = fs.String("out", "", "write the results to `FILE` (via FILE.partial, renamed when the batch completes) instead of stdout")
	)
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 1:
		return usageErr("batch takes one FILE at most")
	case *concurrency < 0:
		return usageErr("--concurrency must not be negative")
	case *timeout < 0:
		return usageErr("--timeout must not be negative")
	}
	reqs, err := readInput(fs.Arg(0), e.stdin, *model)
	if err != nil {
		return err
	}
	sink, err := openSink(*out, e.stdout)
	if err != nil {
		return err
	}
	if len(reqs) == 0 {
		if err := sink.commit(); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "lbgpt batch: no requests in the input")
		return nil
	}
	c, err := df.connect(ctx, e)
	if err != nil {
		sink.abandon()
		return err
	}
	defer c.Close()

	b := &batchRun{
		results: newResults(sink.w, len(reqs)),
		start:   time.Now(),
	}
	if isTerminal(e.stderr) {
		b.bar = &progressBar{w: e.stderr, total: len(reqs)}
	}
	batchErr := b.run(ctx, c, reqs, rpc.Options{Timeout: rpc.Duration(*timeout)}, *concurrency)
	b.bar.clear()

	counts := b.counts(time.Since(b.start))
	if batchErr != nil {
		kept := sink.abandon()
		fmt.Fprintln(e.stderr, "lbgpt batch: "+summaryLine(counts, len(reqs), false)+
			fmt.Sprintf("; %d lines written", b.results.next)+keptNote(kept))
		return batchError(ctx, batchErr, reqs)
	}
	if err := sink.commit(); err != nil {
		fmt.Fprintln(e.stderr, "lbgpt batch: "+summaryLine(counts, len(reqs), true)+keptNote(sink.partial))
		return err
	}
	where := ""
	if sink.path != "" {
		where = "; results in " + sink.path
	}
	fmt.Fprintln(e.stderr, "lbgpt batch: "+summaryLine(counts, len(reqs), true)+where)
	if counts.failed > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("%d of %d requests failed: their lines carry the error", counts.failed, len(reqs))}
	}
	return nil
}

// batchRun is one batch in progress, owned by runBatch's goroutine.
type batchRun struct {
	results *results
	start   time.Time
	bar     *progressBar      // nil when stderr is not a terminal
	daemon  *rpc.BatchSummary // the daemon's latest counts, if it sent any
}

// run sends the batch and writes its items as they come. It returns when
// the batch completed with every line written, or with the error that
// stopped it (the batch is then canceled in the daemon).
func (b *batchRun) run(ctx context.Context, c *client.Client, reqs []json.RawMessage, opts rpc.Options, concurrency int) error {
	anyReqs := make([]any, len(reqs))
	for i, r := range reqs {
		anyReqs[i] = r
	}
	for ev, err := range c.Batch(ctx, anyReqs, opts, concurrency) {
		if err != nil {
			return err
		}
		switch {
		case ev.Item != nil:
			err = b.results.add(*ev.Item)
		case ev.Progress != nil:
			b.daemon = &ev.Progress.BatchSummary
		case ev.Result != nil:
			// Every item again, in input order: fills in whatever no
			// notification brought.
			for i, it := range ev.Result.Items {
				it.Index = i
				if err = b.results.add(it); err != nil {
					break
				}
			}
			if err == nil {
				err = b.results.finish()
			}
			b.daemon = &ev.Result.Summary
		}
		if err != nil {
			// Returning stops the iteration, which cancels the batch.
			return &exitError{code: exitFailed, err: fmt.Errorf("write results: %w", err)}
		}
		b.bar.draw(time.Now(), b.counts(time.Since(b.start)), false)
		if ev.Result != nil {
			return nil
		}
	}
	return errors.New("lbgptd ended the batch without a result")
}

// counts are the batch's counts: done, ok and failed from the items
// received (so they match the output), retries and coalesced from the
// daemon when it sent them.
func (b *batchRun) counts(elapsed time.Duration) batchCounts {
	c := b.results.counts
	if b.daemon != nil {
		c.retries, c.coalesced = b.daemon.Retries, b.daemon.Coalesced
	}
	c.elapsed = elapsed
	return c
}

// batchError gives the error that stopped a batch its exit code.
func batchError(ctx context.Context, err error, reqs []json.RawMessage) error {
	if ctx.Err() != nil {
		return &exitError{code: exitFailed, err: errors.New("canceled")}
	}
	if errors.Is(err, rpc.ErrTooLarge) {
		size := 0
		for _, r := range reqs {
			size += len(r)
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("the batch (%d bytes of requests) is more than lbgptd accepts in one message: "+
			"raise [daemon] max_message_bytes in its config, or split the input: %w", size, err)}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var re *rpc.Error
	if errors.As(err, &re) {
		return &exitError{code: exitFailed, err: err}
	}
	// Not the daemon's answer: the connection failed.
	return &exitError{code: exitUnreachable, err: err}
}

// readInput reads and checks the requests of path ("" or "-": stdin).
func readInput(path string, stdin io.Reader, model string) ([]json.RawMessage, error) {
	name := path
	r := stdin
	switch path {
	case "", "-":
		name = "stdin"
		if stdin == nil || isTerminal(stdin) {
			return nil, usageErr("no input: give a FILE or pipe JSONL on stdin (lbgpt batch --help)")
		}
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: err}
		}
		defer f.Close()
		r = f
	}
	return readRequests(r, name, model)
}

// readRequests reads one request a line, skipping blank lines. A line that
// is not a JSON object, or that names no model when model is "", is a usage
// error naming the line; a line without a model gets model.
func readRequests(r io.Reader, name, model string) ([]json.RawMessage, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxInputLine)
	var reqs []json.RawMessage
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		req, err := checkRequest(line, model)
		if err != nil {
			return nil, usageErr("%s:%d: %v", name, n, err)
		}
		reqs = append(reqs, req)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, usageErr("%s:%d: line longer than %d MiB", name, n+1, maxInputLine>>20)
		}
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return reqs, nil
}

// checkRequest returns line as a request, with model set when it has none.
func checkRequest(line []byte, model string) (json.RawMessage, error) {
	if line[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	switch string(m["model"]) {
	case "", "null", `""`:
	default:
		return bytes.Clone(line), nil
	}
	if model == "" {
		return nil, errors.New(`no "model": give one in the line or use --model`)
	}
	m["model"], _ = json.Marshal(model)
	return json.Marshal(m)
}

// sink is where the results go: stdout, or FILE.partial renamed to FILE
// when the batch completes.
type sink struct {
	w       *bufio.Writer
	f       *os.File // nil for stdout
	path    string   // FILE; "" for stdout
	partial string
}

func openSink(path string, stdout io.Writer) (*sink, error) {
	if path == "" {
		return &sink{w: bufio.NewWriter(stdout)}, nil
	}
	partial := path + ".partial"
	f, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--out: %w", err)}
	}
	return &sink{w: bufio.NewWriter(f), f: f, path: path, partial: partial}, nil
}

// commit writes out what is buffered and, for a file, makes it FILE.
func (s *sink) commit() error {
	if err := s.w.Flush(); err != nil {
		s.abandon()
		return fmt.Errorf("write results: %w", err)
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.partial, s.path)
	}
	if err != nil {
		return fmt.Errorf("write results to %s: %w (they are in %s)", s.path, err, s.partial)
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}

// abandon writes out what is buffered and leaves FILE alone. It returns
// the partial file when it keeps one (it removes it when it is empty).
func (s *sink) abandon() (kept string) {
	s.w.Flush()
	if s.f == nil {
		return ""
	}
	s.f.Close()
	if fi, err := os.Stat(s.partial); err == nil && fi.Size() == 0 {
		os.Remove(s.partial)
		return ""
	}
	return s.partial
}

func keptNote(partial string) string {
	if partial == "" {
		return ""
	}
	return "; the lines written so far are in " + partial
}

// outLine is one line of the output.
type outLine struct {
	Index    int             `json:"index"`
	Response json.RawMessage `json:"response,omitempty"`
	Meta     *rpc.Meta       `json:"lbgpt,omitempty"`
	Error    *rpc.Error      `json:"error,omitempty"`
}

// results writes a batch's items as JSONL in input order: an item that
// finishes early waits in pending until every item before it is written.
type results struct {
	w       *bufio.Writer
	enc     *json.Encoder
	total   int
	next    int    // index of the next line to write; lines before it are written
	seen    []bool // items received, by index
	pending map[int]rpc.BatchItem
	counts  batchCounts
}

func newResults(w *bufio.Writer, total int) *results {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &results{w: w, enc: enc, total: total, seen: make([]bool, total), pending: make(map[int]rpc.BatchItem)}
}

// add takes one item; the first one for an index counts, repeats and
// indexes out of range are ignored. It writes (and flushes) every line
// that is now next in order.
func (r *results) add(it rpc.BatchItem) error {
	if it.Index < 0 || it.Index >= r.total || r.seen[it.Index] {
		return nil
	}
	if it.Result == nil && it.Error == nil {
		it.Error = &rpc.Error{Code: rpc.CodeInternal, Message: "lbgptd sent neither a result nor an error for this request"}
	}
	r.seen[it.Index] = true
	r.counts.add(it)
	r.pending[it.Index] = it
	wrote := false
	for {
		it, ok := r.pending[r.next]
		if !ok {
			break
		}
		delete(r.pending, r.next)
		line := outLine{Index: it.Index, Error: it.Error}
		if it.Error == nil {
			line.Response, line.Meta = it.Result.Response, &it.Result.Meta
		}
		if err := r.enc.Encode(line); err != nil {
			return err
		}
		r.next++
		wrote = true
	}
	if wrote {
		return r.w.Flush()
	}
	return nil
}

// finish writes an error line for every request the daemon's result left
// out, so that the output has one line per request.
func (r *results) finish() error {
	for i := r.next; i < r.total; i++ {
		if !r.seen[i] {
			err := r.add(rpc.BatchItem{Index: i, Error: &rpc.Error{Code: rpc.CodeInternal, Message: "lbgptd's result left this request out"}})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// batchCounts are what the progress bar and the summary show.
type batchCounts struct {
	done, ok, failed   int
	retries, coalesced int
	cacheHits          int
	elapsed            time.Duration
}

func (c *batchCounts) add(it rpc.BatchItem) {
	c.done++
	if it.Error != nil {
		c.failed++
		if it.Error.Data != nil && it.Error.Data.Attempts > 1 {
			c.retries += it.Error.Data.Attempts - 1
		}
		return
	}
	c.ok++
	m := it.Result.Meta
	if m.Attempts > 1 {
		c.retries += m.Attempts - 1
	}
	switch m.Cache {
	case "", rpc.CacheMiss:
	case rpc.CacheCoalesced:
		c.coalesced++
	default:
		c.cacheHits++
	}
}

// rate is requests answered a second.
func (c batchCounts) rate() float64 {
	if c.elapsed <= 0 {
		return 0
	}
	return float64(c.done) / c.elapsed.Seconds()
}

// summaryLine is the final line on stderr: total, ok, failed, retries,
// coalesced, elapsed. completed is false when the batch stopped early.
func summaryLine(c batchCounts, total int, completed bool) string {
	var b strings.Builder
	if completed {
		fmt.Fprintf(&b, "%d requests: ", total)
	} else {
		fmt.Fprintf(&b, "stopped after %d of %d requests: ", c.done, total)
	}
	fmt.Fprintf(&b, "%d ok, %d failed, %d retries, %d coalesced", c.ok, c.failed, c.retries, c.coalesced)
	if c.cacheHits > 0 {
		fmt.Fprintf(&b, ", %d cache hits", c.cacheHits)
	}
	fmt.Fprintf(&b, " in %s (%.1f/s)", c.elapsed.Round(time.Millisecond), c.rate())
	return b.String()
}

// progressBar redraws one line on a terminal, at most ten times a second.
type progressBar struct {
	w     io.Writer
	total int
	last  time.Time // last redraw
	shown bool
}

func (p *progressBar) draw(now time.Time, c batchCounts, force bool) {
	if p == nil || (!force && now.Sub(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "\r%s\x1b[K", progressLine(c, p.total))
	p.shown = true
}

// clear erases the bar, so that the summary takes its place.
func (p *progressBar) clear() {
	if p != nil && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// progressLine is the bar's text, under 100 columns for batches of up to a
// million requests.
func progressLine(c batchCounts, total int) string {
	const width = 20
	filled, pct := width, 100
	if total > 0 {
		filled, pct = c.done*width/total, c.done*100/total
	}
	eta := "--"
	switch rate := c.rate(); {
	case c.done >= total:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(total-c.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d %3d%% [%s%s] %.1f/s ETA %s · retries %d · coalesced %d", c.done, total, pct,
		strings.Repeat("█", filled), strings.Repeat("░", width-filled), c.rate(), eta, c.retries, c.coalesced)
	if c.cacheHits > 0 {
		fmt.Fprintf(&b, " · cache hits %d", c.cacheHits)
	}
	fmt.Fprintf(&b, " · failed %d", c.failed)
	return b.String()
}
