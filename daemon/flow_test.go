package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/client"
	"github.com/lbgpt/lbgpt/internal/sim"
	"github.com/lbgpt/lbgpt/rpc"
)

// streamText collects a stream's text and its final result.
func streamText(t *testing.T, c *client.Client, req any, opts rpc.Options) (string, *rpc.ChatResult, error) {
	t.Helper()
	var text strings.Builder
	for ev, err := range c.ChatStream(t.Context(), req, opts) {
		if err != nil {
			return text.String(), nil, err
		}
		if ev.Result != nil {
			return text.String(), ev.Result, nil
		}
		text.WriteString(client.DeltaText(ev.Chunk))
	}
	return text.String(), nil, errors.New("stream ended without a result")
}

// A stream whose first backend fails before any token moves to another
// backend, and the client sees one clean answer.
func TestStreamFailsOverBeforeFirstToken(t *testing.T) {
	h := start(t, accounts(sim.Faults{Error503: 1}), strings.Replace(twoBackends, "api_key_env = \"KEY_A\"", "api_key_env = \"KEY_A\"\nweight = 100", 1))
	text, res, err := streamText(t, h.client, userRequest("gpt-4o-mini", "fail over before the first token"), rpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Meta.Backend != "b" || res.Meta.Attempts != 2 {
		t.Errorf("meta = %+v, want b on the second attempt", res.Meta)
	}
	if got := client.AnswerText(res.Response); got != text || !strings.HasPrefix(text, "Simulated answer to") || strings.Count(text, "Simulated answer to") != 1 {
		t.Errorf("streamed %q, assembled %q", text, got)
	}
}

// A stream that breaks after its first token never switches backend: the
// client gets an error with what had arrived.
func TestStreamBreakReportsWhatArrived(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, Faults: sim.Faults{StreamBreak: 1}}}}, oneBackend)
	text, _, err := streamText(t, h.client, userRequest("gpt-4o-mini", "break in the middle please"), rpc.Options{})
	var re *rpc.Error
	if !errors.As(err, &re) || re.Code != rpc.CodeUnavailable || re.Data == nil || len(re.Data.Received) == 0 {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(re.Message, "after its first token") {
		t.Errorf("message %q", re.Message)
	}
	if text == "" || !strings.Contains(string(re.Data.Received), strings.TrimSpace(text)[:10]) {
		t.Errorf("received %s does not hold the streamed %q", re.Data.Received, text)
	}
	if n := len(h.sim.Log()); n != 1 {
		t.Errorf("%d upstream calls, want 1: no retry after the first token", n)
	}
	waitFor(t, func() bool { return h.daemon.pool.State()[0].InFlight == 0 })
}

// Waiting for a backend with room past the deadline is a rate-limit error,
// plain or streamed.
func TestQueueDeadline(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA}}}, strings.Replace(oneBackend, "max_concurrent = 64", "limit_rpm = 1", 1))
	if _, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "the only one this minute"), rpc.Options{}); err != nil {
		t.Fatal(err)
	}
	opts := rpc.Options{Timeout: rpc.Duration(300 * time.Millisecond)}
	_, err := h.client.Chat(t.Context(), userRequest("gpt-4o-mini", "one too many"), opts)
	if !errors.Is(err, rpc.ErrRateLimited) || !strings.Contains(err.Error(), "waiting") {
		t.Errorf("plain: err = %v, want a rate-limit error for waiting", err)
	}
	_, _, err = streamText(t, h.client, userRequest("gpt-4o-mini", "one too many, streamed"), opts)
	if !errors.Is(err, rpc.ErrRateLimited) {
		t.Errorf("stream: err = %v, want a rate-limit error", err)
	}
	if n := len(h.sim.Log()); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// One impatient client does not fail an identical request that can wait.
func TestCoalescedImpatientWaiter(t *testing.T) {
	h := start(t, sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, TTFT: 400 * time.Millisecond}}}, oneBackend)
	req := userRequest("gpt-4o-mini", "shared by two clients")
	var wg sync.WaitGroup
	var patient *rpc.ChatResult
	var patientErr, impatientErr error
	wg.Go(func() { patient, patientErr = h.client.Chat(t.Context(), req, rpc.Options{}) })
	waitFor(t, func() bool { return len(h.sim.Log()) == 1 })
	wg.Go(func() {
		_, impatientErr = h.client.Chat(t.Context(), req, rpc.Options{Timeout: rpc.Duration(50 * time.Millisecond)})
	})
	wg.Wait()
	if !errors.Is(impatientErr, rpc.ErrTimeout) {
		t.Errorf("impatient: %v", impatientErr)
	}
	if patientErr != nil || !strings.Contains(client.AnswerText(patient.Response), "shared by two clients") {
		t.Errorf("patient: %v", patientErr)
	}
	if n := len(h.sim.Log()); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}

// A request in flight when the daemon stops gets a clear error.
func TestShutdownTellsClients(t *testing.T) {
	s := sim.New(sim.Options{Accounts: []sim.Account{{Name: "a", Key: keyA, Faults: sim.Faults{Hang: 1}}}})
	// A drain shorter than the hang: the request is canceled.
	h := startWith(t, s, strings.Replace(oneBackend, "version = 1\n", "version = 1\n[daemon]\ndrain_timeout = \"50ms\"\n", 1))
	errc := make(chan error, 1)
	go func() {
		_, err := h.client.Chat(context.Background(), userRequest("gpt-4o-mini", "hang"), rpc.Options{})
		errc <- err
	}()
	waitFor(t, func() bool { return len(s.Log()) == 1 })
	h.stop()
	if err := <-errc; !errors.Is(err, rpc.ErrShuttingDown) {
		t.Errorf("err = %v, want ErrShuttingDown", err)
	}
}

func TestListenRefusesUnsafeDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	os.Mkdir(dir, 0o777)
	os.Chmod(dir, 0o777)
	if _, err := Listen(filepath.Join(dir, "d.sock")); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("world-writable directory: %v", err)
	}
	if os.Getuid() != 0 {
		return // only root can give a directory away
	}
	theirs := filepath.Join(t.TempDir(), "theirs")
	os.Mkdir(theirs, 0o700)
	os.Chown(theirs, 65534, 65534)
	if _, err := Listen(filepath.Join(theirs, "d.sock")); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("someone else's directory: %v", err)
	}
}
