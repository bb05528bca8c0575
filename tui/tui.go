// Package tui is lbgpt's terminal interface: a multi-turn chat with lbgptd
// whose answers stream in token by token, beside a live panel of the pool —
// every backend's state, RPM and TPM headroom, in flight, latency, 429s,
// retries and last minute of traffic — the caches' hits, and the batches
// running in the daemon.
//
// It talks to the daemon only through the public client package: a watch
// subscription feeds the panel, ChatStream the answers, Batch the batches
// started from the TUI. All of that I/O happens in Bubble Tea commands, one
// per stream chunk or status update, each re-armed by the message it
// returns; Update never waits on the socket, so no keystroke does either.
// When the daemon goes away the TUI says so, retries with backoff and
// resumes when it is back.
//
// The shape follows the Bubble Tea rules of lbgpt's STYLE.md: one root
// Model owns all state; the conversation, the panel and the overlays are
// plain structs rendered by Render(width); every colour comes from Styles;
// widths are measured with lipgloss.
package tui

import (
	"context"
	"errors"
	"io"
	"iter"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

// Daemon is what the TUI needs of lbgptd; a *client.Client is one.
type Daemon interface {
	ChatStream(ctx context.Context, req any, opts rpc.Options) iter.Seq2[client.Event, error]
	Batch(ctx context.Context, reqs []any, opts rpc.Options, concurrency int) iter.Seq2[client.BatchEvent, error]
	// Watch subscribes to the daemon's status; Next gives a snapshot at
	// once, then one per change, until Close.
	Watch(ctx context.Context, maxPerSecond float64) (Watcher, error)
}

// Watcher is a status subscription, as client.Watcher.
type Watcher interface {
	Next(ctx context.Context) (*rpc.StatusResult, error)
	Close() error
}

// Client adapts a client.Client to Daemon.
func Client(c *client.Client) Daemon { return clientDaemon{c} }

type clientDaemon struct{ *client.Client }

func (c clientDaemon) Watch(ctx context.Context, maxPerSecond float64) (Watcher, error) {
	w, err := c.Client.Watch(ctx, maxPerSecond)
	if err != nil {
		return nil, err
	}
	return w, nil
}

var _ Watcher = (*client.Watcher)(nil)

// Options configure the TUI. Daemon is required.
type Options struct {
	Daemon Daemon
	// Model is the model asked first; "" means gpt-4o-mini.
	Model string
	// Autostart, when set, is called once before the first connection
	// (lbgpt passes its "start lbgptd in the background" logic). Its
	// error is not fatal: the TUI shows the daemon as down and retries.
	Autostart func(ctx context.Context) error
	// Batch, when set, is started as a batch at once (lbgpt demo's sample
	// batch), under the name BatchName.
	Batch     []any
	BatchName string
	// Now is the clock; nil means time.Now. Tests fix it.
	Now func() time.Time
	// Getenv reads this shell's environment, to tell when lbgptd was
	// started with another (rpc.EnvStamps); nil means os.Getenv.
	Getenv func(string) string
	// NoColor drops every colour (NO_COLOR).
	NoColor bool
}

// Run runs the TUI on in and out until the user quits or ctx ends.
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := New(ctx, opts)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))
	final, err := p.Run()
	if fm, ok := final.(*Model); ok {
		fm.shutdown()
	}
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil // interrupted from outside: not an error
	}
	return err
}
