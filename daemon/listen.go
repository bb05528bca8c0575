package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lbgpt/lbgpt/rpc"
)

// ErrAlreadyRunning is returned by Listen when another daemon answers on the
// socket.
var ErrAlreadyRunning = errors.New("another lbgptd is already serving this socket")

// Listen creates the Unix socket at path: its directory is created 0700 when
// missing and must otherwise belong to this user and be writable by no one
// else (or anyone could swap the socket); the socket itself is 0600. A
// socket file left by a daemon that died is removed, but only after a
// connect to it failed; a live one makes Listen fail with ErrAlreadyRunning.
// A lock file beside the socket makes the probe-remove-listen sequence safe
// when several daemons start at once.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on %s: the path exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: %w", path, ErrAlreadyRunning)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("listen on %s: probing the existing socket: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	old := syscall.Umask(0o177) // the socket is created 0600, with no window
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	return ln, nil
}

// checkDir refuses a socket directory that another user owns or may write
// to.
func checkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("socket directory %s is not a directory", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("socket directory %s belongs to uid %d, not to you: refusing to put the socket there", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("socket directory %s is writable by others (mode %04o): refusing to put the socket there; chmod go-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// lockFile takes an exclusive lock on path, waiting for it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// checkPeer allows the daemon's own user and root, and refuses everyone else.
func (d *Daemon) checkPeer(nc net.Conn) error {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return nil // not a Unix socket (tests over pipes)
	}
	uid, err := rpc.PeerUID(uc)
	if err != nil {
		return fmt.Errorf("read peer credentials: %w", err)
	}
	if uid == d.uid || uid == 0 {
		return nil
	}
	return fmt.Errorf("permission denied: lbgptd runs as uid %d and serves only that user; uid %d was refused", d.uid, uid)
}

// refuse answers a connection with one error not tied to a request and
// closes it.
func refuse(nc net.Conn, e *rpc.Error) {
	defer nc.Close()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(append(errorLine(nil, e), '\n'))
}
