package main

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/rpc"
)

func TestAskJSONPrintsOnlyJSON(t *testing.T) {
	f := newFake(t, func(msg map[string]any, send func(string)) {
		if msg["method"] != rpc.MethodChat {
			return
		}
		id := idOf(msg)
		req := msg["params"].(map[string]any)["request"].(map[string]any)
		if req["stream"] == true {
			for _, part := range []string{"Hel", "lo"} {
				send(`{"jsonrpc":"2.0","method":"chat.chunk","params":{"id":` + id + `,"chunk":{"choices":[{"delta":{"content":"` + part + `"}}]}}}`)
			}
		}
		send(`{"jsonrpc":"2.0","id":` + id + `,"result":{"response":{"choices":[{"message":{"content":"Hello"}}]},` +
			`"lbgpt":{"backend":"b","attempts":1,"streamed":` + map[bool]string{true: "true", false: "false"}[req["stream"] == true] + `}}}`)
	})
	for _, stream := range []string{"always", "never", "auto"} {
		t.Run("stream "+stream, func(t *testing.T) {
			stdout, stderr, code := runCtx(t.Context(), "", "ask", "--socket", f.socket, "--no-autostart", "--json", "--stream", stream, "hi")
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			// Exactly one JSON object, and nothing else.
			dec := json.NewDecoder(strings.NewReader(stdout))
			var res rpc.ChatResult
			if err := dec.Decode(&res); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout)
			}
			var extra any
			if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
				t.Errorf("stdout has more than one JSON object (%v):\n%s", err, stdout)
			}
			if res.Meta.Streamed != (stream == "always") || res.Meta.Backend != "b" {
				t.Errorf("result %+v", res)
			}
		})
	}
}

func TestSocketHelpNamesTheDefaults(t *testing.T) {
	const chain = "default $LBGPT_SOCKET, else $XDG_RUNTIME_DIR/lbgpt/lbgptd.sock, else /tmp/lbgpt-$UID/lbgptd.sock"
	for _, cmd := range []string{"ask", "batch", "status"} {
		t.Run(cmd, func(t *testing.T) {
			stdout, _, code := runCtx(t.Context(), "", cmd, "--help")
			if code != 0 {
				t.Errorf("exit %d", code)
			}
			if !strings.Contains(stdout, chain) {
				t.Errorf("lbgpt %s --help does not name the default socket chain %q:\n%s", cmd, chain, stdout)
			}
		})
	}
}
