package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"

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
	return listen(path, nil)
}

// ListenGroup is Listen for a daemon shared with a group (the [daemon]
// socket_group of a team daemon): the socket is 0660 and belongs to group,
// and a directory it creates is 0750 with that group. A directory that
// exists already must let the group in (systemd's RuntimeDirectory= and
// socket units do).
func ListenGroup(path, group string) (net.Listener, error) {
	g, err := user.LookupGroup(group)
	if err != nil {
		return nil, fmt.Errorf("socket group: %w", err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return nil, fmt.Errorf("socket group %s: gid %q", group, g.Gid)
	}
	return listen(path, &gid)
}

func listen(path string, gid *int) (net.Listener, error) {
	dir := filepath.Dir(path)
	dirMode, sockMode := os.FileMode(0o700), os.FileMode(0o600)
	if gid != nil {
		dirMode, sockMode = 0o750, 0o660
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
		}
		if gid != nil {
			if err := os.Chown(dir, -1, *gid); err != nil {
				return nil, fmt.Errorf("chgrp socket directory %s: %w", dir, err)
			}
		}
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
	// The socket is created with the process's umask and narrowed at once.
	// No one else can use it in between: the directory is checked above to
	// be the user's and writable by no one else, and every connection's
	// peer is checked. (Setting the umask instead would change it for
	// every goroutine creating files at the same moment.)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if gid != nil {
		if err := os.Chown(path, -1, *gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("chgrp socket %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, sockMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // unlink removes it, if it is still this socket
	return &ownedSocket{UnixListener: ln, path: path, file: fi}, nil
}

// ownedSocket is a socket Listen created: the daemon removes its path when
// it stops, provided the path is still this socket.
type ownedSocket struct {
	*net.UnixListener
	path string
	file fs.FileInfo
}

// unlink removes the socket's path so that no new client can connect, if
// the path still names this socket.
func (s *ownedSocket) unlink() {
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.file) {
		os.Remove(s.path)
	}
}

// Close unlinks the socket and closes it.
func (s *ownedSocket) Close() error {
	s.unlink()
	return s.UnixListener.Close()
}

// ActivationName is the name lbgptd's socket unit gives its socket
// (FileDescriptorName= in packaging/lbgptd.socket).
const ActivationName = "lbgptd"

// Activated returns the socket systemd handed over (socket activation):
// the one named ActivationName, else the only one passed. ok is false when
// lbgptd was not socket-activated. The socket is systemd's: closing the
// listener does not remove it. Only the first call in a process can find
// it (the environment that announces it is cleared).
func Activated() (ln net.Listener, ok bool, err error) {
	named, err := activation.ListenersWithNames()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	var all []net.Listener
	for name, lns := range named {
		for _, l := range lns {
			if l == nil {
				continue
			}
			if name == ActivationName && ln == nil {
				ln = l
				continue
			}
			all = append(all, l)
		}
	}
	if ln == nil && len(all) == 1 {
		return all[0], true, nil
	}
	for _, l := range all {
		l.Close()
	}
	if ln == nil && len(all) > 1 {
		return nil, false, fmt.Errorf("socket activation: %d sockets passed and none named %q", len(all), ActivationName)
	}
	return ln, ln != nil, nil
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

// checkPeer allows the daemon's own user, root and, when the daemon is
// shared ([daemon] socket_group), the members of its group; it refuses
// everyone else.
func (d *Daemon) checkPeer(nc net.Conn) error {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		// A TCP socket (a socket unit with ListenStream=127.0.0.1:…) has no
		// peer credentials: serving it would give anyone who can connect
		// the use of the keys.
		return fmt.Errorf("permission denied: lbgptd serves JSON-RPC on Unix sockets only, where it can tell who connects; this is a %s connection (check the socket unit's ListenStream)", nc.LocalAddr().Network())
	}
	uid, err := rpc.PeerUID(uc)
	if err != nil {
		return fmt.Errorf("read peer credentials: %w", err)
	}
	if uid == d.uid || uid == 0 {
		return nil
	}
	if d.group != "" {
		if inGroup(uid, d.group) {
			return nil
		}
		return fmt.Errorf("permission denied: lbgptd serves uid %d and the members of group %s; uid %d was refused", d.uid, d.groupName, uid)
	}
	return fmt.Errorf("permission denied: lbgptd runs as uid %d and serves only that user; uid %d was refused", d.uid, uid)
}

// inGroup reports whether the user uid is a member of the group gid, as
// its primary group or a supplementary one.
func inGroup(uid int, gid string) bool {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return false
	}
	if u.Gid == gid {
		return true
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, gid)
}

// refuse answers a connection with one error not tied to a request and
// closes it.
func refuse(nc net.Conn, e *rpc.Error) {
	defer nc.Close()
	nc.SetWriteDeadline(time.Now().Add(time.Second))
	nc.Write(append(errorLine(nil, e), '\n'))
}
