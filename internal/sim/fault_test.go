package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const streamHello = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello there, how are you today?"}]}`

func TestFaultStatus(t *testing.T) {
	tests := []struct {
		name   string
		faults Faults
		status int
		fault  string
	}{
		{"500", Faults{Error500: 1}, 500, Fault500},
		{"502", Faults{Error502: 1}, 502, Fault502},
		{"503", Faults{Error503: 1}, 503, Fault503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", RPM: 5, Faults: tt.faults}}})
			for _, w := range wires {
				resp, b := w.call(t, ts.URL, "chat/completions", "k", hello)
				var e errorBody
				if resp.StatusCode != tt.status || json.Unmarshal([]byte(b), &e) != nil || e.Error.Type != "server_error" {
					t.Errorf("%s: got %d %s", w.name, resp.StatusCode, b)
				}
				if got := resp.Header.Get("X-Ratelimit-Remaining-Requests"); got != "5" {
					t.Errorf("%s: remaining requests %q, want 5: faults charge nothing", w.name, got)
				}
			}
			// Authentication comes first.
			if resp, _ := openaiWire.call(t, ts.URL, "chat/completions", "wrong", hello); resp.StatusCode != 401 {
				t.Errorf("wrong key: status %d, want 401", resp.StatusCode)
			}
			log := s.Log()
			if log[0].Fault != tt.fault || log[0].Status != tt.status || log[0].Charged != 0 || log[2].Fault != "" {
				t.Errorf("log %+v", log)
			}
			if st := s.Stats()["a"]; st.Faults != 2 || st.OK != 0 || st.Requests != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestFaultReset(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Reset: 1}}}})
	req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(hello))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("reset: got status %d, want a connection error", resp.StatusCode)
	}
	if r := s.Log()[0]; r.Fault != FaultReset || r.Status != 0 {
		t.Errorf("record %+v", r)
	}
}

func TestFaultHang(t *testing.T) {
	t.Run("client cancels", func(t *testing.T) {
		s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Hang: 1}}}})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/v1/chat/completions", strings.NewReader(hello))
		req.Header.Set("Authorization", "Bearer k")
		if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the client's deadline", err)
		}
		waitFor(t, "the handler to finish", func() bool { return s.Stats()["a"].Faults == 1 })
		if r := s.Log()[0]; r.Fault != FaultHang || r.Status != 0 {
			t.Errorf("record %+v", r)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Hang: 1}}}})
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(hello))
			req.Header.Set("Authorization", "Bearer k")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		waitFor(t, "the request to arrive", func() bool { return len(s.Log()) == 1 })
		select {
		case <-errc:
			t.Fatal("a hung request was answered before Close")
		case <-time.After(50 * time.Millisecond):
		}
		s.Close()
		select {
		case err := <-errc:
			if err == nil {
				t.Error("hung request answered after Close, want a connection error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not release the hung request")
		}
		// After Close, a hang ends at once.
		req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(hello))
		req.Header.Set("Authorization", "Bearer k")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Error("hang after Close answered")
		}
	})
}

func TestFaultMalformed(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{Malformed: 1}}}})
	for _, tt := range []struct{ endpoint, body string }{
		{"chat/completions", hello},
		{"embeddings", `{"model":"text-embedding-3-small","input":"x"}`},
		{"models", ""},
	} {
		resp, b := openaiWire.call(t, ts.URL, tt.endpoint, "k", tt.body)
		if resp.StatusCode != 200 || json.Valid([]byte(b)) {
			t.Errorf("%s: got %d %q, want 200 with invalid JSON", tt.endpoint, resp.StatusCode, b)
		}
	}
	resp, b := openaiWire.call(t, ts.URL, "chat/completions", "k", streamHello)
	evs := events(t, b)
	if resp.StatusCode != 200 || json.Valid([]byte(evs[0])) {
		t.Errorf("stream: got %d %q, want 200 with an invalid JSON chunk", resp.StatusCode, b)
	}
	for _, r := range s.Log() {
		if r.Fault != FaultMalformed || r.Status != 200 {
			t.Errorf("record %+v", r)
		}
	}
}

func TestFaultStreamBreak(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k", Faults: Faults{StreamBreak: 1}}}})
	// Not a stream: not affected.
	if resp, _ := openaiWire.call(t, ts.URL, "chat/completions", "k", hello); resp.StatusCode != 200 {
		t.Fatalf("non-stream status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(streamHello))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("stream read to the end without error: %q", b)
	}
	if n := strings.Count(string(b), `"content":`); resp.StatusCode != 200 || n < 3 || strings.Contains(string(b), "[DONE]") {
		t.Errorf("status %d, %d chunks: %q", resp.StatusCode, n, b)
	}
	if log := s.Log(); log[0].Fault != "" || log[1].Fault != FaultStreamBreak || log[1].Status != 200 {
		t.Errorf("log %+v", log)
	}
}

func TestFaultsSeeded(t *testing.T) {
	run := func(seed int64) string {
		_, ts := start(t, Options{Seed: seed, Accounts: []Account{{Key: "k", Faults: Faults{Error500: 0.3, Error503: 0.3}}}})
		var out []string
		for range 30 {
			resp, _ := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
			out = append(out, strconv.Itoa(resp.StatusCode))
		}
		return strings.Join(out, " ")
	}
	a, b, c := run(42), run(42), run(7)
	if a != b {
		t.Errorf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("different seeds, same faults: %s", a)
	}
	if !strings.Contains(a, "200") || !strings.Contains(a, "500") || !strings.Contains(a, "503") {
		t.Errorf("want a mix of 200, 500 and 503: %s", a)
	}
}

func TestSetFaults(t *testing.T) {
	s, ts := start(t, Options{Accounts: []Account{{Name: "a", Key: "k"}}})
	status := func() int {
		resp, _ := openaiWire.call(t, ts.URL, "chat/completions", "k", hello)
		return resp.StatusCode
	}
	if got := status(); got != 200 {
		t.Fatalf("status %d", got)
	}
	if err := s.SetFaults("a", Faults{Error503: 1}); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != 503 {
		t.Errorf("after SetFaults: status %d, want 503", got)
	}
	if err := s.SetFaults("a", Faults{}); err != nil {
		t.Fatal(err)
	}
	if got := status(); got != 200 {
		t.Errorf("after clearing: status %d", got)
	}
	if err := s.SetFaults("nobody", Faults{}); err == nil {
		t.Error("unknown account accepted")
	}
	if err := s.SetFaults("a", Faults{Hang: 1.5}); err == nil {
		t.Error("probability 1.5 accepted")
	}
}
