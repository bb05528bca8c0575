package spend

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"
)

// HitKind says how a cache answered a request, so that it was not paid for
// again. The values are written to disk.
type HitKind string

// Hit kinds.
const (
	Exact     HitKind = "exact"     // the exact cache
	Semantic  HitKind = "semantic"  // the semantic cache
	Coalesced HitKind = "coalesced" // a request in flight that asked the same
)

// Entry is one answer, for [Ledger.Record].
type Entry struct {
	Backend   string `json:"backend,omitempty"`
	Model     string `json:"model,omitempty"`
	Namespace string `json:"namespace,omitempty"` // "" is the default namespace
	// Hit is "" for an answer paid upstream, otherwise how a cache answered.
	Hit HitKind `json:"hit,omitempty"`
	// Usage is the tokens of an answer paid upstream; a hit's are not counted.
	Usage Usage `json:"usage,omitzero"`
	// Cost is what the answer cost and, for a hit, what the answer it gave
	// again cost when it was first paid: what the hit saved. It counts only
	// when Priced; an answer of a model without a price is not Priced.
	Cost   Nanos `json:"cost,omitempty"`
	Priced bool  `json:"priced,omitempty"`
}

// Saving is what cache hits of one kind saved.
type Saving struct {
	Hits     int64 `json:"hits,omitzero"`
	Unpriced int64 `json:"unpriced,omitzero"` // of Hits, those whose answer had no price
	Saved    Nanos `json:"saved,omitzero"`    // what the priced hits' answers cost when first paid
}

// Totals sums the entries of a window. Its JSON form is written to disk.
type Totals struct {
	Requests  int64  `json:"requests,omitzero"` // answers paid upstream
	Unpriced  int64  `json:"unpriced,omitzero"` // of Requests, those of a model without a price
	Cost      Nanos  `json:"cost,omitzero"`     // what the priced Requests cost
	Tokens    Usage  `json:"tokens,omitzero"`   // what Requests used
	Exact     Saving `json:"exact,omitzero"`
	Semantic  Saving `json:"semantic,omitzero"`
	Coalesced Saving `json:"coalesced,omitzero"`
}

// Saved is what the cache hits of every kind saved.
func (t Totals) Saved() Nanos { return t.Exact.Saved + t.Semantic.Saved + t.Coalesced.Saved }

func (t *Totals) add(e Entry) {
	if e.Hit != "" {
		s := t.saving(e.Hit)
		s.Hits++
		if e.Priced {
			s.Saved += e.Cost
		} else {
			s.Unpriced++
		}
		return
	}
	t.Requests++
	t.Tokens.add(e.Usage)
	if e.Priced {
		t.Cost += e.Cost
	} else {
		t.Unpriced++
	}
}

func (t *Totals) saving(k HitKind) *Saving {
	switch k {
	case Exact:
		return &t.Exact
	case Semantic:
		return &t.Semantic
	}
	return &t.Coalesced
}

func (t *Totals) merge(o Totals) {
	t.Requests += o.Requests
	t.Unpriced += o.Unpriced
	t.Cost += o.Cost
	t.Tokens.add(o.Tokens)
	for _, k := range []HitKind{Exact, Semantic, Coalesced} {
		s, so := t.saving(k), o.saving(k)
		s.Hits += so.Hits
		s.Unpriced += so.Unpriced
		s.Saved += so.Saved
	}
}

// Group is what a report's rows are: one per backend, model or namespace.
type Group string

// Groups of [Ledger.Report]; "" reports the total alone.
const (
	ByBackend   Group = "backend"
	ByModel     Group = "model"
	ByNamespace Group = "namespace"
)

// Period is a window of time that ends now.
type Period string

// Periods. Budgets have Day and Month.
const (
	Hour  Period = "hour"  // this hour, UTC
	Day   Period = "day"   // today, UTC
	Month Period = "month" // this month, UTC
)

// Since returns when p began, at now.
func (p Period) Since(now time.Time) time.Time {
	now = now.UTC()
	switch p {
	case Hour:
		return now.Truncate(time.Hour)
	case Month:
		return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// Row is the totals of one backend, model or namespace.
type Row struct {
	Name string // "" is the default namespace, or an entry without a backend
	Totals
}

// Report is what [Ledger.Report] found.
type Report struct {
	// Since is when the window starts: the start of the bucket holding the
	// time asked for, an hour, or a day (UTC) before the hourly retention.
	Since time.Time
	By    Group
	Rows  []Row // by cost, highest first, then by name; none when By is ""
	Total Totals
}

// Retention of the buckets, in days, and the journal size past which
// Record folds it into the snapshot.
const (
	hourlyDays        = 35
	dailyDays         = 366
	defaultMaxJournal = 4 << 20
)

// Seconds in an hour and a day, the sizes of the buckets.
const (
	hourSecs = 3600
	daySecs  = 24 * hourSecs
)

// ErrClosed is returned by [Ledger.Record] after [Ledger.Close].
var ErrClosed = errors.New("spend: ledger is closed")

// Ledger keeps the running totals of the answers it is told of, in hourly
// buckets by backend, model and namespace, for 35 days, then in daily
// buckets for a year. It persists them in its directory: each Record
// appends one line to a journal with one write(2), which the kernel keeps
// through a kill -9 of the process (not through a power cut: there is no
// fsync per record); Open, Close and a journal past 4 MiB fold the journal
// into a snapshot, written atomically. A snapshot names the last journal
// it includes, so a crash at any step of a fold neither loses nor
// double-counts an entry. One process at a time may open a directory.
//
// A Ledger is safe for concurrent use.
type Ledger struct {
	dir    string
	id     string // see ID
	now    func() time.Time
	unlock func() // releases the directory's lock

	// foldMu serializes folds. A fold holds it, not mu, while it writes
	// the snapshot, so that Record goes on meanwhile.
	foldMu sync.Mutex

	mu      sync.Mutex    // guards the fields below
	journal *os.File      // nil once closed
	gen     uint64        // the journal's generation: files spend.journal.<gen>
	size    int64         // bytes written to the journal
	line    bytes.Buffer  // lines encoded and not yet written
	enc     *json.Encoder // writes to line
	// flushArmed: a timer will write the savings' lines held in line.
	flushArmed bool
	// heldErr is how writing held lines failed, for the next Record to
	// return.
	heldErr error
	hours   map[slot]Totals
	days    map[slot]Totals
	hourly  int64 // hours before this (Unix time) are in days
	cur     current

	// Tests: maxJournal is the size past which Record folds, hook is
	// called at each step of a fold.
	maxJournal int64
	hook       func(step string)
}

// slot is the bucket of a key starting at start, Unix time.
type slot struct {
	start int64
	key
}

type key struct{ backend, model, namespace string }

func (k key) name(by Group) string {
	switch by {
	case ByBackend:
		return k.backend
	case ByModel:
		return k.model
	}
	return k.namespace
}

// current is what was paid in the current UTC day and month, overall and
// by namespace, for budgets: Record adds to it, and it is counted again
// from the buckets when the day changes.
type current struct {
	day, month       int64 // their starts, Unix time
	dayAll, monthAll Nanos
	dayNS, monthNS   map[string]Nanos
	// Every entry of the day and month by namespace, for [Ledger.Current].
	dayTot, monthTot map[string]Totals
}

// Record adds e to the totals and to the journal. The totals count e even
// when the journal write fails (the answer was paid); the error then says
// that it may not survive a restart. A Record that fills the journal folds
// it, taking a few milliseconds more.
func (l *Ledger) Record(e Entry) error {
	switch e.Hit {
	case "", Exact, Semantic, Coalesced:
	default:
		return fmt.Errorf("spend: record: unknown hit kind %q", e.Hit)
	}
	t := l.now().Unix()
	l.mu.Lock()
	if l.journal == nil {
		l.mu.Unlock()
		return ErrClosed
	}
	l.roll(t)
	l.apply(t, e)
	err := errors.Join(l.heldErr, l.encode(t, e))
	l.heldErr = nil
	if e.Hit != "" {
		// A saving holds no money back: its line waits for the next
		// write, at most holdHits, so that cache hits cost no write(2).
		if !l.flushArmed {
			l.flushArmed = true
			time.AfterFunc(holdHits, l.flushHeld)
		}
		l.mu.Unlock()
		return err
	}
	err = errors.Join(err, l.write())
	full := l.size >= l.maxJournal
	l.mu.Unlock()
	if full {
		err = errors.Join(err, l.rotate())
	}
	return err
}

// holdHits is how long the journal line of a cache hit's saving may wait
// to be written with the next one: a kill -9 loses at most the savings of
// this long, never a paid answer.
const holdHits = 100 * time.Millisecond

// flushHeld writes the savings' lines still held.
func (l *Ledger) flushHeld() {
	l.mu.Lock()
	l.flushArmed = false
	var err error
	if l.journal != nil && l.line.Len() > 0 {
		err = l.write()
	}
	full := l.journal != nil && l.size >= l.maxJournal
	l.mu.Unlock()
	if full {
		err = errors.Join(err, l.rotate())
	}
	if err != nil {
		l.mu.Lock()
		l.heldErr = err
		l.mu.Unlock()
	}
}

// apply adds e, of time t, to the buckets and the current period.
func (l *Ledger) apply(t int64, e Entry) {
	s := slot{floor(t, hourSecs), key{e.Backend, e.Model, e.Namespace}}
	tot := l.hours[s]
	tot.add(e)
	l.hours[s] = tot
	if t >= l.cur.day {
		addTo(l.cur.dayTot, e)
	}
	if t >= l.cur.month {
		addTo(l.cur.monthTot, e)
	}
	if e.Hit != "" || !e.Priced {
		return
	}
	if t >= l.cur.day {
		l.cur.dayAll += e.Cost
		l.cur.dayNS[e.Namespace] += e.Cost
	}
	if t >= l.cur.month {
		l.cur.monthAll += e.Cost
		l.cur.monthNS[e.Namespace] += e.Cost
	}
}

// encode appends e's journal line, of time t, to the lines to write.
func (l *Ledger) encode(t int64, e Entry) error {
	if err := l.enc.Encode(record{T: t, Entry: e}); err != nil { // and a newline
		return fmt.Errorf("spend: journal: %w", err)
	}
	return nil
}

// write appends the lines encoded so far to the journal in one write(2).
// The caller holds mu.
func (l *Ledger) write() error {
	b := l.line.Bytes()
	n, err := l.journal.Write(b)
	l.size += int64(n)
	// A write that left part of a line, or that wrote nothing of lines
	// that began by ending an earlier torn one, leaves a line to end: the
	// next write starts with a newline, so that the torn part stays a line
	// of its own that replay skips.
	torn := (n > 0 && n < len(b)) || (n == 0 && len(b) > 0 && b[0] == '\n')
	l.line.Reset()
	if torn {
		l.line.WriteByte('\n')
	}
	if err != nil {
		return fmt.Errorf("spend: journal: %w", err)
	}
	return nil
}

// record is a line of the journal.
type record struct {
	T int64 `json:"t"` // Unix time
	Entry
}

// roll starts a new current period when t is in another day than it.
func (l *Ledger) roll(t int64) {
	if floor(t, daySecs) != l.cur.day {
		l.recount(t)
	}
}

// recount counts the current day and month of t again from the buckets.
func (l *Ledger) recount(t int64) {
	c := current{day: floor(t, daySecs), month: monthStart(t), dayNS: map[string]Nanos{}, monthNS: map[string]Nanos{},
		dayTot: map[string]Totals{}, monthTot: map[string]Totals{}}
	// The month is younger than the hourly retention: all in l.hours.
	for s, tot := range l.hours {
		if s.start < c.month {
			continue
		}
		mergeInto(c.monthTot, s.namespace, tot)
		if s.start >= c.day {
			mergeInto(c.dayTot, s.namespace, tot)
		}
		if tot.Cost == 0 {
			continue
		}
		c.monthAll += tot.Cost
		c.monthNS[s.namespace] += tot.Cost
		if s.start >= c.day {
			c.dayAll += tot.Cost
			c.dayNS[s.namespace] += tot.Cost
		}
	}
	l.cur = c
}

// spent is what was paid in the current UTC day and month, in a namespace
// and overall.
type spent struct {
	day, month, allDay, allMonth Nanos
}

// spent returns what was paid in the current day and month in namespace ns
// and overall.
func (l *Ledger) spent(ns string) spent {
	t := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(t)
	return spent{l.cur.dayNS[ns], l.cur.monthNS[ns], l.cur.dayAll, l.cur.monthAll}
}

func addTo(m map[string]Totals, e Entry) {
	tot := m[e.Namespace]
	tot.add(e)
	m[e.Namespace] = tot
}

func mergeInto(m map[string]Totals, ns string, o Totals) {
	tot := m[ns]
	tot.merge(o)
	m[ns] = tot
}

// Current is what a ledger recorded in the current UTC day and month, by
// namespace: what [Ledger.Current] returns.
type Current struct {
	Day, Month time.Time         // their starts, UTC
	DayByNS    map[string]Totals // by namespace ("" the default one)
	MonthByNS  map[string]Totals
}

// Current returns every entry recorded in the current UTC day and month
// (by the ledger's clock), by namespace: the figures a team adds up
// (package shared). It is a copy, and it works after Close.
func (l *Ledger) Current() Current {
	t := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(t)
	return Current{Day: time.Unix(l.cur.day, 0).UTC(), Month: time.Unix(l.cur.month, 0).UTC(),
		DayByNS: maps.Clone(l.cur.dayTot), MonthByNS: maps.Clone(l.cur.monthTot)}
}

// ID names the ledger's directory among those of a team: made at random
// when the directory is first opened and kept in spend.id, so it survives
// a restart (and a restarted daemon's figures replace, not add to, what it
// reported before). Copying a state directory to another host copies it:
// give the copy a new one by removing spend.id.
func (l *Ledger) ID() string { return l.id }

// compact rolls the hourly buckets older than the hourly retention up into
// daily ones, and drops the daily buckets older than a year.
func (l *Ledger) compact(now int64) {
	today := floor(now, daySecs)
	cut := today - hourlyDays*daySecs
	for s, tot := range l.hours {
		if s.start < cut {
			d := slot{floor(s.start, daySecs), s.key}
			dt := l.days[d]
			dt.merge(tot)
			l.days[d] = dt
			delete(l.hours, s)
		}
	}
	l.hourly = max(l.hourly, cut)
	for s := range l.days {
		if s.start < today-dailyDays*daySecs {
			delete(l.days, s)
		}
	}
}

// Report returns the totals from since to now, with a row per backend,
// model or namespace as by says. The window starts at the start of the
// bucket holding since: its hour, or its UTC day when since is older than
// the hourly buckets (35 days); Report.Since says which.
func (l *Ledger) Report(since time.Time, by Group) (Report, error) {
	switch by {
	case "", ByBackend, ByModel, ByNamespace:
	default:
		return Report{}, fmt.Errorf("spend: report by %q: want %q, %q or %q", by, ByBackend, ByModel, ByNamespace)
	}
	s := since.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	from := floor(s, hourSecs)
	if s < l.hourly {
		from = floor(s, daySecs)
	}
	r := Report{Since: time.Unix(from, 0).UTC(), By: by}
	rows := map[string]*Totals{}
	for _, m := range []map[slot]Totals{l.hours, l.days} {
		for sl, tot := range m {
			if sl.start < from {
				continue
			}
			r.Total.merge(tot)
			if by == "" {
				continue
			}
			name := sl.name(by)
			if rows[name] == nil {
				rows[name] = &Totals{}
			}
			rows[name].merge(tot)
		}
	}
	for name, tot := range rows {
		r.Rows = append(r.Rows, Row{Name: name, Totals: *tot})
	}
	slices.SortFunc(r.Rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(b.Cost, a.Cost), cmp.Compare(a.Name, b.Name))
	})
	return r, nil
}

// Close folds the journal into the snapshot and releases the directory.
// Record then returns ErrClosed. Closing again does nothing.
func (l *Ledger) Close() error {
	l.foldMu.Lock()
	defer l.foldMu.Unlock()
	l.mu.Lock()
	closed := l.journal == nil
	l.mu.Unlock()
	if closed {
		return nil
	}
	err := l.fold(false)
	l.unlock()
	return err
}

// floor returns t rounded down to a multiple of unit.
func floor(t, unit int64) int64 {
	return t - ((t%unit)+unit)%unit
}

// monthStart returns the start of the UTC month of t, Unix time.
func monthStart(t int64) int64 {
	return Month.Since(time.Unix(t, 0)).Unix()
}
