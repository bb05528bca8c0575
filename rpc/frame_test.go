package rpc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func readAll(t testing.TB, input string, max int) (lines []string, tooLong int) {
	t.Helper()
	lr := NewLineReader(strings.NewReader(input), max)
	for {
		line, err := lr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return lines, tooLong
		case errors.Is(err, ErrLineTooLong):
			tooLong++
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			lines = append(lines, string(line))
		}
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		input   string
		max     int
		want    []string
		tooLong int
	}{
		{"one", "{}\n", 10, []string{"{}"}, 0},
		{"unterminated last line", "a\nb", 10, []string{"a", "b"}, 0},
		{"crlf", "a\r\nb\r\n", 10, []string{"a", "b"}, 0},
		{"blank lines skipped", "\n\n  \na\n\n", 10, []string{"a"}, 0},
		{"exactly max", "abcde\n", 5, []string{"abcde"}, 0},
		{"one over max", "abcdef\nok\n", 5, []string{"ok"}, 1},
		{"over max unterminated", "abcdef", 5, nil, 1},
		{"long line between good ones", "a\n" + long + "\nb\n", 10, []string{"a", "b"}, 1},
		{"longer than the read buffer", "a\n" + strings.Repeat("y", 200<<10) + "\nb\n", 1 << 10, []string{"a", "b"}, 1},
		{"big line within limit", strings.Repeat("z", 150<<10) + "\n", 1 << 20, []string{strings.Repeat("z", 150<<10)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tooLong := readAll(t, tt.input, tt.max)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
			if tooLong != tt.tooLong {
				t.Errorf("too long = %d, want %d", tooLong, tt.tooLong)
			}
		})
	}
}

func TestLineReaderPrefix(t *testing.T) {
	head := `{"jsonrpc":"2.0","id":42,"method":"chat","params":`
	lr := NewLineReader(strings.NewReader(head+strings.Repeat("x", 200<<10)+"\nnext\n"), 1<<10)
	if _, err := lr.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
	if p := string(lr.Prefix()); !strings.HasPrefix(p, head) || len(p) != prefixLen {
		t.Errorf("prefix = %.80q (%d bytes)", p, len(p))
	}
	if line, err := lr.Next(); err != nil || string(line) != "next" {
		t.Errorf("after the long line: %q, %v", line, err)
	}
}

// FuzzLineReader checks that whatever arrives, every line returned is within
// the limit, contains no newline, and comes from the input.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("{\"jsonrpc\":\"2.0\"}\n"), 8)
	f.Add([]byte("a\r\n\n\nbbbbbbbbbbbbbbbbbbbbbbbb\nc"), 4)
	f.Add(bytes.Repeat([]byte("x"), 70000), 100)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max <= 0 || max > 1<<20 {
			max = 16
		}
		lr := NewLineReader(bytes.NewReader(data), max)
		for range len(data) + 2 {
			line, err := lr.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if errors.Is(err, ErrLineTooLong) {
				continue
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			if len(line) > max {
				t.Fatalf("line of %d bytes exceeds max %d", len(line), max)
			}
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line contains a newline: %q", line)
			}
			if !bytes.Contains(data, line) {
				t.Fatalf("line %q is not in the input", line)
			}
		}
		t.Fatalf("reader did not reach EOF")
	})
}

// TestLineReaderResumesAfterDeadline interrupts a read in the middle of a
// line with a deadline: nothing of the line is lost, and the next call
// goes on with it. A line over the limit is still found too long, with
// its prefix.
func TestLineReaderResumesAfterDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  int
		want string // the first line, "" when it is too long
	}{
		{"line", 100, `{"id":7,"result":"abcdefgh"}`},
		{"too long", 10, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := `{"id":7,"result":"abcdefgh"}`
			server, client := net.Pipe()
			defer server.Close()
			defer client.Close()
			lr := NewLineReader(client, tc.max)
			sent := make(chan struct{})
			go func() {
				server.Write([]byte(first[:12])) // returns once read
				close(sent)
			}()
			interrupted := make(chan struct{})
			go func() {
				<-sent
				client.SetReadDeadline(time.Unix(1, 0))
				close(interrupted)
			}()
			if _, err := lr.Next(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("first Next: %v, want the deadline", err)
			}
			<-interrupted
			client.SetReadDeadline(time.Time{})
			go server.Write([]byte(first[12:] + "\nnext\n"))
			line, err := lr.Next()
			switch {
			case tc.want == "" && !errors.Is(err, ErrLineTooLong):
				t.Fatalf("Next = %q, %v; want too long", line, err)
			case tc.want == "" && strings.TrimSuffix(string(lr.Prefix()), "\n") != first:
				t.Errorf("prefix %q, want %q", lr.Prefix(), first)
			case tc.want != "" && (err != nil || string(line) != tc.want):
				t.Fatalf("Next = %q, %v; want %q", line, err, tc.want)
			}
			if line, err := lr.Next(); err != nil || string(line) != "next" {
				t.Errorf("then %q, %v", line, err)
			}
		})
	}
}
