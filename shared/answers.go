package shared

// The team's answer cache: the second tier of every daemon's cache.
//
// Keys, under the team's prefix (default "lbgpt"):
//
//	PREFIX:cache:a:KEY    one answer: a string, the header of encodeAnswer
//	                      and the answer's bytes, with the entry's TTL
//	PREFIX:cache:events   a stream of what the hosts announce: the semantic
//	                      entries they add, and forgets and purges
//
// Answer keys carry no hash tag: each is read and written alone, so a
// Redis Cluster spreads them. Every answer key has a TTL (the entry's, or
// AnswersOptions.TTL for one that never expires), and so has the stream:
// under maxmemory-policy volatile-lru Redis evicts answers and never the
// rate-limit keys, which have none.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of AnswersOptions.
const (
	DefaultMaxEntryBytes = 1 << 20
	DefaultQueue         = 1024
	DefaultQueueBytes    = 32 << 20
	DefaultTTL           = 30 * 24 * time.Hour
	DefaultStreamMaxLen  = 20000
)

// getTimeout bounds a read of the shared tier: it stands between a local
// miss and the upstream call, and a read that takes longer is a miss.
const getTimeout = 20 * time.Millisecond

// Batches of the writer: one pipelined call each, small enough to fit the
// call deadline on a LAN.
const (
	batchJobs  = 128
	batchBytes = 1 << 20
)

// AnswersOptions configure Answers. The zero value uses the defaults and
// follows nothing.
type AnswersOptions struct {
	// MaxEntryBytes caps an answer (or semantic entry) shared; larger ones
	// stay local and count as drops. 0 is DefaultMaxEntryBytes.
	MaxEntryBytes int
	// Queue and QueueBytes bound the writes waiting for Redis; past either,
	// Put drops. 0 is DefaultQueue, DefaultQueueBytes.
	Queue      int
	QueueBytes int64
	// TTL is how long Redis keeps an answer that never expires, and the
	// events stream after its last entry. 0 is DefaultTTL.
	TTL time.Duration
	// StreamMaxLen is roughly how many events the stream keeps (XADD
	// MAXLEN ~): what a host that was away longer, or joins, can catch up
	// on. 0 is DefaultStreamMaxLen.
	StreamMaxLen int64
	// Receiver gets what the other hosts announce; nil: Run follows
	// nothing.
	Receiver Receiver
}

// Receiver applies to this host's caches what the other hosts of the team
// announce. Its methods are called from one goroutine, in stream order.
type Receiver interface {
	// Embedder identifies the vectors of the local semantic index (its
	// kind and fingerprint); "" when there is none. Only entries of the
	// same embedder are added.
	Embedder() string
	// AddSemantic adds other hosts' semantic entries to the local index.
	AddSemantic(entries []SemanticEntry)
	// Forget removes key — an answer's key or a semantic entry's id —
	// from the local caches.
	Forget(key string)
	// Purge removes the local entries p matches.
	Purge(p Purge)
	// Cursor is the value SaveCursor last saved under name, "" when none.
	Cursor(name string) string
	// SaveCursor keeps, across restarts, the id of the last event applied.
	SaveCursor(name, id string)
}

// Answer is one cached answer as the team shares it.
type Answer struct {
	Key       string
	Value     []byte
	Namespace string
	Model     string
	Created   time.Time
	Expires   time.Time // zero: never (Redis keeps it AnswersOptions.TTL)
	Host      string    // the host that stored it; Put fills it
}

// SemanticEntry is a semantic cache entry as it travels between hosts:
// the entry, the embedder that made its vector, and the vector.
type SemanticEntry struct {
	ID, Partition, Text, Target, Namespace string
	Created                                time.Time
	Embedder                               string
	Vector                                 []float32
	Host                                   string // the host that added it
}

// Purge chooses the answers a purge removes; with neither field set,
// every one.
type Purge struct {
	Namespace *string   // only this namespace ("" is the default one); nil: any
	Before    time.Time // only answers created before this; zero: any age
}

// Match reports whether p removes an entry of namespace created then.
func (p Purge) Match(namespace string, created time.Time) bool {
	return (p.Namespace == nil || *p.Namespace == namespace) && (p.Before.IsZero() || created.Before(p.Before))
}

func (p Purge) all() bool { return p.Namespace == nil && p.Before.IsZero() }

// AnswerStats are the shared tier's counters since NewAnswers.
type AnswerStats struct {
	Hits, Misses int64 // reads that found an answer, and those that did not
	Puts         int64 // answers written
	// Drops counts answers and semantic entries not shared: too large,
	// the queue full, or the write failed (Redis down).
	Drops  int64
	Errors int64 // Redis calls that failed (a breaker that is open makes none)
	Queued int64 // writes waiting
	// Semantic entries: announced by this host, added from others, and
	// skipped because another embedder made them.
	Sent, Received, Skipped int64
	Removals                int64 // forgets and purges received from other hosts
}

// Answers is the team's answer cache. Get reads it; Put, Announce write
// behind, never blocking; Forget and Purge remove from it and tell the
// other hosts; Run writes and follows the other hosts' events. Its methods
// are safe for concurrent use.
type Answers struct {
	t      *Team
	opts   AnswersOptions
	stream string // the events stream's key

	mu     sync.RWMutex // guards closed; held shared while queueing
	closed bool
	jobs   chan job
	bytes  atomic.Int64  // of the jobs queued
	done   chan struct{} // closed when the writer has stopped
	ran    atomic.Bool
	// follower is the Redis client id of the follower's connection, for
	// CLIENT UNBLOCK when Run ends; 0 when unknown.
	follower atomic.Int64

	hits, misses, puts, drops, errs, sent, received, skipped, removals atomic.Int64
}

// job is a write waiting for the writer: an answer, a semantic entry, or a
// marker closed once every job before it is written.
type job struct {
	put     *Answer
	sem     *SemanticEntry
	size    int64
	flushed chan struct{}
}

// NewAnswers returns the team's answer cache; Run starts its writer.
func NewAnswers(t *Team, opts AnswersOptions) *Answers {
	if opts.MaxEntryBytes <= 0 {
		opts.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.StreamMaxLen <= 0 {
		opts.StreamMaxLen = DefaultStreamMaxLen
	}
	return &Answers{t: t, opts: opts, stream: t.prefix + ":cache:events", jobs: make(chan job, opts.Queue), done: make(chan struct{})}
}

// answerKey is the Redis key of an answer.
func (a *Answers) answerKey(key string) string { return a.t.prefix + ":cache:a:" + key }

// Get reads key's answer, within getTimeout: a failed or slow read, or an
// open breaker, is a miss, never an error.
func (a *Answers) Get(ctx context.Context, key string) (Answer, bool) {
	ans, ok, _ := a.Read(ctx, key)
	return ans, ok
}

// Read is Get telling a miss (no error: Redis has no such answer) from a
// read that failed (an error: Redis down or slow, the breaker open).
func (a *Answers) Read(ctx context.Context, key string) (ans Answer, ok bool, err error) {
	defer func() {
		if ok {
			a.hits.Add(1)
		} else {
			a.misses.Add(1)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	var b []byte
	err = a.t.call(ctx, func(ctx context.Context) error {
		var err error
		b, err = a.t.rdb.Get(ctx, a.answerKey(key)).Bytes()
		return err
	})
	if err != nil {
		a.countErr(err)
		return Answer{}, false, err
	}
	if b == nil {
		return Answer{}, false, nil
	}
	ans, err = decodeAnswer(key, b)
	if err != nil {
		a.t.log.Warn("shared cache: an unreadable answer; ignored", "key", key, "err", err)
		a.errs.Add(1)
		return Answer{}, false, nil
	}
	if !ans.Expires.IsZero() && !ans.Expires.After(time.Now()) {
		return Answer{}, false, nil
	}
	return ans, true, nil
}

// Put queues ans for Redis and returns at once; it keeps ans.Value, which
// the caller must not change. An answer over the size cap, or when the
// queue is full or closed, is dropped and counted.
func (a *Answers) Put(ans Answer) {
	size := int64(len(ans.Key) + len(ans.Value) + len(ans.Namespace) + len(ans.Model))
	ans.Host = a.t.host
	a.queue(job{put: &ans, size: size})
}

// Announce queues a semantic entry this host added, for the other hosts,
// and returns at once; it keeps e.Vector. Dropped and counted as Put's.
func (a *Answers) Announce(e SemanticEntry) {
	size := int64(len(e.ID) + len(e.Partition) + len(e.Text) + len(e.Target) + len(e.Namespace) + len(e.Embedder) + 4*len(e.Vector))
	e.Host = a.t.host
	a.queue(job{sem: &e, size: size})
}

func (a *Answers) queue(j job) {
	if j.size > int64(a.opts.MaxEntryBytes) {
		a.drops.Add(1)
		return
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed || a.bytes.Add(j.size) > a.opts.QueueBytes {
		if !a.closed {
			a.bytes.Add(-j.size)
		}
		a.drops.Add(1)
		return
	}
	select {
	case a.jobs <- j:
	default:
		a.bytes.Add(-j.size)
		a.drops.Add(1)
	}
}

// flush waits until the writes queued before it are done (or dropped),
// at most until ctx ends.
func (a *Answers) flush(ctx context.Context) {
	m := job{flushed: make(chan struct{})}
	a.mu.RLock()
	closed := a.closed
	a.mu.RUnlock()
	if closed {
		return
	}
	select {
	case a.jobs <- m:
	case <-a.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-m.flushed:
	case <-a.done:
	case <-ctx.Done():
	}
}

// Run writes what Put and Announce queue, and, with a Receiver, follows
// the other hosts' events into it, until ctx ends; then it writes what is
// queued (or drops it, Redis down) and returns. Call it once.
func (a *Answers) Run(ctx context.Context) {
	if !a.ran.CompareAndSwap(false, true) {
		return
	}
	var wg sync.WaitGroup
	if a.opts.Receiver != nil {
		wg.Go(func() { a.follow(ctx) })
	}
	a.writer(ctx)
	wg.Wait()
}

// writer writes the queue in pipelined batches until ctx ends, then
// drains it.
func (a *Answers) writer(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case j := <-a.jobs:
			a.write(a.gather(j))
		case <-ctx.Done():
			a.mu.Lock()
			a.closed = true
			a.mu.Unlock()
			for {
				select {
				case j := <-a.jobs:
					a.write(a.gather(j))
				default:
					return
				}
			}
		}
	}
}

// gather is j and the jobs queued behind it, up to a batch.
func (a *Answers) gather(j job) []job {
	batch := []job{j}
	size := j.size
	for len(batch) < batchJobs && size < batchBytes {
		select {
		case j := <-a.jobs:
			batch = append(batch, j)
			size += j.size
		default:
			return batch
		}
	}
	return batch
}

// write writes a batch in one pipelined call; when it fails, its answers
// and entries are dropped, not retried: the cache is a cache.
func (a *Answers) write(batch []job) {
	var puts, sems int64
	now := time.Now()
	for i, j := range batch {
		a.bytes.Add(-j.size)
		switch {
		case j.put != nil && !j.put.Expires.IsZero() && j.put.Expires.Sub(now) < time.Millisecond:
			batch[i].put = nil // expired while it waited
		case j.put != nil:
			puts++
		case j.sem != nil:
			sems++
		}
	}
	if puts+sems > 0 {
		err := a.t.call(context.Background(), func(ctx context.Context) error {
			pipe := a.t.rdb.Pipeline()
			for _, j := range batch {
				switch {
				case j.put != nil:
					ttl := a.opts.TTL
					if !j.put.Expires.IsZero() {
						ttl = max(j.put.Expires.Sub(now), time.Millisecond)
					}
					pipe.Set(ctx, a.answerKey(j.put.Key), encodeAnswer(*j.put), ttl)
				case j.sem != nil:
					a.xadd(ctx, pipe, semanticFields(*j.sem))
				}
			}
			if sems > 0 {
				pipe.PExpire(ctx, a.stream, a.opts.TTL)
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		if err != nil {
			if !errors.Is(err, errDegraded) {
				a.errs.Add(1)
			}
			a.drops.Add(puts + sems)
		} else {
			a.puts.Add(puts)
			a.sent.Add(sems)
		}
	}
	for _, j := range batch {
		if j.flushed != nil {
			close(j.flushed)
		}
	}
}

// xadd appends an event to the stream, trimming it to about StreamMaxLen.
func (a *Answers) xadd(ctx context.Context, pipe redis.Pipeliner, fields []any) {
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: a.stream, MaxLen: a.opts.StreamMaxLen, Approx: true, Values: fields})
}

// Forget removes key's answer from Redis, once the writes queued before
// are done (so that none brings it back), and tells the other hosts to
// remove key — an answer's key or a semantic entry's id — from their
// caches. It reports whether Redis held an answer under key.
func (a *Answers) Forget(ctx context.Context, key string) (bool, error) {
	a.flush(ctx)
	var del *redis.IntCmd
	err := a.t.call(ctx, func(ctx context.Context) error {
		pipe := a.t.rdb.Pipeline()
		del = pipe.Del(ctx, a.answerKey(key))
		a.xadd(ctx, pipe, []any{"op", opForget, "host", a.t.host, "key", key})
		pipe.PExpire(ctx, a.stream, a.opts.TTL)
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		a.countErr(err)
		return false, fmt.Errorf("shared cache: forget: %w", err)
	}
	return del.Val() > 0, nil
}

// Purge tells the other hosts to purge what p matches from their caches,
// then removes it from Redis and says how many answers went there.
//
// Redis has no index of the answers: Purge walks the answer keys with
// SCAN (a few hundred keys a call, never blocking Redis) and, unless p
// takes everything, reads the first bytes of each — created time and
// namespace lead the header — to decide. A purge is rare and may take a
// while; an index kept for it (a set per namespace) would cost a write on
// every answer, outlive the answers Redis evicts, and have no TTL to let
// it be evicted in turn.
func (a *Answers) Purge(ctx context.Context, p Purge) (int64, error) {
	a.flush(ctx)
	fields := []any{"op", opPurge, "host", a.t.host}
	if p.Namespace != nil {
		fields = append(fields, "ns", *p.Namespace)
	}
	if !p.Before.IsZero() {
		fields = append(fields, "before", p.Before.UnixNano())
	}
	err := a.t.call(ctx, func(ctx context.Context) error {
		pipe := a.t.rdb.Pipeline()
		a.xadd(ctx, pipe, fields)
		pipe.PExpire(ctx, a.stream, a.opts.TTL)
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		a.countErr(err)
		return 0, fmt.Errorf("shared cache: purge: %w", err)
	}
	match := globEscape(a.answerKey("")) + "*"
	var removed int64
	var cursor uint64
	for {
		var keys []string
		err := a.t.call(ctx, func(ctx context.Context) error {
			var err error
			keys, cursor, err = a.t.rdb.Scan(ctx, cursor, match, 500).Result()
			return err
		})
		if err == nil && !p.all() && len(keys) > 0 {
			keys, err = a.matching(ctx, keys, p)
		}
		if err == nil && len(keys) > 0 {
			err = a.t.call(ctx, func(ctx context.Context) error {
				n, err := a.t.rdb.Unlink(ctx, keys...).Result()
				removed += n
				return err
			})
		}
		if err != nil {
			a.countErr(err)
			return removed, fmt.Errorf("shared cache: purge: %w", err)
		}
		if cursor == 0 {
			return removed, nil
		}
	}
}

// peekBytes is how much of an answer Purge reads to decide: the header up
// to the namespace, unless that is longer.
const peekBytes = 1024

// matching is the keys whose answers p matches.
func (a *Answers) matching(ctx context.Context, keys []string, p Purge) ([]string, error) {
	heads := make([]*redis.StringCmd, len(keys))
	err := a.t.call(ctx, func(ctx context.Context) error {
		pipe := a.t.rdb.Pipeline()
		for i, k := range keys {
			heads[i] = pipe.GetRange(ctx, k, 0, peekBytes-1)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for i, k := range keys {
		b, _ := heads[i].Bytes()
		if len(b) == 0 {
			continue // gone meanwhile
		}
		created, ns, err := peekAnswer(b)
		if errors.Is(err, errShort) && len(b) == peekBytes {
			err = a.t.call(ctx, func(ctx context.Context) error {
				var err error
				b, err = a.t.rdb.Get(ctx, k).Bytes()
				return err
			})
			if err != nil {
				return nil, err
			}
			created, ns, err = peekAnswer(b)
		}
		if err != nil {
			continue // not an answer of ours; left alone
		}
		if p.Match(ns, created) {
			out = append(out, k)
		}
	}
	return out, nil
}

func (a *Answers) countErr(err error) {
	if !errors.Is(err, errDegraded) && !errors.Is(err, context.Canceled) {
		a.errs.Add(1)
	}
}

// Stats returns the counters now.
func (a *Answers) Stats() AnswerStats {
	return AnswerStats{
		Hits: a.hits.Load(), Misses: a.misses.Load(), Puts: a.puts.Load(), Drops: a.drops.Load(),
		Errors: a.errs.Load(), Queued: int64(len(a.jobs)),
		Sent: a.sent.Load(), Received: a.received.Load(), Skipped: a.skipped.Load(), Removals: a.removals.Load(),
	}
}

// Host is this daemon's name in the team.
func (a *Answers) Host() string { return a.t.host }

// globEscape quotes the characters SCAN MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// An answer in Redis is a header and the answer's bytes:
//
//	byte     format version (1)
//	int64    created, unix nanoseconds, big endian
//	int64    expires, unix nanoseconds, big endian; 0 never
//	uvarint  length of the namespace, then its bytes
//	uvarint  length of the host, then its bytes
//	uvarint  length of the model, then its bytes
//	...      the answer
//
// What a purge decides on (created, namespace) comes first, so that it
// reads a few bytes of each answer, not the answer.
const answerFormat = 1

func encodeAnswer(a Answer) []byte {
	b := make([]byte, 0, 17+3*binary.MaxVarintLen64+len(a.Namespace)+len(a.Host)+len(a.Model)+len(a.Value))
	b = append(b, answerFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Created.UnixNano()))
	var exp int64
	if !a.Expires.IsZero() {
		exp = a.Expires.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(exp))
	for _, s := range []string{a.Namespace, a.Host, a.Model} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, a.Value...)
}

var (
	errBadAnswer = errors.New("not an answer of this format")
	errShort     = errors.New("answer header cut short")
)

func decodeAnswer(key string, b []byte) (Answer, error) {
	if len(b) < 17 || b[0] != answerFormat {
		return Answer{}, errBadAnswer
	}
	a := Answer{Key: key, Created: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))}
	if exp := int64(binary.BigEndian.Uint64(b[9:17])); exp != 0 {
		a.Expires = time.Unix(0, exp)
	}
	rest := b[17:]
	for _, s := range []*string{&a.Namespace, &a.Host, &a.Model} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return Answer{}, errBadAnswer
		}
		*s, rest = string(rest[w:w+int(n)]), rest[w+int(n):]
	}
	a.Value = rest
	return a, nil
}

// peekAnswer reads the created time and namespace from the first bytes of
// an answer; errShort when they do not hold the namespace.
func peekAnswer(b []byte) (time.Time, string, error) {
	if len(b) < 17 || b[0] != answerFormat {
		return time.Time{}, "", errBadAnswer
	}
	created := time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))
	n, w := binary.Uvarint(b[17:])
	if w == 0 || w > 0 && uint64(len(b)-17-w) < n {
		return time.Time{}, "", errShort
	}
	if w < 0 {
		return time.Time{}, "", errBadAnswer
	}
	return created, string(b[17+w : 17+w+int(n)]), nil
}
