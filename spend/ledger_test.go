package spend

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// clock is a settable clock for a Ledger.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

var t0 = time.Date(2025, 3, 14, 10, 30, 0, 0, time.UTC)

// open opens the ledger in dir, closing it when the test ends.
func open(t testing.TB, dir string, c *clock) *Ledger {
	t.Helper()
	l, err := Open(dir, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// crash stops l as a kill -9 would: the journal is left as it is, not
// folded, and the directory is unlocked.
func crash(l *Ledger) {
	l.mu.Lock()
	l.journal.Close()
	l.journal = nil
	l.mu.Unlock()
	l.unlock()
}

func mustRecord(t testing.TB, l *Ledger, e Entry) {
	t.Helper()
	if err := l.Record(e); err != nil {
		t.Fatal(err)
	}
}

func total(t testing.TB, l *Ledger) Totals {
	t.Helper()
	r, err := l.Report(time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	return r.Total
}

// numbered is the i-th of a series of entries: its input tokens and cost
// are i, so that a series counted once has Requests n, and Input and Cost
// n(n+1)/2; an entry lost or counted twice breaks the identity.
func numbered(i int) Entry {
	return Entry{Backend: "b", Model: "m", Usage: Usage{Input: i}, Cost: Nanos(i), Priced: true}
}

// checkSeries fails unless tot is a series of numbered entries counted
// once each, and returns its length.
func checkSeries(t testing.TB, tot Totals) int {
	t.Helper()
	n := int(tot.Requests)
	if tot.Tokens.Input != n*(n+1)/2 || tot.Cost != Nanos(n*(n+1)/2) {
		t.Errorf("%d requests with %d input tokens and cost %d: want %d of each (entries lost or counted twice)", n, tot.Tokens.Input, tot.Cost, n*(n+1)/2)
	}
	return n
}

func TestReport(t *testing.T) {
	c := newClock(time.Date(2025, 3, 14, 10, 10, 0, 0, time.UTC))
	l := open(t, t.TempDir(), c)
	mustRecord(t, l, Entry{Backend: "openai", Model: "gpt-4o", Namespace: "research", Usage: Usage{Input: 100, Output: 10}, Cost: 3 * Cent, Priced: true})
	c.set(time.Date(2025, 3, 14, 11, 50, 0, 0, time.UTC))
	mustRecord(t, l, Entry{Backend: "azure", Model: "gpt-4o", Usage: Usage{Input: 200, CachedInput: 100, Output: 20, Reasoning: 5}, Cost: 5 * Cent, Priced: true})
	mustRecord(t, l, Entry{Backend: "ollama", Model: "llama3.2", Namespace: "research", Usage: Usage{Input: 50, Output: 50}})
	c.set(time.Date(2025, 3, 14, 12, 5, 0, 0, time.UTC))

	if got, want := Hour.Since(c.now()), time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("this hour starts at %v, want %v", got, want)
	}
	r, err := l.Report(c.now().Add(-time.Hour), ByBackend)
	if err != nil {
		t.Fatal(err)
	}
	want := Report{
		Since: time.Date(2025, 3, 14, 11, 0, 0, 0, time.UTC), // the hour of 11:05
		By:    ByBackend,
		Rows: []Row{
			{"azure", Totals{Requests: 1, Cost: 5 * Cent, Tokens: Usage{200, 100, 20, 5}}},
			{"ollama", Totals{Requests: 1, Unpriced: 1, Tokens: Usage{Input: 50, Output: 50}}},
		},
		Total: Totals{Requests: 2, Unpriced: 1, Cost: 5 * Cent, Tokens: Usage{250, 100, 70, 5}},
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("last hour by backend (-want +got):\n%s", diff)
	}

	r, err = l.Report(Day.Since(c.now()), ByModel)
	if err != nil {
		t.Fatal(err)
	}
	if r.Since != time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC) || len(r.Rows) != 2 ||
		r.Rows[0].Name != "gpt-4o" || r.Rows[0].Cost != 8*Cent || r.Rows[0].Requests != 2 ||
		r.Rows[1].Name != "llama3.2" || r.Total.Requests != 3 {
		t.Errorf("today by model = %+v", r)
	}

	r, err = l.Report(Month.Since(c.now()), ByNamespace)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, row := range r.Rows {
		names = append(names, fmt.Sprintf("%q %s", row.Name, row.Cost))
	}
	if want := []string{`"" $0.05`, `"research" $0.03`}; !cmp.Equal(names, want) || r.Since != time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("this month by namespace = %v since %v, want %v", names, r.Since, want)
	}

	if _, err := l.Report(c.now(), "key"); err == nil {
		t.Errorf("Report by key: no error")
	}
	if err := l.Record(Entry{Hit: "fuzzy"}); err == nil {
		t.Errorf("Record of an unknown hit kind: no error")
	}
}

// TestSaved checks what cache hits saved: the cost of the answer they gave
// again, when it was first paid.
func TestSaved(t *testing.T) {
	l := open(t, t.TempDir(), newClock(t0))
	paid := Entry{Backend: "openai", Model: "gpt-4o", Usage: Usage{Input: 1000, Output: 500}, Cost: 7_500_000, Priced: true}
	mustRecord(t, l, paid)
	hit := paid
	hit.Usage = Usage{}
	for _, k := range []HitKind{Exact, Exact, Semantic, Coalesced} {
		hit.Hit = k
		mustRecord(t, l, hit)
	}
	mustRecord(t, l, Entry{Model: "llama3.2", Hit: Semantic}) // unpriced

	got := total(t, l)
	want := Totals{
		Requests:  1,
		Cost:      7_500_000,
		Tokens:    Usage{Input: 1000, Output: 500},
		Exact:     Saving{Hits: 2, Saved: 15_000_000},
		Semantic:  Saving{Hits: 2, Unpriced: 1, Saved: 7_500_000},
		Coalesced: Saving{Hits: 1, Saved: 7_500_000},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if got.Saved() != 30_000_000 || got.Saved().String() != "$0.03" {
		t.Errorf("Saved = %s, want $0.03", got.Saved())
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock(t0)
	l := open(t, dir, c)
	for i := 1; i <= 50; i++ {
		mustRecord(t, l, numbered(i))
	}
	before := total(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(numbered(51)); !errors.Is(err, ErrClosed) {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}

	l = open(t, dir, c)
	if got := total(t, l); got != before {
		t.Errorf("after a restart: %+v, want %+v", got, before)
	}
	for i := 51; i <= 80; i++ {
		mustRecord(t, l, numbered(i))
	}
	crash(l) // not folded: the journal holds 51 to 80
	l = open(t, dir, c)
	if n := checkSeries(t, total(t, l)); n != 80 {
		t.Errorf("after a crash: %d entries, want 80", n)
	}
	files, _ := filepath.Glob(filepath.Join(dir, journalPrefix+"*"))
	if len(files) != 1 {
		t.Errorf("journals after Open: %v, want one, new", files)
	}
}

// TestCrashDuringFold copies the directory at every step of a fold, as a
// kill -9 there would leave it, and opens each copy: every entry recorded
// so far must be there once. Entries are recorded during the fold too.
func TestCrashDuringFold(t *testing.T) {
	for _, closing := range []bool{false, true} {
		t.Run(fmt.Sprintf("closing=%v", closing), func(t *testing.T) {
			dir := t.TempDir()
			c := newClock(t0)
			l := open(t, dir, c)
			n := 0
			for range 20 {
				n++
				mustRecord(t, l, numbered(n))
			}
			type copyAt struct {
				step, dir string
				n         int
			}
			var copies []copyAt
			l.hook = func(step string) {
				if !closing {
					n++
					mustRecord(t, l, numbered(n)) // goes to the next journal
				}
				copies = append(copies, copyAt{step, copyDir(t, dir), n})
			}
			l.foldMu.Lock()
			err := l.fold(!closing)
			l.foldMu.Unlock()
			l.hook = nil
			if err != nil {
				t.Fatal(err)
			}
			steps := []string{}
			for _, cp := range copies {
				steps = append(steps, cp.step)
				l := open(t, cp.dir, c)
				if got := checkSeries(t, total(t, l)); got != cp.n {
					t.Errorf("crash after %q: %d entries, want %d", cp.step, got, cp.n)
				}
			}
			if want := []string{"rotated", "written", "renamed", "removed"}; !cmp.Equal(steps, want) {
				t.Errorf("steps = %v, want %v", steps, want)
			}
		})
	}
}

// copyDir copies the files of dir to a new directory.
func copyDir(t testing.TB, dir string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

func TestTornLine(t *testing.T) {
	dir := t.TempDir()
	c := newClock(t0)
	l := open(t, dir, c)
	for i := 1; i <= 10; i++ {
		mustRecord(t, l, numbered(i))
	}
	path := journalPath(dir, l.gen)
	crash(l)
	// A write cut short by the crash: part of a record, no newline.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"t":1741948200,"backend":"b","model":"m","usage":{"inpu`)
	f.Close()

	l = open(t, dir, c)
	if n := checkSeries(t, total(t, l)); n != 10 {
		t.Errorf("%d entries, want the 10 whole ones", n)
	}
	for i := 11; i <= 15; i++ {
		mustRecord(t, l, numbered(i))
	}
	crash(l)
	l = open(t, dir, c)
	if n := checkSeries(t, total(t, l)); n != 15 {
		t.Errorf("%d entries after more, want 15", n)
	}
}

// TestShortWrite checks that after a write cut short (a full disk), the
// next record starts on a line of its own, so that replay loses only the
// torn one — also when the write after the short one wrote nothing at all
// (still no space), and the next paid entry's line follows.
func TestShortWrite(t *testing.T) {
	for _, failedToo := range []bool{false, true} {
		t.Run(fmt.Sprintf("a failed write between: %v", failedToo), func(t *testing.T) {
			dir := t.TempDir()
			c := newClock(t0)
			l := open(t, dir, c)
			mustRecord(t, l, numbered(1))
			l.mu.Lock()
			l.journal.WriteString(`{"t":1741948200,"backend":"b"`) // what a short write leaves
			l.line.WriteByte('\n')                                 // what write leaves after a short one
			l.mu.Unlock()
			want := Totals{Requests: 2, Cost: 3} // entries 1 and 2
			if failedToo {
				l.mu.Lock()
				real := l.journal
				dead, err := os.Open(os.DevNull)
				if err != nil {
					t.Fatal(err)
				}
				dead.Close()
				l.journal = dead // the next write writes nothing and fails
				l.mu.Unlock()
				if err := l.Record(numbered(2)); err == nil {
					t.Fatal("want the write to fail")
				}
				l.mu.Lock()
				l.journal = real // space again
				l.mu.Unlock()
				mustRecord(t, l, numbered(3))
				want = Totals{Requests: 2, Cost: 4} // entries 1 and 3
			} else {
				mustRecord(t, l, numbered(2))
			}
			crash(l)
			l = open(t, dir, c)
			if got := total(t, l); got.Requests != want.Requests || got.Cost != want.Cost {
				t.Errorf("after a kill -9: %d entries costing %d; want %d costing %d", got.Requests, got.Cost, want.Requests, want.Cost)
			}
		})
	}
}

// TestFoldWhileRecording records from many goroutines into a journal so
// small that it folds all the time, then checks every entry once.
func TestFoldWhileRecording(t *testing.T) {
	dir := t.TempDir()
	c := newClock(t0)
	l := open(t, dir, c)
	l.maxJournal = 2 << 10
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := l.Record(numbered(w*each + i + 1)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := checkSeries(t, total(t, l)); n != workers*each {
		t.Errorf("%d entries, want %d", n, workers*each)
	}
	crash(l)
	l = open(t, dir, c)
	if n := checkSeries(t, total(t, l)); n != workers*each {
		t.Errorf("%d entries after a crash, want %d", n, workers*each)
	}
}

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	c := newClock(t0)
	l := open(t, dir, c)
	mustRecord(t, l, Entry{Backend: "b", Cost: Dollar, Priced: true})
	c.add(40 * 24 * time.Hour)
	mustRecord(t, l, Entry{Backend: "b", Cost: 2 * Dollar, Priced: true})
	l.Close()
	l = open(t, dir, c) // folds: the first entry's hour rolls up into its day

	if len(l.days) != 1 || len(l.hours) != 1 {
		t.Errorf("%d daily and %d hourly buckets, want 1 and 1", len(l.days), len(l.hours))
	}
	r, _ := l.Report(t0, "")
	if want := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC); !r.Since.Equal(want) || r.Total.Cost != 3*Dollar {
		t.Errorf("since t0: %s since %v, want $3.00 since %v", r.Total.Cost, r.Since, want)
	}
	r, _ = l.Report(Day.Since(c.now()), "")
	if r.Total.Cost != 2*Dollar {
		t.Errorf("today: %s, want $2.00", r.Total.Cost)
	}

	c.add(400 * 24 * time.Hour)
	l.Close()
	l = open(t, dir, c)
	if got := total(t, l); got.Cost != 0 || len(l.days)+len(l.hours) != 0 {
		t.Errorf("after 440 days: %+v, %d buckets; want nothing", got, len(l.days)+len(l.hours))
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	c := newClock(t0)
	l := open(t, dir, c)
	if _, err := Open(dir, c.now); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Open = %v, want in use", err)
	}
	l.Close()

	os.WriteFile(filepath.Join(dir, snapshotFile), []byte(`{"version":1,"hours":[{`), 0o600)
	if _, err := Open(dir, c.now); err == nil || !strings.Contains(err.Error(), snapshotFile) {
		t.Errorf("Open of a damaged snapshot = %v, want an error naming it", err)
	}
	os.WriteFile(filepath.Join(dir, snapshotFile), []byte(`{"version":2}`), 0o600)
	if _, err := Open(dir, c.now); err == nil || !strings.Contains(err.Error(), "version 2 is not supported") {
		t.Errorf("Open of a newer snapshot = %v", err)
	}
}

// TestKill9 records from another process, kills it with SIGKILL at a
// random moment — folds happen all the time, so often during one — and
// checks that what it recorded is there, each entry once. Rounds go on
// from where the last one stopped.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	n := 0
	for round := range 5 {
		target := n + 200 + rand.IntN(2000)
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecorderProcess$")
		cmd.Env = append(os.Environ(), "SPEND_RECORDER_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := 0
		sc := bufio.NewScanner(out)
		for acked < target && sc.Scan() {
			acked, _ = strconv.Atoi(sc.Text())
		}
		cmd.Process.Kill()
		cmd.Wait()
		if acked < target {
			t.Fatalf("round %d: the recorder stopped at %d", round, acked)
		}

		l, err := Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		n = checkSeries(t, total(t, l))
		l.Close()
		if n < acked {
			t.Fatalf("round %d: %d entries, but %d were recorded", round, n, acked)
		}
		t.Logf("round %d: killed after %d acknowledged, %d recorded", round, acked, n)
	}
}

// TestRecorderProcess is TestKill9's recorder: it goes on with the series
// in SPEND_RECORDER_DIR, printing the number of each entry recorded, until
// it is killed.
func TestRecorderProcess(t *testing.T) {
	dir := os.Getenv("SPEND_RECORDER_DIR")
	if dir == "" {
		t.Skip("run by TestKill9")
	}
	l, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.maxJournal = 16 << 10
	w := bufio.NewWriter(os.Stdout)
	for i := int(total(t, l).Requests) + 1; i < 1e7; i++ {
		if err := l.Record(numbered(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w, i)
		if i%16 == 0 {
			w.Flush()
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	l := open(b, b.TempDir(), newClock(t0))
	e := Entry{Backend: "azure-east", Model: "gpt-4o-mini", Namespace: "research",
		Usage: Usage{Input: 1200, CachedInput: 1024, Output: 300}, Cost: 300_000, Priced: true}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Record(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	l := open(b, b.TempDir(), newClock(t0))
	e := Entry{Backend: "azure-east", Model: "gpt-4o-mini", Namespace: "research",
		Usage: Usage{Input: 1200, CachedInput: 1024, Output: 300}, Cost: 300_000, Priced: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Record(e); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestSavingsHeldBriefly checks that a cache hit's saving costs no write
// of its own: its line waits for the next paid answer's write, or
// holdHits, whichever comes first; a kill -9 meanwhile loses the savings
// held, never a paid answer.
func TestSavingsHeldBriefly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		c := newClock(t0)
		l := open(t, dir, c)
		journal := func() string {
			t.Helper()
			l.mu.Lock()
			defer l.mu.Unlock()
			b, err := os.ReadFile(l.journal.Name())
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		hit := Entry{Model: "m", Hit: Exact, Usage: Usage{Input: 5}, Cost: 7, Priced: true}

		mustRecord(t, l, hit)
		if j := journal(); j != "" {
			t.Fatalf("a saving was written at once: %q", j)
		}
		time.Sleep(holdHits)
		synctest.Wait()
		if n := strings.Count(journal(), "\n"); n != 1 {
			t.Fatalf("%d lines %v after the saving: want it written", n, holdHits)
		}

		mustRecord(t, l, hit)
		mustRecord(t, l, numbered(1))
		if n := strings.Count(journal(), "\n"); n != 3 {
			t.Fatalf("%d lines after a saving and a paid answer: want both written with the paid one", n)
		}

		mustRecord(t, l, hit) // held when the process dies
		crash(l)
		l = open(t, dir, c)
		got := total(t, l)
		if got.Requests != 1 || got.Cost != 1 || got.Exact.Saved != 14 {
			t.Errorf("after a kill -9: %d paid costing %d, %d saved; want 1 costing 1, 14 saved (the last saving lost)", got.Requests, got.Cost, got.Exact.Saved)
		}

		mustRecord(t, l, hit)
		l.Close() // writes what is held
		l = open(t, dir, c)
		if got := total(t, l); got.Exact.Saved != 21 {
			t.Errorf("after Close: %d saved, want 21", got.Exact.Saved)
		}
	})
}
