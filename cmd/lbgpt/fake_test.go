package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeDaemon is a hand-written JSON-RPC peer on a Unix socket. It answers
// status itself (every command pings first); handle gets everything else.
type fakeDaemon struct {
	socket string
	handle func(msg map[string]any, send func(string))

	mu    sync.Mutex // guards seen and sizes
	seen  []map[string]any
	sizes []int // the length of each message's line, newline excluded
}

// fakePID is the pid the fake's status reports.
const fakePID = 4242

func newFake(t *testing.T, handle func(msg map[string]any, send func(string))) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{socket: filepath.Join(t.TempDir(), "d.sock"), handle: handle}
	ln, err := net.Listen("unix", f.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(nc)
		}
	}()
	return f
}

func (f *fakeDaemon) serve(nc net.Conn) {
	defer nc.Close()
	var wmu sync.Mutex
	send := func(line string) {
		wmu.Lock()
		defer wmu.Unlock()
		fmt.Fprintln(nc, line)
	}
	sc := bufio.NewScanner(nc)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var msg map[string]any
		if json.Unmarshal(sc.Bytes(), &msg) != nil {
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, msg)
		f.sizes = append(f.sizes, len(sc.Bytes()))
		f.mu.Unlock()
		if msg["method"] == "status" {
			send(`{"jsonrpc":"2.0","id":` + idOf(msg) + `,"result":{"version":"fake","pid":` + strconv.Itoa(fakePID) + `,"backends":[]}}`)
			continue
		}
		if f.handle != nil {
			f.handle(msg, send)
		}
	}
}

// messages are what the fake received, status pings included.
func (f *fakeDaemon) messages() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.seen...)
}

// lineSizes are the lengths of the lines of messages().
func (f *fakeDaemon) lineSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.sizes...)
}

func idOf(msg map[string]any) string {
	b, _ := json.Marshal(msg["id"])
	return string(b)
}

// runCtx runs lbgpt with args and stdin under ctx, capturing its output.
func runCtx(ctx context.Context, stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	e := env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	code = exitCode(run(ctx, args, e), &errb)
	return out.String(), errb.String(), code
}
