package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The floor under the added latency. A request through lbgptd goes through
// one more process than a direct call: two more write(2)s wake a process
// that sleeps on its socket, and lbgptd's code runs after other processes
// had the CPU. On a machine whose idle CPUs halt at once (a VM without
// halt polling), a write that wakes a sleeping process costs its writer
// tens of microseconds, and a process switched back in runs its first
// microseconds of code several times slower than in a loop. relayFloor
// measures what a proxy that does nothing at all adds on this machine: a
// relay process that forwards each line to an echo process and its answer
// back, against the same lines sent to the echo process directly.

// peerEnv, set, makes lbgpt-bench a peer of relayFloor: "echo SOCKET"
// listens on SOCKET and sends back each line; "relay SOCKET ECHO" listens
// on SOCKET and forwards each line to the echo peer at ECHO, and its answer
// back.
const peerEnv = "LBGPT_BENCH_PEER"

// echoWork is the echo peer's work on a line, spent spinning: about the
// simulator's on a request, so that the relay, like lbgptd, sleeps while
// it waits for the answer.
const echoWork = 200 * time.Microsecond

// floorLine is the size of the lines relayFloor sends: about a small chat
// request.
const floorLine = 256

// peer runs the peer spec names.
func peer(spec string) error {
	f := strings.Fields(spec)
	if len(f) < 2 || (f[0] == "relay") != (len(f) == 3) || (f[0] != "echo" && f[0] != "relay") {
		return fmt.Errorf("%s=%q: want \"echo SOCKET\" or \"relay SOCKET ECHO\"", peerEnv, spec)
	}
	ln, err := net.Listen("unix", f[1])
	if err != nil {
		return err
	}
	defer ln.Close()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		var up net.Conn
		if f[0] == "relay" {
			if up, err = net.Dial("unix", f[2]); err != nil {
				return err
			}
		}
		go serveFloor(nc, up)
	}
}

// serveFloor answers the lines of nc: sends them to up and its answers
// back, or, with no up, sends them back.
func serveFloor(nc, up net.Conn) {
	defer nc.Close()
	buf := make([]byte, floorLine)
	for {
		if _, err := io.ReadFull(nc, buf); err != nil {
			return
		}
		if up == nil {
			for start := time.Now(); time.Since(start) < echoWork; {
			}
		} else {
			if _, err := up.Write(buf); err != nil {
				return
			}
			if _, err := io.ReadFull(up, buf); err != nil {
				return
			}
		}
		if _, err := nc.Write(buf); err != nil {
			return
		}
	}
}

// relayFloor starts an echo peer and a relay peer (this binary, with
// peerEnv set) and times n round trips to the echo peer directly and n
// through the relay, alternating in short rounds. It returns the medians.
func relayFloor(ctx context.Context, dir string, n int) (direct, relayed time.Duration, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	echoSock, relaySock := filepath.Join(dir, "echo.sock"), filepath.Join(dir, "relay.sock")
	var conns [2]net.Conn
	for i, spec := range []string{"echo " + echoSock, "relay " + relaySock + " " + echoSock} {
		cmd := exec.CommandContext(ctx, self)
		cmd.Env = append(os.Environ(), peerEnv+"="+spec)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return 0, 0, err
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		sock := strings.Fields(spec)[1]
		for start := time.Now(); ; {
			if conns[i], err = net.Dial("unix", sock); err == nil {
				defer conns[i].Close()
				break
			}
			if time.Since(start) > 10*time.Second {
				return 0, 0, fmt.Errorf("the %s peer is not listening after 10 s: %w", strings.Fields(spec)[0], err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Short rounds: which CPU the scheduler puts a process on decides
	// much of a wake-up's cost, and that placement lasts a while.
	var lat [2][]time.Duration
	line := []byte(strings.Repeat("x", floorLine-1) + "\n")
	buf := make([]byte, floorLine)
	const rounds = 20
	for i := range 2 * rounds {
		nc := conns[i%2]
		for range max(n/rounds, 1) {
			start := time.Now()
			if _, err := nc.Write(line); err != nil {
				return 0, 0, err
			}
			if _, err := io.ReadFull(nc, buf); err != nil {
				return 0, 0, err
			}
			lat[i%2] = append(lat[i%2], time.Since(start))
		}
	}
	for _, l := range lat {
		slices.Sort(l)
	}
	return lat[0][len(lat[0])/2], lat[1][len(lat[1])/2], nil
}
