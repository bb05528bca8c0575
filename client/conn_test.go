package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// TestErrorWithoutID checks what an error the daemon could not tie to a
// request does to a stream in flight on the same connection: only a
// refusal of the user ends it.
func TestErrorWithoutID(t *testing.T) {
	tests := []struct {
		name    string
		errLine string
		wantErr error // nil: the stream completes
	}{
		{"too large, id not found", `{"jsonrpc":"2.0","id":null,"error":{"code":-32008,"message":"message too large: lines are limited to 4096 bytes"}}`, nil},
		{"parse error", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`, nil},
		{"no id member", `{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid request"}}`, nil},
		{"permission", `{"jsonrpc":"2.0","id":null,"error":{"code":-32009,"message":"permission denied: uid 1000 was refused"}}`, rpc.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socket := socketPath(t)
			newFake(t, socket, func(msg map[string]any, send func(string)) {
				if msg["method"] != rpc.MethodChat {
					return
				}
				id := idOf(msg)
				chunk := func(s string) {
					send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":%s,"chunk":{"choices":[{"delta":{"content":%q}}]}}}`, id, s))
				}
				chunk("Hel")
				send(tt.errLine)
				chunk("lo")
				send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"response":{},"lbgpt":{"backend":"x","streamed":true}}}`, id))
			})
			c := &Client{Socket: socket}
			defer c.Close()
			var text strings.Builder
			var final *rpc.ChatResult
			var err error
			for ev, e := range c.ChatStream(t.Context(), json.RawMessage(`{"model":"m","messages":[]}`), rpc.Options{}) {
				if e != nil {
					err = e
					break
				}
				if ev.Result != nil {
					final = ev.Result
				}
				text.WriteString(DeltaText(ev.Chunk))
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || text.String() != "Hello" || final == nil {
				t.Errorf("streamed %q, final %+v, err %v; want the whole stream", text.String(), final, err)
			}
		})
	}
}

func TestTooLargeRequestFailsLocally(t *testing.T) {
	socket := socketPath(t)
	release := make(chan struct{})
	f := newFake(t, socket, func(msg map[string]any, send func(string)) {
		id := idOf(msg)
		result := `{"jsonrpc":"2.0","id":` + id + `,"result":{"response":{},"lbgpt":{"backend":"x"}}}`
		req := msg["params"].(map[string]any)["request"].(map[string]any)
		if req["stream"] != true {
			send(result) // the large request, if it ever came
			return
		}
		chunk := `{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":` + id + `,"chunk":{"choices":[{"delta":{"content":"a"}}]}}}`
		send(chunk)
		go func() {
			<-release
			send(chunk)
			send(result)
		}()
	})
	const limit = 4096
	c := &Client{Socket: socket, MaxMessageBytes: limit}
	defer c.Close()
	big := map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": strings.Repeat("x", limit)}}}

	chunks := 0
	var final *rpc.ChatResult
	for ev, err := range c.ChatStream(t.Context(), json.RawMessage(`{"model":"m","messages":[]}`), rpc.Options{}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		if ev.Result != nil {
			final = ev.Result
			continue
		}
		chunks++
		if chunks > 1 {
			continue
		}
		// The stream is in flight: a request over the limit fails at
		// once, without being sent.
		_, err := c.Chat(t.Context(), big, rpc.Options{})
		var re *rpc.Error
		if !errors.As(err, &re) || !errors.Is(err, rpc.ErrTooLarge) {
			t.Fatalf("large request: err = %v, want an *rpc.Error of code %d", err, rpc.CodeTooLarge)
		}
		m := regexp.MustCompile(`^request of (\d+) bytes exceeds the 4096-byte message limit \(daemon\.max_message_bytes\)$`).FindStringSubmatch(re.Message)
		if m == nil {
			t.Errorf("message %q", re.Message)
		} else if n, _ := strconv.Atoi(m[1]); n <= limit {
			t.Errorf("message %q: %d bytes is within the limit", re.Message, n)
		}
		close(release)
	}
	if chunks != 2 || final == nil {
		t.Errorf("the stream gave %d chunks and result %+v, want 2 and a result", chunks, final)
	}
	for _, m := range f.messages() {
		if r := m["params"].(map[string]any)["request"].(map[string]any); r["stream"] != true {
			t.Errorf("the daemon received the large request")
		}
	}
	// The connection is still good.
	if _, err := c.Chat(t.Context(), json.RawMessage(`{"model":"m","messages":[]}`), rpc.Options{}); err != nil {
		t.Errorf("a call after the refused one: %v", err)
	}
}

// The reader takes the daemon's own result lines apart without decoding
// them; anything else is left to the full decode.
func TestOwnResult(t *testing.T) {
	for _, tt := range []struct {
		line   string
		id     int64
		result string
		ok     bool
	}{
		{`{"jsonrpc":"2.0","id":7,"result":{"a":1}}`, 7, `{"a":1}`, true},
		{`{"jsonrpc":"2.0","id":12,"result":null}`, 12, `null`, true},
		{`{"jsonrpc":"2.0","id":"7","result":{}}`, 0, "", false},
		{`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"x"}}`, 0, "", false},
		{`{"jsonrpc": "2.0","id":7,"result":{}}`, 0, "", false},
		{`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":7}}`, 0, "", false},
		{`{"jsonrpc":"2.0","id":7,"result":`, 0, "", false},
	} {
		id, result, ok := ownResult([]byte(tt.line))
		if ok != tt.ok || id != tt.id || string(result) != tt.result {
			t.Errorf("%s: %d %q %v, want %d %q %v", tt.line, id, result, ok, tt.id, tt.result, tt.ok)
		}
	}
}

// splitChatResult reads what json.Unmarshal reads from lbgptd's form of a
// chat result, and declines every other form (decoded whole instead).
func TestSplitChatResult(t *testing.T) {
	for _, tt := range []struct {
		name, result string
		split        bool
	}{
		{"the daemon's form", `{"response":{"id":"c","choices":[{"message":{"content":"hi"}}]},"lbgpt":{"backend":"a","cache":"exact","latency_ms":1.5}}`, true},
		{"the separator inside the answer's text", `{"response":{"choices":[{"message":{"content":"x\",\"lbgpt\":{\"cache\":\"exact\"}"}}]},"lbgpt":{"cache":"miss","warning":"w ,\"lbgpt\":{"}}`, true},
		{"an lbgpt member in the answer", `{"response":{"extra":{"a":1},"lbgpt":{"cache":"exact"}},"lbgpt":{"cache":"miss"}}`, true},
		{"white space", `{"response": {"id":"c"}, "lbgpt": {"cache":"miss"}}`, false},
		{"the other order", `{"lbgpt":{"cache":"miss"},"response":{"id":"c"}}`, false},
		{"a member after", `{"response":{"id":"c"},"lbgpt":{"cache":"miss"},"x":1}`, false},
		{"meta not an object", `{"response":{"id":"c"},"lbgpt":"miss"}`, false},
		{"no response", `{"response":,"lbgpt":{}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got rpc.ChatResult
			ok := splitChatResult([]byte(tt.result), &got)
			if ok != tt.split {
				t.Fatalf("split = %v, want %v", ok, tt.split)
			}
			if !ok {
				return
			}
			var want rpc.ChatResult
			if err := json.Unmarshal([]byte(tt.result), &want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Response, want.Response) || !reflect.DeepEqual(got.Meta, want.Meta) {
				t.Errorf("split: %s %+v\nwant:  %s %+v", got.Response, got.Meta, want.Response, want.Meta)
			}
		})
	}
}

// rawFake is a daemon whose connections the test drives line by line.
func rawFake(t *testing.T, socket string) <-chan net.Conn {
	t.Helper()
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			conns <- nc
		}
	}()
	return conns
}

// readID reads the client's next request and returns its id, skipping
// notifications (a cancel).
func readID(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			t.Errorf("daemon side: %v", err)
			return ""
		}
		var msg struct{ ID json.RawMessage }
		if err := json.Unmarshal(line, &msg); err != nil {
			t.Errorf("daemon side: %q: %v", line, err)
			return ""
		}
		if msg.ID != nil {
			return string(msg.ID)
		}
	}
}

func statusLine(id, version string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"result":{"version":"` + version + `"}}` + "\n"
}

// TestIdleConnectionClosedByDaemon: a daemon that closed an idle connection
// (it restarted) costs the next call nothing: its request, which did not
// reach it, goes again on a new connection.
func TestIdleConnectionClosedByDaemon(t *testing.T) {
	socket := socketPath(t)
	conns := rawFake(t, socket)
	c := &Client{Socket: socket}
	defer c.Close()
	go func() {
		nc := <-conns
		r := bufio.NewReader(nc)
		io.WriteString(nc, statusLine(readID(t, r), "old"))
		nc.Close()
		nc = <-conns
		io.WriteString(nc, statusLine(readID(t, bufio.NewReader(nc)), "new"))
	}()
	for _, want := range []string{"old", "new"} {
		st, err := c.Status(t.Context())
		if err != nil || st.Version != want {
			t.Fatalf("Status = %+v, %v; want version %s", st, err, want)
		}
	}
}

// TestReaderLeavesInTheMiddleOfALine: a call whose context ends while it
// reads the connection, with half of a line read, leaves the reading to
// the next call without losing a byte, and a call waiting on another
// takes the reading over.
func TestReaderLeavesInTheMiddleOfALine(t *testing.T) {
	socket := socketPath(t)
	conns := rawFake(t, socket)
	c := &Client{Socket: socket}
	defer c.Close()
	first := make(chan string)
	go func() {
		nc := <-conns
		r := bufio.NewReader(nc)
		id := readID(t, r)
		line := statusLine(id, "late")
		io.WriteString(nc, line[:20]) // half of the first call's answer
		first <- id
		id2 := readID(t, r)
		io.WriteString(nc, line[20:]+statusLine(id2, "second"))
	}()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Status(ctx)
		done <- err
	}()
	<-first
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first call: %v, want canceled", err)
	}
	st, err := c.Status(t.Context())
	if err != nil || st.Version != "second" {
		t.Fatalf("second call = %+v, %v", st, err)
	}
}

// TestReadingPassesOn: of two calls waiting, the one reading gives up (its
// context ends); the other reads on and gets its answer.
func TestReadingPassesOn(t *testing.T) {
	for range 20 { // either call may be the one reading
		socket := socketPath(t)
		conns := rawFake(t, socket)
		c := &Client{Socket: socket}
		seen := make(chan string, 2)
		answer := make(chan string)
		go func() {
			nc := <-conns
			r := bufio.NewReader(nc)
			seen <- readID(t, r)
			seen <- readID(t, r)
			io.WriteString(nc, statusLine(<-answer, "kept"))
		}()
		ctx, cancel := context.WithCancel(t.Context())
		quit := make(chan error, 1)
		go func() {
			_, err := c.Status(ctx)
			quit <- err
		}()
		firstID := <-seen // the canceled call's, sent first
		kept := make(chan error, 1)
		go func() {
			st, err := c.Status(t.Context())
			if err == nil && st.Version != "kept" {
				err = fmt.Errorf("version %q", st.Version)
			}
			kept <- err
		}()
		secondID := <-seen
		cancel()
		if err := <-quit; !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled call: %v", err)
		}
		if firstID == secondID {
			t.Fatalf("ids %s %s", firstID, secondID)
		}
		answer <- secondID
		if err := <-kept; err != nil {
			t.Fatalf("waiting call: %v", err)
		}
		c.Close()
	}
}

// TestOpenStreamIsReadMeanwhile: while a watch or a stream is open, the
// connection is read even when nobody waits on it, so what the daemon
// sends (more than a socket holds) does not wait for a consumer busy
// elsewhere: lbgptd closes the connection of a client that stops reading.
// Then the watch's Next returns the newest snapshot, and the stream's
// chunks come out in order.
func TestOpenStreamIsReadMeanwhile(t *testing.T) {
	const notes = 600 // ~1.2 MB: several times what a Unix socket holds
	pad := strings.Repeat("x", 2000)
	for _, watch := range []bool{true, false} {
		socket := socketPath(t)
		conns := rawFake(t, socket)
		written := make(chan error, 1)
		go func() {
			nc := <-conns
			id := readID(t, bufio.NewReader(nc))
			w := bufio.NewWriter(nc)
			for i := range notes {
				if watch {
					fmt.Fprintf(w, `{"jsonrpc":"2.0","method":%q,"params":{"id":%s,"status":{"version":"v%d","backends":[{"name":%q}]}}}`+"\n", rpc.NotifyWatchStatus, id, i, pad)
				} else {
					fmt.Fprintf(w, `{"jsonrpc":"2.0","method":%q,"params":{"id":%s,"chunk":{"choices":[{"delta":{"content":"%d %s"}}]}}}`+"\n", rpc.NotifyChatChunk, id, i, pad)
				}
			}
			if !watch {
				fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"response":{},"lbgpt":{}}}`+"\n", id)
			}
			written <- w.Flush()
		}()
		c := &Client{Socket: socket}
		wait := func() {
			select {
			case err := <-written:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("watch %v: the daemon's %d notifications were not read while the consumer was busy", watch, notes)
			}
		}
		if watch {
			w, err := c.Watch(t.Context(), 0)
			if err != nil {
				t.Fatal(err)
			}
			wait() // no Next meanwhile
			// All was written: all but what the socket holds (under 150 of
			// these lines) was read. Next returns the newest read, and
			// each Next a newer one, up to the last.
			for last := -1; last < notes-1; {
				st, err := w.Next(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				var v int
				fmt.Sscanf(st.Version, "v%d", &v)
				if v <= last || last < 0 && v < notes-150 {
					t.Fatalf("Next returned %s after v%d: a backlog, not the newest", st.Version, last)
				}
				last = v
			}
			w.Close()
		} else {
			n := 0
			for ev, err := range c.ChatStream(t.Context(), map[string]any{"model": "m", "messages": []any{}}, rpc.Options{}) {
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					wait() // the consumer busy after its first event
				}
				if ev.Chunk != nil && !strings.HasPrefix(DeltaText(ev.Chunk), fmt.Sprint(n, " ")) {
					t.Fatalf("chunk %d: %.20q", n, DeltaText(ev.Chunk))
				}
				n++
			}
			if n != notes+1 {
				t.Errorf("%d events, want %d chunks and the result", n, notes+1)
			}
		}
		c.Close()
	}
}

// TestCloseFailsTheCallBeingWritten: Client.Close fails the calls in
// flight, even one whose request it cut in the middle of its write: that
// request is not sent again on a new connection.
func TestCloseFailsTheCallBeingWritten(t *testing.T) {
	socket := socketPath(t)
	conns := rawFake(t, socket)
	c := &Client{Socket: socket, MaxMessageBytes: 32 << 20}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Chat(t.Context(), map[string]any{"model": "m", "messages": []any{map[string]any{"role": "user", "content": strings.Repeat("a", 8<<20)}}}, rpc.Options{})
		errc <- err
	}()
	first := <-conns
	if _, err := io.CopyN(io.Discard, first, 64<<10); err != nil { // the write has begun, and waits for the daemon to read on
		t.Fatal(err)
	}
	c.Close()
	go io.Copy(io.Discard, first)
	go func() { // a second connection, if any, is answered
		for nc := range conns {
			r := bufio.NewReaderSize(nc, 64<<10)
			io.WriteString(nc, `{"jsonrpc":"2.0","id":`+readID(t, r)+`,"result":{"response":{},"lbgpt":{}}}`+"\n")
		}
	}()
	if err := <-errc; err == nil {
		t.Fatal("the call being written when the Client closed succeeded")
	}
	c.mu.Lock()
	redialed := c.conn != nil
	c.mu.Unlock()
	if redialed {
		t.Error("the Client dialed again after Close to send the request a second time")
	}
}
