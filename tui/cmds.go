package tui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/rpc"
)

// The messages the commands send back. Each command does one piece of I/O
// and never touches the Model; its message re-arms the next one.
type (
	// statusMsg is one snapshot of the watch on w.
	statusMsg struct {
		w  Watcher
		st *rpc.StatusResult
	}
	// downMsg says the watch could not start or broke.
	downMsg struct{ err error }
	// retryMsg is the time to connect again.
	retryMsg struct{}
	// tickMsg moves the clock on (countdowns, elapsed times).
	tickMsg struct{}
	// chunkMsg is one piece of a streamed answer.
	chunkMsg struct {
		s    *chatStream
		text string
	}
	// answerMsg ends a streamed answer: the whole text and how lbgpt
	// answered, or the error.
	answerMsg struct {
		s      *chatStream
		text   string
		meta   rpc.Meta
		tokens usage
		err    error
	}
	// batchLoadedMsg carries the requests of a JSONL file.
	batchLoadedMsg struct {
		name string
		out  string // where the answers go; "" for none
		reqs []any
		err  error
	}
	// batchStepMsg is a batch's progress.
	batchStepMsg struct {
		b        *batchStream
		progress *rpc.BatchProgress
	}
	// batchDoneMsg ends a batch.
	batchDoneMsg struct {
		b       *batchStream
		summary rpc.BatchSummary
		err     error
	}
)

// usage is an answer's token counts.
type usage struct{ prompt, completion int }

// pull turns a bounded stream into one call per event, so that each Bubble
// Tea command takes exactly one event. next is called by one command at a
// time; the command that sees the end calls stop.
type pull[T any] struct {
	next   func() (T, error, bool)
	stop   func()
	cancel context.CancelFunc
}

func newPull[T any](seq iter.Seq2[T, error], cancel context.CancelFunc) pull[T] {
	next, stop := iter.Pull2(seq)
	return pull[T]{next: next, stop: stop, cancel: cancel}
}

// end releases the stream; called once it yielded its last event.
func (p pull[T]) end() {
	p.stop()
	p.cancel()
}

// chatStream is one streamed answer in flight.
type chatStream struct {
	pull[client.Event]
	started time.Time
}

// step takes the next event of the stream.
func (s *chatStream) step() tea.Cmd {
	return func() tea.Msg {
		ev, err, ok := s.next()
		switch {
		case !ok:
			s.end()
			return answerMsg{s: s, err: errors.New("lbgptd ended the stream without an answer")}
		case err != nil:
			s.end()
			return answerMsg{s: s, err: err}
		case ev.Result != nil:
			s.end()
			return answerMsg{s: s, text: client.AnswerText(ev.Result.Response), meta: ev.Result.Meta, tokens: usageOf(ev.Result.Response)}
		}
		return chunkMsg{s: s, text: client.DeltaText(ev.Chunk)}
	}
}

func usageOf(resp json.RawMessage) usage {
	var r struct {
		Usage struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
		} `json:"usage"`
	}
	json.Unmarshal(resp, &r)
	return usage{r.Usage.Prompt, r.Usage.Completion}
}

// batchStream is one batch started from the TUI.
type batchStream struct {
	pull[client.BatchEvent]
	name string
	out  string
}

// step takes the batch's next progress, skipping the items (the final
// result repeats them); at the end it writes the answers to b.out.
func (b *batchStream) step() tea.Cmd {
	return func() tea.Msg {
		for {
			ev, err, ok := b.next()
			switch {
			case !ok:
				b.end()
				return batchDoneMsg{b: b, err: errors.New("lbgptd ended the batch without a result")}
			case err != nil:
				b.end()
				return batchDoneMsg{b: b, err: err}
			case ev.Progress != nil:
				return batchStepMsg{b: b, progress: ev.Progress}
			case ev.Result != nil:
				b.end()
				return batchDoneMsg{b: b, summary: ev.Result.Summary, err: writeAnswers(b.out, ev.Result.Items)}
			}
		}
	}
}

// watchCmd starts the watch, after autostart when it is set.
func watchCmd(ctx context.Context, c Daemon, autostart func(context.Context) error) tea.Cmd {
	return func() tea.Msg {
		if autostart != nil {
			autostart(ctx) // a daemon that did not start shows as down
		}
		w, err := c.Watch(ctx, 4)
		if err != nil {
			return downMsg{err}
		}
		return nextStatus(ctx, w)()
	}
}

// nextStatus waits for the watch's next snapshot.
func nextStatus(ctx context.Context, w Watcher) tea.Cmd {
	return func() tea.Msg {
		st, err := w.Next(ctx)
		if err != nil {
			w.Close()
			return downMsg{err}
		}
		return statusMsg{w: w, st: st}
	}
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return tickMsg{} })
}

// loadBatch reads a JSONL file of chat requests, one per line.
func loadBatch(path string) tea.Cmd {
	return func() tea.Msg {
		msg := batchLoadedMsg{name: filepath.Base(path), out: answersPath(path)}
		f, err := os.Open(path)
		if err != nil {
			msg.err = err
			return msg
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 64<<20)
		for n := 1; sc.Scan(); n++ {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			if line[0] != '{' || !json.Valid(line) {
				msg.err = fmt.Errorf("%s:%d: not a JSON object", path, n)
				return msg
			}
			msg.reqs = append(msg.reqs, json.RawMessage(bytes.Clone(line)))
		}
		if err := sc.Err(); err != nil {
			msg.err = err
		} else if len(msg.reqs) == 0 {
			msg.err = fmt.Errorf("%s holds no requests", path)
		}
		return msg
	}
}

// answersPath is where a batch file's answers go: x.jsonl → x.answers.jsonl.
func answersPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".answers.jsonl"
}

// writeAnswers writes the items, one JSON line each in input order, to path
// atomically, in the lines lbgpt batch writes: {"index","response","lbgpt"}
// or {"index","error"}; "" writes nothing.
func writeAnswers(path string, items []rpc.BatchItem) error {
	if path == "" {
		return nil
	}
	type line struct {
		Index    int             `json:"index"`
		Response json.RawMessage `json:"response,omitempty"`
		Meta     *rpc.Meta       `json:"lbgpt,omitempty"`
		Error    *rpc.Error      `json:"error,omitempty"`
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, it := range items {
		l := line{Index: it.Index, Error: it.Error}
		if it.Result != nil {
			l.Response, l.Meta = it.Result.Response, &it.Result.Meta
		}
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
