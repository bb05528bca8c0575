package rpc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
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
