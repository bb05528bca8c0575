package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/lbgpt/lbgpt/daemon/httpapi"
	"github.com/lbgpt/lbgpt/rpc"
)

// httpListeners are the listeners of the [http] endpoint.
type httpListeners struct {
	once  sync.Once
	err   error
	tcp   net.Listener // nil without [http] listen
	unix  net.Listener // nil without [http] socket
	token string       // the TCP listener's bearer token
}

// ListenHTTP opens the listeners of the [http] table, if it has any: the
// loopback TCP address, whose bearer token it reads from the state
// directory (creating it, 0600, on first start), and the Unix socket.
// Serve calls it when it was not called before; calling it first makes a
// busy port fail the start, before the daemon says it is ready. Only the
// first call does anything.
func (d *Daemon) ListenHTTP() error {
	h := &d.http
	h.once.Do(func() { h.err = d.listenHTTP() })
	return h.err
}

func (d *Daemon) listenHTTP() error {
	c, h := d.config().HTTP, &d.http
	if c.Listen != "" {
		token := ""
		if !d.simulated { // the demo's backends are simulated: no key to protect
			var err error
			if token, err = loadToken(d.stateDir); err != nil {
				return err
			}
		}
		ln, err := net.Listen("tcp", c.Listen)
		if err != nil {
			return fmt.Errorf("http: %w", err)
		}
		if a, ok := ln.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
			ln.Close()
			return fmt.Errorf("http: listen %q resolved to %s, which is not a loopback address", c.Listen, ln.Addr())
		}
		h.tcp, h.token = ln, token
	}
	if c.Socket != "" {
		ln, err := Listen(c.Socket)
		if err != nil {
			if h.tcp != nil {
				h.tcp.Close()
			}
			return fmt.Errorf("http: %w", err)
		}
		h.unix = peerListener{Listener: ln, d: d}
	}
	return nil
}

// HTTPAddr is the address of the HTTP endpoint's TCP listener ("" when it
// has none), once ListenHTTP or Serve opened it.
func (d *Daemon) HTTPAddr() string {
	if d.ListenHTTP() != nil || d.http.tcp == nil {
		return ""
	}
	return d.http.tcp.Addr().String()
}

// serveHTTP serves the [http] endpoint until the returned stop is called,
// which waits for its connections to close (their requests were drained
// by shutdown before).
//
// Each endpoint holds at most httpConnLimit connections at once: the rest
// wait in the kernel's queue, so strangers on the port can never take the
// file descriptors the socket's clients need.
func (d *Daemon) serveHTTP() (stop func(), err error) {
	if !d.config().HTTP.Enabled() {
		return func() {}, nil
	}
	if err := d.ListenHTTP(); err != nil {
		return nil, err
	}
	var servers []*http.Server
	var wg sync.WaitGroup
	for _, l := range []struct {
		ln    net.Listener
		token string
	}{{d.http.tcp, d.http.token}, {d.http.unix, ""}} {
		if l.ln == nil {
			continue
		}
		srv := &http.Server{
			Handler: httpapi.New(httpapi.Options{
				Pipeline: d.pl, Config: d.config, Token: l.token, Enter: d.enter,
				Status: d.snapshot, Version: rpc.Release, Started: d.started, Logger: d.log,
			}),
			ReadHeaderTimeout: 10 * time.Second,
			// A request body (32 MiB at most) comes over loopback: a
			// minute is plenty, and bounds a client that stalls in it.
			ReadTimeout: time.Minute,
			IdleTimeout: 2 * time.Minute,
			// Requests are canceled with the daemon's shutdown cause.
			BaseContext: func(net.Listener) context.Context { return d.base },
			ErrorLog:    slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
		}
		servers = append(servers, srv)
		d.log.Info("http endpoint listening", "addr", l.ln.Addr().String(), "token", l.token != "", "token_file", d.tokenPathIf(l.token != ""))
		if d.simulated && l.ln == d.http.tcp {
			d.log.Warn("demo mode: an OpenAI-compatible endpoint on SIMULATED backends, any API key accepted: OPENAI_BASE_URL=http://" + l.ln.Addr().String() + "/v1 OPENAI_API_KEY=demo")
		}
		ln := netutil.LimitListener(l.ln, httpConnLimit())
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http endpoint stopped", "err", err)
			}
		})
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), cancelGrace)
		defer cancel()
		for _, srv := range servers {
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		}
		wg.Wait()
		if d.http.unix != nil {
			os.Remove(d.http.unix.Addr().String()) // the socket it made, whatever a reload said since
		}
	}, nil
}

func (d *Daemon) tokenPathIf(ok bool) string {
	if !ok {
		return ""
	}
	return filepath.Join(d.stateDir, rpc.TokenFile)
}

// loadToken reads the bearer token from dir, creating it on first use:
// 32 random bytes, in a 0600 file in a 0700 directory. A token file others
// can read is refused: the token may have leaked.
func loadToken(dir string) (string, error) {
	path := filepath.Join(dir, rpc.TokenFile)
	for range 2 {
		token, err := readToken(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return token, err
		}
		if err := createToken(dir, path); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		// Created, or another daemon created it first: read it.
	}
	return "", fmt.Errorf("http token %s: could not create it", path)
}

func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("http token: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("http token %s is readable by others (mode %04o): delete it and restart lbgptd for a new one", path, fi.Mode().Perm())
	}
	b := make([]byte, 256)
	n, _ := f.Read(b)
	token := strings.TrimSpace(string(b[:n]))
	if len(token) < 16 || strings.ContainsAny(token, " \t\r\n") {
		return "", fmt.Errorf("http token %s does not hold a token (16 to 256 characters, no spaces): delete it and restart lbgptd for a new one", path)
	}
	return token, nil
}

// createToken writes a new token to path, never over an existing file.
func createToken(dir, path string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("http token: create state directory: %w", err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	f, err := os.CreateTemp(dir, ".http-token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("http token: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString("lbgpt-" + base64.RawURLEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("http token: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("http token: %w", err)
	}
	return nil
}

// peerListener serves the daemon's own user (and root) only, as the
// JSON-RPC socket does; others get a 403 and the connection closes.
type peerListener struct {
	net.Listener
	d *Daemon
}

func (l peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := l.d.checkPeer(c); err != nil {
			l.d.log.Warn("http connection refused", "err", err)
			go refuseHTTP(c, err)
			continue
		}
		return c, nil
	}
}

func refuseHTTP(c net.Conn, err error) {
	defer c.Close()
	msg, _ := json.Marshal(err.Error())
	body := fmt.Sprintf(`{"error":{"message":%s,"type":"invalid_request_error","param":null,"code":"permission_denied"}}`+"\n", msg)
	c.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

// httpConnLimit is the number of connections an HTTP endpoint holds at
// once: a quarter of the file descriptors the process may open, between
// 16 and 4096.
func httpConnLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(max(lim.Cur/4, 16), 4096))
}
