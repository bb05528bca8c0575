package client

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// checkPeer refuses a daemon that runs as another user than ours or root:
// whoever serves the socket reads every prompt sent to it, so a socket
// planted by someone else (a shared /tmp, a $LBGPT_SOCKET pointing at
// another user's directory) must not be trusted.
func checkPeer(nc net.Conn, path string) error {
	uid, err := peerUID(nc)
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

// peerUID is the uid of the process at the other end of nc (SO_PEERCRED):
// for a connection we dialed, the one that made the socket listen.
func peerUID(nc net.Conn) (int, error) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("not a Unix socket connection (%T)", nc)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return int(cred.Uid), nil
}
