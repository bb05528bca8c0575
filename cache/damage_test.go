package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damagedCopies writes damaged copies of the cache file at path into dir:
// truncations, pages overwritten with random bytes or zeros, random bytes
// throughout. It returns their paths.
func damagedCopies(t *testing.T, path, dir string) []string {
	t.Helper()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const page = 4096
	var out []string
	write := func(name string, b []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	for _, n := range []int{0, 1, 100, page, 2 * page, 3*page + 17, len(good) / 2, len(good) - page, len(good) - 1} {
		write(fmt.Sprintf("truncated-%d", n), good[:max(0, min(n, len(good)))])
	}
	for i := range len(good) / page {
		for _, fill := range []string{"random", "zeros"} {
			b := bytes.Clone(good)
			for j := i * page; j < (i+1)*page; j++ {
				if fill == "random" {
					b[j] = byte(rng.Uint32())
				} else {
					b[j] = 0
				}
			}
			write(fmt.Sprintf("page-%d-%s", i, fill), b)
		}
	}
	for i := range 8 { // scattered bytes flipped
		b := bytes.Clone(good)
		for range 32 {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		write(fmt.Sprintf("flipped-%d", i), b)
	}
	noise := make([]byte, len(good))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	write("random", noise)
	return out
}

// A damaged cache file never takes the process down: Open returns an
// error (ErrDamaged when bbolt or the reading found it corrupt) or a store
// that answers; it never panics nor faults.
func TestDamagedFilesNeverCrash(t *testing.T) {
	s, path := openTest(t, Options{})
	for i := range 300 {
		put(t, s, fmt.Sprintf("key-%03d", i), strings.Repeat(fmt.Sprintf("answer %d ", i), 20), nil)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	copies := damagedCopies(t, path, t.TempDir())
	opened, damaged := 0, 0
	for _, p := range copies {
		st, err := Open(p, Options{FlushEvery: -1, LockTimeout: 100 * time.Millisecond})
		if err != nil {
			if errors.Is(err, ErrLocked) {
				t.Errorf("%s: %v", filepath.Base(p), err)
			}
			if errors.Is(err, ErrDamaged) {
				damaged++
			}
			continue
		}
		opened++
		// Reads, writes and the close (which saves access times) on a file
		// that opened but is damaged deeper fail, or work; they never
		// crash.
		for i := range 300 {
			st.Get(fmt.Sprintf("key-%03d", i))
		}
		st.Put(Entry{Key: "new", Value: []byte("after the damage"), Model: "m"})
		if err := st.Flush(); err != nil {
			t.Logf("%s opened, then a write failed: %v", filepath.Base(p), err)
		}
		st.Close()
	}
	t.Logf("%d damaged copies: %d opened, %d refused as damaged, %d refused otherwise", len(copies), opened, damaged, len(copies)-opened-damaged)
	if damaged == 0 {
		t.Error("no copy was found damaged: the damage did not reach bbolt")
	}
}
