package daemon

import (
	"encoding/json"
	"strings"
	"testing"
)

// An explicit zero temperature or top_p must reach the upstream: go-openai
// drops zero floats, which would silently turn greedy sampling into the
// model's default.
func TestParseChatRequestKeepsExplicitZeros(t *testing.T) {
	tests := []struct {
		name, raw string
		want      []string // fields the upstream request must carry
		absent    []string // fields it must not
	}{
		{"zero temperature", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}`, []string{`"temperature":1e-45`}, []string{"top_p"}},
		{"zero top_p", `{"model":"m","messages":[{"role":"user","content":"hi"}],"top_p":0.0}`, []string{`"top_p":1e-45`}, []string{"temperature"}},
		{"absent", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil, []string{"temperature", "top_p"}},
		{"non-zero", `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.7}`, []string{`"temperature":0.7`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseChatRequest(json.RawMessage(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(req.req)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("upstream request %s lacks %s", b, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(string(b), a) {
					t.Errorf("upstream request %s has %s", b, a)
				}
			}
		})
	}
}
