package proxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lbgpt/lbgpt/balance"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// A response of the Responses API is stateful on the account that made it:
// a request that continues it (previous_response_id) and every call on its
// id (retrieve, delete, cancel, input items) must go to that account. The
// affinity records say which backend holds each response id, in their own
// small bbolt file of the state directory so that they outlive a restart.
// Ids are kept verbatim: encoding the backend into them would change what
// the client sees (a peer's ids outgrew OpenAI's 64 characters).

// AffinityFile is the name of the affinity records' file in lbgptd's state
// directory.
const AffinityFile = "responses.db"

// affinityTTL is how long a record is kept: OpenAI keeps a stored response
// for 30 days.
const affinityTTL = 30 * 24 * time.Hour

var affinityBucket = []byte("responses")

// affinity is the daemon's affinity records, opened on first use.
type affinity struct {
	path string

	mu       sync.Mutex // guards db, err, failedAt and closed
	db       *bolt.DB
	err      error     // why the file could not be opened
	failedAt time.Time // when; opening is tried again affinityRetry later
	closed   bool
}

// affinityRetry is how long a failure to open the file stands before the
// next use tries again (another daemon held its lock, say).
const affinityRetry = 10 * time.Second

// open opens the file once; a file that does not open cleanly is set
// aside (its name gains ".damaged") and a new one started.
func (a *affinity) open() (*bolt.DB, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return nil, errors.New("affinity records: closed")
	case a.db != nil:
		return a.db, nil
	case a.err != nil && time.Since(a.failedAt) < affinityRetry:
		return nil, a.err
	}
	a.err = nil
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		a.err, a.failedAt = fmt.Errorf("affinity records: %w", err), time.Now()
		return nil, a.err
	}
	db, err := openBolt(a.path)
	if err != nil && !errors.Is(err, errLocked) {
		aside := a.path + ".damaged"
		if os.Rename(a.path, aside) == nil {
			db, err = openBolt(a.path)
		}
	}
	if err != nil {
		a.err, a.failedAt = fmt.Errorf("affinity records %s: %w", a.path, err), time.Now()
		return nil, a.err
	}
	a.db = db
	a.sweep(time.Now())
	return db, nil
}

var errLocked = errors.New("in use by another process")

// openBolt opens a bbolt file, turning its panics on damaged files into
// errors.
func openBolt(path string) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("damaged: %v", r)
		}
	}()
	// Opened on the request path: never wait long for another daemon's lock.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 100 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, errLocked
	}
	if err != nil {
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(affinityBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// sweep removes the records older than affinityTTL.
func (a *affinity) sweep(now time.Time) {
	a.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(affinityBucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if t, _ := binary.Varint(v); now.Sub(time.Unix(t, 0)) > affinityTTL {
				c.Delete()
			}
		}
		return nil
	})
}

// put records that backend holds response id.
func (a *affinity) put(id, backend string) error {
	db, err := a.open()
	if err != nil {
		return err
	}
	v := binary.AppendVarint(nil, time.Now().Unix())
	v = append(v, backend...)
	return db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(affinityBucket).Put([]byte(id), v) })
}

// get is the backend that holds response id.
func (a *affinity) get(id string) (string, bool) {
	db, err := a.open()
	if err != nil {
		return "", false
	}
	var backend string
	db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(affinityBucket).Get([]byte(id))
		if _, n := binary.Varint(v); n > 0 {
			backend = string(v[n:])
		}
		return nil
	})
	return backend, backend != ""
}

func (a *affinity) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.db != nil {
		a.db.Close()
		a.db = nil
	}
	a.closed = true
}

// pin records the backend that holds the response of a stateful request:
// its id is in the answer (a whole response) or in the first stream event
// that carries the response. A record that cannot be written is logged and
// returned as a warning for the answer: it was delivered, but a call that
// continues it may not find its backend.
func (pl *Pipeline) pin(events []provider.Event, backend string) (warning string) {
	for _, ev := range events {
		var v struct {
			ID       string `json:"id"`
			Response *struct {
				ID string `json:"id"`
			} `json:"response"`
		}
		if json.Unmarshal(ev.Data, &v) != nil {
			continue
		}
		id := v.ID
		if v.Response != nil {
			id = v.Response.ID
		}
		if id == "" {
			continue
		}
		if err := pl.affinity.put(id, backend); err != nil {
			pl.log.Warn("could not record which backend holds a response", "backend", backend, "err", err)
			return "lbgpt could not record which backend holds this response (" + err.Error() + "): a request continuing it may not find it"
		}
		return ""
	}
	return ""
}

// holder is the backend that holds response id, for a call on it. A
// response lbgpt has no record of (made before lbgpt, or elsewhere) can
// only be looked for where it could be: with a single backend that could
// serve it, there.
func (pl *Pipeline) holder(id, model string) (string, error) {
	if b, ok := pl.affinity.get(id); ok {
		return b, nil
	}
	var only string
	n := 0
	for _, m := range pl.pool.Members() {
		if model == "" || m.Config.Serves(model) {
			only = m.Name()
			n++
		}
	}
	if n == 1 {
		return only, nil
	}
	return "", &responseError{id: id}
}

// pinned is the backend a request continuing response id must go to.
func (pl *Pipeline) pinned(id, model string) (string, error) {
	b, err := pl.holder(id, model)
	if err != nil {
		return "", InvalidParams("previous_response_id", "%v", err)
	}
	return b, nil
}

// responseError: lbgpt has no record of a response id.
type responseError struct{ id string }

func (e *responseError) Error() string {
	return fmt.Sprintf("lbgpt has no record of which backend holds response %q (it keeps one for each response made through it, for 30 days); "+
		"with several backends it cannot tell where this one is", e.id)
}

// OnResponse makes a call on a stored response (GET or DELETE
// responses/ID, POST responses/ID/cancel, GET responses/ID/input_items:
// suffix is "", "/cancel" or "/input_items") on the backend that holds it,
// and returns the upstream's answer as it is.
func (pl *Pipeline) OnResponse(ctx context.Context, method, id, suffix, query string, body []byte) (Result, error) {
	start := time.Now()
	backend, err := pl.holder(id, "")
	if err != nil {
		return Result{}, &rpc.Error{Code: rpc.CodeNotFound, Message: err.Error(), Data: &rpc.ErrorData{Kind: "no_backend", Code: "response_not_found"}}
	}
	c := provider.Call{Method: method, Path: provider.PathResponses + "/" + url.PathEscape(id) + suffix, Query: query, Body: body}
	ctx, cancel := context.WithTimeout(ctx, pl.timeout(rpc.Options{}))
	defer cancel()
	ans, err := pl.send(ctx, nil, balance.Request{Backend: backend}, c)
	if err != nil {
		return Result{}, Error(err, nil)
	}
	return Result{Body: ans.body, Header: ans.header, Status: ans.status, Meta: pl.meta(ans.rep, "", false, start, ans.rep.Upstream)}, nil
}
