package shared

// The events stream: what each host announces to the others.
//
// Every event is a stream entry with "op" and "host" (the host that
// announced it) and, by op:
//
//	add     id, part, text, target, ns, created (unix ns), emb (the
//	        embedder's identity), vec (float32s, little endian): a
//	        semantic entry the host added
//	forget  key: an answer's key or a semantic entry's id
//	purge   ns (absent: any namespace), before (unix ns; absent: any age)
//
// A stream, not pub/sub: pub/sub delivers only to whoever listens at that
// moment, and a host that restarts, or loses Redis for a moment, would
// keep a forgotten answer — perhaps a wrong one someone removed on
// purpose — for as long as its TTL. Each host reads the stream from the
// last event it applied (the Receiver keeps the cursor across restarts),
// in order: an entry added and then forgotten stays forgotten however late
// a host reads. A host that joins reads what the stream still holds
// (about StreamMaxLen events) and so starts with the team's recent
// semantic entries.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ops of the events stream.
const (
	opAdd    = "add"
	opForget = "forget"
	opPurge  = "purge"
)

// Following: events read per call, how long a read waits for one, how
// often the cursor is saved, and the waits after a failure.
const (
	followCount    = 256
	followBlock    = 2 * time.Second
	saveEvery      = time.Second
	followRetryMin = 50 * time.Millisecond
	followRetryMax = 2 * time.Second
)

func semanticFields(e SemanticEntry) []any {
	vec := make([]byte, 0, 4*len(e.Vector))
	for _, x := range e.Vector {
		vec = binary.LittleEndian.AppendUint32(vec, math.Float32bits(x))
	}
	return []any{"op", opAdd, "host", e.Host, "id", e.ID, "part", e.Partition, "text", e.Text,
		"target", e.Target, "ns", e.Namespace, "created", e.Created.UnixNano(), "emb", e.Embedder, "vec", vec}
}

func decodeSemantic(v map[string]any) (SemanticEntry, error) {
	e := SemanticEntry{ID: str(v["id"]), Partition: str(v["part"]), Text: str(v["text"]), Target: str(v["target"]),
		Namespace: str(v["ns"]), Embedder: str(v["emb"]), Host: str(v["host"])}
	created, err := strconv.ParseInt(str(v["created"]), 10, 64)
	if err != nil {
		return e, fmt.Errorf("created: %w", err)
	}
	e.Created = time.Unix(0, created)
	vec := str(v["vec"])
	if e.ID == "" || e.Text == "" || len(vec) == 0 || len(vec)%4 != 0 {
		return e, errors.New("an incomplete semantic entry")
	}
	e.Vector = make([]float32, len(vec)/4)
	for i := range e.Vector {
		e.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32([]byte(vec[4*i : 4*i+4])))
	}
	return e, nil
}

func decodePurge(v map[string]any) (Purge, error) {
	var p Purge
	if ns, ok := v["ns"]; ok {
		s := str(ns)
		p.Namespace = &s
	}
	if b, ok := v["before"]; ok {
		ns, err := strconv.ParseInt(str(b), 10, 64)
		if err != nil {
			return p, fmt.Errorf("before: %w", err)
		}
		p.Before = time.Unix(0, ns)
	}
	return p, nil
}

func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// cursorName names the cursor of this stream on this Redis, so that a
// cursor is never used on another stream.
func (a *Answers) cursorName() string { return "shared-events " + a.t.where + " " + a.stream }

// follow applies the other hosts' events, from the cursor the Receiver
// saved, until ctx ends. It reads on a connection of its own (a blocking
// read holds it for seconds), which the end of ctx unblocks (CLIENT
// UNBLOCK; without the right to, the read ends within followBlock). A
// failure is logged once, and the read tried again, waiting a little
// longer each time.
func (a *Answers) follow(ctx context.Context) {
	rcv := a.opts.Receiver
	name := a.cursorName()
	cursor := rcv.Cursor(name)
	saved, savedAt := cursor, time.Now()
	conn := a.t.rdb.Conn() // a new one after a failure
	stop := context.AfterFunc(ctx, func() {
		if id := a.follower.Load(); id > 0 {
			a.t.call(context.Background(), func(ctx context.Context) error {
				return a.t.rdb.ClientUnblock(ctx, id).Err()
			})
		}
	})
	defer func() {
		stop()
		conn.Close()
		if cursor != saved {
			rcv.SaveCursor(name, cursor)
		}
	}()
	check, down, wait := true, false, followRetryMin
	for ctx.Err() == nil {
		var err error
		if check {
			cursor, err = a.checkCursor(ctx, conn, cursor)
		}
		var streams []redis.XStream
		if err == nil {
			check = false
			streams, err = conn.XRead(ctx, &redis.XReadArgs{Streams: []string{a.stream, cursor}, Count: followCount, Block: followBlock}).Result()
			if errors.Is(err, redis.Nil) {
				err = nil // nothing new within followBlock, or unblocked
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.errs.Add(1)
			if !down {
				a.t.log.Warn("shared cache: cannot follow the other hosts' events; retrying", "redis", a.t.where, "err", err)
				down = true
			}
			check = true // Redis may come back empty
			conn.Close()
			conn = a.t.rdb.Conn()
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			wait = min(2*wait, followRetryMax)
			continue
		}
		if down {
			a.t.log.Info("shared cache: following the other hosts' events again", "redis", a.t.where)
			down = false
		}
		wait = followRetryMin
		for _, s := range streams {
			a.apply(s.Messages)
			if n := len(s.Messages); n > 0 {
				cursor = s.Messages[n-1].ID
			}
		}
		if cursor != saved && time.Since(savedAt) >= saveEvery {
			rcv.SaveCursor(name, cursor)
			saved, savedAt = cursor, time.Now()
		}
	}
}

// checkCursor is where to read the stream from: the cursor, unless the
// stream is not the one it points into — absent (Redis restarted empty,
// or evicted it: every event to come is new) or restarted since (its last
// id is below the cursor) — then from its start. It logs when events after
// the cursor were trimmed before this host read them.
func (a *Answers) checkCursor(ctx context.Context, c *redis.Conn, cursor string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	a.follower.Store(0)
	if id, err := c.ClientID(ctx).Result(); err == nil { // refused without the right: 0
		a.follower.Store(id)
	}
	info, err := c.XInfoStream(ctx, a.stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return "0-0", nil
		}
		return cursor, err
	}
	if cursor == "" {
		return "0-0", nil
	}
	if idLess(info.LastGeneratedID, cursor) {
		a.t.log.Info("shared cache: the events stream is new (Redis restarted empty?); reading it from its start")
		return "0-0", nil
	}
	if info.MaxDeletedEntryID != "" && idLess(cursor, info.MaxDeletedEntryID) {
		a.t.log.Warn("shared cache: events were trimmed from the stream before this host read them (it was away long); some semantic entries, forgets or purges of other hosts are missed", "after", cursor)
	}
	return cursor, nil
}

// idLess orders stream ids "ms-seq".
func idLess(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}

// apply hands a batch of events to the Receiver, in order, skipping this
// host's own and other embedders' entries.
func (a *Answers) apply(msgs []redis.XMessage) {
	rcv := a.opts.Receiver
	emb := rcv.Embedder()
	var adds []SemanticEntry
	flush := func() {
		if len(adds) > 0 {
			rcv.AddSemantic(adds)
			a.received.Add(int64(len(adds)))
			adds = nil
		}
	}
	for _, m := range msgs {
		v := m.Values
		if str(v["host"]) == a.t.host {
			continue
		}
		switch op := str(v["op"]); op {
		case opAdd:
			e, err := decodeSemantic(v)
			if err != nil {
				a.t.log.Warn("shared cache: an unreadable event; skipped", "id", m.ID, "err", err)
				continue
			}
			if emb == "" || e.Embedder != emb {
				a.skipped.Add(1)
				continue
			}
			adds = append(adds, e)
		case opForget:
			flush()
			rcv.Forget(str(v["key"]))
			a.removals.Add(1)
		case opPurge:
			p, err := decodePurge(v)
			if err != nil {
				a.t.log.Warn("shared cache: an unreadable event; skipped", "id", m.ID, "err", err)
				continue
			}
			flush()
			rcv.Purge(p)
			a.removals.Add(1)
		default:
			a.t.log.Debug("shared cache: an event of an unknown kind; skipped", "id", m.ID, "op", op)
		}
	}
	flush()
}
