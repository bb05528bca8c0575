package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/lbgpt/lbgpt/rpc"
)

// ErrWatchEnded matches the error of Next when the daemon ended a watch
// without an error (it never does unless the watch was canceled).
var ErrWatchEnded = errors.New("lbgptd ended the watch")

// A Watcher follows the daemon's status: the first Next returns a snapshot
// at once, each later one the next snapshot after a change. Snapshots are
// whole StatusResults, so when several arrived since the last Next only the
// newest is kept and returned: a slow reader sees the current state, never
// a backlog. Close ends the watch.
//
// Next and Close may be called from different goroutines (Close ends a Next
// that is waiting); Next itself is meant for one reader at a time, as in a
// Bubble Tea command that calls Next once and is re-armed with its result.
// A watch lives on its Client's connection: when that breaks, Next fails
// and a new Watch is needed.
type Watcher struct {
	cn   *conn
	pc   *pendingCall
	once sync.Once
}

// Watch subscribes to the daemon's status, at most maxPerSecond updates a
// second (0: the daemon's default, 4). ctx bounds the subscribing only;
// the watch lasts until Close.
func (c *Client) Watch(ctx context.Context, maxPerSecond float64) (*Watcher, error) {
	if maxPerSecond < 0 {
		return nil, errors.New("watch: maxPerSecond must not be negative")
	}
	cn, pc, err := c.open(ctx, rpc.MethodWatch, rpc.WatchParams{MaxPerSecond: maxPerSecond}, keepLatest)
	if err != nil {
		return nil, err
	}
	return &Watcher{cn: cn, pc: pc}, nil
}

// Next waits for the next status snapshot. ctx bounds this wait only: when
// it ends, Next returns its error (matching rpc.ErrCanceled or
// rpc.ErrTimeout) and the watch goes on. After Close, Next returns an error
// matching net.ErrClosed; when the daemon refused or ended the watch, its
// error.
func (w *Watcher) Next(ctx context.Context) (*rpc.StatusResult, error) {
	for {
		n, resp, err := w.pc.next(ctx)
		switch {
		case err != nil:
			return nil, err
		case n != nil:
			if n.Method != rpc.NotifyWatchStatus {
				continue
			}
			var p rpc.WatchStatusParams
			if err := json.Unmarshal(n.Params, &p); err != nil {
				return nil, fmt.Errorf("decode lbgptd status: %w", err)
			}
			return &p.Status, nil
		default:
			if err := resp.decode(nil); err != nil {
				return nil, err
			}
			return nil, ErrWatchEnded
		}
	}
}

// Close ends the watch in the daemon and wakes a waiting Next. It is safe
// to call more than once; it always returns nil.
func (w *Watcher) Close() error {
	w.once.Do(func() {
		w.cn.cancel(w.pc.id)
		w.cn.finish(w.pc)
		w.pc.abort(fmt.Errorf("watch closed: %w", net.ErrClosed))
	})
	return nil
}
