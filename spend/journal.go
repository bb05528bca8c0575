package spend

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/internal/durable"
)

// The files of a ledger's directory. The journals of a generation up to
// the snapshot's Folded are in the snapshot; the later ones are not.
//
// A fold (1) starts journal gen+1, so that Record goes on there, (2)
// writes the snapshot of every entry up to journal gen, with Folded = gen,
// to a temporary file, fsyncs it, renames it over the snapshot and fsyncs
// the directory, and (3) removes the journals up to gen. After a crash
// between 1 and 2, the old snapshot and both journals are on disk and are
// replayed; between 2 and 3, the journals up to gen are skipped, being in
// the snapshot. Either way each entry counts once.
const (
	snapshotFile  = "spend.json"
	journalPrefix = "spend.journal."
	lockFile      = "spend.lock"
	idFile        = "spend.id"
)

// snapshotVersion is the format of the snapshot file and the journal lines.
const snapshotVersion = 1

type snapshot struct {
	Version int      `json:"version"`
	Folded  uint64   `json:"folded"` // the journals it includes: generations up to this
	Hourly  int64    `json:"hourly"` // hours before this (Unix time) are in Days
	Hours   []bucket `json:"hours"`
	Days    []bucket `json:"days"`
}

type bucket struct {
	Start     int64  `json:"start"` // Unix time
	Backend   string `json:"backend,omitempty"`
	Model     string `json:"model,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Totals    Totals `json:"totals"`
}

// Open opens the ledger kept in dir, creating dir (0700) if need be, and
// folds what a previous run left in the journal into the snapshot. now is
// the clock (time.Now when nil). It fails when another process has dir
// open, or when the snapshot cannot be read: totals are never silently
// reset. A journal's torn last line, left by a crash in the middle of a
// write, is skipped.
func Open(dir string, now func() time.Time) (*Ledger, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	unlock, err := lock(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	l := &Ledger{
		dir:        dir,
		now:        now,
		unlock:     unlock,
		hours:      map[slot]Totals{},
		days:       map[slot]Totals{},
		maxJournal: defaultMaxJournal,
	}
	l.enc = json.NewEncoder(&l.line)
	l.enc.SetEscapeHTML(false)
	if l.id, err = loadID(dir); err != nil {
		unlock()
		return nil, err
	}
	if err := l.load(); err != nil {
		unlock()
		return nil, err
	}
	l.foldMu.Lock()
	err = l.fold(true)
	l.foldMu.Unlock()
	if err != nil {
		l.mu.Lock()
		if l.journal != nil {
			l.journal.Close()
		}
		l.mu.Unlock()
		unlock()
		return nil, err
	}
	return l, nil
}

// lock takes the lock of a ledger's directory, without waiting.
func lock(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spend: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spend: %s is in use by another process", filepath.Dir(path))
		}
		return nil, fmt.Errorf("spend: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// loadID reads the ledger's ID from dir's spend.id, making one at random
// when there is none. The caller holds the directory's lock.
func loadID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if id := strings.TrimSpace(string(b)); err == nil && id != "" {
		return id, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("spend: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("spend: %w", err)
	}
	id := hex.EncodeToString(r[:])
	if err := os.WriteFile(path+".tmp", []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("spend: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return "", fmt.Errorf("spend: %w", err)
	}
	return id, nil
}

// load reads the snapshot and replays the journals it does not include.
func (l *Ledger) load() error {
	path := filepath.Join(l.dir, snapshotFile)
	if err := os.Remove(path + ".tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spend: %w", err)
	}
	var snap snapshot
	switch data, err := os.ReadFile(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("spend: %w", err)
	default:
		if err := json.Unmarshal(data, &snap); err != nil {
			return fmt.Errorf("spend: read %s: %w", path, err)
		}
		if snap.Version != snapshotVersion {
			return fmt.Errorf("spend: read %s: version %d is not supported: this lbgpt reads version %d", path, snap.Version, snapshotVersion)
		}
	}
	for _, b := range snap.Hours {
		l.hours[slot{b.Start, key{b.Backend, b.Model, b.Namespace}}] = b.Totals
	}
	for _, b := range snap.Days {
		l.days[slot{b.Start, key{b.Backend, b.Model, b.Namespace}}] = b.Totals
	}
	l.gen, l.hourly = snap.Folded, snap.Hourly

	gens, err := journals(l.dir)
	if err != nil {
		return err
	}
	// Nothing is current (replay adds to no period) until roll counts it.
	l.cur = current{day: math.MaxInt64, month: math.MaxInt64}
	for _, g := range gens {
		if g <= snap.Folded {
			// In the snapshot: a crash came before the fold removed it.
			if err := os.Remove(journalPath(l.dir, g)); err != nil {
				return fmt.Errorf("spend: %w", err)
			}
			continue
		}
		if err := l.replay(journalPath(l.dir, g)); err != nil {
			return err
		}
		l.gen = g
	}
	l.roll(l.now().Unix())
	return nil
}

// journals returns the generations of the journals in dir, in order.
func journals(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spend: %w", err)
	}
	var gens []uint64
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), journalPrefix)
		if !ok {
			continue
		}
		if g, err := strconv.ParseUint(s, 10, 64); err == nil {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

func journalPath(dir string, gen uint64) string {
	return filepath.Join(dir, journalPrefix+strconv.FormatUint(gen, 10))
}

// replay applies the entries of a journal. A line that does not end in a
// newline, or does not parse, is what a torn write left: it is skipped.
func (l *Ledger) replay(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return nil // and line, if any, is torn
		}
		if err != nil {
			return fmt.Errorf("spend: read %s: %w", path, err)
		}
		var rec record
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Hit {
		case "", Exact, Semantic, Coalesced:
			l.apply(rec.T, rec.Entry)
		}
	}
}

// rotate folds the journal if it is still full, unless a fold is under way.
func (l *Ledger) rotate() error {
	if !l.foldMu.TryLock() {
		return nil
	}
	defer l.foldMu.Unlock()
	l.mu.Lock()
	full := l.journal != nil && l.size >= l.maxJournal
	l.mu.Unlock()
	if !full {
		return nil
	}
	return l.fold(true)
}

// fold writes the totals to the snapshot and removes the journals it now
// includes. With next, it first starts the next journal, and Record goes
// on there while the snapshot is written; without, it closes the journal
// and the ledger. The caller holds foldMu.
func (l *Ledger) fold(next bool) error {
	l.mu.Lock()
	var werr error
	if l.journal != nil && l.line.Len() > 0 {
		werr = l.write() // savings held: with the journal the snapshot includes
	}
	l.compact(l.now().Unix())
	snap := l.snapshot()
	old := l.journal
	if next {
		f, err := os.OpenFile(journalPath(l.dir, l.gen+1), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		if err != nil {
			l.mu.Unlock() // the journal goes on, and a torn line's end with it
			return errors.Join(werr, fmt.Errorf("spend: %w", err))
		}
		l.journal, l.gen, l.size = f, l.gen+1, 0
	} else {
		l.journal = nil
	}
	l.line.Reset() // a torn line's end, too, stays with the old journal
	l.mu.Unlock()
	err := werr
	if old != nil {
		err = errors.Join(err, old.Close())
	}
	l.step("rotated")
	return errors.Join(err, l.writeSnapshot(snap))
}

// snapshot returns the totals with the generation of the journal they
// include, in a stable order. The caller holds mu.
func (l *Ledger) snapshot() snapshot {
	list := func(m map[slot]Totals) []bucket {
		bs := make([]bucket, 0, len(m))
		for s, t := range m {
			bs = append(bs, bucket{s.start, s.backend, s.model, s.namespace, t})
		}
		slices.SortFunc(bs, func(a, b bucket) int {
			return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Backend, b.Backend),
				cmp.Compare(a.Model, b.Model), cmp.Compare(a.Namespace, b.Namespace))
		})
		return bs
	}
	return snapshot{Version: snapshotVersion, Folded: l.gen, Hourly: l.hourly, Hours: list(l.hours), Days: list(l.days)}
}

// writeSnapshot replaces the snapshot file with snap, durably, and then
// removes the journals it includes.
func (l *Ledger) writeSnapshot(snap snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	path := filepath.Join(l.dir, snapshotFile)
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("spend: write snapshot: %w", err)
	}
	l.step("written")
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("spend: %w", err)
	}
	l.step("renamed")
	// The rename must be durable before a journal it includes goes.
	if err := durable.SyncDir(l.dir); err != nil {
		return fmt.Errorf("spend: sync %s: %w", l.dir, err)
	}
	gens, err := journals(l.dir)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g > snap.Folded {
			break
		}
		if err := os.Remove(journalPath(l.dir, g)); err != nil {
			return fmt.Errorf("spend: %w", err)
		}
		l.step("removed")
	}
	return nil
}

// step calls the test hook.
func (l *Ledger) step(name string) {
	if l.hook != nil {
		l.hook(name)
	}
}
