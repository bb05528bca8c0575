package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"
)

// Secret is an API key. Every way of showing it — String, GoString, any fmt
// verb, MarshalText, MarshalJSON and slog — gives "[redacted]", or "" when
// the secret is empty. Only [Secret.Reveal] returns the key.
type Secret string

const redacted = "[redacted]"

var (
	_ fmt.Stringer           = Secret("")
	_ fmt.GoStringer         = Secret("")
	_ fmt.Formatter          = Secret("")
	_ encoding.TextMarshaler = Secret("")
	_ json.Marshaler         = Secret("")
	_ slog.LogValuer         = Secret("")
)

// Reveal returns the key itself, for the request that needs it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when s is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns "[redacted]", or `""` when s is empty.
func (s Secret) GoString() string {
	if s == "" {
		return `""`
	}
	return redacted
}

// Format makes every fmt verb, not only %v and %s, print the redacted form:
// without it, a verb such as %d on a struct holding a Secret would print the
// key in its "bad verb" report.
func (s Secret) Format(f fmt.State, verb rune) {
	out := s.String()
	switch {
	case verb == 'v' && f.Flag('#'):
		out = s.GoString()
	case verb == 'q':
		out = fmt.Sprintf("%q", out)
	}
	fmt.Fprint(f, out)
}

// MarshalText returns "[redacted]", or nothing when s is empty.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON returns "[redacted]" as a JSON string, or "" when s is empty.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue returns "[redacted]", or "" when s is empty.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Duration is a time.Duration written in TOML as a string such as "30s",
// "2m" or "1m30s".
type Duration struct{ time.Duration }

var (
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration{}
)

// UnmarshalText parses a duration such as "30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText formats d as time.Duration.String does ("2m0s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
