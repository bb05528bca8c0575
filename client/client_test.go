package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// fakeDaemon is a hand-written JSON-RPC peer: handle decides what to send
// back for each message received.
type fakeDaemon struct {
	ln     net.Listener
	handle func(msg map[string]any, send func(string))
	mu     sync.Mutex
	seen   []map[string]any
}

func newFake(t *testing.T, socket string, handle func(msg map[string]any, send func(string))) *fakeDaemon {
	t.Helper()
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, ln, handle)
}

// serveFake serves ln as a fake daemon until the test ends.
func serveFake(t *testing.T, ln net.Listener, handle func(msg map[string]any, send func(string))) *fakeDaemon {
	f := &fakeDaemon{ln: ln, handle: handle}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(nc)
		}
	}()
	return f
}

func (f *fakeDaemon) serve(nc net.Conn) {
	defer nc.Close()
	var wmu sync.Mutex
	send := func(line string) {
		wmu.Lock()
		defer wmu.Unlock()
		fmt.Fprintln(nc, line)
	}
	sc := bufio.NewScanner(nc)
	for sc.Scan() {
		var msg map[string]any
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, msg)
		f.mu.Unlock()
		f.handle(msg, send)
	}
}

func (f *fakeDaemon) messages() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.seen...)
}

func idOf(msg map[string]any) string {
	b, _ := json.Marshal(msg["id"])
	return string(b)
}

func socketPath(t *testing.T) string { return filepath.Join(t.TempDir(), "d.sock") }

func TestNotRunning(t *testing.T) {
	c := &Client{Socket: socketPath(t)}
	_, err := c.Status(t.Context())
	if !errors.Is(err, ErrDaemonNotRunning) {
		t.Fatalf("err = %v, want ErrDaemonNotRunning", err)
	}
	if !strings.Contains(err.Error(), "start it with `lbgptd`") || !strings.Contains(err.Error(), c.Socket) {
		t.Errorf("message does not say how to start the daemon: %v", err)
	}
}

func TestConcurrentCallsMatchByID(t *testing.T) {
	socket := socketPath(t)
	// Answers every chat with its own prompt, after holding the first
	// request until the second arrived: responses come back out of order.
	var mu sync.Mutex
	var held []func()
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		req := msg["params"].(map[string]any)["request"].(map[string]any)
		content := req["messages"].([]any)[0].(map[string]any)["content"].(string)
		reply := func() {
			send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"response":{"choices":[{"message":{"content":%q}}]},"lbgpt":{"backend":"x"}}}`, idOf(msg), content))
		}
		mu.Lock()
		defer mu.Unlock()
		held = append(held, reply)
		if len(held) == 2 {
			held[1]()
			held[0]()
		}
	})
	c := &Client{Socket: socket}
	defer c.Close()
	var wg sync.WaitGroup
	for _, prompt := range []string{"first", "second"} {
		wg.Go(func() {
			res, err := c.Chat(t.Context(), map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": prompt}}}, rpc.Options{})
			if err != nil {
				t.Error(err)
				return
			}
			if got := AnswerText(res.Response); got != prompt {
				t.Errorf("call %q got answer %q", prompt, got)
			}
		})
	}
	wg.Wait()
}

func TestChatStream(t *testing.T) {
	socket := socketPath(t)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		id := idOf(msg)
		req := msg["params"].(map[string]any)["request"].(map[string]any)
		if req["stream"] != true {
			send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"not streamed"}}`, id))
			return
		}
		send(`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":999,"chunk":{"choices":[{"delta":{"content":"NOT MINE"}}]}}}`)
		for _, part := range []string{"Hel", "lo"} {
			send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":%s,"chunk":{"choices":[{"delta":{"content":%q}}]}}}`, id, part))
		}
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"response":{"choices":[{"message":{"content":"Hello"}}]},"lbgpt":{"backend":"x","streamed":true}}}`, id))
	})
	c := &Client{Socket: socket}
	defer c.Close()
	var text strings.Builder
	var final *rpc.ChatResult
	for ev, err := range c.ChatStream(t.Context(), json.RawMessage(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`), rpc.Options{}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Result != nil {
			final = ev.Result
			continue
		}
		text.WriteString(DeltaText(ev.Chunk))
	}
	if text.String() != "Hello" || final == nil || !final.Meta.Streamed {
		t.Errorf("streamed %q, final %+v", text.String(), final)
	}
}

func TestCancelIsSent(t *testing.T) {
	socket := socketPath(t)
	arrived := make(chan string, 1)
	f := newFake(t, socket, func(msg map[string]any, send func(string)) {
		if msg["method"] == rpc.MethodChat {
			arrived <- idOf(msg) // never answered
		}
	})
	c := &Client{Socket: socket}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() {
		_, err := c.Chat(ctx, map[string]any{"model": "m", "messages": []any{}}, rpc.Options{})
		errc <- err
	}()
	id := <-arrived
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || !errors.Is(err, rpc.ErrCanceled) {
		t.Errorf("err = %v", err)
	}
	// The cancel notification names the request.
	for range 200 {
		for _, m := range f.messages() {
			if m["method"] == rpc.MethodCancel && idOf(m["params"].(map[string]any)) == id && m["id"] == nil {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("no cancel notification for id %s in %v", id, f.messages())
}

func TestReconnectsAfterDaemonRestart(t *testing.T) {
	socket := socketPath(t)
	status := func(msg map[string]any, send func(string)) {
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"version":"v","backends":[]}}`, idOf(msg)))
	}
	f := newFake(t, socket, status)
	c := &Client{Socket: socket}
	defer c.Close()
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.ln.Close() // the daemon goes away...
	c.mu.Lock()
	c.conn.nc.Close()
	c.mu.Unlock()
	if _, err := c.Status(t.Context()); err == nil {
		t.Error("status succeeded with no daemon")
	}
	newFake(t, socket, status) // ...and comes back
	if _, err := c.Status(t.Context()); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

func TestRefusedConnection(t *testing.T) {
	socket := socketPath(t)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprintln(nc, `{"jsonrpc":"2.0","id":null,"error":{"code":-32009,"message":"permission denied: uid 1000 was refused"}}`)
		nc.Close()
	}()
	c := &Client{Socket: socket}
	defer c.Close()
	_, err = c.Status(t.Context())
	if !errors.Is(err, rpc.ErrPermission) || !strings.Contains(err.Error(), "uid 1000 was refused") {
		t.Errorf("err = %v, want the daemon's refusal", err)
	}
}
