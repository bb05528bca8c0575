package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// ErrNoBackends is returned by [FromEnv] when the environment configures no
// backend. Its message says how to configure one, and how to try lbgpt
// without any.
var ErrNoBackends error = noBackends{}

type noBackends struct{}

func (noBackends) Error() string {
	return "no backends configured: set OPENAI_API_KEY, or AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT, " +
		"or write a config file at " + DefaultPath() + " (see lbgpt.toml.example); " +
		"to try lbgpt without any key, run `lbgpt demo`"
}

// maxKeyFile bounds what Resolve reads from an api_key_file or a
// password_file.
const maxKeyFile = 64 << 10

// getenv returns env, or os.Getenv when env is nil.
func getenv(env func(string) string) func(string) string {
	if env == nil {
		return os.Getenv
	}
	return env
}

// Load reads the config file at path, parses it (see [Parse]) and resolves
// its API keys with env (os.Getenv when nil; see [Config.Resolve]). The
// warnings are for the user: a key readable by other users, for one.
//
// A missing file gives an error that matches [io/fs.ErrNotExist].
func Load(path string, env func(string) string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %w", err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, nil, err
	}
	c.Path = path
	warns, err := c.Resolve(env)
	if err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

// Resolve fills the Key of every backend from its api_key_env (read with
// env, os.Getenv when nil), its api_key_file ("~/" is $HOME) or its api_key,
// trimming surrounding white space, and the [shared] Secret the same way from
// password_env, password_file or password; it expands a "~/" tls_ca_file.
// It reports every missing key or password at once, and returns warnings
// about secrets that other users can read: a literal api_key or password,
// or a password in the redis URL, in a config file, or a key or password
// file, with group or other read permission.
func (c *Config) Resolve(env func(string) string) ([]string, error) {
	env = getenv(env)
	var warns []string
	var errs []error
	fail := func(b *Backend, i int, err error, format string, args ...any) {
		key := "api_key_env"
		switch {
		case b.APIKeyEnv == "" && b.APIKeyFile != "":
			key = "api_key_file"
		case b.APIKeyEnv == "" && b.APIKeyFile == "":
			key = "api_key"
		}
		errs = append(errs, &Error{File: c.Path, Line: c.secretLines[fmt.Sprintf("backend.%d.%s", i, key)],
			Msg: b.label(i) + ": " + fmt.Sprintf(format, args...), err: err})
	}

	var perm os.FileMode
	if c.Path != "" {
		if fi, err := os.Stat(c.Path); err == nil {
			perm = fi.Mode().Perm()
		}
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		b.Key = ""
		switch {
		case b.APIKeyEnv != "":
			v := strings.TrimSpace(env(b.APIKeyEnv))
			if v == "" {
				fail(b, i, nil, "environment variable %s (api_key_env) is not set or is empty", b.APIKeyEnv)
				continue
			}
			b.Key = Secret(v)
		case b.APIKeyFile != "":
			key, mode, err := readSecretFile(b.APIKeyFile, "key", env)
			if err != nil {
				fail(b, i, err, "api_key_file: %v", err)
				continue
			}
			if mode&0o044 != 0 {
				warns = append(warns, fmt.Sprintf("%s: key file %s is readable by group or others (mode %04o): run chmod 600 %s",
					b.label(i), b.APIKeyFile, mode, b.APIKeyFile))
			}
			b.Key = Secret(key)
		case b.APIKey != "":
			b.Key = Secret(strings.TrimSpace(string(b.APIKey)))
			if perm&0o044 != 0 {
				warns = append(warns, fmt.Sprintf("%s: %s has a literal api_key and the file is readable by group or others (mode %04o): "+
					"move the key to api_key_env or api_key_file, or run chmod 600 %s", c.Path, b.label(i), perm, c.Path))
			}
		}
	}
	sw, err := c.Shared.resolve(env, c.Path, perm, func(key string) int { return c.secretLines["shared."+key] })
	warns = append(warns, sw...)
	if err != nil {
		errs = append(errs, err)
	}
	return warns, errors.Join(errs...)
}

// expandHome returns name with a leading "~/" replaced by $HOME (read with
// env).
func expandHome(name string, env func(string) string) (string, error) {
	rest, ok := strings.CutPrefix(name, "~/")
	if !ok {
		return name, nil
	}
	home := env("HOME")
	if home == "" {
		return "", fmt.Errorf("cannot expand %s: HOME is not set", name)
	}
	return filepath.Join(home, rest), nil
}

// readSecretFile returns the secret in the file at name, and the file's
// permissions; what names the secret in errors: "key" or "password".
func readSecretFile(name, what string, env func(string) string) (string, os.FileMode, error) {
	name, err := expandHome(name, env)
	if err != nil {
		return "", 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if fi.IsDir() {
		return "", 0, fmt.Errorf("%s is a directory", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", 0, err
	}
	// The messages below must not quote the content: it is the secret.
	secret := strings.TrimSpace(string(data))
	switch {
	case len(data) > maxKeyFile:
		return "", 0, fmt.Errorf("%s is larger than %d KiB: it should hold only the %s", name, maxKeyFile>>10, what)
	case secret == "":
		return "", 0, fmt.Errorf("%s is empty", name)
	case strings.IndexFunc(secret, unicode.IsSpace) >= 0:
		return "", 0, fmt.Errorf("%s must hold only the %s, on one line", name, what)
	}
	return secret, fi.Mode().Perm(), nil
}

// FromEnv builds a configuration without a file, from the variables the
// OpenAI SDKs read (env is os.Getenv when nil):
//
//   - OPENAI_API_KEY, and optionally OPENAI_BASE_URL, give a backend "openai";
//   - AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT, and optionally
//     AZURE_OPENAI_API_VERSION or OPENAI_API_VERSION, give a backend "azure";
//   - both give both, weighted 1 and 3: the original LBGPT's 25 % / 75 %
//     split between OpenAI and Azure;
//   - neither gives [ErrNoBackends].
//
// The daemon settings are the defaults and the keys are resolved.
func FromEnv(env func(string) string) (*Config, error) {
	env = getenv(env)
	set := func(name string) bool { return strings.TrimSpace(env(name)) != "" }
	c := &Config{
		Version: Version,
		Daemon: Daemon{
			RequestTimeout:    Duration{DefaultRequestTimeout},
			MaxAttempts:       DefaultMaxAttempts,
			MaxMessageBytes:   DefaultMaxMessageBytes,
			DrainTimeout:      Duration{DefaultDrainTimeout},
			StreamIdleTimeout: Duration{DefaultStreamIdle},
		},
		HTTP: HTTP{MaxBodyBytes: DefaultMaxBodyBytes},
	}
	c.Balance.setDefaults(nil)
	c.Cache.setDefaults(nil)
	c.Shared.setDefaults(nil)
	setSpendDefaults(c, nil)
	var errs []error
	baseURL := func(name string) string {
		u := strings.TrimSpace(env(name))
		if u == "" {
			return ""
		}
		if msg := checkURL(u); msg != "" {
			errs = append(errs, &Error{Msg: name + " " + msg})
		}
		return u
	}
	if set("OPENAI_API_KEY") {
		c.Backends = append(c.Backends, Backend{
			Name:      "openai",
			Type:      TypeOpenAI,
			BaseURL:   baseURL("OPENAI_BASE_URL"),
			APIKeyEnv: "OPENAI_API_KEY",
		})
	}
	switch {
	case set("AZURE_OPENAI_API_KEY") && set("AZURE_OPENAI_ENDPOINT"):
		version := strings.TrimSpace(env("AZURE_OPENAI_API_VERSION"))
		if version == "" {
			version = strings.TrimSpace(env("OPENAI_API_VERSION"))
		}
		c.Backends = append(c.Backends, Backend{
			Name:       "azure",
			Type:       TypeAzure,
			BaseURL:    baseURL("AZURE_OPENAI_ENDPOINT"),
			APIKeyEnv:  "AZURE_OPENAI_API_KEY",
			APIVersion: version,
		})
	case set("AZURE_OPENAI_API_KEY"):
		errs = append(errs, &Error{Msg: "AZURE_OPENAI_API_KEY is set but AZURE_OPENAI_ENDPOINT is not: " +
			"set it to the resource endpoint, such as https://RESOURCE.openai.azure.com"})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(c.Backends) == 0 {
		return nil, ErrNoBackends
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		b.Weight = DefaultWeight
		if len(c.Backends) == 2 && b.Type == TypeAzure {
			b.Weight = 3 // OpenAI 25 %, Azure 75 %
		}
		b.MaxConcurrent = DefaultMaxConcurrent
		b.setTypeDefaults()
	}
	ck := &checker{}
	ck.validate(c)
	if err := ck.err(nil); err != nil {
		return nil, err
	}
	if _, err := c.Resolve(env); err != nil {
		return nil, err
	}
	return c, nil
}
