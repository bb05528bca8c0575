package daemon

import (
	"bufio"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbgpt/lbgpt/daemon/proxy"
	"github.com/lbgpt/lbgpt/internal/tokens"
	"github.com/lbgpt/lbgpt/provider"
	"github.com/lbgpt/lbgpt/rpc"
)

// BenchmarkExactHit is a cache hit's work in the daemon, without the
// socket: the request's decode, the key, the bbolt read, the result.
func BenchmarkExactHit(b *testing.B) {
	h := startQuiet(b)
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"cache benchmark question 12345"}]}`)
	if _, err := h.client.Chat(b.Context(), raw, rpc.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res := serveInDaemon(b, h, raw, rpc.CacheExact)
		if _, err := json.Marshal(rpc.ChatResult{Response: res.Body, Meta: res.Meta}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusRoundTrip is a status call over the socket with the Go
// client: the RPC layer's cost on both sides, with the least work behind.
func BenchmarkStatusRoundTrip(b *testing.B) {
	h := startQuiet(b)
	for b.Loop() {
		if _, err := h.client.Status(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExactHitRoundTrip is an exact cache hit over the socket with
// the Go client.
func BenchmarkExactHitRoundTrip(b *testing.B) {
	h := startQuiet(b)
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"user","content":"cache benchmark question 12345"}]}`)
	if _, err := h.client.Chat(b.Context(), raw, rpc.Options{}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		res, err := h.client.Chat(b.Context(), raw, rpc.Options{})
		if err != nil || res.Meta.Cache != rpc.CacheExact {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkRawStatusRoundTrip is a status call written and read as lines
// on a bare connection: the daemon's side of the RPC layer alone.
func BenchmarkRawStatusRoundTrip(b *testing.B) {
	h := startQuiet(b)
	nc, err := net.Dial("unix", h.socket)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	pingPong(b, nc)
}

// startQuiet starts a daemon for a benchmark and waits for the tokenizers'
// load, which would otherwise share the cores with the first second of
// the benchmark.
func startQuiet(b *testing.B) *harness {
	h := start(b, oneAccount(), anyModel)
	tokens.Load()
	return h
}

// BenchmarkSocketFloor is one line each way over a Unix socket between two
// goroutines, with no JSON-RPC at all: the floor the round trips above
// stand on, on this machine.
func BenchmarkSocketFloor(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return
			}
			c.Write(line)
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pingPong(b, c)
}

// BenchmarkMiss is a cache miss's work in the daemon, without the socket:
// the request's decode and key, admission, the upstream call to the
// simulator over HTTP, the usage read and ledger write, and the answer's
// write-behind into the cache.
func BenchmarkMiss(b *testing.B) {
	h := startQuiet(b)
	i := 0
	for b.Loop() {
		i++
		raw := json.RawMessage(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"miss benchmark question ` + strconv.Itoa(i) + `"}]}`)
		serveInDaemon(b, h, raw, rpc.CacheMiss)
	}
}

// BenchmarkLongPromptHit is an exact hit on a request with 21 kB of pasted
// text, in the daemon alone and through the socket with the Go client:
// what the request's every read costs when prompts are long (the other
// benchmarks' prompts are a line).
func BenchmarkLongPromptHit(b *testing.B) {
	h := startQuiet(b)
	long := strings.Repeat(`The lease says the tenant pays \"all utilities\" except water;\n`, 330)
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"system","content":"You are a lawyer."},{"role":"user","content":"` + long + `"}]}`)
	if _, err := h.client.Chat(b.Context(), raw, rpc.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Run("daemon", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			serveInDaemon(b, h, raw, rpc.CacheExact)
		}
	})
	b.Run("round-trip", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			res, err := h.client.Chat(b.Context(), raw, rpc.Options{})
			if err != nil || res.Meta.Cache != rpc.CacheExact {
				b.Fatalf("%v %+v", err, res)
			}
		}
	})
}

// serveInDaemon answers the chat request raw in the daemon's pipeline, as
// the socket's handler does, and fails b unless it was answered as want.
func serveInDaemon(b *testing.B, h *harness, raw json.RawMessage, want string) proxy.Result {
	start := time.Now()
	r, err := proxy.Parse(provider.PathChat, raw)
	if err != nil {
		b.Fatal(err)
	}
	res, err := h.daemon.pl.Serve(b.Context(), r, rpc.Options{}, nil, start)
	if err != nil || res.Meta.Cache != want {
		b.Fatalf("%v %+v", err, res.Meta)
	}
	return res
}

// pingPong writes a status request line to c and reads a line back, as
// many times as b asks.
func pingPong(b *testing.B, c net.Conn) {
	r := bufio.NewReader(c)
	line := []byte(`{"jsonrpc":"2.0","id":1,"method":"status"}` + "\n")
	for b.Loop() {
		if _, err := c.Write(line); err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
}
