package config

import (
	"strings"
	"testing"
)

func TestHTTP(t *testing.T) {
	const backend = "\n[[backend]]\nname = \"a\"\ntype = \"openai-compatible\"\nbase_url = \"http://localhost:8000/v1\"\n"
	tests := []struct {
		name string
		http string
		want HTTP
		err  string
	}{
		{"off by default", "", HTTP{}, ""},
		{"body limit", "max_body_bytes = 2048", HTTP{MaxBodyBytes: 2048}, ""},
		{"body limit too small", "max_body_bytes = 10", HTTP{}, "http: max_body_bytes must be from 1024"},
		{"ipv4 loopback", `listen = "127.0.0.1:8088"`, HTTP{Listen: "127.0.0.1:8088"}, ""},
		{"other loopback", `listen = "127.0.0.2:0"`, HTTP{Listen: "127.0.0.2:0"}, ""},
		{"ipv6 loopback", `listen = "[::1]:8088"`, HTTP{Listen: "[::1]:8088"}, ""},
		{"localhost and socket", "listen = \"localhost:8088\"\nsocket = \"/run/user/1000/lbgpt/http.sock\"", HTTP{Listen: "localhost:8088", Socket: "/run/user/1000/lbgpt/http.sock"}, ""},
		{"every interface", `listen = ":8088"`, HTTP{}, `test.toml:3: http: listen ":8088": no host means every interface`},
		{"public address", `listen = "0.0.0.0:8088"`, HTTP{}, `not a loopback address`},
		{"lan address", `listen = "192.168.1.10:8088"`, HTTP{}, `not a loopback address`},
		{"host name", `listen = "example.com:8088"`, HTTP{}, `the host must be a loopback IP address`},
		{"no port", `listen = "127.0.0.1"`, HTTP{}, `want HOST:PORT`},
		{"bad port", `listen = "127.0.0.1:http"`, HTTP{}, `the port must be a number`},
		{"relative socket", `socket = "http.sock"`, HTTP{}, `test.toml:3: http: socket must be an absolute path`},
		{"daemon's socket", "socket = \"/tmp/x/d.sock\"\n[daemon]\nsocket = \"/tmp/x/d.sock\"", HTTP{}, `http: socket must differ from [daemon] socket`},
		{"misspelt key", `lisen = "127.0.0.1:8088"`, HTTP{}, `unknown key "lisen" in [http] (did you mean "listen"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte("version = 1\n[http]\n"+tt.http+"\n"+backend), "test.toml")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.MaxBodyBytes == 0 {
				tt.want.MaxBodyBytes = DefaultMaxBodyBytes
			}
			if c.HTTP != tt.want || c.HTTP.Enabled() != (tt.want.Listen != "" || tt.want.Socket != "") {
				t.Errorf("http = %+v, want %+v", c.HTTP, tt.want)
			}
		})
	}
}
