package config

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// fuzzKey is the secret the seeds hold as api_key values.
const fuzzKey = "sk-FUZZ-9d41c7a0e2b85f36"

// FuzzParse checks that Parse never panics, that what it accepts prints
// without the key, and that no error shows the key of an api_key value.
func FuzzParse(f *testing.F) {
	example := string(readExample(f))
	// The variants start from a small config rather than the example: when
	// the fuzzer finds an input that covers new code, it minimizes it in time
	// quadratic in its size, and a 20 s run should mostly fuzz.
	withKey := `version = 1
[daemon]
request_timeout = "2m" # a comment
[[backend]]
name = "openai"
type = "openai"
api_key = "` + fuzzKey + `"
weight = 1
[[backend]]
name = "azure"
type = "azure"
base_url = "https://r.openai.azure.com/"
api_key_env = "AZURE_OPENAI_API_KEY"
model_map = { "gpt-4o" = "prod" }
models = ["gpt-4o", 'o3']
weight = 3
`
	seeds := []string{
		example,
		withKey,
		strings.Replace(withKey, `"`+fuzzKey+`"`, fuzzKey, 1),             // unquoted key
		strings.Replace(withKey, `"`+fuzzKey+`"`, `"`+fuzzKey, 1),         // unterminated
		strings.Replace(withKey, `"`+fuzzKey+`"`, `'''`+fuzzKey+`'''`, 1), // multi-line literal
		strings.Replace(withKey, "models", "modle", 1),
		strings.Replace(withKey, "weight = 1", `weight = "x"`, 1),
		strings.Replace(withKey, "version = 1", "version = 2", 1),
		strings.Replace(withKey, "[daemon]", "[deamon]", 1),
		strings.Replace(withKey, "[[backend]]", "[[backends]]", 1),
		strings.Replace(withKey, `"2m"`, "0", 1),
		"version = 1\nbackend = [{name = \"a\", type = \"openai\", api_key = \"" + fuzzKey + "\"}]\n",
		"version = 1\nbackend = [{name = \"a\", type = \"openai\", api_key = " + fuzzKey + "}]\n",
		"version = 1\n[[backend]]\nname = \"a\"\ntype = \"openai\"\napi_key = \"" + fuzzKey + "\"\napi_key_env = \"K\"\n",
		"version = 1\n[[backend]]\napi_key = \"\"\"\n" + fuzzKey + "\n\"\"\"\nweight = 0\n",
		"daemon.socket = 1\n[backend.model_map]\n'a.b' = 1\n",
		withKey + "limit_scope = \"org{1}\"\n[shared]\nredis = \"rediss://u:pw@h:6380/1\"\npassword_env = \"PW\"\ntls_ca_file = \"~/ca.pem\"\nkey_prefix = \"\"\n",
		withKey + "[shared]\nredis = \"unix://h/r.sock?db=2\"\ncache = false\n",
		"\ufeffversion = 1\r\n[[backend]]\r\nname = \"a\"\r\n",
		"",
		"[",
		"a = \"\"\"\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a config and an error", c, err)
		}
		// A leak only counts when the key is nothing but an api_key value:
		// a backend name, say, is meant to be shown.
		if err != nil && strings.Contains(err.Error(), fuzzKey) && keyOnlyInAPIKey(string(data)) {
			t.Fatalf("error shows the key:\n%v", err)
		}
		if c != nil {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x"} {
				out := fmt.Sprintf(verb, c)
				if (strings.Contains(out, fuzzKey) || strings.Contains(out, fmt.Sprintf("%x", fuzzKey))) && keyOnlyInAPIKey(string(data)) {
					t.Fatalf("%s of the config shows the key:\n%s", verb, out)
				}
			}
		}
	})
}

// beforeKey matches what precedes the key when it is an api_key value.
var beforeKey = regexp.MustCompile(`api_key["']?[ \t]*=[ \t]*("""|'''|"|')?\n?$`)

// keyOnlyInAPIKey reports whether every occurrence of fuzzKey in src is (the
// start of) the value of an api_key, as far as the text and, when it decodes,
// the TOML say.
func keyOnlyInAPIKey(src string) bool {
	if !strings.Contains(src, fuzzKey) {
		return false
	}
	for i := 0; ; {
		j := strings.Index(src[i:], fuzzKey)
		if j < 0 {
			break
		}
		if !beforeKey.MatchString(src[:i+j]) {
			return false
		}
		i += j + len(fuzzKey)
	}
	var raw map[string]any
	if _, err := toml.Decode(src, &raw); err != nil {
		return true
	}
	return onlyInAPIKey(raw, "")
}

// onlyInAPIKey reports whether fuzzKey appears in v only in strings that are
// the value of a key called api_key.
func onlyInAPIKey(v any, key string) bool {
	switch v := v.(type) {
	case string:
		return key == "api_key" || !strings.Contains(v, fuzzKey)
	case map[string]any:
		for k, e := range v {
			if strings.Contains(k, fuzzKey) || !onlyInAPIKey(e, k) {
				return false
			}
		}
	case []map[string]any:
		for _, e := range v {
			if !onlyInAPIKey(e, "") {
				return false
			}
		}
	case []any:
		for _, e := range v {
			if !onlyInAPIKey(e, "") {
				return false
			}
		}
	}
	return true
}
