package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/rpc"
)

// FuzzServe sends one arbitrary line, then a status request, and checks
// that the daemon answers the status request on the same connection:
// nothing a client sends can wedge or crash it.
func FuzzServe(f *testing.F) {
	for _, seed := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"status"}`,
		`{"jsonrpc":"2.0","id":1,"method":"chat","params":{"request":{"model":"m","messages":[]}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"chat","params":{"request":{"model":"m","messages":[{"role":"user","content":"x"}]},"options":{"timeout":0.001}}}`,
		`{"jsonrpc":"2.0","method":"cancel","params":{"id":1}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"status"},{"jsonrpc":"2.0","id":2}]`,
		`{"jsonrpc":"2.0","id":{},"method":"status"}`,
		`{`, `null`, `[]`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	cfg, err := config.Parse([]byte("version = 1\n[daemon]\nmax_attempts = 1\nrequest_timeout = \"5ms\"\nmax_message_bytes = 65536\n[[backend]]\nname = \"nowhere\"\ntype = \"openai-compatible\"\nbase_url = \"http://127.0.0.1:1/v1\"\n"), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	d, err := New(Options{Config: cfg, StateDir: f.TempDir()}) // the cache file there
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { d.Close() })
	f.Fuzz(func(t *testing.T, line []byte) {
		server, conn := net.Pipe()
		done := make(chan struct{})
		go func() { d.serveConn(server); close(done) }()
		defer func() { conn.Close(); <-done }()
		line = bytes.ReplaceAll(line, []byte("\n"), nil)
		go conn.Write(append(append(line, '\n'), []byte(`{"jsonrpc":"2.0","id":"probe","method":"status"}`+"\n")...))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(conn)
		for {
			reply, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatalf("no answer to the status request after %q: %v", line, err)
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(reply, &m) == nil && string(m.ID) == `"probe"` {
				if len(m.Result) == 0 {
					t.Fatalf("status after %q failed: %s", line, reply)
				}
				return
			}
		}
	})
}

// FuzzQuickMessage holds the fast parse of a request line to the decoding
// one: whatever it accepts, decodeMessage accepts as the same message.
func FuzzQuickMessage(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"chat","params":{"request":{"model":"m","messages":[]}}}`,
		`{"jsonrpc":"2.0","id":"a\"b","method":"status"}`,
		`{"jsonrpc":"2.0","method":"cancel","params":[1]}`,
		` {"id":-1.5e3,"jsonrpc":"2.0","method":"x","params":null,"id":2} `,
		`{"jsonrpc":"2.0","id":1,"method":"st\u0061tus"}`,
		`{"jsonrpc":"2.0","id":1,"method":"chat","params":"x"}`,
		`{"jsonrpc":"2.0","id":null,"method":"chat"}`,
		`{"j\u0073onrpc":"2.0","id":1,"method":"chat"}`,
		`[{"jsonrpc":"2.0","id":1,"method":"status"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		q, ok := quickMessage(line)
		if !ok {
			return
		}
		d, err := decodeMessage(line)
		if err != nil {
			t.Fatalf("quickMessage accepted %q, decodeMessage refused it: %v", line, err.Message)
		}
		if !bytes.Equal(q.id, d.id) || q.method != d.method || !bytes.Equal(q.params, d.params) {
			t.Fatalf("%q: quickMessage %s %q %s, decodeMessage %s %q %s", line, q.id, q.method, q.params, d.id, d.method, d.params)
		}
	})
}

// FuzzSplitChatParams holds the fast split of chat params to the strict
// decoder: whatever it accepts, the decoder reads the same.
func FuzzSplitChatParams(f *testing.F) {
	for _, s := range []string{
		`{"request":{"model":"m","messages":[{"role":"user","content":"a \"b\"\n"}]}}`,
		`{"request":{"model":"m"},"options":{"namespace":"n","timeout":"30s","no_cache":true}}`,
		`{"options":{"namespace":"a"},"options":{"timeout":5},"request":null}`,
		`{"request":{},"options":{"nope":1}}`,
		`{"request":{},"extra":1}`,
		`{"req\u0075est":{}}`,
		`{"request":[1,2],"options":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		if !json.Valid(params) {
			return // params come from a line already checked
		}
		var q rpc.ChatParams
		if !splitChatParams(params, &q) {
			return
		}
		var d rpc.ChatParams
		if err := decodeStrict(params, &d); err != nil {
			t.Fatalf("splitChatParams accepted %q, the decoder refused it: %v", params, err)
		}
		if !bytes.Equal(q.Request, d.Request) || !reflect.DeepEqual(q.Options, d.Options) {
			t.Fatalf("%q: split %s %+v, decoded %s %+v", params, q.Request, q.Options, d.Request, d.Options)
		}
	})
}
