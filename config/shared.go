package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
)

// maxLimitScope bounds a backend's limit_scope, which is part of every
// Redis key of its budget.
const maxLimitScope = 128

// setDefaults fills the [shared] settings the file leaves out; set holds the
// keys it has.
func (s *Shared) setDefaults(set map[string]any) {
	if _, ok := set["key_prefix"]; !ok {
		s.KeyPrefix = DefaultKeyPrefix
	}
	if _, ok := set["cache"]; !ok {
		s.Cache = true
	}
}

// validateShared checks the [shared] table. Its messages quote the redis URL
// only redacted (url.URL.Redacted), and never a password.
func (ck *checker) validateShared(s *Shared) {
	at := func(key string) []seg { return []seg{{"shared", -1}, {key, -1}} }

	if !s.Enabled() {
		// Every other key is about the connection to Redis: without one it
		// would be silently ignored.
		set, _ := ck.raw["shared"].(map[string]any)
		for _, f := range schema.field("shared").fields {
			if _, ok := set[f.name]; ok && f.name != "redis" {
				ck.errorf(at(f.name), "shared: %s needs redis: set redis to the team's Redis, such as %q, or remove %s",
					f.name, "redis://redis.internal:6379/0", f.name)
			}
		}
		return
	}

	u, msg := parseRedis(s.Redis)
	if msg != "" {
		ck.errorf(at("redis"), "shared: %s", msg)
	}

	n := 0
	for _, v := range []string{s.PasswordEnv, s.PasswordFile, string(s.Password)} {
		if v != "" {
			n++
		}
	}
	first := "password" // the key an error about the password sources names
	switch {
	case s.PasswordEnv != "":
		first = "password_env"
	case s.PasswordFile != "":
		first = "password_file"
	}
	switch {
	case n > 1:
		ck.errorf(at(first), "shared: set only one of password_env, password_file and password")
	case n == 1 && u != nil && urlPassword(u):
		ck.errorf(at(first), "shared: redis holds a password already: give it either in the URL or with %s, not both", first)
	}
	if s.PasswordEnv != "" && !validEnv.MatchString(s.PasswordEnv) {
		// Not quoted back: it may be the password itself, put in the wrong place.
		ck.errorf(at("password_env"), `shared: password_env must be the name of an environment variable (A-Z, 0-9 and _), such as "LBGPT_REDIS_PASSWORD", not the password itself`)
	}
	if s.PasswordFile != "" && !homePath(s.PasswordFile) {
		ck.errorf(at("password_file"), `shared: password_file must be an absolute path or start with "~/"`)
	}

	if s.TLSCAFile != "" {
		if !homePath(s.TLSCAFile) {
			ck.errorf(at("tls_ca_file"), `shared: tls_ca_file must be an absolute path or start with "~/"`)
		}
		if u != nil && u.Scheme != "rediss" {
			ck.errorf(at("tls_ca_file"), "shared: tls_ca_file is only for TLS: redis must then be a rediss:// URL, not %s://", u.Scheme)
		}
	}

	switch {
	case s.KeyPrefix == "":
		ck.errorf(at("key_prefix"), "shared: key_prefix must not be empty (leave it out for %q)", DefaultKeyPrefix)
	case hasHashTagOrSpace(s.KeyPrefix):
		ck.errorf(at("key_prefix"), `shared: key_prefix %q must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`, s.KeyPrefix)
	}
}

// validateLimitScope checks b's limit_scope; set is whether the file sets
// it, to tell an empty one from none.
func (ck *checker) validateLimitScope(b *Backend, i int, set bool) {
	s := b.LimitScope
	switch {
	case s == "" && !set:
	case s == "":
		ck.errorf(bpath(i, "limit_scope"), "%s: limit_scope must not be empty (leave it out for the default scope)", b.label(i))
	case len(s) > maxLimitScope:
		ck.errorf(bpath(i, "limit_scope"), "%s: limit_scope is %d bytes long; it may have at most %d", b.label(i), len(s), maxLimitScope)
	case hasHashTagOrSpace(s):
		ck.errorf(bpath(i, "limit_scope"), `%s: limit_scope %q must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`, b.label(i), s)
	}
}

// hasHashTagOrSpace reports whether s holds a brace, which would change the
// Redis Cluster hash tag of the keys it is part of, or white space.
func hasHashTagOrSpace(s string) bool {
	return strings.ContainsAny(s, "{}") || strings.ContainsFunc(s, unicode.IsSpace)
}

// homePath reports whether p is absolute or starts with "~/".
func homePath(p string) bool {
	return strings.HasPrefix(p, "/") || strings.HasPrefix(p, "~/")
}

// parseRedis parses a [shared] redis URL. It returns the URL, or nil and
// what is wrong with it. A message quotes the URL only redacted, and not at
// all when the parser may have missed its password.
func parseRedis(s string) (*url.URL, string) {
	const forms = "redis://[user@]host[:port][/db], rediss://... (TLS) or unix:///path/to/redis.sock"
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" {
		// url.Parse's error quotes the URL, and an opaque URL
		// ("redis:pw@host") has no user information to redact.
		return nil, "redis is not a URL: use " + forms
	}
	name := "redis"
	// Redacted hides the password of the user information; an "@" that the
	// parser did not take for its end ("redis:/:pw@host") may follow a
	// password all the same.
	if u.User != nil || !strings.Contains(s, "@") {
		name += " " + strconv.Quote(u.Redacted())
	}
	switch u.Scheme {
	case "redis", "rediss":
		switch host := u.Hostname(); {
		case host == "":
			return nil, name + " has no host: use " + forms
		case strings.Contains(host, ":") && !strings.HasPrefix(u.Host, "["):
			return nil, name + ": the host must be a name or an address, an IPv6 address in brackets ([::1]:6379)"
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return nil, name + ": the port must be a number from 1 to 65535"
			}
		}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			if _, err := strconv.ParseUint(db, 10, 31); err != nil {
				return nil, name + ": the path must be a database number, such as /0"
			}
		}
	case "unix":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, name + ": a unix:// URL needs an absolute path, as in unix:///run/redis/redis.sock (three slashes)"
		}
	default:
		return nil, name + " must be a redis://, rediss:// or unix:// URL"
	}
	return u, ""
}

// urlPassword reports whether u holds a password.
func urlPassword(u *url.URL) bool {
	p, ok := u.User.Password()
	return ok && p != ""
}

// resolve fills s.Secret from password_env (read with env), password_file
// or password, as [Config.Resolve] does a backend's key, and expands a "~/"
// tls_ca_file. file is the config file and perm its permissions, for the
// warnings; line finds a [shared] key's line, for the errors.
func (s *Shared) resolve(env func(string) string, file string, perm os.FileMode, line func(key string) int) ([]string, error) {
	var warns []string
	fail := func(err error, format string, args ...any) error {
		key := "password_env"
		if s.PasswordEnv == "" {
			key = "password_file"
		}
		return &Error{File: file, Line: line(key), Msg: "shared: " + fmt.Sprintf(format, args...), err: err}
	}
	s.Secret = ""
	switch {
	case s.PasswordEnv != "":
		v := strings.TrimSpace(env(s.PasswordEnv))
		if v == "" {
			return nil, fail(nil, "environment variable %s (password_env) is not set or is empty", s.PasswordEnv)
		}
		s.Secret = Secret(v)
	case s.PasswordFile != "":
		pw, mode, err := readSecretFile(s.PasswordFile, "password", env)
		if err != nil {
			return nil, fail(err, "password_file: %v", err)
		}
		if mode&0o044 != 0 {
			warns = append(warns, fmt.Sprintf("shared: password file %s is readable by group or others (mode %04o): run chmod 600 %s",
				s.PasswordFile, mode, s.PasswordFile))
		}
		s.Secret = Secret(pw)
	case s.Password != "":
		s.Secret = Secret(strings.TrimSpace(string(s.Password)))
		if perm&0o044 != 0 {
			warns = append(warns, fmt.Sprintf("%s: [shared] has a literal password and the file is readable by group or others (mode %04o): "+
				"move it to password_env or password_file, or run chmod 600 %s", file, perm, file))
		}
	default:
		if u, err := url.Parse(s.Redis); err == nil && urlPassword(u) && perm&0o044 != 0 {
			warns = append(warns, fmt.Sprintf("%s: [shared] redis holds a password and the file is readable by group or others (mode %04o): "+
				"move it to password_env or password_file, or run chmod 600 %s", file, perm, file))
		}
	}
	if s.TLSCAFile != "" {
		p, err := expandHome(s.TLSCAFile, env)
		if err != nil {
			return warns, fail(err, "tls_ca_file: %v", err)
		}
		s.TLSCAFile = p
	}
	return warns, nil
}

// PasswordSource says where the Redis password comes from, for display:
// "env NAME", "file PATH", "password", "url" or "none". It never contains
// the password.
func (s Shared) PasswordSource() string {
	switch {
	case s.PasswordEnv != "":
		return "env " + s.PasswordEnv
	case s.PasswordFile != "":
		return "file " + s.PasswordFile
	case s.Password != "":
		return "password"
	}
	if u, err := url.Parse(s.Redis); err == nil && urlPassword(u) {
		return "url"
	}
	return "none"
}

// LogValue shows s in logs with its URL redacted and where its password
// comes from: never the password.
func (s Shared) LogValue() slog.Value {
	where := ""
	if s.Redis != "" {
		where = "(an unparsable URL)"
		if u, msg := parseRedis(s.Redis); msg == "" {
			where = u.Redacted()
		}
	}
	return slog.GroupValue(
		slog.String("redis", where),
		slog.String("password", s.PasswordSource()),
		slog.String("key_prefix", s.KeyPrefix),
		slog.Bool("cache", s.Cache),
	)
}
