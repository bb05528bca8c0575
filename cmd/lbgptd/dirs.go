package main

import (
	"path/filepath"
	"strings"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/rpc"
)

// The directories systemd makes for the unit (ConfigurationDirectory=,
// RuntimeDirectory=, StateDirectory=, CacheDirectory=) win over the XDG
// defaults when set. Each variable may list several, colon-separated: the
// first is lbgptd's.

// defaultConfigPath is $CONFIGURATION_DIRECTORY/lbgpt.toml, else the XDG
// config path.
func defaultConfigPath(getenv func(string) string) string {
	if d := firstDir(getenv("CONFIGURATION_DIRECTORY")); d != "" {
		return filepath.Join(d, "lbgpt.toml")
	}
	return config.DefaultPath()
}

// socketPath is the socket to create: --socket, else [daemon] socket, else
// $RUNTIME_DIRECTORY/lbgptd.sock, else the clients' default.
func socketPath(flag, configured string, getenv func(string) string) string {
	switch {
	case flag != "":
		return flag
	case configured != "":
		return configured
	}
	if d := firstDir(getenv("RUNTIME_DIRECTORY")); d != "" {
		return filepath.Join(d, "lbgptd.sock")
	}
	return rpc.DefaultSocketPath()
}

// firstDir is the first absolute directory of a colon-separated list.
func firstDir(list string) string {
	first, _, _ := strings.Cut(list, ":")
	if !filepath.IsAbs(first) {
		return ""
	}
	return first
}
