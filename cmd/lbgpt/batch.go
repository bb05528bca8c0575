package main

import (
	"github.com/lbgpt/lbgpt/internal/pace"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/spend"
)

const batchUsage = `Usage: lbgpt batch [flags] [FILE]

Answers a batch of chat completion requests through lbgptd. FILE (stdin when
it is "-" or missing) holds one full OpenAI chat completion request per line
(JSONL), or lines in OpenAI's Batch API input format ({"custom_id": ...,
"method": "POST", "url": "/v1/chat/completions", "body": {...}}), whose
custom_id then comes back in the result line; blank lines are skipped. Every line is checked before anything is
sent: a line that is not a JSON object, or names no model when --model is
not given, stops the command with exit status 2, naming every such line (up
to 20) so that one run shows all there is to fix.

The results are JSONL in input order, one line per request; "index" counts
the requests from 0 (blank lines are not counted):

  {"index":0,"response":{...the OpenAI response...},"lbgpt":{"backend":...}}
  {"index":1,"error":{"code":-32004,"message":"...","data":{...}}}

A line is written as soon as it and every line before it are answered, so
the output streams. An input too large for one message to lbgptd (its
daemon.max_message_bytes, 8 MiB unless configured) is sent as several
batches, one after the other; the output is the same. A single request
too large for a message of its own stops the command with exit status 2,
naming its line. With --out FILE the lines go to FILE.partial, which is
renamed to FILE (atomically) once the batch has completed; when the batch is
interrupted or fails, FILE is left as it was and FILE.partial keeps the
lines written so far.

On a terminal, stderr shows a progress bar (done/total, the rate of the last
10 s and the ETA at that rate, retries, coalesced requests, failures); a
summary line follows in any case.

One failed request never stops the batch: its line carries its error and the
exit status is 1. Ctrl-C cancels the requests not yet answered, writes every
answer already received (the rest as "stopped before this request was
answered" lines; a rerun gets the paid ones from the cache) and exits 130.

Flags:
`

// maxInputLine bounds one request line of the input.
const maxInputLine = 64 << 20

func runBatch(ctx context.Context, args []string, e env) error {
	fs := newFlagSet("batch", batchUsage, e)
	var (
		df          daemonFlags
		model       = fs.String("model", "", "model for the requests that name none (those that do keep theirs)")
		concurrency = fs.Int("concurrency", 0, fmt.Sprintf("requests in flight at once, at most %d (0: the daemon's default, %d); backend limits apply whatever it is", rpc.MaxBatchConcurrency, rpc.DefaultBatchConcurrency))
		timeout     = durationFlag(fs, "timeout", "deadline for each request, retries included: `seconds` (30) or a duration (1m30s); 0: the daemon's request_timeout")
		out         = fs.String("out", "", "write the results to `FILE` (via FILE.partial, renamed when the batch completes) instead of stdout")
	)
	df.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 1:
		return usageErr("batch takes one FILE at most")
	case *concurrency < 0 || *concurrency > rpc.MaxBatchConcurrency:
		return usageErr("--concurrency must be from 0 (the daemon's default, %d) to %d", rpc.DefaultBatchConcurrency, rpc.MaxBatchConcurrency)
	case *timeout < 0:
		return usageErr("--timeout must not be negative")
	}
	in, err := readInput(fs.Arg(0), e.stdin, *model)
	if err != nil {
		return err
	}
	opts := rpc.Options{Timeout: rpc.Duration(*timeout)}
	c := &client.Client{Socket: df.socket}
	defer c.Close()
	parts, err := splitBatch(in, c.MessageLimit(), opts, *concurrency)
	if err != nil {
		return err
	}
	reqs := in.reqs
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
	if err := df.reach(ctx, c, e); err != nil {
		sink.abandon()
		return err
	}

	b := &batchRun{
		results: newResults(sink.w, len(reqs), in.ids),
		start:   time.Now(),
	}
	if isTerminal(e.stderr) {
		b.bar = &progressBar{w: e.stderr, total: len(reqs)}
	}
	batchErr := b.run(ctx, c, reqs, parts, opts, *concurrency)
	b.bar.clear()

	if batchErr != nil {
		if err := b.results.interrupted(); err != nil {
			batchErr = errors.Join(batchErr, err)
		}
	}
	counts := b.counts(time.Since(b.start))
	if batchErr != nil {
		kept := sink.abandon()
		fmt.Fprintln(e.stderr, "lbgpt batch: "+summaryLine(counts, len(reqs), false)+
			fmt.Sprintf("; %d lines written", b.results.next)+keptNote(kept))
		return batchError(ctx, batchErr, c.MessageLimit())
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

// batchRun is one batch in progress, owned by runBatch's goroutine. It
// may take several batch calls (parts); its results and counts span them
// all.
type batchRun struct {
	results *results
	start   time.Time
	bar     *progressBar // nil when stderr is not a terminal
	// The daemon's counts: the sum over the parts it finished, and the
	// latest of the part in flight (nil until it sends some).
	daemonDone rpc.BatchSummary
	daemonPart *rpc.BatchSummary
	daemonSent bool      // the daemon sent counts at all
	pace       pace.Pace // items done a second, recently
	counted    int       // items counted into pace
}

// run sends the batch, part after part, and writes its items as they come.
// It returns when the batch completed with every line written, or with the
// error that stopped it (the part in flight is then canceled in the
// daemon, and the parts after it are not sent).
func (b *batchRun) run(ctx context.Context, c *client.Client, reqs []json.RawMessage, parts []span, opts rpc.Options, concurrency int) error {
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.runPart(ctx, c, reqs[p.from:p.to], p.from, opts, concurrency); err != nil {
			return err
		}
	}
	return nil
}

// runPart sends reqs, the requests from index first on, as one batch call.
// The daemon numbers the items of each call from 0; the output numbers
// them over the whole input.
func (b *batchRun) runPart(ctx context.Context, c *client.Client, reqs []json.RawMessage, first int, opts rpc.Options, concurrency int) error {
	anyReqs := make([]any, len(reqs))
	for i, r := range reqs {
		anyReqs[i] = r
	}
	// global is it numbered over the whole input; ok is false for an
	// index outside this part.
	global := func(it rpc.BatchItem) (rpc.BatchItem, bool) {
		if it.Index < 0 || it.Index >= len(reqs) {
			return it, false
		}
		it.Index += first
		return it, true
	}
	for ev, err := range c.Batch(ctx, anyReqs, opts, concurrency) {
		if err != nil {
			return err
		}
		switch {
		case ev.Item != nil:
			if it, ok := global(*ev.Item); ok {
				err = b.results.add(it)
			}
		case ev.Progress != nil:
			b.daemonPart, b.daemonSent = &ev.Progress.BatchSummary, true
		case ev.Result != nil:
			// Every item again, in input order: fills in whatever no
			// notification brought.
			for i, it := range ev.Result.Items {
				it.Index = i
				if it, ok := global(it); ok {
					if err = b.results.add(it); err != nil {
						break
					}
				}
			}
			if err == nil {
				err = b.results.finish(first, first+len(reqs))
			}
			b.daemonDone.Retries += ev.Result.Summary.Retries
			b.daemonDone.Coalesced += ev.Result.Summary.Coalesced
			b.daemonPart, b.daemonSent = nil, true
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
	if b.daemonSent {
		c.retries, c.coalesced = b.daemonDone.Retries, b.daemonDone.Coalesced
		if b.daemonPart != nil {
			c.retries += b.daemonPart.Retries
			c.coalesced += b.daemonPart.Coalesced
		}
	}
	c.elapsed = elapsed
	now := b.start.Add(elapsed)
	b.pace.Add(now, c.done-b.counted)
	b.counted = c.done
	c.pace = b.pace.Rate(now, b.start)
	return c
}

// batchError gives the error that stopped a batch its exit code. limit is
// the message size the batch was split for.
func batchError(ctx context.Context, err error, limit int) error {
	if ctx.Err() != nil {
		return interrupted()
	}
	if errors.Is(err, rpc.ErrTooLarge) {
		return &exitError{code: exitFailed, err: fmt.Errorf("lbgptd refused a batch message as too large although lbgpt kept each under %d bytes: "+
			"its [daemon] max_message_bytes must be lower; raise it to at least %d: %w", limit, limit, err)}
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

// envelopeMargin is the room a batch message keeps for what surrounds its
// params: {"jsonrpc":"2.0","id":N,"method":"batch","params":...} takes at
// most 69 bytes.
const envelopeMargin = 128

// span is the requests from index from up to to (excluded).
type span struct{ from, to int }

// splitBatch cuts the input into consecutive parts, each small enough to
// go to lbgptd in one message of at most limit bytes: the encoded params
// (the requests, the commas between them, opts and concurrency) plus
// envelopeMargin. Each request is measured as it will be sent (readInput
// made it compact). A request too large for a message of its own is a
// usage error naming its line.
func splitBatch(in *input, limit int, opts rpc.Options, concurrency int) ([]span, error) {
	empty, err := json.Marshal(rpc.BatchParams{Requests: []json.RawMessage{}, Options: opts, Concurrency: concurrency})
	if err != nil {
		return nil, err
	}
	base := len(empty) + envelopeMargin
	var parts []span
	from, size := 0, base
	for i, r := range in.reqs {
		if base+len(r) > limit {
			return nil, usageErr("%s:%d: the request is %d bytes, more than lbgptd accepts in one message "+
				"(%d bytes with the batch around it; [daemon] max_message_bytes is %d)", in.name, in.lines[i], len(r), base+len(r), limit)
		}
		add := len(r)
		if i > from {
			add++ // the comma
		}
		if size+add > limit {
			parts = append(parts, span{from, i})
			from, add = i, len(r)
			size = base
		}
		size += add
	}
	if from < len(in.reqs) {
		parts = append(parts, span{from, len(in.reqs)})
	}
	return parts, nil
}

// input is the checked requests of the input.
type input struct {
	name  string            // the file's name, or "stdin"
	reqs  []json.RawMessage // compact, as they will be sent
	lines []int             // the line of each request, from 1
	ids   []string          // the custom_id of each request in OpenAI's Batch API format, else ""
}

// readInput reads and checks the requests of path ("" or "-": stdin).
func readInput(path string, stdin io.Reader, model string) (*input, error) {
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

// maxBadLines is how many bad lines one run names.
const maxBadLines = 20

// readRequests reads one request a line, skipping blank lines. A line that
// is not a JSON object, or that names no model when model is "", is a usage
// error naming the line — every such line, up to maxBadLines, at once; a
// line without a model gets model.
func readRequests(r io.Reader, name, model string) (*input, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxInputLine)
	in := &input{name: name}
	n := 0
	var bad []string // every bad line, so one run names them all
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		line, id, err := unwrapBatchLine(line)
		var req json.RawMessage
		if err == nil {
			req, err = checkRequest(line, model)
		}
		if err != nil {
			if len(bad) < maxBadLines {
				bad = append(bad, fmt.Sprintf("%s:%d: %v", name, n, err))
			} else if len(bad) == maxBadLines {
				bad = append(bad, "… and more")
			}
			continue
		}
		in.reqs = append(in.reqs, req)
		in.lines = append(in.lines, n)
		in.ids = append(in.ids, id)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			bad = append(bad, fmt.Sprintf("%s:%d: line longer than %d MiB", name, n+1, maxInputLine>>20))
		} else {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if len(bad) > 0 {
		return nil, usageErr("%s", strings.Join(bad, "\n"))
	}
	return in, nil
}

// unwrapBatchLine takes a line of OpenAI's Batch API input format,
// {"custom_id": ..., "method": "POST", "url": "/v1/chat/completions",
// "body": {...}}, as its body and custom_id; any other line is returned as
// it is.
func unwrapBatchLine(line []byte) ([]byte, string, error) {
	var b struct {
		CustomID *string         `json:"custom_id"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}
	if json.Unmarshal(line, &b) != nil || b.CustomID == nil || len(b.Body) == 0 {
		return line, "", nil
	}
	if b.URL != "/v1/chat/completions" {
		return nil, "", fmt.Errorf("a Batch API line for %q: lbgpt batch answers chat completions (/v1/chat/completions) only", b.URL)
	}
	return bytes.TrimSpace(b.Body), *b.CustomID, nil
}

// checkRequest returns line as a request, with model set when it has none,
// compact and encoded as the client will send it, so that its length is
// what it adds to a message.
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
		return json.Marshal(json.RawMessage(line))
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
	CustomID string          `json:"custom_id,omitempty"` // a Batch API line's
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
	ids     []string // custom_id by index; may be nil
	counts  batchCounts
}

func newResults(w *bufio.Writer, total int, ids []string) *results {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &results{w: w, enc: enc, total: total, ids: ids, seen: make([]bool, total), pending: make(map[int]rpc.BatchItem)}
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
		if it.Index < len(r.ids) {
			line.CustomID = r.ids[it.Index]
		}
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

// finish writes an error line for every request from index from up to to
// that the daemon's result left out, so that the output has one line per
// request.
func (r *results) finish(from, to int) error {
	for i := max(r.next, from); i < to; i++ {
		if !r.seen[i] {
			err := r.add(rpc.BatchItem{Index: i, Error: &rpc.Error{Code: rpc.CodeInternal, Message: "lbgptd's result left this request out"}})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// interrupted writes what was answered when the batch stopped early: the
// items that came after one still unanswered waited for it, and were paid
// for. Each gap before the last answered item is written as a canceled
// line, so the output keeps its order and loses no answer.
func (r *results) interrupted() error {
	last := -1
	for i := range r.pending {
		last = max(last, i)
	}
	for i := r.next; i <= last; i++ {
		if !r.seen[i] {
			if err := r.add(rpc.BatchItem{Index: i, Error: &rpc.Error{Code: rpc.CodeCanceled, Message: "the batch stopped before this request was answered"}}); err != nil {
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
	paid, saved        spend.Nanos // what the answers cost, and what the hits saved
	unpriced           int         // answers whose cost is unknown (no price for the model)
	overBudget         int         // of the failed, those a [budget] limit refused
	elapsed            time.Duration
	pace               float64 // items a second over the last seconds; 0 unknown
}

func (c *batchCounts) add(it rpc.BatchItem) {
	c.done++
	if it.Error != nil {
		c.failed++
		if it.Error.Code == rpc.CodeBudget {
			c.overBudget++
		}
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
	switch {
	case m.Saved != nil:
		c.saved += spend.USD(*m.Saved)
	case m.Cost != nil:
		c.paid += spend.USD(*m.Cost)
	default:
		c.unpriced++
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

// plural is n and the word that goes with it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// summaryLine is the final line on stderr: total, ok, failed, retries,
// coalesced, elapsed. completed is false when the batch stopped early.
func summaryLine(c batchCounts, total int, completed bool) string {
	var b strings.Builder
	if completed {
		fmt.Fprintf(&b, "%s: ", plural(total, "request", "requests"))
	} else {
		fmt.Fprintf(&b, "stopped with %d of %d requests answered: ", c.ok, total)
	}
	fmt.Fprintf(&b, "%d ok, %d failed", c.ok, c.failed)
	if c.overBudget > 0 {
		fmt.Fprintf(&b, " (%d refused: a [budget] limit was spent)", c.overBudget)
	}
	fmt.Fprintf(&b, ", %s, %d coalesced", plural(c.retries, "retry", "retries"), c.coalesced)
	if c.cacheHits > 0 {
		fmt.Fprintf(&b, ", %d cache hits", c.cacheHits)
	}
	fmt.Fprintf(&b, " in %s (%.1f/s)", c.elapsed.Round(time.Millisecond), c.rate())
	if c.paid > 0 || c.saved > 0 {
		fmt.Fprintf(&b, "; %v paid, %v saved by the cache", c.paid, c.saved)
		if c.unpriced > 0 {
			fmt.Fprintf(&b, " (and %s of a model without a price)", plural(c.unpriced, "answer", "answers"))
		}
	}
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
	// The ETA and the rate shown go by the recent pace: under rate limits
	// the first burst runs far ahead of the refill the rest waits for.
	rate := c.pace
	if rate <= 0 {
		rate = c.rate()
	}
	eta := "--"
	switch {
	case c.done >= total:
		eta = "0s"
	case rate > 0:
		eta = time.Duration(float64(total-c.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d %3d%% [%s%s] %.1f/s ETA %s · retries %d · coalesced %d", c.done, total, pct,
		strings.Repeat("█", filled), strings.Repeat("░", width-filled), rate, eta, c.retries, c.coalesced)
	if c.cacheHits > 0 {
		fmt.Fprintf(&b, " · cache hits %d", c.cacheHits)
	}
	fmt.Fprintf(&b, " · failed %d", c.failed)
	return b.String()
}
