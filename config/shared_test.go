package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// urlPass is the password the tests put in redis URLs: it must never show.
const urlPass = "hunter2-FAKE-redis"

func TestSharedTable(t *testing.T) {
	tests := []struct {
		name   string
		shared string // the [shared] table's body
		want   Shared
	}{
		{"absent", "", Shared{KeyPrefix: DefaultKeyPrefix, Cache: true}},
		{"ipv6", `redis = "redis://[::1]:6379/15"`, Shared{Redis: "redis://[::1]:6379/15", KeyPrefix: "lbgpt", Cache: true}},
		{"redis alone", `redis = "redis://redis.internal:6379/0"`,
			Shared{Redis: "redis://redis.internal:6379/0", KeyPrefix: "lbgpt", Cache: true}},
		{"every key", "redis = \"rediss://u@redis.internal:6380/2\"\npassword_env = \"REDIS_PW\"\ntls_ca_file = \"~/ca.pem\"\nkey_prefix = \"team-a:lbgpt\"\ncache = false",
			Shared{Redis: "rediss://u@redis.internal:6380/2", PasswordEnv: "REDIS_PW", TLSCAFile: "~/ca.pem", KeyPrefix: "team-a:lbgpt"}},
		{"password file", "redis = \"redis://[::1]\"\npassword_file = \"/etc/lbgpt/redis.pw\"",
			Shared{Redis: "redis://[::1]", PasswordFile: "/etc/lbgpt/redis.pw", KeyPrefix: "lbgpt", Cache: true}},
		{"literal password", "redis = \"redis://h/\"\npassword = \"" + urlPass + "\"",
			Shared{Redis: "redis://h/", Password: urlPass, KeyPrefix: "lbgpt", Cache: true}},
		{"password in the url", `redis = "redis://:` + urlPass + `@h:6379"`,
			Shared{Redis: "redis://:" + urlPass + "@h:6379", KeyPrefix: "lbgpt", Cache: true}},
		{"unix socket", `redis = "unix:///run/redis/redis.sock?db=3"`,
			Shared{Redis: "unix:///run/redis/redis.sock?db=3", KeyPrefix: "lbgpt", Cache: true}},
		{"unix socket with a user", `redis = "unix://lbgpt:` + urlPass + `@/run/redis.sock"`,
			Shared{Redis: "unix://lbgpt:" + urlPass + "@/run/redis.sock", KeyPrefix: "lbgpt", Cache: true}},
		{"upper-case scheme", `redis = "REDIS://h"`, Shared{Redis: "REDIS://h", KeyPrefix: "lbgpt", Cache: true}},
		{"an empty redis shares nothing", `redis = ""`, Shared{KeyPrefix: "lbgpt", Cache: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := backendA
			if tt.shared != "" {
				text += "[shared]\n" + tt.shared + "\n"
			}
			c, err := Parse([]byte(text), "lbgpt.toml")
			if err != nil {
				t.Fatal(err)
			}
			if c.Shared != tt.want {
				t.Errorf("[shared] = %+v, want %+v", c.Shared, tt.want)
			}
			if c.Shared.Enabled() != (tt.want.Redis != "") {
				t.Errorf("Enabled = %v", c.Shared.Enabled())
			}
		})
	}
}

func TestLimitScope(t *testing.T) {
	for _, scope := range []string{"openai-org-main", "azure:eastus/gpt-4o", strings.Repeat("s", maxLimitScope)} {
		c, err := Parse([]byte(backendA+"limit_scope = \""+scope+"\"\n"), "lbgpt.toml")
		if err != nil {
			t.Fatalf("limit_scope %q: %v", scope, err)
		}
		if c.Backends[0].LimitScope != scope {
			t.Errorf("LimitScope = %q, want %q", c.Backends[0].LimitScope, scope)
		}
	}
}

func TestSharedValidation(t *testing.T) {
	const redis = "redis = \"redis://h:6379/0\"\n"
	tests := []struct {
		name string
		text string // appended to backendA; line 6 is the first
		want string
	}{
		// Without redis, every other key would be ignored.
		{"password_env without redis", "[shared]\npassword_env = \"PW\"\n",
			`lbgpt.toml:7: shared: password_env needs redis: set redis to the team's Redis, such as "redis://redis.internal:6379/0", or remove password_env`},
		{"password_file without redis", "[shared]\npassword_file = \"/pw\"\n", `lbgpt.toml:7: shared: password_file needs redis: `},
		{"password without redis", "[shared]\npassword = \"" + urlPass + "\"\n", `lbgpt.toml:7: shared: password needs redis: `},
		{"tls_ca_file without redis", "[shared]\ntls_ca_file = \"/ca.pem\"\n", `lbgpt.toml:7: shared: tls_ca_file needs redis: `},
		{"key_prefix without redis", "[shared]\nkey_prefix = \"lbgpt\"\n", `lbgpt.toml:7: shared: key_prefix needs redis: `},
		{"cache without redis", "[shared]\ncache = true\n", `lbgpt.toml:7: shared: cache needs redis: `},
		{"several with an empty redis", "[shared]\nredis = \"\"\nkey_prefix = \"x\"\ncache = false\n",
			"lbgpt.toml:8: shared: key_prefix needs redis: set redis to the team's Redis, such as \"redis://redis.internal:6379/0\", or remove key_prefix\n" +
				"lbgpt.toml:9: shared: cache needs redis: set redis to the team's Redis, such as \"redis://redis.internal:6379/0\", or remove cache"},

		// redis itself.
		{"not a url", "[shared]\nredis = \"localhost:6379\"\n",
			`lbgpt.toml:7: shared: redis is not a URL: use redis://[user@]host[:port][/db], rediss://... (TLS) or unix:///path/to/redis.sock`},
		{"unparsable", "[shared]\nredis = \"redis://:" + urlPass + "@h:port\"\n", `lbgpt.toml:7: shared: redis is not a URL: use `},
		{"other scheme", "[shared]\nredis = \"http://:" + urlPass + "@h:6379\"\n",
			`lbgpt.toml:7: shared: redis "http://:xxxxx@h:6379" must be a redis://, rediss:// or unix:// URL`},
		{"no scheme", "[shared]\nredis = \"redis.internal\"\n",
			`lbgpt.toml:7: shared: redis "redis.internal" must be a redis://, rediss:// or unix:// URL`},
		{"no host", "[shared]\nredis = \"redis://:" + urlPass + "@:6379/0\"\n",
			`lbgpt.toml:7: shared: redis "redis://:xxxxx@:6379/0" has no host: use redis://[user@]host[:port][/db], rediss://... (TLS) or unix:///path/to/redis.sock`},
		{"two ports", "[shared]\nredis = \"redis://:" + urlPass + "@h:6379:6380/0\"\n",
			`lbgpt.toml:7: shared: redis "redis://:xxxxx@h:6379:6380/0": the host must be a name or an address, an IPv6 address in brackets ([::1]:6379)`},
		{"port zero", "[shared]\nredis = \"redis://h:0\"\n", `lbgpt.toml:7: shared: redis "redis://h:0": the port must be a number from 1 to 65535`},
		{"port too high", "[shared]\nredis = \"rediss://h:65536\"\n", `lbgpt.toml:7: shared: redis "rediss://h:65536": the port must be a number from 1 to 65535`},
		{"database name", "[shared]\nredis = \"rediss://:" + urlPass + "@h/cache\"\n",
			`lbgpt.toml:7: shared: redis "rediss://:xxxxx@h/cache": the path must be a database number, such as /0`},
		{"database path", "[shared]\nredis = \"redis://h/0/1\"\n", `lbgpt.toml:7: shared: redis "redis://h/0/1": the path must be a database number, such as /0`},
		{"negative database", "[shared]\nredis = \"redis://h/-1\"\n", `lbgpt.toml:7: shared: redis "redis://h/-1": the path must be a database number, such as /0`},
		{"unix, two slashes", "[shared]\nredis = \"unix://run/redis.sock\"\n",
			`lbgpt.toml:7: shared: redis "unix://run/redis.sock": a unix:// URL needs an absolute path, as in unix:///run/redis/redis.sock (three slashes)`},
		{"unix, relative", "[shared]\nredis = \"unix:redis.sock\"\n", `lbgpt.toml:7: shared: redis is not a URL: use `},
		{"unix, no path", "[shared]\nredis = \"unix://\"\n", `lbgpt.toml:7: shared: redis "unix:": a unix:// URL needs an absolute path`},

		// The password.
		{"two passwords", "[shared]\n" + redis + "password_env = \"PW\"\npassword = \"" + urlPass + "\"\n",
			`lbgpt.toml:8: shared: set only one of password_env, password_file and password`},
		{"file and literal", "[shared]\n" + redis + "password = \"" + urlPass + "\"\npassword_file = \"/pw\"\n",
			`lbgpt.toml:9: shared: set only one of password_env, password_file and password`},
		{"url and password_env", "[shared]\nredis = \"redis://:" + urlPass + "@h\"\npassword_env = \"PW\"\n",
			`lbgpt.toml:8: shared: redis holds a password already: give it either in the URL or with password_env, not both`},
		{"url and password", "[shared]\nredis = \"redis://u:" + urlPass + "@h\"\npassword = \"x\"\n",
			`lbgpt.toml:8: shared: redis holds a password already: give it either in the URL or with password, not both`},
		{"password in password_env", "[shared]\n" + redis + "password_env = \"" + urlPass + "\"\n",
			`lbgpt.toml:8: shared: password_env must be the name of an environment variable (A-Z, 0-9 and _), such as "LBGPT_REDIS_PASSWORD", not the password itself`},
		{"relative password_file", "[shared]\n" + redis + "password_file = \"redis.pw\"\n",
			`lbgpt.toml:8: shared: password_file must be an absolute path or start with "~/"`},

		// TLS.
		{"relative tls_ca_file", "[shared]\nredis = \"rediss://h\"\ntls_ca_file = \"ca.pem\"\n",
			`lbgpt.toml:8: shared: tls_ca_file must be an absolute path or start with "~/"`},
		{"tls_ca_file without tls", "[shared]\n" + redis + "tls_ca_file = \"/etc/ca.pem\"\n",
			`lbgpt.toml:8: shared: tls_ca_file is only for TLS: redis must then be a rediss:// URL, not redis://`},
		{"tls_ca_file on a unix socket", "[shared]\nredis = \"unix:///r.sock\"\ntls_ca_file = \"~/ca.pem\"\n",
			`lbgpt.toml:8: shared: tls_ca_file is only for TLS: redis must then be a rediss:// URL, not unix://`},

		// key_prefix.
		{"empty key_prefix", "[shared]\n" + redis + "key_prefix = \"\"\n", `lbgpt.toml:8: shared: key_prefix must not be empty (leave it out for "lbgpt")`},
		{"key_prefix with a space", "[shared]\n" + redis + "key_prefix = \"team a\"\n",
			`lbgpt.toml:8: shared: key_prefix "team a" must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`},
		{"key_prefix with a brace", "[shared]\n" + redis + "key_prefix = \"{lbgpt}\"\n",
			`lbgpt.toml:8: shared: key_prefix "{lbgpt}" must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`},
		{"key_prefix with a newline", "[shared]\n" + redis + "key_prefix = \"a\\n\"\n", `lbgpt.toml:8: shared: key_prefix "a\n" must not hold white space`},

		// limit_scope.
		{"empty limit_scope", "limit_scope = \"\"\n", `lbgpt.toml:6: backend "a": limit_scope must not be empty (leave it out for the default scope)`},
		{"long limit_scope", "limit_scope = \"" + strings.Repeat("s", 129) + "\"\n", `lbgpt.toml:6: backend "a": limit_scope is 129 bytes long; it may have at most 128`},
		{"limit_scope with a space", "limit_scope = \"org main\"\n",
			`lbgpt.toml:6: backend "a": limit_scope "org main" must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`},
		{"limit_scope with a tab", "limit_scope = \"org\\tmain\"\n", `lbgpt.toml:6: backend "a": limit_scope "org\tmain" must not hold white space`},
		{"limit_scope with braces", "[[backend]]\nname = \"b\"\ntype = \"openai\"\napi_key_env = \"K\"\nlimit_scope = \"{org}\"\n",
			`lbgpt.toml:10: backend "b": limit_scope "{org}" must not hold white space, "{" or "}" (Redis Cluster hash-tag characters)`},

		{"several, in line order", "limit_scope = \"\"\n[shared]\nkey_prefix = \"{x}\"\nredis = \"rediss://:" + urlPass + "@h/x\"\n",
			"lbgpt.toml:6: backend \"a\": limit_scope must not be empty (leave it out for the default scope)\n" +
				"lbgpt.toml:8: shared: key_prefix \"{x}\" must not hold white space, \"{\" or \"}\" (Redis Cluster hash-tag characters)\n" +
				"lbgpt.toml:9: shared: redis \"rediss://:xxxxx@h/x\": the path must be a database number, such as /0"},
		{"misspelt key", "[shared]\nredis_url = \"redis://h\"\n", `lbgpt.toml:7: unknown key "redis_url" in [shared] (did you mean "redis"?)`},
		{"misspelt scope", "scope = \"x\"\n", `lbgpt.toml:6: unknown key "scope" in [[backend]] (did you mean "limit_scope"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(t, backendA+tt.text)
			if !strings.HasPrefix(got, tt.want) || (strings.Contains(tt.want, "\n") && got != tt.want) {
				t.Errorf("error:\n%s\nwant (a prefix):\n%s", got, tt.want)
			}
			if strings.Contains(got, urlPass) || strings.Contains(got, "hunter2") {
				t.Errorf("error shows the password: %s", got)
			}
		})
	}
	for _, text := range []string{"version = 1\nshared.cache = false\n", "version = 1\nshared = { cache = false }\n"} {
		got := parseError(t, text+backendA[len("version = 1\n"):])
		if want := "lbgpt.toml:2: shared: cache needs redis: "; !strings.HasPrefix(got, want) {
			t.Errorf("%q: error %q, want %q", text, got, want)
		}
	}
}

// TestRedisPasswordNeverShown: whatever is wrong with the [shared] table, no
// error quotes the password of the redis URL, however malformed the URL is.
func TestRedisPasswordNeverShown(t *testing.T) {
	urls := []string{
		"redis://:" + urlPass + "@h:6379/0",            // valid, with another key wrong
		"redis://user:" + urlPass + "@h:port",          // bad port
		"redis://:" + urlPass + "@:6379",               // no host
		"rediss://:" + urlPass + "@h/db",               // bad database
		"redis://:" + urlPass + "@h/0/1",               // bad path
		"http://:" + urlPass + "@h",                    // bad scheme
		"unix://:" + urlPass + "@run/redis.sock",       // unix with a host
		"unix://:" + urlPass + "@",                     // unix without a path
		"redis:" + urlPass + "@h",                      // opaque
		"redis:/:" + urlPass + "@h",                    // one slash: no user information
		"redis//:" + urlPass + "@h",                    // no scheme
		":" + urlPass + "@h:6379",                      // no scheme at all
		"redis://:" + urlPass + "@h:6379/0\x7f",        // a control character
		"redis://:" + urlPass + "%zz@h",                // a bad escape
		"redis://:" + urlPass + "@h:6379/0 ",           // a space
		"redis://:" + urlPass + "@[::1:6379",           // a bad IPv6 literal
		"rediss://:" + urlPass + "@h/0?ssl=true#frag",  // query and fragment
		"redis://:" + urlPass + "@h:6379:6380/0",       // two ports
		"redis://u:" + urlPass + "@h:6379@other:6379/", // two @
	}
	// Each URL with keys that are wrong with it or because of it.
	others := []string{
		"",
		"password_env = \"PW\"\n",
		"password = \"x\"\ntls_ca_file = \"/ca.pem\"\n",
		"key_prefix = \"\"\n",
	}
	checked := 0
	for _, u := range urls {
		for _, o := range others {
			text := backendA + "[shared]\nredis = \"" + strings.ReplaceAll(u, "\x7f", `\u007f`) + "\"\n" + o
			c, err := Parse([]byte(text), "lbgpt.toml")
			if err == nil {
				continue // a valid URL, and nothing wrong with the rest
			}
			checked++
			if c != nil {
				t.Errorf("Parse returned a config with its error")
			}
			if msg := err.Error(); strings.Contains(msg, urlPass) || strings.Contains(msg, "hunter2") {
				t.Errorf("redis %q, %q: error shows the password:\n%s", u, o, msg)
			}
		}
	}
	if want := len(urls) * (len(others) - 1); checked < want {
		t.Errorf("%d errors checked, want at least %d", checked, want)
	}
	// And a URL that was accepted does not show in its other errors either.
	msg := parseError(t, backendA+"[shared]\nredis = \"redis://:"+urlPass+"@h\"\ntls_ca_file = \"/ca.pem\"\n")
	if strings.Contains(msg, urlPass) {
		t.Errorf("error shows the password: %s", msg)
	}
}

func TestSharedSyntaxErrorWithheld(t *testing.T) {
	tests := []struct{ name, text string }{
		{"unquoted password", "[shared]\nredis = \"redis://h\"\npassword = " + urlPass + "\n"},
		{"unquoted password_env", "[shared]\npassword_env = " + urlPass + "\n"},
		{"unquoted url", "[shared]\nredis = redis://:" + urlPass + "@h\n"},
		{"unterminated url", "[shared]\nredis = \"redis://:" + urlPass + "@h\n"},
		{"inline", "shared = { password = " + urlPass + " }\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(t, backendA+tt.text)
			if !strings.Contains(got, "invalid TOML: error next to a password setting (details withheld so that no password is shown)") {
				t.Errorf("error %q does not withhold its details", got)
			}
			if strings.Contains(got, "hunter") {
				t.Errorf("error shows the password: %s", got)
			}
		})
	}
}

func TestSharedResolve(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.pw", "\n  "+urlPass+"\r\n", 0o600)
	writeFile(t, dir, "empty.pw", " \n", 0o600)
	writeFile(t, dir, "two.pw", urlPass+"\nsecond line\n", 0o600)
	writeFile(t, dir, "big.pw", strings.Repeat("p", maxKeyFile+1), 0o600)
	env := map[string]string{"HOME": dir, "PW": " " + urlPass + "\n", "EMPTY": ""}

	tests := []struct {
		name    string
		s       Shared
		want    string // the password, when no error
		wantErr string // the error
	}{
		{"env", Shared{PasswordEnv: "PW"}, urlPass, ""},
		{"env unset", Shared{PasswordEnv: "UNSET"}, "", `shared: environment variable UNSET (password_env) is not set or is empty`},
		{"env empty", Shared{PasswordEnv: "EMPTY"}, "", `shared: environment variable EMPTY (password_env) is not set or is empty`},
		{"file", Shared{PasswordFile: filepath.Join(dir, "good.pw")}, urlPass, ""},
		{"file under home", Shared{PasswordFile: "~/good.pw"}, urlPass, ""},
		{"file missing", Shared{PasswordFile: filepath.Join(dir, "missing.pw")}, "",
			`shared: password_file: open ` + filepath.Join(dir, "missing.pw") + `: no such file or directory`},
		{"file empty", Shared{PasswordFile: "~/empty.pw"}, "", `shared: password_file: ` + filepath.Join(dir, "empty.pw") + ` is empty`},
		{"file with more than the password", Shared{PasswordFile: "~/two.pw"}, "",
			`shared: password_file: ` + filepath.Join(dir, "two.pw") + ` must hold only the password, on one line`},
		{"file too big", Shared{PasswordFile: "~/big.pw"}, "",
			`shared: password_file: ` + filepath.Join(dir, "big.pw") + ` is larger than 64 KiB: it should hold only the password`},
		{"file is a directory", Shared{PasswordFile: dir}, "", `shared: password_file: ` + dir + ` is a directory`},
		{"literal", Shared{Password: " " + urlPass + "\n"}, urlPass, ""},
		{"in the url only", Shared{Redis: "redis://:" + urlPass + "@h"}, "", ""},
		{"none", Shared{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.Secret = "stale"
			c := &Config{Shared: tt.s}
			warns, err := c.Resolve(mapEnv(env))
			if len(warns) > 0 {
				t.Errorf("warnings: %q", warns)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), urlPass) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Shared.Secret.Reveal(); got != tt.want {
				t.Errorf("Secret = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSharedResolveTLSCAFile(t *testing.T) {
	c := &Config{Shared: Shared{Redis: "rediss://h", TLSCAFile: "~/ca/redis.pem"}}
	if _, err := c.Resolve(mapEnv(map[string]string{"HOME": "/home/u"})); err != nil {
		t.Fatal(err)
	}
	if want := "/home/u/ca/redis.pem"; c.Shared.TLSCAFile != want {
		t.Errorf("TLSCAFile = %q, want %q", c.Shared.TLSCAFile, want)
	}
	c = &Config{Path: "lbgpt.toml", Shared: Shared{Redis: "rediss://h", TLSCAFile: "~/ca.pem"}}
	_, err := c.Resolve(mapEnv(nil))
	if want := "lbgpt.toml: shared: tls_ca_file: cannot expand ~/ca.pem: HOME is not set"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestResolveReportsAll: a backend's key and the password missing are
// reported together.
func TestResolveReportsAll(t *testing.T) {
	c := &Config{Path: "lbgpt.toml", Backends: []Backend{{Name: "a", APIKeyEnv: "A"}}, Shared: Shared{Redis: "redis://h", PasswordEnv: "PW"}}
	_, err := c.Resolve(mapEnv(nil))
	want := "lbgpt.toml: backend \"a\": environment variable A (api_key_env) is not set or is empty\n" +
		"lbgpt.toml: shared: environment variable PW (password_env) is not set or is empty"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

func TestSharedLoadWarnings(t *testing.T) {
	const head = "version = 1\n[[backend]]\nname = \"a\"\ntype = \"openai-compatible\"\nbase_url = \"http://x/v1\"\n[shared]\n"
	tests := []struct {
		name    string
		shared  string
		cfgPerm os.FileMode
		pwPerm  os.FileMode
		want    []string // substrings, one per warning
	}{
		{"literal, private file", "redis = \"redis://h\"\npassword = \"" + urlPass + "\"\n", 0o600, 0o600, nil},
		{"literal, readable file", "redis = \"redis://h\"\npassword = \"" + urlPass + "\"\n", 0o644, 0o600,
			[]string{`lbgpt.toml: [shared] has a literal password and the file is readable by group or others (mode 0644): move it to password_env or password_file, or run chmod 600 `}},
		{"in the url, private file", "redis = \"redis://:" + urlPass + "@h\"\n", 0o600, 0o600, nil},
		{"in the url, readable file", "redis = \"redis://:" + urlPass + "@h\"\n", 0o640, 0o600,
			[]string{`lbgpt.toml: [shared] redis holds a password and the file is readable by group or others (mode 0640): move it to password_env or password_file, or run chmod 600 `}},
		{"user but no password in the url, readable file", "redis = \"redis://lbgpt@h\"\n", 0o644, 0o600, nil},
		{"file, private", "redis = \"redis://h\"\npassword_file = \"~/redis.pw\"\n", 0o644, 0o600, nil},
		{"file, readable", "redis = \"redis://h\"\npassword_file = \"~/redis.pw\"\n", 0o600, 0o604,
			[]string{`shared: password file ~/redis.pw is readable by group or others (mode 0604): run chmod 600 ~/redis.pw`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "lbgpt.toml", head+tt.shared, tt.cfgPerm)
			writeFile(t, dir, "redis.pw", urlPass+"\n", tt.pwPerm)
			c, warns, err := Load(path, mapEnv(map[string]string{"HOME": dir}))
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", warns, len(tt.want))
			}
			for i, w := range warns {
				if !strings.Contains(w, tt.want[i]) {
					t.Errorf("warning %q, want it to contain %q", w, tt.want[i])
				}
				if strings.Contains(w, urlPass) {
					t.Errorf("warning shows the password: %q", w)
				}
			}
			if strings.Contains(tt.shared, "password") && c.Shared.Secret.Reveal() != urlPass {
				t.Errorf("password not resolved")
			}
		})
	}
}

func TestSharedLogValue(t *testing.T) {
	tests := []struct {
		s    Shared
		want []string
	}{
		{Shared{Redis: "redis://u:" + urlPass + "@h:6379/0", KeyPrefix: "lbgpt", Cache: true},
			[]string{`s.redis=redis://u:xxxxx@h:6379/0`, "s.password=url", "s.key_prefix=lbgpt", "s.cache=true"}},
		{Shared{Redis: "rediss://h", PasswordEnv: "PW", Secret: urlPass}, []string{"s.redis=rediss://h", `s.password="env PW"`}},
		{Shared{Redis: "redis://h", PasswordFile: "/pw"}, []string{`s.password="file /pw"`}},
		{Shared{Redis: "redis://h", Password: urlPass, Secret: urlPass}, []string{"s.password=password"}},
		{Shared{Redis: "redis:" + urlPass + "@h"}, []string{`s.redis="(an unparsable URL)"`}},
		{Shared{}, []string{`s.redis=""`, "s.password=none"}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("shared", "s", tt.s)
		out := buf.String()
		for _, want := range tt.want {
			if !strings.Contains(out, want) {
				t.Errorf("log %q lacks %q", out, want)
			}
		}
		if strings.Contains(out, urlPass) {
			t.Errorf("log shows the password: %s", out)
		}
	}
}

// A password that cannot be read is reported at the line that names where
// it comes from, as a bad key is.
func TestSharedPasswordErrorNamesTheLine(t *testing.T) {
	c, err := Parse([]byte("version = 1\n[[backend]]\nname = \"a\"\ntype = \"openai-compatible\"\nbase_url = \"http://x/v1\"\n[shared]\nredis = \"redis://h\"\npassword_env = \"LBGPT_TEST_UNSET_PW\"\n"), "lbgpt.toml")
	if err != nil {
		t.Fatal(err)
	}
	c.Path = "lbgpt.toml" // as Load sets it
	_, err = c.Resolve(mapEnv(nil))
	if want := "lbgpt.toml:8: shared: environment variable LBGPT_TEST_UNSET_PW (password_env) is not set or is empty"; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}
