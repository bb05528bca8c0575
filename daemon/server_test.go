package daemon

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

const hangingBackend = `version = 1
[[backend]]
name = "a"
type = "openai"
base_url = "{{URL}}/v1"
api_key_env = "KEY_A"
`

// readLine reads the next line the daemon sends on c.
func (c *rawConn) readLine() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("no line from the daemon: %v", err)
	}
	return line
}

// What makes a request invalid is named, with the request's id when it
// had a valid one, and the connection goes on.
func TestInvalidRequests(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	c := dialRaw(t, h.socket)
	for _, tt := range []struct {
		line  string
		id    any // the response's id
		field string
	}{
		{`{"id":9,"method":"status"}`, float64(9), "jsonrpc"},
		{`{"jsonrpc":"1.0","id":9,"method":"status"}`, float64(9), "jsonrpc"},
		{`{"jsonrpc":"2.0","id":9,"method":"status","extra":1}`, float64(9), "extra"},
		{`{"jsonrpc":"2.0","id":{},"method":"status"}`, nil, "id"},
		{`{"jsonrpc":"2.0","id":"s","method":"status","params":"x"}`, "s", "params"},
		{`{"jsonrpc":"2.0","id":9,"method":7}`, float64(9), "method"},
		{`{"jsonrpc":"2.0","id":9}`, float64(9), "method"},
	} {
		reply := c.send(tt.line)
		e, _ := reply["error"].(map[string]any)
		data, _ := e["data"].(map[string]any)
		if errorCode(reply) != rpc.CodeInvalidRequest || reply["id"] != tt.id || data["field"] != tt.field {
			t.Errorf("%s: %v, want -32600 with id %v naming %q", tt.line, reply, tt.id, tt.field)
		}
	}
	if reply := c.send(`[]`); errorCode(reply) != rpc.CodeInvalidRequest || reply["id"] != nil {
		t.Errorf("empty batch: %v", reply)
	}
	if reply := c.send(`{"jsonrpc":"2.0","id":"next","method":"status"}`); reply["result"] == nil {
		t.Errorf("status after the invalid requests: %v", reply)
	}
}

// A batch is answered with one line: a response per call, in order, none
// for its notifications; a batch of notifications only is not answered.
func TestJSONRPCBatch(t *testing.T) {
	h := start(t, oneAccount(), anyModel)
	c := dialRaw(t, h.socket)
	c.nc.Write([]byte(`[{"jsonrpc":"2.0","id":1,"method":"status"},{"jsonrpc":"2.0","method":"cancel","params":{"id":99}},42,{"jsonrpc":"2.0","id":"u","method":"nope"}]` + "\n"))
	var got []struct {
		ID     any             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *rpc.Error      `json:"error"`
	}
	if line := c.readLine(); json.Unmarshal(line, &got) != nil || len(got) != 3 {
		t.Fatalf("batch answered %s, want an array of 3", line)
	}
	if got[0].ID != float64(1) || got[0].Result == nil {
		t.Errorf("the status call: %+v", got[0])
	}
	if got[1].ID != nil || got[1].Error == nil || got[1].Error.Code != rpc.CodeInvalidRequest {
		t.Errorf("an element that is not an object: %+v", got[1])
	}
	if got[2].ID != "u" || got[2].Error == nil || got[2].Error.Code != rpc.CodeMethodNotFound {
		t.Errorf("an unknown method: %+v", got[2])
	}
	c.nc.Write([]byte(`[{"jsonrpc":"2.0","method":"cancel","params":{"id":1}}]` + "\n"))
	if reply := c.send(`{"jsonrpc":"2.0","id":2,"method":"status"}`); reply["id"] != float64(2) {
		t.Errorf("after a batch of notifications, the next line read is %v: it was answered", reply)
	}
}

// An id may not be reused while its call runs on the connection; once the
// call has its response, it may.
func TestDuplicateIDRefused(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, Faults: sim.Faults{Hang: 1}}}}, hangingBackend)
	c := dialRaw(t, h.socket)
	const hang = `{"jsonrpc":"2.0","id":5,"method":"chat","params":{"request":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hang"}]}}}`
	c.nc.Write([]byte(hang + "\n"))
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 1 })
	if reply := c.send(hang); errorCode(reply) != rpc.CodeInvalidRequest || reply["id"] != float64(5) {
		t.Fatalf("a second call with a running call's id: %v, want -32600", reply)
	}
	if h.daemon.pool.State()[0].Requests > 1 {
		t.Error("the refused call went upstream")
	}
	c.nc.Write([]byte(`{"jsonrpc":"2.0","method":"cancel","params":{"id":5}}` + "\n"))
	var first map[string]any
	if json.Unmarshal(c.readLine(), &first); errorCode(first) != rpc.CodeCanceled || first["id"] != float64(5) {
		t.Fatalf("the canceled call: %v", first)
	}
	if reply := c.send(`{"jsonrpc":"2.0","id":5,"method":"status"}`); reply["result"] == nil {
		t.Errorf("id 5 once its call ended: %v", reply)
	}
}
