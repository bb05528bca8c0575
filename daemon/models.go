package daemon

import (
	"context"
	"slices"
	"sync"
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
// not answer is left as it was. GET /v1/models calls it: a daemon nobody
// asks sends nothing upstream.
func (d *Daemon) learnModels(ctx context.Context) {
	l := &d.models
	l.asking.Lock()
	defer l.asking.Unlock()
	if l.fresh(time.Now()) {
		return
	}
	defer func() {
		l.mu.Lock()
		l.asked = time.Now()
		l.mu.Unlock()
	}()
	var wg sync.WaitGroup
	for _, m := range d.pool.Members() {
		b := m.Config
		if len(b.Models) > 0 || len(b.ModelMap) > 0 || m.Provider == nil {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, modelListTimeout)
			defer cancel()
			ids, _, err := m.Provider.Models(ctx)
			if err != nil {
				d.log.Debug("model list failed", "backend", b.Name, "err", err)
				return
			}
			slices.Sort(ids)
			d.models.set(b.Name, ids)
		})
	}
	wg.Wait()
}
