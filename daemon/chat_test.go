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
