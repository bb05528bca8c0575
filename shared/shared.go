// Package shared lets the lbgptd daemons of a team, on several hosts, share
// what one daemon keeps alone: one rate-limit budget per limit scope, one
// answer cache, and the [budget] limits and spend totals (Budget). It speaks to a stock Redis (>= 7) with core commands
// only — Lua scripts, hashes, strings, pub/sub and streams — and keeps every
// key of one scope under one hash tag, so a Redis Cluster works too.
//
// Redis is never on the answer path and never trusted to be there: every
// call has a short deadline, a breaker stops calling a Redis that fails,
// and what uses it falls back to local state until it answers again. The
// shared maths read time only from Redis (TIME), never from a host's clock.
package shared

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/lbgpt/lbgpt/config"
)

// Options configure a Team.
type Options struct {
	// Config is the [shared] table, its password resolved.
	Config config.Shared
	// Host names this daemon in the team; default hostname:pid. Two
	// daemons must never share one.
	Host   string
	Logger *slog.Logger
	// StateDir, when set, keeps the team's size across restarts, so that a
	// daemon started while Redis is down knows its safe share.
	StateDir string

	hostTTL, idleReturn time.Duration // tests shorten or lengthen them
	budgetDown          time.Duration
}

// Team is this daemon's membership of a team: its Redis connection, its
// breaker, and the health the status shows.
type Team struct {
	rdb    *redis.Client
	prefix string
	host   string
	log    *slog.Logger
	where  string // the server, for display: never the password

	brk        breaker
	hostTTL    time.Duration // a host silent this long is dropped from every scope
	idleReturn time.Duration // a lease unused this long is handed back
	budgetDown time.Duration // see budgetDown
	stateDir   string

	// The team as the last heartbeat saw it.
	epoch atomic.Pointer[string] // the team's epoch; "?" when Redis did not answer at the start
	size  atomic.Int64           // hosts alive at the last heartbeat (or an earlier run's); 0 unknown

	scopesMu sync.Mutex
	scopes   map[string]*Scope // by name; each with its exchanger goroutine
	done     chan struct{}     // closed by Close
	closeMu  sync.Once
	wg       sync.WaitGroup // the exchangers and the cool listener
}

// Open connects to the Redis of cfg. It does not wait for Redis to answer:
// a team whose Redis is down starts degraded and recovers when it answers.
func Open(opts Options) (*Team, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	cfg := opts.Config
	ro, err := redisOptions(cfg)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host := opts.Host
	if host == "" {
		name, _ := os.Hostname()
		host = name + ":" + strconv.Itoa(os.Getpid())
	}
	prefix := cfg.KeyPrefix
	if prefix == "" {
		prefix = "lbgpt"
	}
	t := &Team{rdb: redis.NewClient(ro), prefix: prefix, host: host, log: log, where: Where(cfg.Redis),
		done: make(chan struct{}), hostTTL: cmp.Or(opts.hostTTL, hostTTL), idleReturn: cmp.Or(opts.idleReturn, idleReturn),
		budgetDown: cmp.Or(opts.budgetDown, budgetDown), stateDir: opts.StateDir}
	t.brk.init(t.changed)
	t.size.Store(int64(t.loadSize()))
	none := ""
	t.epoch.Store(&none)
	// The first heartbeat before any scope's first exchange: a bucket
	// created before it could not tell a new team from a Redis restarted
	// empty.
	if err := t.heartbeat(); err != nil {
		if refused(err) {
			// Not an outage: it will not pass by itself.
			t.rdb.Close()
			return nil, fmt.Errorf("shared: redis %s refused this daemon (%v): check the password ([shared] password_env, password_file or password) and the user in the URL", t.where, err)
		}
		lost := "?" // the team hash this host finds first is no proof of a new team
		t.epoch.Store(&lost)
	}
	t.wg.Add(2)
	go t.listen()
	go t.beat()
	return t, nil
}

//go:embed team.lua
var teamLua string

var teamScript = redis.NewScript(teamLua)

// refused reports whether err is Redis refusing the credentials or the
// commands, rather than not answering.
func refused(err error) bool {
	return redis.IsAuthError(err) || redis.IsPermissionError(err) || strings.HasPrefix(err.Error(), "ERR AUTH")
}

// checkPolicy warns when Redis's maxmemory-policy can evict what the team
// keeps without a TTL (the rate-limit buckets), or refuses writes when full.
// A Redis that does not allow CONFIG (a managed one) is not checked.
func (t *Team) checkPolicy() {
	var policy string
	t.call(context.Background(), func(ctx context.Context) error {
		v, err := t.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
		policy = v["maxmemory-policy"]
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil // refused, not down
		}
		return err
	})
	switch {
	case strings.HasPrefix(policy, "allkeys-"):
		t.log.Warn("shared: redis maxmemory-policy "+policy+" can evict the rate-limit buckets when redis is full (the team then starts them again empty); use volatile-lru", "redis", t.where)
	case policy == "noeviction":
		t.log.Info("shared: redis maxmemory-policy noeviction: when redis is full the shared answer cache stops filling (the limits keep working); volatile-lru evicts old answers instead", "redis", t.where)
	}
}

// beat runs the heartbeat every third of the host TTL until the team
// closes. An idle daemon learns this way too that Redis is down.
func (t *Team) beat() {
	defer t.wg.Done()
	t.checkPolicy()
	tick := time.NewTicker(t.hostTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			t.heartbeat()
		}
	}
}

// heartbeat tells Redis this host is alive and learns the team's size.
func (t *Team) heartbeat() error {
	known := *t.epoch.Load()
	var reply []any
	err := t.call(context.Background(), func(ctx context.Context) error {
		v, err := teamScript.Run(ctx, t.rdb, []string{t.key("team", "")}, t.host, known, t.hostTTL.Milliseconds()).Slice()
		reply = v
		return err
	})
	if err != nil {
		return err
	}
	if len(reply) != 2 {
		return fmt.Errorf("shared: team script replied %d values", len(reply))
	}
	epoch, _ := reply[0].(string)
	alive, _ := reply[1].(int64)
	if known != "" && known != "?" && epoch != known {
		t.log.Warn("shared limits: redis restarted empty; the team's buckets start again empty", "redis", t.where)
	}
	t.epoch.Store(&epoch)
	if alive > 0 && alive != t.size.Load() {
		t.size.Store(alive)
		t.saveSize(int(alive))
	}
	return nil
}

// Size is the number of hosts in the team as last seen: at least 1.
func (t *Team) Size() int { return int(max(t.size.Load(), 1)) }

const sizeFile = "team-hosts"

// loadSize reads the team's size kept by an earlier run; 0 unknown.
func (t *Team) loadSize() int {
	if t.stateDir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(t.stateDir, sizeFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return max(n, 0)
}

func (t *Team) saveSize(n int) {
	if t.stateDir == "" {
		return
	}
	err := os.MkdirAll(t.stateDir, 0o700)
	if err == nil {
		err = os.WriteFile(filepath.Join(t.stateDir, sizeFile), []byte(strconv.Itoa(n)+"\n"), 0o600)
	}
	if err != nil {
		t.log.Debug("shared: cannot keep the team's size", "err", err)
	}
}

// quiet silences go-redis's own logger, which prints every failed dial:
// with Redis down that is a line per request. The breaker reports each
// change of state once instead.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// redisOptions turns the [shared] table into go-redis options, with the
// deadlines that keep Redis off the answer path: a call that takes longer
// than these fails and the caller falls back.
func redisOptions(cfg config.Shared) (*redis.Options, error) {
	ro, err := redis.ParseURL(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("shared: redis %s: %w", Where(cfg.Redis), errors.New(strings.ReplaceAll(err.Error(), cfg.Redis, Where(cfg.Redis))))
	}
	if cfg.Secret != "" {
		ro.Password = cfg.Secret.Reveal()
	}
	if cfg.TLSCAFile != "" {
		if ro.TLSConfig == nil {
			ro.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("shared: tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("shared: tls_ca_file %s holds no PEM certificate", cfg.TLSCAFile)
		}
		ro.TLSConfig.RootCAs = pool
	}
	ro.DialTimeout = 200 * time.Millisecond
	ro.ReadTimeout = callTimeout
	ro.WriteTimeout = callTimeout
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1 // a failed call falls back; it is not tried again on the request's time
	ro.PoolSize = 16
	ro.MinIdleConns = 2
	ro.DisableIdentity = true // CLIENT SETINFO is one more round trip, and Redis 7.0 refuses it
	// Maintenance notifications are a Redis Enterprise feature; probing for
	// them is one more round trip per connection and races in go-redis.
	ro.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return ro, nil
}

// callTimeout bounds one Redis call (the scripts, a cache read): Redis
// answers in well under a millisecond on a LAN; one that takes this long is
// treated as down.
const callTimeout = 50 * time.Millisecond

// Where is the Redis address of url for display: its password redacted.
func Where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	return u.Redacted()
}

// Host is this daemon's name in the team.
func (t *Team) Host() string { return t.host }

// Close hands back what this host holds of every shared budget (one last
// exchange each, within the call deadline), then closes the connection.
// It is idempotent.
func (t *Team) Close() error {
	var err error
	t.closeMu.Do(func() {
		close(t.done)
		t.wg.Wait()
		err = t.rdb.Close()
	})
	return err
}

// coolChannel carries the name of a scope that a host saw cooled (a 429),
// so that every host asks for the scope's state at once rather than at its
// next exchange.
func (t *Team) coolChannel() string { return t.prefix + ":cool" }

func (t *Team) publishCool(scope string) {
	t.call(context.Background(), func(ctx context.Context) error {
		return t.rdb.Publish(ctx, t.coolChannel(), scope).Err()
	})
}

// listen nudges the scopes other hosts cooled. go-redis resubscribes after
// a reconnect; a nudge lost meanwhile is made up by the next exchange.
func (t *Team) listen() {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps := t.rdb.Subscribe(ctx, t.coolChannel())
	defer ps.Close()
	ch := ps.Channel()
	for {
		select {
		case <-t.done:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			t.scopesMu.Lock()
			s := t.scopes[m.Payload]
			t.scopesMu.Unlock()
			if s != nil {
				s.mu.Lock()
				s.nudged = true
				s.mu.Unlock()
				s.poke()
			}
		}
	}
}

// key is the key of a team-wide record: "{prefix}:kind:name". The limits
// and the team's hash share one hash slot, so that limit.lua can read
// both (the limits are a few small hashes; one slot holds them easily).
func (t *Team) key(kind, name string) string {
	k := "{" + t.prefix + "}:" + kind
	if name != "" {
		k += ":" + name
	}
	return k
}

// call runs fn with a deadline when the breaker lets it, and records how
// it went. errDegraded: the breaker is open and Redis was not called.
func (t *Team) call(ctx context.Context, fn func(context.Context) error) error {
	if !t.brk.allow() {
		return errDegraded
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	t.brk.done(err, time.Since(start))
	return err
}

// errDegraded: the breaker is open, Redis was not asked.
var errDegraded = errors.New("shared: redis unavailable (breaker open)")

// Health is how the team's Redis is doing, for the status.
type Health struct {
	Redis string // the server, password redacted
	Host  string
	Hosts int // the team's size at the last heartbeat
	// DegradedSince is when Redis stopped answering; zero while it answers.
	DegradedSince time.Time
	LastError     string
	// RTT is the median round trip of recent calls.
	RTT time.Duration
}

// Health reports the connection's state.
func (t *Team) Health() Health {
	since, last, rtt := t.brk.state()
	return Health{Redis: t.where, Host: t.host, Hosts: t.Size(), DegradedSince: since, LastError: last, RTT: rtt}
}

// changed logs a change of state, once per change.
func (t *Team) changed(degraded bool, err error, since time.Time) {
	if degraded {
		t.log.Warn("shared limits degraded: redis does not answer; each host spends its lease, then its safe share", "redis", t.where, "err", err)
		return
	}
	t.log.Info("shared limits recovered: redis answers again", "redis", t.where, "degraded_for", time.Since(since).Round(time.Millisecond))
}

// breaker stops calling a Redis that fails: after failAfter failures in a
// row it opens, lets one call through every retryEvery, and closes on the
// first success. Each change of state is reported once.
type breaker struct {
	mu       sync.Mutex
	fails    int
	open     bool
	since    time.Time // when it opened
	probeAt  time.Time // when the next call may try
	lastErr  string
	rtts     [32]time.Duration
	n        int
	onChange func(degraded bool, err error, since time.Time)
}

const (
	failAfter  = 3
	retryEvery = 500 * time.Millisecond
)

func (b *breaker) init(onChange func(bool, error, time.Time)) { b.onChange = onChange }

func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	now := time.Now()
	if now.Before(b.probeAt) {
		return false
	}
	b.probeAt = now.Add(retryEvery) // one call tries; the rest wait for it
	return true
}

func (b *breaker) done(err error, rtt time.Duration) {
	b.mu.Lock()
	var report func()
	if err == nil {
		b.rtts[b.n%len(b.rtts)] = rtt
		b.n++
		b.fails = 0
		if b.open {
			b.open = false
			since := b.since
			report = func() { b.onChange(false, nil, since) }
		}
	} else if !errors.Is(err, context.Canceled) {
		b.fails++
		b.lastErr = err.Error()
		if !b.open && b.fails >= failAfter {
			now := time.Now()
			b.open, b.since, b.probeAt = true, now, now.Add(retryEvery)
			report = func() { b.onChange(true, err, now) }
		}
	}
	b.mu.Unlock()
	if report != nil && b.onChange != nil {
		report()
	}
}

func (b *breaker) state() (since time.Time, last string, rtt time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		since, last = b.since, b.lastErr
	}
	n := min(b.n, len(b.rtts))
	if n > 0 {
		s := make([]time.Duration, n)
		copy(s, b.rtts[:n])
		for i := 1; i < n; i++ { // insertion sort: 32 at most
			for j := i; j > 0 && s[j] < s[j-1]; j-- {
				s[j], s[j-1] = s[j-1], s[j]
			}
		}
		rtt = s[n/2]
	}
	return
}
