package shared

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/lbgpt/lbgpt/internal/redistest"
)

// running is a and the end of its Run: stop cancels it and waits.
func running(t testing.TB, a *Answers) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10 s of its end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds, failing after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// raw is a plain client of srv, for looking at what Answers wrote.
func raw(t testing.TB, srv *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: srv.Socket, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// An answer put on one host is read on another with everything it was
// stored with, and Redis keeps it for its TTL: the entry's, or the
// default for one that never expires.
func TestAnswersRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{TTL: 7 * time.Hour})
	b := NewAnswers(openTeam(t, srv, "host-b"), AnswersOptions{})
	running(t, a)
	created := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	expiring := Answer{Key: "k1", Value: []byte(`{"id":"x"}`), Namespace: "ns", Model: "gpt-4o-mini", Created: created, Expires: created.Add(2 * time.Hour)}
	forever := Answer{Key: "k2", Value: []byte("stream bytes \x00\x01"), Created: created}
	gone := Answer{Key: "k3", Value: []byte("old"), Created: created, Expires: time.Now().Add(-time.Second)}
	for _, x := range []Answer{expiring, forever, gone} {
		a.Put(x)
	}
	eventually(t, "two puts", func() bool { return a.Stats().Puts == 2 })
	for _, want := range []Answer{expiring, forever} {
		got, ok := b.Get(t.Context(), want.Key)
		if !ok {
			t.Fatalf("%s: a miss", want.Key)
		}
		want.Host = "host-a"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: (-want +got)\n%s", want.Key, diff)
		}
	}
	if _, ok, err := b.Read(t.Context(), "k3"); ok || err != nil {
		t.Errorf("an answer expired before it was written: Read = %v, %v; want a plain miss", ok, err)
	}
	rc := raw(t, srv)
	if ttl := rc.PTTL(t.Context(), "test:cache:a:k1").Val(); ttl < 118*time.Minute || ttl > 119*time.Minute {
		t.Errorf("TTL of an answer expiring in 2h = %v", ttl)
	}
	if ttl := rc.PTTL(t.Context(), "test:cache:a:k2").Val(); ttl < 6*time.Hour || ttl > 7*time.Hour {
		t.Errorf("TTL of an answer that never expires = %v, want the option's 7h", ttl)
	}
	if st := b.Stats(); st.Hits != 2 || st.Misses != 1 || st.Errors != 0 {
		t.Errorf("reader's stats = %+v", st)
	}
}

// With Redis stopped, Put returns at once (the queue fills and drops),
// Get misses within its deadline, and Run still ends promptly.
func TestAnswersRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{Queue: 64})
	stop := running(t, a)
	srv.Stop()
	value := make([]byte, 10<<10)
	start := time.Now()
	var slowest time.Duration
	for i := range 5000 {
		t0 := time.Now()
		a.Put(Answer{Key: fmt.Sprint("k", i), Value: value, Created: t0})
		slowest = max(slowest, time.Since(t0))
	}
	if took := time.Since(start); took > 2*time.Second || slowest > 100*time.Millisecond {
		t.Errorf("5000 puts took %v, the slowest %v: Put blocks", took, slowest)
	}
	for range 5 {
		t0 := time.Now()
		if _, ok := a.Get(t.Context(), "k1"); ok {
			t.Fatal("a hit from a stopped Redis")
		}
		if took := time.Since(t0); took > 100*time.Millisecond {
			t.Errorf("a Get took %v with Redis stopped", took)
		}
	}
	if _, _, err := a.Read(t.Context(), "k1"); err == nil {
		t.Error("Read says a plain miss with Redis stopped")
	}
	eventually(t, "every put dropped", func() bool { return a.Stats().Drops+a.Stats().Queued == 5000 })
	t0 := time.Now()
	stop()
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("Run took %v to end", took)
	}
	if st := a.Stats(); st.Puts != 0 || st.Drops != 5000 {
		t.Errorf("stats = %+v, want 5000 drops", st)
	}
}

// An answer over the size cap stays local and is counted.
func TestAnswersTooLarge(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{MaxEntryBytes: 1000})
	running(t, a)
	a.Put(Answer{Key: "big", Value: make([]byte, 2000)})
	a.Put(Answer{Key: "small", Value: make([]byte, 100)})
	eventually(t, "the small one written", func() bool { return a.Stats().Puts == 1 })
	if st := a.Stats(); st.Drops != 1 {
		t.Errorf("stats = %+v, want one drop", st)
	}
	if _, ok := a.Get(t.Context(), "big"); ok {
		t.Error("an answer over the cap was shared")
	}
}

// receiver records what a host is told.
type receiver struct {
	embedder string
	events   chan string // "forget KEY", "purge NS BEFORE", "add ID"
	mu       sync.Mutex
	added    []SemanticEntry
	cursors  map[string]string
}

func newReceiver(embedder string) *receiver {
	return &receiver{embedder: embedder, events: make(chan string, 1000), cursors: map[string]string{}}
}

var _ Receiver = (*receiver)(nil)

func (r *receiver) Embedder() string { return r.embedder }

func (r *receiver) AddSemantic(entries []SemanticEntry) {
	r.mu.Lock()
	r.added = append(r.added, entries...)
	r.mu.Unlock()
	for _, e := range entries {
		r.events <- "add " + e.ID
	}
}

func (r *receiver) Forget(key string) { r.events <- "forget " + key }

func (r *receiver) Purge(p Purge) {
	ns := "*"
	if p.Namespace != nil {
		ns = *p.Namespace
	}
	r.events <- fmt.Sprintf("purge %s %d", ns, p.Before.UnixNano())
}

func (r *receiver) Cursor(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cursors[name]
}

func (r *receiver) SaveCursor(name, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cursors[name] = id
}

// next is the next event r is told, failing after 10 s.
func (r *receiver) next(t testing.TB) string {
	t.Helper()
	select {
	case e := <-r.events:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return ""
	}
}

// none checks that r was told nothing more (after a marker event sent
// last came through, so no sleep is needed).
func (r *receiver) expect(t testing.TB, want ...string) {
	t.Helper()
	var got []string
	for range want {
		got = append(got, r.next(t))
	}
	if !slices.Equal(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
}

// Forget on one host removes the answer from Redis and reaches the other
// hosts, not itself; so does a purge, with its filter.
func TestForgetAndPurgeReachOthers(t *testing.T) {
	srv := redistest.Start(t)
	ra, rb := newReceiver("E"), newReceiver("E")
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{Receiver: ra})
	b := NewAnswers(openTeam(t, srv, "host-b"), AnswersOptions{Receiver: rb})
	running(t, a)
	running(t, b)
	a.Put(Answer{Key: "k1", Value: []byte("v"), Created: time.Now()})
	eventually(t, "the put", func() bool { return a.Stats().Puts == 1 })
	removed, err := b.Forget(t.Context(), "k1")
	if err != nil || !removed {
		t.Fatalf("Forget = %v, %v", removed, err)
	}
	if _, ok := a.Get(t.Context(), "k1"); ok {
		t.Error("a forgotten answer is still shared")
	}
	if removed, err := b.Forget(t.Context(), "k1"); err != nil || removed {
		t.Errorf("Forget again = %v, %v", removed, err)
	}
	ns := "team"
	before := time.Unix(1700000000, 0)
	if _, err := b.Purge(t.Context(), Purge{Namespace: &ns, Before: before}); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "forget k1", "forget k1", fmt.Sprintf("purge team %d", before.UnixNano()))
	// host-b's own events never come back to it: a marker from host-a
	// comes first.
	if _, err := a.Forget(t.Context(), "marker"); err != nil {
		t.Fatal(err)
	}
	rb.expect(t, "forget marker")
	if st := a.Stats(); st.Removals != 3 {
		t.Errorf("host-a's stats = %+v, want 3 removals", st)
	}
}

// Purge removes from Redis what its filter matches and nothing else.
func TestPurgeOnRedis(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{})
	running(t, a)
	old, recent := time.Now().Add(-48*time.Hour), time.Now()
	long := strings.Repeat("n", 2000) // a namespace longer than Purge's first read
	entries := map[string]Answer{}
	rc := raw(t, srv)
	pipe := rc.Pipeline()
	for i := range 1200 { // more than one SCAN call
		ns := []string{"", "team", long}[i%3]
		created := []time.Time{old, recent}[i%2]
		k := fmt.Sprintf("k%04d", i)
		entries[k] = Answer{Key: k, Value: []byte(k), Namespace: ns, Created: created, Host: "host-a"}
		pipe.Set(t.Context(), a.answerKey(k), encodeAnswer(entries[k]), time.Hour)
	}
	pipe.Set(t.Context(), "test:limits:not-an-answer", "x", 0) // never purged
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	left := func() []string {
		var out []string
		for k := range entries {
			if rc.Exists(t.Context(), a.answerKey(k)).Val() == 1 {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	wantLeft := func(gone func(Answer) bool) []string {
		var out []string
		for k, e := range entries {
			if !gone(e) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	team := "team"
	steps := []struct {
		name string
		p    Purge
	}{
		{"namespace team", Purge{Namespace: &team}},
		{"older than a day", Purge{Before: time.Now().Add(-24 * time.Hour)}},
		{"the long namespace", Purge{Namespace: &long}},
		{"everything", Purge{}},
	}
	var purged []Purge
	for _, s := range steps {
		purged = append(purged, s.p)
		want := wantLeft(func(e Answer) bool {
			return slices.ContainsFunc(purged, func(p Purge) bool { return p.Match(e.Namespace, e.Created) })
		})
		before := len(left())
		n, err := a.Purge(t.Context(), s.p)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := left()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: %d left, want %d", s.name, len(got), len(want))
		}
		if int(n) != before-len(got) {
			t.Errorf("%s: Purge said %d, %d went", s.name, n, before-len(got))
		}
	}
	if v := rc.Get(t.Context(), "test:limits:not-an-answer").Val(); v != "x" {
		t.Error("a purge of everything removed a key that is not an answer")
	}
}

// A semantic entry announced on one host reaches the others with its
// vector, unless another embedder made it; the announcing host skips its
// own.
func TestSemanticEntriesTravel(t *testing.T) {
	srv := redistest.Start(t)
	ra, rb, rc := newReceiver("local:100:1"), newReceiver("local:100:1"), newReceiver("")
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{Receiver: ra})
	b := NewAnswers(openTeam(t, srv, "host-b"), AnswersOptions{Receiver: rb})
	c := NewAnswers(openTeam(t, srv, "host-c"), AnswersOptions{Receiver: rc}) // no semantic index
	running(t, a)
	running(t, b)
	running(t, c)
	e := SemanticEntry{ID: "s1", Partition: "p", Text: "What is a cache?", Target: "k1", Namespace: "ns",
		Created: time.Unix(1700000000, 5), Embedder: "local:100:1", Vector: []float32{0.6, -0.8, 0}}
	a.Announce(e)
	foreign := e
	foreign.ID, foreign.Embedder = "s2", "backend:text-embedding-3-small:1536"
	a.Announce(foreign)
	e3 := e
	e3.ID = "s3"
	a.Announce(e3)
	rb.expect(t, "add s1", "add s3")
	rb.mu.Lock()
	got := rb.added[0]
	rb.mu.Unlock()
	e.Host = "host-a"
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("entry (-sent +received)\n%s", diff)
	}
	if st := b.Stats(); st.Received != 2 || st.Skipped != 1 {
		t.Errorf("host-b's stats = %+v, want 2 received, 1 skipped", st)
	}
	eventually(t, "host-c skipped the three", func() bool { return c.Stats().Skipped == 3 })
	if _, err := b.Forget(t.Context(), "marker"); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "forget marker") // and not its own entries first
	if st := a.Stats(); st.Sent != 3 {
		t.Errorf("host-a's stats = %+v, want 3 sent", st)
	}
}

// A host that stops and starts again reads on from where it stopped,
// not from the start; a host that joins reads what the stream holds.
func TestFollowResumes(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{})
	running(t, a)
	rb := newReceiver("E")
	b := NewAnswers(openTeam(t, srv, "host-b"), AnswersOptions{Receiver: rb})
	stopB := running(t, b)
	a.Forget(t.Context(), "one")
	rb.expect(t, "forget one")
	stopB()
	if rb.Cursor(b.cursorName()) == "" {
		t.Fatal("no cursor saved at the end of Run")
	}
	a.Forget(t.Context(), "two")
	b2 := NewAnswers(openTeam(t, srv, "host-b2"), AnswersOptions{Receiver: rb}) // the same file: the same receiver
	running(t, b2)
	a.Forget(t.Context(), "three")
	rb.expect(t, "forget two", "forget three")

	rn := newReceiver("E")
	n := NewAnswers(openTeam(t, srv, "host-new"), AnswersOptions{Receiver: rn})
	running(t, n)
	rn.expect(t, "forget one", "forget two", "forget three")
}

// After Redis restarts (empty), a following host reads the new stream:
// events announced after the restart still reach it.
func TestFollowAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{})
	running(t, a)
	rb := newReceiver("E")
	b := NewAnswers(openTeam(t, srv, "host-b"), AnswersOptions{Receiver: rb})
	running(t, b)
	a.Forget(t.Context(), "before")
	rb.expect(t, "forget before")
	srv.Restart()
	// Until host-a's breaker lets a call through again.
	eventually(t, "a forget after the restart", func() bool {
		_, err := a.Forget(t.Context(), "after")
		return err == nil
	})
	rb.expect(t, "forget after")
}

// A purge announced by another host reaches a receiver with its filter;
// Forget's flush makes the queued puts go first, so a forget is never
// undone by a put that was still waiting.
func TestForgetAfterQueuedPut(t *testing.T) {
	srv := redistest.Start(t)
	a := NewAnswers(openTeam(t, srv, "host-a"), AnswersOptions{})
	running(t, a)
	for i := range 200 {
		a.Put(Answer{Key: "k", Value: []byte(fmt.Sprint(i)), Created: time.Now()})
	}
	if _, err := a.Forget(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Get(t.Context(), "k"); ok {
		t.Error("a put queued before the forget brought the answer back")
	}
}

// BenchmarkGet measures a read of the shared tier: a 2 KiB answer over
// the Unix socket.
func BenchmarkGet(b *testing.B) {
	srv := redistest.Start(b)
	a := NewAnswers(openTeam(b, srv, "host-a"), AnswersOptions{})
	stop := running(b, a)
	a.Put(Answer{Key: "k", Value: make([]byte, 2048), Created: time.Now()})
	a.flush(context.Background())
	stop()
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := a.Get(ctx, "k"); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetMiss measures a read that finds nothing.
func BenchmarkGetMiss(b *testing.B) {
	srv := redistest.Start(b)
	a := NewAnswers(openTeam(b, srv, "host-a"), AnswersOptions{})
	ctx := context.Background()
	for b.Loop() {
		if _, ok := a.Get(ctx, "nothing"); ok {
			b.Fatal("hit")
		}
	}
}
