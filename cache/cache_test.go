package cache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openTest(t *testing.T, opts Options) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", FileName)
	if opts.FlushEvery == 0 {
		opts.FlushEvery = -1
	}
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func put(t *testing.T, s *Store, key, value string, mod func(*Entry)) {
	t.Helper()
	e := Entry{Key: key, Value: []byte(value), Model: "m"}
	if mod != nil {
		mod(&e)
	}
	if err := s.Put(e); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func has(s *Store, key string) bool {
	_, ok := s.Get(key)
	return ok
}

func TestPutGet(t *testing.T) {
	s, path := openTest(t, Options{})
	put(t, s, "k1", `{"answer":1}`, func(e *Entry) { e.Namespace = "ns" })
	e, ok := s.Get("k1")
	if !ok || string(e.Value) != `{"answer":1}` || e.Namespace != "ns" || e.Model != "m" || e.Created.IsZero() {
		t.Fatalf("Get = %+v, %v", e, ok)
	}
	if has(s, "k2") {
		t.Error("a key never stored is a hit")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v (%v), want 0600", fi.Mode(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v (%v), want 0700", di.Mode(), err)
	}
	// It persists.
	s.Close()
	s2, err := Open(path, Options{FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if e, ok := s2.Get("k1"); !ok || string(e.Value) != `{"answer":1}` {
		t.Errorf("after reopening: %+v, %v", e, ok)
	}
	if st := s2.Stats(); st.Entries != 1 || st.Bytes == 0 || st.FileBytes == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	_, path := openTest(t, Options{})
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestExpiry(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, Options{Now: clk.Now})
	put(t, s, "short", "a", func(e *Entry) { e.Expires = clk.Now().Add(time.Minute) })
	put(t, s, "never", "b", nil)
	clk.Advance(59 * time.Second)
	if !has(s, "short") {
		t.Fatal("expired early")
	}
	clk.Advance(time.Second)
	if has(s, "short") {
		t.Fatal("an expired entry is a hit")
	}
	if n, err := s.Sweep(); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1", n, err)
	}
	clk.Advance(1000 * time.Hour)
	if !has(s, "never") || s.Stats().Entries != 1 {
		t.Error("an entry without expiry went")
	}
}

// TestEvictLRU: at the cap the least recently used go first, and a read
// counts as a use.
func TestEvictLRU(t *testing.T) {
	clk := newClock()
	value := strings.Repeat("x", 1000)
	size := int64(len(encodeValue(header{namespace: "", model: "m"}, []byte(value)))) + 2
	s, path := openTest(t, Options{Now: clk.Now, MaxBytes: size * 7 / 2})
	for _, k := range []string{"k1", "k2", "k3"} {
		put(t, s, k, value, nil)
		clk.Advance(time.Second)
	}
	if !has(s, "k1") { // k1 is now the most recently used
		t.Fatal("k1 missing")
	}
	clk.Advance(time.Second)
	put(t, s, "k4", value, nil)
	for k, want := range map[string]bool{"k1": true, "k2": false, "k3": true, "k4": true} {
		if has(s, k) != want {
			t.Errorf("%s present = %v, want %v", k, !want, want)
		}
	}
	if st := s.Stats(); st.Evictions != 1 || st.Entries != 3 {
		t.Errorf("Stats = %+v, want 1 eviction and 3 entries", st)
	}
	// Access times survive a restart: k3 was read after k1 last, k1 after k4.
	has(s, "k3")
	clk.Advance(time.Second)
	has(s, "k4")
	clk.Advance(time.Second)
	has(s, "k1")
	s.Close()
	s2, err := Open(path, Options{Now: clk.Now, MaxBytes: size * 7 / 2, FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	clk.Advance(time.Second)
	put(t, s2, "k5", value, nil)
	if has(s2, "k3") || !has(s2, "k1") || !has(s2, "k4") || !has(s2, "k5") {
		t.Error("after a restart the eviction did not follow the saved access times")
	}
}

// TestGetDoesNotWrite: a hit leaves the file untouched until a flush.
func TestGetDoesNotWrite(t *testing.T) {
	s, _ := openTest(t, Options{})
	put(t, s, "k", "v", nil)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	writes := func() int64 { st := s.DB().Stats(); return st.TxStats.GetWrite() }
	before := writes()
	for range 100 {
		if !has(s, "k") {
			t.Fatal("miss")
		}
	}
	if w := writes(); w != before {
		t.Errorf("reads wrote %d times", w-before)
	}
}

func TestPurgeAndForget(t *testing.T) {
	clk := newClock()
	s, _ := openTest(t, Options{Now: clk.Now})
	put(t, s, "a1", "v", func(e *Entry) { e.Namespace = "a" })
	put(t, s, "a2", "v", func(e *Entry) { e.Namespace = "a" })
	clk.Advance(time.Hour)
	put(t, s, "b1", "v", func(e *Entry) { e.Namespace = "b" })
	put(t, s, "d1", "v", nil)
	if n, err := s.Purge(func(i Info) bool { return i.Namespace == "a" }); n != 2 || err != nil {
		t.Fatalf("purge namespace a = %d, %v", n, err)
	}
	if has(s, "a1") || !has(s, "b1") {
		t.Fatal("purge by namespace removed the wrong entries")
	}
	put(t, s, "old", "v", func(e *Entry) { e.Created = clk.Now().Add(-2 * time.Hour) })
	cut := clk.Now().Add(-time.Minute)
	if n, err := s.Purge(func(i Info) bool { return i.Created.Before(cut) }); n != 1 || err != nil || has(s, "old") {
		t.Fatalf("purge older than = %d, %v", n, err)
	}
	if ok, err := s.Forget("b1"); !ok || err != nil || has(s, "b1") {
		t.Fatalf("Forget = %v, %v", ok, err)
	}
	if ok, _ := s.Forget("b1"); ok {
		t.Error("forgot a missing entry")
	}
	if st := s.Stats(); st.Entries != 1 {
		t.Errorf("%d entries left, want 1", st.Entries)
	}
}

// TestCompactWhileBusy compacts while readers and writers run: every
// acknowledged write is there afterwards and the file shrank.
func TestCompactWhileBusy(t *testing.T) {
	s, path := openTest(t, Options{})
	big := strings.Repeat("y", 4000)
	for i := range 500 {
		put(t, s, fmt.Sprint("big", i), big, nil)
	}
	if err := s.Flush(); err != nil { // on disk, so that the purge frees pages
		t.Fatal(err)
	}
	if n, err := s.Purge(func(Info) bool { return true }); n != 500 || err != nil {
		t.Fatal(n, err)
	}
	put(t, s, "keep", "v", nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var written []string
	var mu sync.Mutex
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			k := fmt.Sprint("w", i)
			if err := s.Put(Entry{Key: k, Value: []byte(k)}); err != nil {
				t.Errorf("Put during compaction: %v", err)
				return
			}
			mu.Lock()
			written = append(written, k)
			mu.Unlock()
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !has(s, "keep") {
				t.Error("a read during compaction missed")
				return
			}
		}
	})
	before, after, err := s.Compact()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if after >= before {
		t.Errorf("file %d bytes before, %d after: not smaller", before, after)
	}
	for _, k := range written {
		if e, ok := s.Get(k); !ok || string(e.Value) != k {
			t.Fatalf("write %s lost by compaction", k)
		}
	}
	if _, err := os.Stat(path + ".compact"); !os.IsNotExist(err) {
		t.Errorf("compaction left its temporary file: %v", err)
	}
	put(t, s, "after", "v", nil)
	if !has(s, "after") || !has(s, "keep") {
		t.Error("the store does not work after compaction")
	}
}

func TestPutAfterClose(t *testing.T) {
	s, _ := openTest(t, Options{})
	s.Close()
	if err := s.Put(Entry{Key: "k", Value: []byte("v")}); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if has(s, "k") {
		t.Error("hit after Close")
	}
}

// The kill -9 test re-runs this test binary as a writer that stores
// entries in a loop and prints each key once it is acknowledged: a Flush
// after its Put returned.
const writerEnv = "LBGPT_CACHE_TEST_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(writerEnv); path != "" {
		os.Exit(writer(path))
	}
	os.Exit(m.Run())
}

func writer(path string) int {
	s, err := Open(path, Options{LockTimeout: 5 * time.Second, FlushEvery: 5 * time.Millisecond})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 { // concurrent writers, so batches form
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("p%d-w%d-%d", os.Getpid(), w, i)
				if err := s.Put(Entry{Key: k, Value: value(k)}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				has(s, k)
				if err := s.Flush(); err != nil {
					fmt.Fprintln(os.Stderr, err)
					return
				}
				mu.Lock()
				fmt.Fprintln(out, k)
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 1
}

func value(k string) []byte { return bytes.Repeat([]byte(k+";"), 1+len(k)%50) }

// TestKill9 kills a busy writer with SIGKILL again and again; every time,
// the file opens and every entry the writer had acknowledged reads back.
func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	var acked []string
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		target := 200 + 150*round
		for n < target && sc.Scan() {
			acked = append(acked, sc.Text())
			n++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		for sc.Scan() { // lines written before the kill
			acked = append(acked, sc.Text())
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("round %d: the writer stopped after %d entries: %s", round, n, stderr.String())
		}
		s, err := Open(path, Options{FlushEvery: -1})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		if err := s.DB().View(func(tx *boltTx) error { return checkTx(tx) }); err != nil {
			t.Fatalf("round %d: consistency check: %v", round, err)
		}
		for _, k := range acked {
			e, ok := s.Get(k)
			if !ok || !bytes.Equal(e.Value, value(k)) {
				s.Close()
				t.Fatalf("round %d: acknowledged entry %s lost or damaged after kill -9", round, k)
			}
		}
		if got := s.Stats().Entries; got < int64(len(acked)) {
			t.Errorf("round %d: %d entries, fewer than the %d acknowledged", round, got, len(acked))
		}
		s.Close()
		t.Logf("round %d: %d acknowledged entries intact", round, len(acked))
	}
}
