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
// Writes are behind: Put (and the removals of Forget, Purge, Sweep and
// eviction) queue the change in memory and return at once, and one writer
// goroutine owned by the Store commits everything queued in one bbolt
// transaction, fsynced, per round, and a busy store at most one round per
// [Options.CommitDelay] (fsyncs cost the whole machine, not only the
// writer). Get sees queued entries, and the
// index, Stats and eviction count them. The queue is bounded
// ([Options.MaxQueueBytes]): past it, Put waits for the writer. A failed
// commit is logged and counted ([Stats].WriteErrors); its changes stay
// queued and go with the next round. [Store.Flush] waits until everything
// queued before it is on disk: an entry whose Put returned before a Flush
// that returned nil survives a crash or kill -9, and the file is never
// left corrupt. Forget and Purge flush before they return; Close flushes.
//
// One process owns the file: Open waits a moment for bbolt's file lock and
// then fails with [ErrLocked]. A Store is safe for concurrent use.
package cache

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/lbgpt/lbgpt/internal/durable"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
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

// ErrDamaged is returned by Open for a file that does not read as a cache
// file: bbolt found it corrupt, or reading it panicked or faulted. The
// caller may set the file aside and start a new one.
var ErrDamaged = errors.New("the cache file is damaged")

// ErrClosed is returned by the methods of a closed Store.
var ErrClosed = errors.New("cache is closed")

// Defaults of Options.
const (
	DefaultLockTimeout   = time.Second
	DefaultFlushEvery    = 30 * time.Second
	DefaultMaxQueueBytes = 64 << 20
	DefaultCommitDelay   = 50 * time.Millisecond
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
	// MaxQueueBytes bounds the changes waiting for the writer (keys and
	// encoded entries); past it, Put waits for the writer's next round. 0
	// is DefaultMaxQueueBytes.
	MaxQueueBytes int64
	// CommitDelay is the least time between two commits of the writer, so
	// that a busy store commits (and fsyncs) a few times a second, not
	// once per answer; Flush, Close and a full queue do not wait for it. 0
	// is DefaultCommitDelay, negative none.
	CommitDelay time.Duration

	// beforeCommit, for tests, runs in the writer before each commit; an
	// error fails the commit.
	beforeCommit func() error
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
	// sizeMu guards the file's size as fileSize last read it.
	sizeMu sync.Mutex
	sizeAt time.Time
	size   int64
	// writeMu is held shared by writers and exclusively by Compact while it
	// copies, so that no write is lost while reads go on.
	writeMu sync.RWMutex

	// mu guards index, total, dirty and the write queue: queue,
	// queueBytes, seq, attempted, durable, rounds, roundErr and closing.
	mu    sync.Mutex
	index map[string]*meta
	total int64
	dirty map[string]struct{} // keys whose access time is not saved yet

	queue      map[string]*change // changes not committed yet, by key
	queueBytes int64
	seq        int64      // changes queued since Open
	attempted  int64      // seq as of the last finished round
	durable    int64      // every change up to this seq is committed
	rounds     int64      // rounds finished
	roundErr   error      // the last round's error; nil after a success
	closing    bool       // Close began: no more changes
	roundDone  *sync.Cond // on mu: broadcast after every round

	evictions   atomic.Int64
	writeErrors atomic.Int64

	wake       chan struct{} // a round is wanted; capacity 1
	urgent     chan struct{} // someone waits for the disk; capacity 1
	quit       chan struct{} // closed by Close: the writer drains and stops
	writerDone chan struct{} // closed when the writer has stopped
	stop       chan struct{} // closed by Close
	done       chan struct{} // closed when the flusher has stopped
	once       sync.Once
}

// change is a queued write: an encoded entry, or its deletion.
type change struct {
	value []byte // nil: delete the key
	size  int64  // the key's and value's bytes
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
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if opts.CommitDelay == 0 {
		opts.CommitDelay = DefaultCommitDelay
	}
	s := &Store{
		path:       path,
		opts:       opts,
		now:        opts.Now,
		log:        opts.Logger,
		index:      make(map[string]*meta),
		dirty:      make(map[string]struct{}),
		queue:      make(map[string]*change),
		wake:       make(chan struct{}, 1),
		urgent:     make(chan struct{}, 1),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	s.roundDone = sync.NewCond(&s.mu)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	err := Guard(func() error {
		db, err := s.openDB(path)
		if err != nil {
			return err
		}
		s.db = db
		if err := s.load(); err != nil {
			db.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	go s.writer()
	if opts.FlushEvery > 0 {
		go s.flusher()
	} else {
		close(s.done)
	}
	return s, nil
}

// Guard runs fn, which reads a bbolt file, and turns what a damaged file
// makes it do — a panic, or a fault on a bad address in the mapped file,
// which would otherwise kill the process — into an error wrapping
// ErrDamaged.
func Guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: reading it failed: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

func (s *Store) openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: s.opts.LockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("cache %s: %w", path, ErrLocked)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		return nil, fmt.Errorf("cache %s: %w: %w", path, ErrDamaged, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
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

// Get returns the entry under key, queued or on disk. An expired entry is
// a miss. Get never writes: it records the access in memory only.
func (s *Store) Get(key string) (Entry, bool) {
	now := s.now().UnixNano()
	s.mu.Lock()
	m, ok := s.index[key]
	if ok && m.expires != 0 && m.expires <= now {
		ok = false
	}
	var queued []byte // immutable once queued
	if ok {
		m.access = now
		s.dirty[key] = struct{}{}
		if c := s.queue[key]; c != nil {
			queued = c.value
		}
	}
	s.mu.Unlock()
	if !ok {
		return Entry{}, false
	}
	var e Entry
	var err error
	if queued != nil {
		e, err = decodeStored(key, queued)
	} else {
		s.dbMu.RLock()
		err = Guard(func() error {
			return s.db.View(func(tx *bolt.Tx) error {
				v := tx.Bucket(bucketExact).Get([]byte(key))
				if v == nil {
					return errNotFound
				}
				var err error
				e, err = decodeStored(key, v)
				return err
			})
		})
		s.dbMu.RUnlock()
	}
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

// decodeStored is the entry stored as v under key; its value is a copy.
func decodeStored(key string, v []byte) (Entry, error) {
	h, body, err := decodeValue(v)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Value: slices.Clone(body), Namespace: h.namespace, Model: h.model,
		Created: time.Unix(0, h.created), Expires: unixOrZero(h.expires)}, nil
}

func unixOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Put queues e (Created, when zero, is now) for the writer and returns:
// Get sees it at once, the disk after the writer's next round (Flush waits
// for it). It fails only for an invalid entry, a closed store, or when the
// queue is full and the commit it waited for failed. Past the size cap, it
// queues the eviction of the least recently used entries.
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
	c := &change{value: v, size: int64(len(e.Key) + len(v))}
	m := &meta{size: c.size, created: h.created, expires: h.expires, access: s.now().UnixNano(), namespace: e.Namespace, model: e.Model}
	s.mu.Lock()
	// Backpressure: wait for the writer while the queue is full (a change
	// larger than the bound goes alone).
	for !s.closing && s.queueBytes > 0 && s.queueBytes+c.size > s.opts.MaxQueueBytes {
		s.hurryWriter()
		r := s.rounds
		for s.rounds == r && !s.closing {
			s.roundDone.Wait()
		}
		if err := s.roundErr; err != nil && !s.closing {
			s.mu.Unlock()
			return fmt.Errorf("cache write: the queue is full and the writer fails: %w", err)
		}
	}
	if s.closing {
		s.mu.Unlock()
		return fmt.Errorf("cache write: %w", ErrClosed)
	}
	s.enqueue(e.Key, c)
	if old, ok := s.index[e.Key]; ok {
		s.total -= old.size
	}
	s.index[e.Key] = m
	s.total += m.size
	s.dirty[e.Key] = struct{}{}
	over := s.opts.MaxBytes > 0 && s.total > s.opts.MaxBytes
	s.mu.Unlock()
	s.wakeWriter()
	if over {
		s.evict()
	}
	return nil
}

// enqueue queues c under key, replacing a change not committed yet.
// Callers hold s.mu.
func (s *Store) enqueue(key string, c *change) {
	if old, ok := s.queue[key]; ok {
		s.queueBytes -= old.size
	}
	s.queue[key] = c
	s.queueBytes += c.size
	s.seq++
}

// wakeWriter asks the writer for a round.
func (s *Store) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default: // one is asked for already
	}
}

// hurryWriter asks the writer for a round now, without its CommitDelay:
// someone waits for the disk.
func (s *Store) hurryWriter() {
	select {
	case s.urgent <- struct{}{}:
	default:
	}
	s.wakeWriter()
}

// writer commits the queue, a round each time it is woken and at most one
// per CommitDelay unless hurried, until quit; then it drains the queue and
// stops. After a failed round, the next Put or Flush asks again.
func (s *Store) writer() {
	defer close(s.writerDone)
	var pause *time.Timer
	for {
		select {
		case <-s.wake:
		case <-s.quit:
			s.drain()
			return
		}
		if !s.round() || s.opts.CommitDelay < 0 {
			continue
		}
		// Let the next changes gather.
		if pause == nil {
			pause = time.NewTimer(s.opts.CommitDelay)
		} else {
			pause.Reset(s.opts.CommitDelay)
		}
		select {
		case <-pause.C:
		case <-s.urgent:
			pause.Stop()
		case <-s.quit:
			pause.Stop()
			s.drain()
			return
		}
	}
}

// drain commits until the queue is empty or a commit fails.
func (s *Store) drain() {
	for s.round() && s.queued() > 0 {
	}
}

func (s *Store) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// round commits everything queued now in one transaction; false when the
// commit failed (the changes stay queued).
func (s *Store) round() bool {
	s.mu.Lock()
	seq := s.seq
	batch := maps.Clone(s.queue)
	s.mu.Unlock()
	var err error
	if len(batch) > 0 {
		err = s.commit(batch)
	}
	s.mu.Lock()
	s.attempted = seq
	s.rounds++
	s.roundErr = err
	if err == nil {
		for k, c := range batch {
			if s.queue[k] == c { // not changed again meanwhile
				delete(s.queue, k)
				s.queueBytes -= c.size
			}
		}
		s.durable = seq
	} else {
		s.writeErrors.Add(1) // before a waiting Flush returns the error
	}
	s.roundDone.Broadcast()
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("cache commit failed; its changes stay queued", "changes", len(batch), "err", err)
	}
	return err == nil
}

// commit writes batch in one transaction (fsynced by bbolt's commit).
func (s *Store) commit(batch map[string]*change) error {
	defer s.sizeChanged()
	if s.opts.beforeCommit != nil {
		if err := s.opts.beforeCommit(); err != nil {
			return err
		}
	}
	// bbolt inserts in key order fast, in random order slowly.
	keys := slices.Sorted(maps.Keys(batch))
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	err := Guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b, a := tx.Bucket(bucketExact), tx.Bucket(bucketAccess)
			for _, k := range keys {
				kb := []byte(k)
				if v := batch[k].value; v != nil {
					if err := b.Put(kb, v); err != nil {
						return err
					}
					continue
				}
				if err := b.Delete(kb); err != nil {
					return err
				}
				if err := a.Delete(kb); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		err = ErrClosed
	}
	return err
}

// sync waits until every change queued before it is committed.
func (s *Store) sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return fmt.Errorf("cache: %w", ErrClosed)
	}
	target := s.seq
	if s.durable >= target {
		return nil
	}
	// Wait for a round that ends after now and took everything up to
	// target: a failed round before now does not answer for this call.
	s.hurryWriter()
	for r := s.rounds; s.rounds == r || s.attempted < target; {
		s.roundDone.Wait()
	}
	if s.durable < target {
		return fmt.Errorf("cache write: %w", s.roundErr)
	}
	return nil
}

// evict queues the removal of the least recently used entries until the
// total is 95 % of the cap: evicting a little more than needed keeps
// evictions (and their sort) rare when the cache is full and busy.
func (s *Store) evict() {
	s.mu.Lock()
	target := s.opts.MaxBytes - s.opts.MaxBytes/20
	if s.total <= target {
		s.mu.Unlock()
		return
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
	n := s.removeLocked(victims)
	s.mu.Unlock()
	s.wakeWriter()
	s.evictions.Add(int64(n))
}

// remove queues the deletion of keys and returns how many were there; with
// wait, once the deletion is committed.
func (s *Store) remove(keys []string, wait bool) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return 0, fmt.Errorf("cache delete: %w", ErrClosed)
	}
	n := s.removeLocked(keys)
	s.mu.Unlock()
	if !wait {
		s.wakeWriter()
		return n, nil
	}
	if err := s.sync(); err != nil {
		return 0, err
	}
	return n, nil
}

// removeLocked drops keys from the index and queues their deletion; it
// returns how many were there. Callers hold s.mu.
func (s *Store) removeLocked(keys []string) int {
	n := 0
	for _, k := range keys {
		m, ok := s.index[k]
		if !ok {
			continue
		}
		n++
		s.total -= m.size
		delete(s.index, k)
		delete(s.dirty, k)
		s.enqueue(k, &change{size: int64(len(k))})
	}
	return n
}

// Forget removes the entry under key; false when there was none. The
// removal is on disk when it returns.
func (s *Store) Forget(key string) (bool, error) {
	n, err := s.remove([]string{key}, true)
	return n > 0, err
}

// Purge removes every entry match accepts and returns how many went, once
// their removal is on disk.
func (s *Store) Purge(match func(Info) bool) (int, error) {
	var keys []string
	s.mu.Lock()
	for k, m := range s.index {
		if match(m.info(k)) {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	return s.remove(keys, true)
}

func (m *meta) info(key string) Info {
	return Info{Key: key, Namespace: m.namespace, Model: m.model, Created: time.Unix(0, m.created), Expires: unixOrZero(m.expires), Size: m.size}
}

// Sweep removes the expired entries and returns how many went; their
// removal is queued like any write.
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
	return s.remove(keys, false)
}

// Flush waits until every change queued before it is on disk, then saves
// the access times recorded since the last flush, in one transaction.
func (s *Store) Flush() error {
	if err := s.sync(); err != nil {
		return err
	}
	return s.saveAccess()
}

// saveAccess saves the access times recorded since it last ran.
func (s *Store) saveAccess() error {
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
	// In key order: bbolt inserts a sorted run page after page, where
	// random order splits pages all over the tree (a shutdown after heavy
	// writing took 8 to 26 s).
	keys := slices.Sorted(maps.Keys(times))
	err := Guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAccess)
			for _, k := range keys {
				// bbolt keeps the value until the commit: one buffer each.
				if err := b.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(times[k]))); err != nil {
					return err
				}
			}
			return nil
		})
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
	// WriteErrors counts the commits that failed since Open (their
	// changes stayed queued and went with a later round, or Close
	// reported them).
	WriteErrors int64
	Queued      int64 // changes waiting for the writer
}

// Stats returns the Store's figures now.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Entries: int64(len(s.index)), Bytes: s.total, MaxBytes: s.opts.MaxBytes, Evictions: s.evictions.Load(),
		WriteErrors: s.writeErrors.Load(), Queued: int64(len(s.queue))}
	s.mu.Unlock()
	st.FileBytes = s.fileSize()
	return st
}

// fileSize is the cache file's size, read again after a write and at
// most once a second: a status is asked for often (the TUI four times a
// second) and a stat is a system call.
func (s *Store) fileSize() int64 {
	s.sizeMu.Lock()
	defer s.sizeMu.Unlock()
	if now := time.Now(); now.Sub(s.sizeAt) >= time.Second {
		if fi, err := os.Stat(s.path); err == nil {
			s.size = fi.Size()
		}
		s.sizeAt = now
	}
	return s.size
}

// sizeChanged makes the next fileSize read the file's size.
func (s *Store) sizeChanged() {
	s.sizeMu.Lock()
	s.sizeAt = time.Time{}
	s.sizeMu.Unlock()
}

// Compact rewrites the file without its free pages, while the store stays
// in use: reads go on from the old file during the copy, writes queue
// (the writer commits them to the new file), and both wait only for the
// moment the new file replaces the old (an atomic rename). It returns the
// file's size before and after.
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
	// The rename is durable once the directory is: else a crash now could
	// bring the old file back, or none.
	if err := durable.SyncDir(filepath.Dir(s.path)); err != nil {
		s.log.Warn("cache compact: syncing the directory failed", "err", err)
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
	s.sizeChanged()
	if fi, err := os.Stat(s.path); err == nil {
		after = fi.Size()
	}
	return before, after, nil
}

// Close commits the queue, saves the access times and closes the file. It
// is idempotent. Changes the writer could not commit are reported in its
// error.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.mu.Lock()
		s.closing = true
		s.roundDone.Broadcast() // Puts waiting for room give up
		s.mu.Unlock()
		close(s.quit)
		<-s.writerDone
		s.mu.Lock()
		if n := len(s.queue); n > 0 {
			err = fmt.Errorf("cache close: %d changes not written: %w", n, s.roundErr)
		}
		s.mu.Unlock()
		if serr := s.saveAccess(); err == nil {
			err = serr
		}
		s.dbMu.Lock()
		defer s.dbMu.Unlock()
		s.closed = true
		if cerr := s.db.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
