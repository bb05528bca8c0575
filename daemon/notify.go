package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/lbgpt/lbgpt/rpc"
)

// notifier sends one sd_notify message (several NAME=value lines).
type notifier func(state string) error

// newNotifier is opts.Notify, else go-systemd's SdNotify: a no-op without
// $NOTIFY_SOCKET.
func newNotifier(opts Options) notifier {
	if opts.Notify != nil {
		return opts.Notify
	}
	return func(state string) error {
		_, err := sd.SdNotify(false, state)
		return err
	}
}

// sendNotify tells the service manager state; a failure is only logged.
func (d *Daemon) sendNotify(state string) {
	if err := d.notify(state); err != nil {
		d.log.Warn("sd_notify failed", "err", err)
	}
}

const (
	defaultStatusEvery = 5 * time.Second
	// healthTimeout bounds one health check: a request path that takes
	// longer is wedged.
	healthTimeout = 5 * time.Second
)

// life runs beside Serve until ctx ends or the drain starts: it says
// READY=1, keeps STATUS= current and pings the watchdog while the health
// check passes. A draining daemon refuses requests, so the check would
// fail; systemd does not watch a stopping service, so life simply ends.
func (d *Daemon) life(ctx context.Context, opts lifeOptions) {
	last := d.statusLine()
	d.sendNotify("READY=1\nSTATUS=" + last)
	status := time.NewTicker(opts.statusEvery)
	defer status.Stop()
	var ping <-chan time.Time
	if opts.watchdog > 0 {
		t := time.NewTicker(opts.watchdog / 2)
		defer t.Stop()
		ping = t.C
		d.log.Debug("watchdog enabled", "timeout", opts.watchdog)
	}
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.draining.Done():
			return
		case <-status.C:
			last = d.statusLine()
			d.stoppingMu.Lock()
			if d.draining.Err() == nil {
				d.sendNotify("STATUS=" + last)
			}
			d.stoppingMu.Unlock()
		case <-ping:
			cctx, cancel := context.WithTimeout(ctx, min(healthTimeout, opts.watchdog/2))
			err := opts.check(cctx)
			cancel()
			if ctx.Err() != nil || d.draining.Err() != nil {
				return
			}
			if err != nil {
				// No ping: if this lasts, systemd kills and restarts us.
				if healthy {
					d.log.Error("health check failed; not pinging the watchdog", "err", err)
				}
				healthy = false
				continue
			}
			if !healthy {
				d.log.Info("health check passes again")
			}
			healthy = true
			msg := "WATCHDOG=1"
			if cur := d.statusLine(); cur != last { // news between the status ticks
				last = cur
				msg += "\nSTATUS=" + cur
			}
			// Under the lock shutdown takes to start the drain and say
			// STOPPING=1: no ping goes out after it.
			d.stoppingMu.Lock()
			if d.draining.Err() == nil {
				d.sendNotify(msg)
			}
			d.stoppingMu.Unlock()
		}
	}
}

// lifeOptions are Options' notification settings with their defaults.
type lifeOptions struct {
	statusEvery time.Duration
	watchdog    time.Duration
	check       func(context.Context) error
}

func (d *Daemon) lifeOptions(opts Options) lifeOptions {
	lo := lifeOptions{statusEvery: opts.StatusEvery, watchdog: opts.Watchdog, check: opts.HealthCheck}
	if lo.statusEvery <= 0 {
		lo.statusEvery = defaultStatusEvery
	}
	if lo.watchdog == 0 {
		// 0 and no error when $WATCHDOG_USEC is unset or meant for another
		// process ($WATCHDOG_PID).
		w, err := sd.SdWatchdogEnabled(false)
		if err != nil {
			d.log.Warn("ignoring the watchdog settings", "err", err)
		}
		lo.watchdog = w
	}
	if lo.check == nil {
		lo.check = d.selfCheck
	}
	return lo
}

// statusLine is the one-line STATUS= summary: backends up, requests in
// flight and queued, upstream calls made, and the cache hit rate when
// there is a cache.
func (d *Daemon) statusLine() string {
	st := d.snapshot()
	up, inFlight, calls := 0, int64(0), int64(0)
	for _, b := range st.Backends {
		if b.State == rpc.StateOK || b.State == rpc.StateSaturated {
			up++
		}
		inFlight += b.InFlight
		calls += b.Requests
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d/%d backends up, %d in flight, %d queued, %d upstream calls", up, len(st.Backends), inFlight, st.Queue, calls)
	if st.Cache != nil {
		fmt.Fprintf(&sb, ", cache hit rate %.0f%%", st.Cache.HitRate*100)
	}
	if st.ReloadError != "" {
		sb.WriteString("; last reload rejected")
	}
	return sb.String()
}

// selfCheck is the default health check: a status request through a
// connection of the daemon's own, so the line channel, the session,
// the method guard and the pool's lock all have to answer.
func (d *Daemon) selfCheck(ctx context.Context) error {
	cli, srv := net.Pipe()
	defer cli.Close()
	go d.serveConn(srv)
	if dl, ok := ctx.Deadline(); ok {
		cli.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { cli.Close() })
	defer stop()
	if _, err := fmt.Fprintf(cli, `{"jsonrpc":"2.0","id":1,"method":%q}`+"\n", rpc.MethodStatus); err != nil {
		return fmt.Errorf("health check: send: %w", err)
	}
	line, err := bufio.NewReader(cli).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("health check: no status answer: %w", err)
	}
	var resp struct {
		Result *rpc.StatusResult `json:"result"`
		Error  *rpc.Error        `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("health check: %s", resp.Error.Message)
	}
	if resp.Result == nil || resp.Result.PID == 0 {
		return errors.New("health check: empty status")
	}
	return nil
}
