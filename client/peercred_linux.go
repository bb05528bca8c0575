package client

import (
	"fmt"
	"net"
	"os"

	"github.com/lbgpt/lbgpt/rpc"
)

// checkPeer refuses a daemon that runs as another user than ours or root:
// whoever serves the socket reads every prompt sent to it, so a socket
// planted by someone else (a shared /tmp, a $LBGPT_SOCKET pointing at
// another user's directory) must not be trusted.
func checkPeer(nc net.Conn, path string) error {
	uid, err := rpc.PeerUID(nc)
	if err != nil {
		return fmt.Errorf("check who serves %s: %w", path, err)
	}
	return trustPeer(path, uid, os.Getuid())
}

// trustPeer allows a daemon run by self or by root.
func trustPeer(path string, peer, self int) error {
	if peer == self || peer == 0 {
		return nil
	}
	return fmt.Errorf("refusing to talk to %s: it is served by uid %d, not by you", path, peer)
}
