package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

func statusNote(id string, version string, queue int) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","method":"watch.status","params":{"id":%s,"status":{"version":%q,"queue":%d,"backends":[{"name":"a","state":"ok"}]}}}`, id, version, queue)
}

func TestWatch(t *testing.T) {
	socket := socketPath(t)
	more := make(chan string)
	canceled := make(chan string, 1)
	watchID := make(chan string, 1)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		switch msg["method"] {
		case rpc.MethodWatch:
			if p, _ := msg["params"].(map[string]any); p["max_per_second"] != float64(2) {
				send(`{"jsonrpc":"2.0","id":` + idOf(msg) + `,"error":{"code":-32602,"message":"want max_per_second 2"}}`)
				return
			}
			id := idOf(msg)
			watchID <- id
			send(statusNote(id, "first", 0))
			go func() {
				for v := range more {
					send(statusNote(id, v, 1))
				}
			}()
		case rpc.MethodCancel:
			canceled <- idOf(msg["params"].(map[string]any))
		}
	})
	c := &Client{Socket: socket}
	defer c.Close()
	w, err := c.Watch(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Next(t.Context())
	if err != nil || st.Version != "first" || len(st.Backends) != 1 {
		t.Fatalf("first snapshot %+v, %v", st, err)
	}
	more <- "second"
	st, err = w.Next(t.Context())
	if err != nil || st.Version != "second" || st.Queue != 1 {
		t.Fatalf("update %+v, %v", st, err)
	}
	close(more)

	// A Next that times out leaves the watch running.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	_, err = w.Next(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next with nothing new: %v", err)
	}

	// Close wakes a waiting Next and tells the daemon.
	nextErr := make(chan error, 1)
	go func() {
		_, err := w.Next(t.Context())
		nextErr <- err
	}()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-nextErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if got, want := <-canceled, <-watchID; got != want {
		t.Errorf("cancel for id %s, want the watch's %s", got, want)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestWatchKeepsTheNewestSnapshot(t *testing.T) {
	socket := socketPath(t)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		switch msg["method"] {
		case rpc.MethodWatch:
			for i := range 3 {
				send(statusNote(idOf(msg), fmt.Sprint("v", i), i))
			}
		case rpc.MethodStatus:
			send(`{"jsonrpc":"2.0","id":` + idOf(msg) + `,"result":{"version":"status"}}`)
		}
	})
	c := &Client{Socket: socket}
	defer c.Close()
	w, err := c.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The daemon answers this after the three snapshots, on the same
	// connection: once it is back, the client has read them all.
	if _, err := c.Status(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := w.Next(t.Context())
	if err != nil || st.Version != "v2" {
		t.Fatalf("Next = %+v, %v; want the newest snapshot v2", st, err)
	}
}

func TestWatchRefused(t *testing.T) {
	socket := socketPath(t)
	newFake(t, socket, func(msg map[string]any, send func(string)) {
		send(`{"jsonrpc":"2.0","id":` + idOf(msg) + `,"error":{"code":-32601,"message":"method not found: watch"}}`)
	})
	c := &Client{Socket: socket}
	defer c.Close()
	w, err := c.Watch(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Next(t.Context()); !errors.Is(err, rpc.ErrMethodNotFound) {
		t.Errorf("Next = %v, want method not found", err)
	}
	if _, err := c.Watch(t.Context(), -1); err == nil {
		t.Error("negative rate accepted")
	}
}
