package rpc

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// EnvStamps let a client tell whether lbgptd was started with the same
// environment as the client's shell — the API keys it read from it above
// all — without either side showing a value: each variable is a salted
// hash, the salt the daemon's own.
type EnvStamps struct {
	Salt string `json:"salt"`
	// Vars maps the name of each variable the daemon's configuration reads
	// (a backend's api_key_env, [shared] password_env; without a config
	// file, also OPENAI_BASE_URL and AZURE_OPENAI_ENDPOINT) to the stamp
	// of its value when the daemon started; "" when it was unset.
	Vars map[string]string `json:"vars"`
}

// EnvStamp is the stamp of a variable's value: "" for an unset one, else
// 16 hex digits of SHA-256 over the salt, the name and the value.
func EnvStamp(salt, name, value string) string {
	if value == "" {
		return ""
	}
	h := sha256.Sum256([]byte(salt + "\x00" + name + "\x00" + value))
	return hex.EncodeToString(h[:8])
}

// Differs names, sorted, the variables that getenv (the client's
// environment) sets to another value than the daemon started with. A
// variable the client does not set is not compared: the client may be a
// program with an environment of its own.
func (e *EnvStamps) Differs(getenv func(string) string) []string {
	if e == nil {
		return nil
	}
	var out []string
	for name, stamp := range e.Vars {
		if v := strings.TrimSpace(getenv(name)); v != "" && EnvStamp(e.Salt, name, v) != stamp {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// EnvAdvice says what to do when the variables names differ: lbgptd keeps
// the environment it started with.
func EnvAdvice(names []string) string {
	return "lbgptd was started with another " + strings.Join(names, ", ") +
		" than this shell has (it keeps the environment it started with): run `lbgpt stop`, and the next lbgpt command starts it again with this shell's environment"
}
