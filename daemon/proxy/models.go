package proxy

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// modelLists holds what each backend's own model list said, for backends
// whose configuration names no models: GET /v1/models lists what the pool
// serves, learnt rather than left empty. The zero value is ready.
type modelLists struct {
	mu     sync.Mutex          // guards by and asked
	by     map[string][]string // backend name -> model ids
	asked  time.Time           // when the lists were last asked for
	asking sync.Mutex          // one round of asking at a time
}

// modelListTTL is how long the lists learnt are used before they are asked
// for again.
const modelListTTL = 5 * time.Minute

// fresh reports whether the lists were asked for recently.
func (l *modelLists) fresh(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.asked.IsZero() && now.Sub(l.asked) < modelListTTL
}

func (l *modelLists) set(backend string, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string][]string{}
	}
	l.by[backend] = ids
}

func (l *modelLists) get(backend string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by[backend]
}

// modelListTimeout bounds one backend's model list request.
const modelListTimeout = 10 * time.Second

// learnModels asks every backend that names no models for its model list
// (a free GET), concurrently, unless that was done recently; one that does
// not answer is left as it was. Models calls it: a daemon nobody asks sends
// nothing upstream. The calls are the daemon's, not the asking client's: a
// client that goes away does not leave the lists empty for everyone.
func (pl *Pipeline) learnModels() {
	l := &pl.models
	l.asking.Lock()
	defer l.asking.Unlock()
	if l.fresh(time.Now()) {
		return
	}
	var wg sync.WaitGroup
	var learnt atomic.Bool
	for _, m := range pl.pool.Members() {
		b := m.Config
		if len(b.Models) > 0 || len(b.ModelMap) > 0 || m.Provider == nil {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(pl.base, modelListTimeout)
			defer cancel()
			ids, _, err := m.Provider.Models(ctx)
			if err != nil {
				pl.log.Debug("model list failed", "backend", b.Name, "err", err)
				return
			}
			slices.Sort(ids)
			l.set(b.Name, ids)
			learnt.Store(true)
		})
	}
	wg.Wait()
	if learnt.Load() {
		l.mu.Lock()
		l.asked = time.Now()
		l.mu.Unlock()
	}
}

// Models lists the models the pool serves (ctx is unused: the lists are
// asked for on the daemon's own account): every backend's models, an
// Azure backend's model_map keys when it lists none, and for a backend that
// names neither, what its own model list said (asked now unless recently).
func (pl *Pipeline) Models(_ context.Context) []string {
	pl.learnModels()
	var ms []string
	for _, b := range pl.config().Backends {
		ms = append(ms, b.Models...)
		if len(b.Models) == 0 {
			for m := range b.ModelMap {
				ms = append(ms, m)
			}
			if len(b.ModelMap) == 0 {
				ms = append(ms, pl.models.get(b.Name)...)
			}
		}
	}
	slices.Sort(ms)
	return slices.Compact(ms)
}

// Serves reports whether some backend serves model.
func (pl *Pipeline) Serves(model string) bool {
	for _, b := range pl.config().Backends {
		if b.Serves(model) {
			return true
		}
	}
	return false
}

// RetryHint is how long until some backend of the pool has room again: the
// end of the nearest cooldown, or the refill of one request under an RPM
// limit that is spent. One second when nothing says more.
func (pl *Pipeline) RetryHint() time.Duration {
	now := time.Now()
	best := time.Duration(0)
	for _, st := range pl.pool.State() {
		var wait time.Duration
		switch {
		case st.CooldownUntil.After(now):
			wait = st.CooldownUntil.Sub(now)
		case st.LimitRPM > 0 && st.RemainingRPM == 0:
			wait = time.Minute / time.Duration(st.LimitRPM)
		default:
			continue
		}
		if best == 0 || wait < best {
			best = wait
		}
	}
	return max(best, time.Second)
}

// ForgetModels makes the next Models ask the backends again (after a
// reload, which may have changed them).
func (pl *Pipeline) ForgetModels() {
	pl.models.mu.Lock()
	defer pl.models.mu.Unlock()
	pl.models.asked = time.Time{}
}
