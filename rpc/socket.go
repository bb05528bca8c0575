package rpc

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultSocketPath is where lbgptd listens and clients connect unless told
// otherwise: $LBGPT_SOCKET, else $XDG_RUNTIME_DIR/lbgpt/lbgptd.sock, else
// /tmp/lbgpt-$UID/lbgptd.sock.
func DefaultSocketPath() string {
	if p := os.Getenv("LBGPT_SOCKET"); p != "" {
		return p
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "lbgpt", "lbgptd.sock")
	}
	return filepath.Join("/tmp", fmt.Sprintf("lbgpt-%d", os.Getuid()), "lbgptd.sock")
}
