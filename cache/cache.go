// Package cache is lbgpt's answer cache: an exact cache of whole answers in
// one bbolt file, keyed by the canonical form of the request, and (in the
// semantic files) a semantic index over the same file.
//
// The exact cache: [Key] turns an OpenAI request into the hex SHA-256 of
// its canonical JSON, minus the fields that never change an answer
// ([Excluded]), plus the namespace. A [Store] maps keys to answers with a
// creation time, an optional expiry and the namespace and model they were
// stored under. Expired entries read as misses and are swept. With a size
// cap, the least recently used entries go first; a read never writes the
// entry: access times live in memory and are saved in a bucket of their
// own now and then, and at Close.
//
// Writes are grouped into shared transactions (bbolt's Batch), each
// committed with fsync before Put returns: an entry Put acknowledged
// survives a crash or kill -9, and the file is never left corrupt.
//
// One process owns the file: Open waits a moment for bbolt's file lock and
// then fails with [ErrLocked]. A Store is safe for concurrent use.
package cache

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the cache file's name in its directory.
const FileName = "cache.db"

// Buckets of the file. The semantic index keeps its own, "semantic".
var (
	bucketExact  = []byte("exact")
	bucketAccess = []byte("access")
)

// ErrLocked is returned by Open when another process (another lbgptd)
// holds the cache file.
var ErrLocked = errors.New("the cache file is in use by another process (is another lbgptd running?)")

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("cache is closed")

// Defaults of Options.
const (
	DefaultLockTimeout = time.Second
	DefaultFlushEvery  = 30 * time.Second
)

// Options configure a Store. The zero value is a store without a size cap.
type Options struct {
	// MaxBytes caps the entries' total size (keys, answers and their
	// headers, not the file's free pages); 0 is no cap. Past it, the least
	// recently used entries are evicted until the total is 95 % of the cap.
	MaxBytes int64
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// LockTimeout is how long Open waits for the file lock; 0 is
	// DefaultLockTimeout.
	LockTimeout time.Duration
	// FlushEvery is how often access times are saved and expired entries
	// swept; 0 is DefaultFlushEvery, negative never (Flush and Close still
	// save them).
	FlushEvery time.Duration
}

// Store is the exact cache. Methods are safe for concurrent use.
type Store struct {
	path string
	opts Options
	now  func() time.Time
	log  *slog.Logger

	// dbMu guards db and closed: readers and writers hold it shared;
	// Compact holds it exclusively only to swap the file, Close to close it.
	dbMu   sync.RWMutex
	db     *bolt.DB
	closed bool
	// writeMu is held shared by writers and exclusively by Compact while it
	// copies, so that no write is lost while reads go on.
	writeMu sync.RWMutex

	mu    sync.Mutex // guards index, total, dirty
	index map[string]*meta
	total int64
	dirty map[string]struct{} // keys whose access time is not saved yet

	evictions atomic.Int64

	stop chan struct{} // closed by Close
	done chan struct{} // closed when the flusher has stopped
	once sync.Once
}

// meta is what the Store keeps in memory of each entry.
type meta struct {
	size      int64
	created   int64 // unix nanoseconds
	expires   int64 // unix nanoseconds; 0 never
	access    int64 // unix nanoseconds of the last read or write
	namespace string
	model     string
}

// Open opens (creating it if needed) the cache file at path: its directory
// mode 0700, the file 0600.
func Open(path string, opts Options) (*Store, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.FlushEvery == 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	s := &Store{
		path:  path,
		opts:  opts,
		now:   opts.Now,
		log:   opts.Logger,
		index: make(map[string]*meta),
		dirty: make(map[string]struct{}),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	db, err := s.openDB(path)
	if err != nil {
		return nil, err
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.FlushEvery > 0 {
		go s.flusher()
	} else {
		close(s.done)
	}
	return s, nil
}

func (s *Store) openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("cache %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	// Group concurrent writes sooner than bbolt's default 10ms: an answer
	// waits for its write.
	db.MaxBatchDelay = 2 * time.Millisecond
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketExact, bucketAccess} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	return db, nil
}

// load reads every entry's header and saved access time into the index.
func (s *Store) load() error {
	return s.db.View(func(tx *bolt.Tx) error {
		access := tx.Bucket(bucketAccess)
		return tx.Bucket(bucketExact).ForEach(func(k, v []byte) error {
			h, _, err := decodeValue(v)
			if err != nil {
				s.log.Warn("cache entry unreadable; ignored", "key", string(k), "err", err)
				return nil
			}
			m := &meta{size: int64(len(k) + len(v)), created: h.created, expires: h.expires, access: h.created, namespace: h.namespace, model: h.model}
			if a := access.Get(k); len(a) == 8 {
				m.access = int64(binary.BigEndian.Uint64(a))
			}
			s.index[string(k)] = m
			s.total += m.size
			return nil
		})
	})
}

// Path is the cache file.
func (s *Store) Path() string { return s.path }

// DB is the open bbolt file, for the semantic index's own bucket. After
// Compact it is another *bolt.DB: whoever keeps it must take the new one.
func (s *Store) DB() *bolt.DB {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db
}

// Entry is one cached answer.
type Entry struct {
	Key       string
	Value     []byte // the answer: an OpenAI response's JSON, or a vector
	Namespace string
	Model     string
	Created   time.Time
	Expires   time.Time // zero: never
}

// Info describes an entry without its value, for Purge.
type Info struct {
	Key       string
	Namespace string
	Model     string
	Created   time.Time
	Expires   time.Time
	Size      int64
}

// Get returns the entry under key. An expired entry is a miss. Get never
// writes: it records the access in memory only.
func (s *Store) Get(key string) (Entry, bool) {
	now := s.now().UnixNano()
	s.mu.Lock()
	m, ok := s.index[key]
	if ok && m.expires != 0 && m.expires <= now {
		ok = false
	}
	if ok {
		m.access = now
		s.dirty[key] = struct{}{}
	}
	s.mu.Unlock()
	if !ok {
		return Entry{}, false
	}
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	var e Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExact).Get([]byte(key))
		if v == nil {
			return errNotFound
		}
		h, body, err := decodeValue(v)
		if err != nil {
			return err
		}
		e = Entry{Key: key, Value: slices.Clone(body), Namespace: h.namespace, Model: h.model,
			Created: time.Unix(0, h.created), Expires: unixOrZero(h.expires)}
		return nil
	})
	if err != nil {
		if !errors.Is(err, errNotFound) {
			s.log.Warn("cache read failed", "err", err)
		}
		return Entry{}, false
	}
	if !e.Expires.IsZero() && !e.Expires.After(time.Unix(0, now)) {
		return Entry{}, false
	}
	return e, true
}

var errNotFound = errors.New("not found")

func unixOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Put stores e (Created, when zero, is now) and returns once it is
// committed to disk. It then evicts the least recently used entries if
// the store is over its cap.
func (s *Store) Put(e Entry) error {
	if e.Key == "" {
		return errors.New("cache: empty key")
	}
	if e.Created.IsZero() {
		e.Created = s.now()
	}
	h := header{created: e.Created.UnixNano(), namespace: e.Namespace, model: e.Model}
	if !e.Expires.IsZero() {
		h.expires = e.Expires.UnixNano()
	}
	v := encodeValue(h, e.Value)
	k := []byte(e.Key)
	s.writeMu.RLock()
	s.dbMu.RLock()
	err := s.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketExact).Put(k, v)
	})
	s.dbMu.RUnlock()
	s.writeMu.RUnlock()
	if err != nil {
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			err = ErrClosed
		}
		return fmt.Errorf("cache write: %w", err)
	}
	m := &meta{size: int64(len(k) + len(v)), created: h.created, expires: h.expires, access: s.now().UnixNano(), namespace: e.Namespace, model: e.Model}
	s.mu.Lock()
	if old, ok := s.index[e.Key]; ok {
		s.total -= old.size
	}
	s.index[e.Key] = m
	s.total += m.size
	s.dirty[e.Key] = struct{}{}
	over := s.opts.MaxBytes > 0 && s.total > s.opts.MaxBytes
	s.mu.Unlock()
	if over {
		if err := s.evict(); err != nil {
			s.log.Warn("cache eviction failed", "err", err)
		}
	}
	return nil
}

// evict removes the least recently used entries until the total is 95 %
// of the cap: evicting a little more than needed keeps evictions (and
// their sort) rare when the cache is full and busy.
func (s *Store) evict() error {
	s.mu.Lock()
	target := s.opts.MaxBytes - s.opts.MaxBytes/20
	if s.total <= target {
		s.mu.Unlock()
		return nil
	}
	type aged struct {
		key    string
		access int64
		size   int64
	}
	all := make([]aged, 0, len(s.index))
	for k, m := range s.index {
		all = append(all, aged{k, m.access, m.size})
	}
	slices.SortFunc(all, func(a, b aged) int {
		return cmp.Or(cmp.Compare(a.access, b.access), cmp.Compare(a.key, b.key))
	})
	var victims []string
	total := s.total
	for _, a := range all {
		if total <= target {
			break
		}
		victims = append(victims, a.key)
		total -= a.size
	}
	s.mu.Unlock()
	n, err := s.remove(victims)
	s.evictions.Add(int64(n))
	return err
}

// remove deletes keys from the file and the index; it returns how many
// were there.
func (s *Store) remove(keys []string) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	s.writeMu.RLock()
	s.dbMu.RLock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, a := tx.Bucket(bucketExact), tx.Bucket(bucketAccess)
		for _, k := range keys {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			if err := a.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	s.dbMu.RUnlock()
	s.writeMu.RUnlock()
	if err != nil {
		return 0, fmt.Errorf("cache delete: %w", err)
	}
	n := 0
	s.mu.Lock()
	for _, k := range keys {
		if m, ok := s.index[k]; ok {
			n++
			s.total -= m.size
			delete(s.index, k)
			delete(s.dirty, k)
		}
	}
	s.mu.Unlock()
	return n, nil
}

// Forget removes the entry under key; false when there was none.
func (s *Store) Forget(key string) (bool, error) {
	s.mu.Lock()
	_, ok := s.index[key]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	n, err := s.remove([]string{key})
	return n > 0, err
}

// Purge removes every entry match accepts and returns how many went.
func (s *Store) Purge(match func(Info) bool) (int, error) {
	var keys []string
	s.mu.Lock()
	for k, m := range s.index {
		if match(m.info(k)) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	return s.remove(keys)
}

func (m *meta) info(key string) Info {
	return Info{Key: key, Namespace: m.namespace, Model: m.model, Created: time.Unix(0, m.created), Expires: unixOrZero(m.expires), Size: m.size}
}

// Sweep removes the expired entries and returns how many went.
func (s *Store) Sweep() (int, error) {
	now := s.now().UnixNano()
	var keys []string
	s.mu.Lock()
	for k, m := range s.index {
		if m.expires != 0 && m.expires <= now {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	return s.remove(keys)
}

// Flush saves the access times recorded since the last flush, in one
// transaction.
func (s *Store) Flush() error {
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	times := make(map[string]int64, len(s.dirty))
	for k := range s.dirty {
		if m, ok := s.index[k]; ok {
			times[k] = m.access
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccess)
		for k, t := range times {
			// bbolt keeps the value until the commit: one buffer each.
			if err := b.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(t))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: save access times: %w", err)
	}
	return nil
}

// flusher saves access times and sweeps expired entries every FlushEvery
// until Close.
func (s *Store) flusher() {
	defer close(s.done)
	t := time.NewTicker(s.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.Sweep(); err != nil {
				s.log.Warn("cache sweep failed", "err", err)
			}
			if err := s.Flush(); err != nil {
				s.log.Warn("cache flush failed", "err", err)
			}
		}
	}
}

// Stats are the Store's figures.
type Stats struct {
	Entries   int64
	Bytes     int64 // the entries' total size
	FileBytes int64 // the file's size on disk
	MaxBytes  int64
	Evictions int64 // since Open
}

// Stats returns the Store's figures now.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Entries: int64(len(s.index)), Bytes: s.total, MaxBytes: s.opts.MaxBytes, Evictions: s.evictions.Load()}
	s.mu.Unlock()
	if fi, err := os.Stat(s.path); err == nil {
		st.FileBytes = fi.Size()
	}
	return st
}

// Compact rewrites the file without its free pages, while the store stays
// in use: reads go on from the old file during the copy, writes wait for
// it, and both wait only for the moment the new file replaces the old
// (an atomic rename). It returns the file's size before and after.
func (s *Store) Compact() (before, after int64, err error) {
	if err := s.Flush(); err != nil {
		return 0, 0, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.dbMu.RLock()
	src := s.db
	s.dbMu.RUnlock()
	if fi, err := os.Stat(s.path); err == nil {
		before = fi.Size()
	}
	tmp := s.path + ".compact"
	os.Remove(tmp)
	dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout})
	if err != nil {
		return 0, 0, fmt.Errorf("cache compact: %w", err)
	}
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("cache compact: %w", err)
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("cache compact: %w", err)
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.closed { // Close came during the copy: leave the file as it was
		os.Remove(tmp)
		return 0, 0, ErrClosed
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("cache compact: %w", err)
	}
	// The old file is unlinked but still open: close it and open the new
	// one in its place. Should that fail, the store is unusable (writes
	// fail and are counted; answers still reach their clients).
	src.Close()
	db, err := s.openDB(s.path)
	if err != nil {
		return before, 0, err
	}
	s.db = db
	if fi, err := os.Stat(s.path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}

// Close saves the access times and closes the file. It is idempotent.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		err = s.Flush()
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		s.closed = true
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
