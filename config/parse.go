package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Error is one problem with a configuration: "lbgpt.toml:14: unknown key
// "modle" in [[backend]] (did you mean "models"?)". A problem in the
// configuration, as [Parse], [Load], [FromEnv] and [Config.Resolve] report
// it, is an *Error, or several joined with [errors.Join] in line order; find
// them with [errors.As]. An Error never contains an API key.
type Error struct {
	File string // the file's name as given to Parse or Load; "" for the environment
	Line int    // 1-based line in File; 0 when not known
	Msg  string

	err error // the cause, if any, already described in Msg
}

func (e *Error) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// Unwrap returns the cause, such as a [io/fs.PathError] for an unreadable key
// file.
func (e *Error) Unwrap() error { return e.err }

// Parse decodes and validates the lbgpt.toml in data and applies the
// defaults. It does not resolve API keys: see [Config.Resolve]. name is the
// file name used in errors ("lbgpt.toml" when empty).
func Parse(data []byte, name string) (*Config, error) {
	if name == "" {
		name = "lbgpt.toml"
	}
	src := string(data)
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		return nil, syntaxError(name, src, err)
	}
	ck := &checker{file: name, loc: locate(src), raw: raw}

	// A newer format may have keys this version does not know: say only that.
	var noVersion *Error
	switch v, ok := raw["version"]; {
	case !ok:
		noVersion = &Error{File: name, Msg: `missing version: add "version = 1" at the top`}
	case v != int64(Version):
		if _, isInt := v.(int64); isInt {
			return nil, &Error{File: name, Line: ck.line(seg{"version", -1}),
				Msg: fmt.Sprintf("version %d is not supported: this lbgpt reads version %d", v, Version)}
		}
	}

	ck.unknownKeys()
	ck.checkTable(schema, raw, nil)
	if len(ck.errs) > 0 {
		return nil, ck.err(noVersion)
	}

	var c Config
	md, err := toml.Decode(src, &c)
	if err != nil {
		// checkTable should have caught this: keep the message, which
		// names the key but not the value.
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		return nil, &Error{File: name, Msg: "invalid value: " + msg}
	}
	for _, k := range md.Undecoded() { // the locator should have caught these
		ck.errs = append(ck.errs, &Error{File: name, Msg: fmt.Sprintf("unknown key %q", k.String())})
	}
	if len(ck.errs) > 0 {
		return nil, ck.err(noVersion)
	}
	setDefaults(&c, raw)
	c.secretLines = map[string]int{}
	for i := range c.Backends {
		for _, k := range []string{"api_key_env", "api_key_file", "api_key"} {
			if l := ck.line(seg{"backend", i}, seg{k, -1}); l > 0 {
				c.secretLines[fmt.Sprintf("backend.%d.%s", i, k)] = l
			}
		}
	}
	for _, k := range []string{"password_env", "password_file"} {
		if l := ck.line(seg{"shared", -1}, seg{k, -1}); l > 0 {
			c.secretLines["shared."+k] = l
		}
	}
	ck.validate(&c)
	if noVersion != nil || len(ck.errs) > 0 {
		return nil, ck.err(noVersion)
	}
	return &c, nil
}

// keyLine matches a line that sets api_key, api_key_env or api_key_file, and
// passwordLine one that sets password, password_env, password_file or redis
// (a URL that may hold a password): a TOML syntax error there could quote
// part of a secret put in by mistake.
var (
	keyLine      = regexp.MustCompile(`(^|[\s.{,"'])api_key(_env|_file)?["']?\s*=`)
	passwordLine = regexp.MustCompile(`(^|[\s.{,"'])(password(_env|_file)?|redis)["']?\s*=`)
)

func syntaxError(name, src string, err error) error {
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: name, Msg: "invalid TOML"}
	}
	msg := strings.TrimSuffix(pe.Message, ".")
	if r, n := utf8.DecodeRuneInString(msg); unicode.IsUpper(r) && len(msg) > n && unicode.IsLower(rune(msg[n])) {
		msg = string(unicode.ToLower(r)) + msg[n:]
	}
	lines := strings.Split(src, "\n")
	on := ""
	if l := pe.Position.Line; l >= 1 && l <= len(lines) {
		on = lines[l-1]
	}
	last := pe.LastKey[strings.LastIndex(pe.LastKey, ".")+1:]
	switch {
	case strings.HasPrefix(last, "api_key") || keyLine.MatchString(on):
		msg = "error next to an API key setting (details withheld so that no key is shown): " +
			`values are quoted strings, such as api_key_env = "OPENAI_API_KEY"`
	case strings.HasPrefix(last, "password") || last == "redis" || passwordLine.MatchString(on):
		msg = "error next to a password setting (details withheld so that no password is shown): " +
			`values are quoted strings, such as password_env = "LBGPT_REDIS_PASSWORD"`
	}
	return &Error{File: name, Line: pe.Position.Line, Msg: "invalid TOML: " + msg}
}

// checker collects the problems of one configuration.
type checker struct {
	file string
	loc  *locator // nil when there is no file
	// raw is the file decoded generically, to tell an absent key from an
	// explicit zero; nil when there is no file.
	raw  map[string]any
	errs []*Error
}

// line returns the line where path is set in the file, or 0.
func (ck *checker) line(path ...seg) int {
	if ck.loc == nil {
		return 0
	}
	return ck.loc.line(path)
}

func (ck *checker) errorf(path []seg, format string, args ...any) {
	ck.errs = append(ck.errs, &Error{File: ck.file, Line: ck.line(path...), Msg: fmt.Sprintf(format, args...)})
}

// err returns first (if not nil) followed by the collected errors in line
// order, joined; nil when there are none.
func (ck *checker) err(first *Error) error {
	sort.SliceStable(ck.errs, func(i, j int) bool { return ck.errs[i].Line < ck.errs[j].Line })
	var errs []error
	if first != nil {
		errs = append(errs, first)
	}
	for _, e := range ck.errs {
		errs = append(errs, e)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
