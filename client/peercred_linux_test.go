package client

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lbgpt/lbgpt/rpc"
)

func TestTrustPeer(t *testing.T) {
	tests := []struct {
		name       string
		peer, self int
		ok         bool
	}{
		{"our own daemon", 1000, 1000, true},
		{"root's daemon", 0, 1000, true},
		{"root talking to root", 0, 0, true},
		{"another user's daemon", 1001, 1000, false},
		{"root refuses a user's daemon", 1000, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := trustPeer("/run/x.sock", tt.peer, tt.self)
			if tt.ok != (err == nil) {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			want := fmt.Sprintf("refusing to talk to /run/x.sock: it is served by uid %d, not by you", tt.peer)
			if err != nil && err.Error() != want {
				t.Errorf("message %q, want %q", err, want)
			}
		})
	}
}

func TestPeerUIDIsTheListener(t *testing.T) {
	socket := socketPath(t)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if uid, err := rpc.PeerUID(nc); err != nil || uid != os.Getuid() {
		t.Errorf("PeerUID = %d, %v; want %d", uid, err, os.Getuid())
	}
}

// TestRefusesAnotherUsersDaemon makes a fake daemon listen as nobody: the
// test process takes nobody's effective uid for the listen call only
// (SO_PEERCRED reports the listener's effective uid), so it needs root.
func TestRefusesAnotherUsersDaemon(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to listen as another user")
	}
	const nobody = 65534
	// nobody must be able to create the socket: a world-writable
	// directory under the world-searchable /tmp, not t.TempDir (0700).
	dir, err := os.MkdirTemp("", "lbgpt-client-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "d.sock")
	if err := syscall.Setresuid(-1, nobody, -1); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", socket)
	if rerr := syscall.Setresuid(-1, 0, -1); rerr != nil {
		panic("cannot get root back: " + rerr.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	f := serveFake(t, ln, func(msg map[string]any, send func(string)) {
		send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"version":"v","backends":[]}}`, idOf(msg)))
	})
	c := &Client{Socket: socket}
	defer c.Close()
	_, err = c.Status(t.Context())
	want := fmt.Sprintf("refusing to talk to %s: it is served by uid %d, not by you", socket, nobody)
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if msgs := f.messages(); len(msgs) != 0 {
		t.Errorf("the other user's daemon received %v", msgs)
	}
}
