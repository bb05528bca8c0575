package redistest

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// WaitSubscribers waits until channel has at least n subscribers, failing
// the test after 10 s.
func (s *Server) WaitSubscribers(channel string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.numsub(channel)
		if err == nil && got >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s has %d subscribers after 10 s, want %d (%v)", channel, got, n, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Subscribers is how many subscribers channel has now.
func (s *Server) Subscribers(channel string) int {
	s.t.Helper()
	n, err := s.numsub(channel)
	if err != nil {
		s.t.Fatalf("PUBSUB NUMSUB %s: %v", channel, err)
	}
	return n
}

// numsub asks PUBSUB NUMSUB channel over RESP2.
func (s *Server) numsub(channel string) (int, error) {
	c, err := net.DialTimeout("unix", s.Socket, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n", len(channel), channel)
	r := bufio.NewReader(c)
	var lines []string
	for range 5 { // *2, $len, channel, :n
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if strings.HasPrefix(line, ":") {
			return strconv.Atoi(lines[len(lines)-1][1:])
		}
	}
	return 0, fmt.Errorf("PUBSUB NUMSUB answered %q", lines)
}
