package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"testing"
)

// A client that stops reading holds up no sender: Send queues and returns
// at once; once the queue passes its bound the connection is closed, and
// the sends after that fail.
func TestSendNeverWaitsForTheClient(t *testing.T) {
	server, client := net.Pipe() // unbuffered: a write waits for a read
	defer client.Close()
	ch := newLineChannel(server, 0)
	ch.limit = 1000
	line := make([]byte, 300)
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
	for i := range 3 {
		if err := ch.Send(bytes.Clone(line)); err != nil {
			t.Fatalf("send %d, under the bound: %v", i, err)
		}
	}
	if err := ch.Send(line); !errors.Is(err, errSlowReader) {
		t.Fatalf("send past the bound: err = %v, want errSlowReader", err)
	}
	if err := ch.Send([]byte("{}\n")); err == nil {
		t.Fatal("a send on a failed connection succeeded")
	}
	ch.flush() // returns: the writer saw the connection close
}

// What is sent is written whole, in order, and flush waits for it.
func TestSendWritesInOrder(t *testing.T) {
	server, client := net.Pipe()
	ch := newLineChannel(server, 0)
	got := make(chan []string)
	go func() {
		var lines []string
		sc := bufio.NewScanner(client)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		got <- lines
	}()
	for i := range 100 {
		if err := ch.Send(fmt.Appendf(nil, "{\"n\":%d}\n", i)); err != nil {
			t.Fatal(err)
		}
	}
	ch.flush()
	server.Close()
	lines := <-got
	if len(lines) != 100 {
		t.Fatalf("%d lines written, want 100", len(lines))
	}
	for i, l := range lines {
		if want := fmt.Sprintf(`{"n":%d}`, i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
}
