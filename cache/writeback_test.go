package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// gate holds the writer: each commit waits in beforeCommit until the gate
// opens.
type gate struct {
	entered chan struct{} // a commit is waiting
	open    chan struct{}
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 1), open: make(chan struct{})} }

func (g *gate) beforeCommit() error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	return nil
}

// onDisk reports whether key is in the file itself, not the queue.
func onDisk(t *testing.T, s *Store, key string) bool {
	t.Helper()
	found := false
	err := s.DB().View(func(tx *boltTx) error {
		found = tx.Bucket(bucketExact).Get([]byte(key)) != nil
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func reopen(t *testing.T, s *Store, path string) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2, err := Open(path, Options{FlushEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// TestPutVisibleBeforeCommit: with the writer held, a Put returns, Get
// sees the entry and Stats counts it, while the file does not have it
// yet; Flush waits for the commit.
func TestPutVisibleBeforeCommit(t *testing.T) {
	g := newGate()
	s, _ := openTest(t, Options{beforeCommit: g.beforeCommit})
	put(t, s, "k1", "v1", nil)
	<-g.entered // the writer took k1 and waits
	put(t, s, "k2", "v2", nil)
	for _, k := range []string{"k1", "k2"} {
		if e, ok := s.Get(k); !ok || string(e.Value) != "v"+k[1:] {
			t.Errorf("Get(%s) before the commit = %+v, %v", k, e, ok)
		}
		if onDisk(t, s, k) {
			t.Errorf("%s on disk while the writer is held", k)
		}
	}
	if st := s.Stats(); st.Entries != 2 || st.Queued != 2 || st.Bytes == 0 {
		t.Errorf("Stats with 2 queued = %+v", st)
	}
	close(g.open)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if !onDisk(t, s, "k1") || !onDisk(t, s, "k2") || s.Stats().Queued != 0 {
		t.Errorf("after Flush: k1 %v, k2 %v, %d queued", onDisk(t, s, "k1"), onDisk(t, s, "k2"), s.Stats().Queued)
	}
}

// TestCloseFlushes: entries queued behind a held writer are on disk after
// Close.
func TestCloseFlushes(t *testing.T) {
	g := newGate()
	s, path := openTest(t, Options{beforeCommit: g.beforeCommit})
	for i := range 50 {
		put(t, s, fmt.Sprint("k", i), fmt.Sprint("v", i), nil)
	}
	<-g.entered
	if s.Stats().Queued == 0 {
		t.Fatal("nothing queued behind the held writer")
	}
	close(g.open)
	s2 := reopen(t, s, path)
	for i := range 50 {
		if e, ok := s2.Get(fmt.Sprint("k", i)); !ok || string(e.Value) != fmt.Sprint("v", i) {
			t.Fatalf("k%d lost by Close", i)
		}
	}
}

// TestForgetWhileCommitting: an entry removed while the writer commits it
// stays removed, on disk too.
func TestForgetWhileCommitting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGate()
		s, path := openTest(t, Options{beforeCommit: g.beforeCommit})
		put(t, s, "k", "v", nil)
		<-g.entered // the round with k in it waits
		forgot := make(chan bool)
		go func() {
			ok, err := s.Forget("k")
			if err != nil {
				t.Errorf("Forget: %v", err)
			}
			forgot <- ok
		}()
		synctest.Wait() // Forget queued its deletion and waits for the disk
		if has(s, "k") {
			t.Error("a forgotten entry is a hit")
		}
		close(g.open)
		if !<-forgot {
			t.Error("Forget = false for a queued entry")
		}
		if onDisk(t, s, "k") {
			t.Error("the forgotten entry was written back")
		}
		if s2 := reopen(t, s, path); has(s2, "k") {
			t.Error("the forgotten entry is back after reopening")
		}
	})
}

// TestBackpressure: past MaxQueueBytes, Put waits for the writer instead
// of growing the queue, and nothing is dropped.
func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		value := "0123456789"
		size := int64(len(encodeValue(header{model: "m"}, []byte(value)))) + 2
		g := newGate()
		s, _ := openTest(t, Options{beforeCommit: g.beforeCommit, MaxQueueBytes: 3 * size})
		put(t, s, "k0", value, nil)
		<-g.entered // the writer took k0 and waits; k0 is still queued
		for i := 1; i <= 2; i++ {
			put(t, s, fmt.Sprint("k", i), value, nil)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			put(t, s, "k3", value, nil)
		}()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Put did not wait with the queue full")
		default:
		}
		s.mu.Lock()
		queued := s.queueBytes
		s.mu.Unlock()
		if queued > 3*size {
			t.Errorf("%d bytes queued, bound %d", queued, 3*size)
		}
		if has(s, "k3") {
			t.Error("the waiting Put is visible")
		}
		close(g.open)
		<-done
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			if k := fmt.Sprint("k", i); !onDisk(t, s, k) {
				t.Errorf("%s dropped", k)
			}
		}
	})
}

// TestCommitErrorCounted: a failed commit is counted, Flush reports it,
// the entries stay readable and queued, and a later round writes them.
func TestCommitErrorCounted(t *testing.T) {
	errDisk := errors.New("disk on fire")
	var fail atomic.Bool
	fail.Store(true)
	hook := func() error {
		if fail.Load() {
			return errDisk
		}
		return nil
	}
	s, path := openTest(t, Options{beforeCommit: hook})
	put(t, s, "k", "v", nil)
	if err := s.Flush(); !errors.Is(err, errDisk) {
		t.Fatalf("Flush with a failing commit = %v, want the commit's error", err)
	}
	if st := s.Stats(); st.WriteErrors == 0 || st.Queued != 1 {
		t.Errorf("Stats after a failed commit = %+v, want write errors and 1 queued", st)
	}
	if !has(s, "k") {
		t.Error("the entry of a failed commit is gone")
	}
	fail.Store(false)
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush once the disk is back: %v", err)
	}
	if s2 := reopen(t, s, path); !has(s2, "k") {
		t.Error("the entry of a failed commit never reached the disk")
	}
}

// TestCloseReportsUnwritten: Close says so when the queue could not be
// committed.
func TestCloseReportsUnwritten(t *testing.T) {
	errDisk := errors.New("disk on fire")
	s, err := Open(filepath.Join(t.TempDir(), FileName), Options{FlushEvery: -1, beforeCommit: func() error { return errDisk }})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", "v", nil)
	if err := s.Close(); !errors.Is(err, errDisk) {
		t.Errorf("Close = %v, want the commit's error", err)
	}
	if st := s.Stats(); st.WriteErrors == 0 {
		t.Errorf("write errors = %d", st.WriteErrors)
	}
}

// TestCommitDelay: a busy store commits once per CommitDelay, grouping the
// changes queued meanwhile into one transaction; Flush does not wait for
// the delay.
func TestCommitDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := openTest(t, Options{CommitDelay: time.Second})
		rounds := func() int64 {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.rounds
		}
		put(t, s, "a", "v", nil)
		synctest.Wait() // the writer committed a and pauses
		if !onDisk(t, s, "a") || rounds() != 1 {
			t.Fatalf("a on disk %v after %d rounds, want after 1", onDisk(t, s, "a"), rounds())
		}
		put(t, s, "b", "v", nil)
		put(t, s, "c", "v", nil)
		synctest.Wait()
		if onDisk(t, s, "b") || !has(s, "b") {
			t.Fatal("b committed during the pause, or not readable")
		}
		time.Sleep(time.Second) // the bubble's clock: the pause ends
		synctest.Wait()
		if !onDisk(t, s, "b") || !onDisk(t, s, "c") || rounds() != 2 {
			t.Fatalf("b %v, c %v after %d rounds; want both in round 2", onDisk(t, s, "b"), onDisk(t, s, "c"), rounds())
		}
		put(t, s, "d", "v", nil)
		start := time.Now()
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 || !onDisk(t, s, "d") {
			t.Errorf("Flush waited %v for the pause (d on disk %v)", waited, onDisk(t, s, "d"))
		}
	})
}
