package config

import (
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
)

// validateHTTP checks the [http] table: a loopback address only (any local
// user can reach a loopback port, hence the token; nobody else may), and a
// socket path that is not the daemon's own.
func (ck *checker) validateHTTP(h *HTTP, d *Daemon) {
	at := func(key string) []seg { return []seg{{"http", -1}, {key, -1}} }
	if h.Listen != "" {
		if msg := checkLoopback(h.Listen); msg != "" {
			ck.errorf(at("listen"), "http: listen %q: %s", h.Listen, msg)
		}
	}
	if h.MaxBodyBytes < 1<<10 || h.MaxBodyBytes > 1<<30 {
		ck.errorf(at("max_body_bytes"), "http: max_body_bytes must be from 1024 to %d (1 GiB), not %d", 1<<30, h.MaxBodyBytes)
	}
	switch msg := socketProblem(h.Socket); {
	case msg != "":
		ck.errorf(at("socket"), "http: %s", msg)
	case h.Socket != "" && d.Socket != "" && filepath.Clean(h.Socket) == filepath.Clean(d.Socket):
		ck.errorf(at("socket"), "http: socket must differ from [daemon] socket, which serves JSON-RPC")
	}
}

// checkLoopback explains what is wrong with a listen address, or returns "".
func checkLoopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return `want HOST:PORT, such as "127.0.0.1:8088"`
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "the port must be a number from 0 to 65535"
	}
	if host == "localhost" {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "":
		return `no host means every interface; lbgptd listens on loopback only: use "127.0.0.1` + ":" + port + `"`
	case err != nil:
		return "the host must be a loopback IP address (127.0.0.1, ::1) or localhost"
	case !ip.IsLoopback():
		return "not a loopback address: lbgptd's HTTP endpoint is for this machine only (127.0.0.1, ::1 or localhost)"
	}
	return ""
}
