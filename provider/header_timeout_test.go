package provider

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// A call's HeaderTimeout ends a call whose upstream accepted the request
// and says nothing; once the headers are in, it no longer applies: a
// stream may take longer than it.
func TestHeaderTimeout(t *testing.T) {
	silent := upstream(t, hang)
	p := newProvider(t, openaiBackend(silent.URL))
	c := streamCall("gpt-4o-mini")
	c.HeaderTimeout = 100 * time.Millisecond
	start := time.Now()
	_, err := p.Open(t.Context(), c)
	pe := asError(t, err)
	if pe.Kind != KindTimeout || pe.Code != CodeNoHeaders || time.Since(start) > 2*time.Second {
		t.Errorf("after %s: %q %q: %v", time.Since(start), pe.Kind, pe.Code, err)
	}
	if !errors.Is(err, errNoHeaders) {
		t.Errorf("%v is not errNoHeaders", err)
	}

	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, c := range []string{"a", "b", "c"} {
			io.WriteString(w, chatChunk(c))
			w.(http.Flusher).Flush()
			time.Sleep(80 * time.Millisecond)
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	p = newProvider(t, openaiBackend(slow.URL))
	s, err := p.Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for {
		_, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d events", n)
	}
	// A whole answer that comes in time is read whole.
	whole := upstream(t, reply(200, chatOK))
	p = newProvider(t, openaiBackend(whole.URL))
	pc := chatCall("gpt-4o-mini")
	pc.HeaderTimeout = time.Second
	if res, err := p.Send(t.Context(), pc); err != nil || string(res.Body) != chatOK {
		t.Errorf("Send: %v %s", err, res.Body)
	}
}
