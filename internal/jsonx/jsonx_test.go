package jsonx

import (
	"encoding/json"
	"strings"
	"testing"
)

// Valid agrees with encoding/json, and a value nested deeper than any
// stack is refused, not a crash.
func TestValid(t *testing.T) {
	for _, s := range []string{
		`{}`, ` {"a":[1,2,{"b":null}],"c":"\u00e9\n"} `, `[]`, `"x"`, `12.5e3`, `true`,
		``, `{`, `{"a":1,}`, `[1 2]`, `{"a":1} x`, `"\x"`, `01`, `{'a':1}`, "\"a\tb\"",
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		`{"choices":[` + strings.Repeat("[", 20_000_000) + strings.Repeat("]", 20_000_000) + `]}`,
	} {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("Valid(%.40q) = %v, encoding/json says %v", s, got, want)
		}
	}
}

// FuzzValid holds Valid to encoding/json's verdict.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c"}]}`, `[1,2`, `"\ud83d\ude00"`, `-0.0e+1`, "{\"a\":\"\xff\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", s, got, want)
		}
	})
}
