package rpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`30`, 30 * time.Second, false},
		{`0.5`, 500 * time.Millisecond, false},
		{`"1m30s"`, 90 * time.Second, false},
		{`null`, 0, false},
		{`"soon"`, 0, true},
		{`-1`, 0, true},
		{`"-5s"`, 0, true},
		{`true`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if time.Duration(d) != tt.want {
				t.Errorf("got %v, want %v", time.Duration(d), tt.want)
			}
		})
	}
	b, _ := json.Marshal(Duration(90 * time.Second))
	if string(b) != `"1m30s"` {
		t.Errorf("marshal = %s", b)
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("ask: %w", &Error{Code: CodeTimeout, Message: "deadline of 30s exceeded after 3 attempts"})
	if !errors.Is(err, ErrTimeout) {
		t.Error("errors.Is(timeout error, ErrTimeout) = false")
	}
	if errors.Is(err, ErrRateLimited) {
		t.Error("errors.Is(timeout error, ErrRateLimited) = true")
	}
}

func TestDefaultSocketPath(t *testing.T) {
	t.Setenv("LBGPT_SOCKET", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if got := DefaultSocketPath(); got != "/run/user/1000/lbgpt/lbgptd.sock" {
		t.Errorf("with XDG_RUNTIME_DIR: %s", got)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got, want := DefaultSocketPath(), fmt.Sprintf("/tmp/lbgpt-%d/lbgptd.sock", os.Getuid()); got != want {
		t.Errorf("fallback: %s, want %s", got, want)
	}
	t.Setenv("LBGPT_SOCKET", "/x/y.sock")
	if got := DefaultSocketPath(); got != "/x/y.sock" {
		t.Errorf("with LBGPT_SOCKET: %s", got)
	}
}
