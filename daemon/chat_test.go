package daemon

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
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

// withExtraField passes requests to next and adds a field go-openai does
// not know to every JSON object it answers (whole bodies and SSE chunks).
func withExtraField(next http.Handler) http.Handler {
	add := func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		m["x_vendor_extension"] = map[string]any{"kept": true}
		out, _ := json.Marshal(m)
		return out
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		maps.Copy(w.Header(), rec.Header())
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
			w.Write(add(body))
			return
		}
		for line := range bytes.Lines(body) {
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok && !bytes.HasPrefix(data, []byte("[DONE]")) {
				line = append(append([]byte("data: "), add(bytes.TrimSpace(data))...), '\n')
			}
			w.Write(line)
		}
	})
}

// Answers reach the client as the upstream sent them: a field go-openai
// does not model survives, and nothing go-openai would add on re-encoding
// (Azure's content_filter_results on an OpenAI answer) appears.
func TestAnswersPassThrough(t *testing.T) {
	s := sim.New(oneAccount())
	h := startHandler(t, s, withExtraField(s), anyModel)
	check := func(what string, b []byte) {
		t.Helper()
		if !bytes.Contains(b, []byte(`"x_vendor_extension":{"kept":true}`)) {
			t.Errorf("%s lost the upstream's own field: %s", what, b)
		}
		if bytes.Contains(b, []byte("content_filter_results")) {
			t.Errorf("%s gained fields the upstream did not send: %s", what, b)
		}
	}
	res, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "pass me through"), rpc.Options{NoStore: true})
	if err != nil {
		t.Fatal(err)
	}
	check("a plain answer", res.Response)
	req := userRequest("gpt-4o-mini", "pass my chunks through")
	req["stream"] = true
	st, err := streamAll(t, h, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.chunks) < 2 {
		t.Fatalf("%d chunks", len(st.chunks))
	}
	for _, c := range st.chunks {
		check("a streamed chunk", c)
	}
}
