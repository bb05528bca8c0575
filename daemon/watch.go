package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/rpc"
)

// watch sends the status at once, then again whenever it changed, at most
// max_per_second times a second, until the client cancels the call.
func (d *Daemon) watch(ctx context.Context, c *call) (any, error) {
	var p rpc.WatchParams
	if err := decodeParams(c, &p); err != nil {
		return nil, err
	}
	rate := p.MaxPerSecond
	switch {
	case rate == 0:
		rate = 4
	case rate < 0 || rate > 20:
		return nil, proxy.InvalidParams("max_per_second", "max_per_second must be from 0 (the default, 4) to 20")
	}
	// A shutdown ends watches at once: they would hold its drain.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(d.draining, func() { cancel(errShuttingDown) })()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	var last []byte
	for {
		st := d.snapshot()
		// Uptime always changes; compare the rest.
		st.UptimeS = 0
		cur, err := json.Marshal(st)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(cur, last) {
			last = cur
			st.UptimeS = time.Since(d.started).Seconds()
			if err := c.notify(rpc.NotifyWatchStatus, rpc.WatchStatusParams{ID: c.id, Status: st}); err != nil {
				return nil, proxy.Error(context.Canceled, nil)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, proxy.Error(context.Cause(ctx), nil)
		}
	}
}
