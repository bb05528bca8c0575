package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// backendA is a complete, valid first backend for the tests to add to.
const backendA = `version = 1
[[backend]]
name = "a"
type = "openai"
api_key_env = "KEY_A"
`

// parseError parses text as lbgpt.toml and returns the error message.
func parseError(t *testing.T, text string) string {
	t.Helper()
	c, err := Parse([]byte(text), "lbgpt.toml")
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; config = %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a config with its error")
	}
	return err.Error()
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{
			name: "top level",
			text: "verison = 1\n" + backendA,
			want: `lbgpt.toml:1: unknown key "verison" at the top level (did you mean "version"?)`,
		},
		{
			name: "top level before any table",
			text: "version = 1\nbackends = 2\n" + backendA[len("version = 1\n"):],
			want: `lbgpt.toml:2: unknown key "backends" at the top level (did you mean "backend"?)`,
		},
		{
			name: "daemon",
			text: "version = 1\n[daemon]\nsocket = \"/run/x.sock\"\nmax_atempts = 3\n" + backendA[len("version = 1\n"):],
			want: `lbgpt.toml:4: unknown key "max_atempts" in [daemon] (did you mean "max_attempts"?)`,
		},
		{
			name: "second backend",
			text: backendA + "\n[[backend]]\nname = \"b\"\ntype = \"openai\"\n\n# a comment\nmodle = [\"gpt-4o\"]\n",
			want: `lbgpt.toml:12: unknown key "modle" in [[backend]] (did you mean "models"?)`,
		},
		{
			name: "same key in two backends",
			text: backendA + "modle = []\n[[backend]]\nmodle = []\n",
			want: "lbgpt.toml:6: unknown key \"modle\" in [[backend]] (did you mean \"models\"?)\n" +
				`lbgpt.toml:8: unknown key "modle" in [[backend]] (did you mean "models"?)`,
		},
		{
			name: "dotted key",
			text: "daemon.sokcet = \"/x\"\n" + backendA,
			want: `lbgpt.toml:1: unknown key "sokcet" in [daemon] (did you mean "socket"?)`,
		},
		{
			name: "dotted key with spaces and quotes",
			text: "version = 1\n daemon . \"request-timeout\" = \"3s\"\n" + backendA[len("version = 1\n"):],
			want: `lbgpt.toml:2: unknown key "request-timeout" in [daemon] (did you mean "request_timeout"?)`,
		},
		{
			name: "quoted key",
			text: backendA + "\"api-key\" = \"x\"\n",
			want: `lbgpt.toml:6: unknown key "api-key" in [[backend]] (did you mean "api_key"?)`,
		},
		{
			name: "literal quoted key",
			text: backendA + "'base url' = \"x\"\n",
			want: `lbgpt.toml:6: unknown key "base url" in [[backend]] (did you mean "base_url"?)`,
		},
		{
			name: "wrong case",
			text: backendA + "Weight = 2\n",
			want: `lbgpt.toml:6: unknown key "Weight" in [[backend]] (did you mean "weight"?)`,
		},
		{
			name: "alias",
			text: backendA + "endpoint = \"https://x\"\n",
			want: `lbgpt.toml:6: unknown key "endpoint" in [[backend]] (did you mean "base_url"?)`,
		},
		{
			name: "no suggestion",
			text: backendA + "frobnicate = true\n",
			want: `lbgpt.toml:6: unknown key "frobnicate" in [[backend]]`,
		},
		{
			name: "unknown table",
			text: backendA + "[deamon]\nsocket = \"/x\"\n",
			want: `lbgpt.toml:6: unknown table [deamon] (did you mean [daemon]?)`,
		},
		{
			name: "unknown array of tables, once",
			text: "version = 1\n[[backends]]\nname = \"a\"\n[[backends]]\nname = \"b\"\n",
			want: `lbgpt.toml:2: unknown table [[backends]] (did you mean [[backend]]?)`,
		},
		{
			name: "sub-table of a backend",
			text: backendA + "[backend.limits]\nrpm = 3\n",
			want: `lbgpt.toml:6: unknown key "limits" in [[backend]]`,
		},
		{
			name: "inline table",
			text: "daemon = { socket = \"/x\",\n  bogus = 1 }\n" + backendA,
			want: `lbgpt.toml:2: unknown key "bogus" in [daemon]`,
		},
		{
			name: "array of inline tables",
			text: "version = 1\nbackend = [\n  {name = \"a\", type = \"openai\", api_key_env = \"K\"},\n  {name = \"b\", typo = 1},\n]\n",
			want: `lbgpt.toml:4: unknown key "typo" in [[backend]] (did you mean "type"?)`,
		},
		{
			name: "after multi-line strings",
			text: "version = 1\n[[backend]]\nname = \"\"\"\nfoo = 1\n[x]\n\"\"\"\ntype = '''\n'''\ntpye = 1\n",
			want: `lbgpt.toml:9: unknown key "tpye" in [[backend]] (did you mean "type"?)`,
		},
		{
			name: "tricky layout",
			text: "version = 1\r\n[ \"daemon\" ]\r\nsocket = \"/run/a#b.sock\" # not = a key\r\n" +
				"[[ backend ]]\nname = \"a\\\"b\"\nmodels = [\n  \"x\", # c\n  'y#',\n]\ntype = 'openai' # modle = 1\n" +
				"model_map = {\n  \"a\" = \"b\",\n}\nwieght = 2\n",
			want: `lbgpt.toml:14: unknown key "wieght" in [[backend]] (did you mean "weight"?)`,
		},
		{
			name: "all of them, in line order",
			text: "verison = 1\n[daemon]\nsoket = \"\"\n[[backend]]\nnmae = \"a\"\n",
			want: "lbgpt.toml: missing version: add \"version = 1\" at the top\n" +
				"lbgpt.toml:1: unknown key \"verison\" at the top level (did you mean \"version\"?)\n" +
				"lbgpt.toml:3: unknown key \"soket\" in [daemon] (did you mean \"socket\"?)\n" +
				"lbgpt.toml:5: unknown key \"nmae\" in [[backend]] (did you mean \"name\"?)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseError(t, tt.text); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestModelMapKeysAreFree(t *testing.T) {
	text := `version = 1
[[backend]]
name = "az"
type = "azure"
base_url = "https://r.openai.azure.com/"
api_key_env = "AZ"
[backend.model_map]
"gpt-4o" = "prod-4o"
anything.goes = "x"
`
	c, err := Parse([]byte(text), "")
	if err == nil {
		t.Fatalf("a dotted model_map key decoded as a nested table should be a type error; config = %+v", c)
	}
	c, err = Parse([]byte(strings.Replace(text, "anything.goes", `"anything.goes"`, 1)), "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"gpt-4o": "prod-4o", "anything.goes": "x"}
	if diff := cmp.Diff(want, c.Backends[0].ModelMap); diff != "" {
		t.Errorf("model_map (-want +got):\n%s", diff)
	}
	if c.Backends[0].BaseURL != "https://r.openai.azure.com" {
		t.Errorf("base_url = %q, want the trailing slash trimmed", c.Backends[0].BaseURL)
	}
}

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    string // prefix
		without string
	}{
		{
			name: "unterminated string",
			text: backendA + "base_url = \"http://x\n",
			want: "lbgpt.toml:6: invalid TOML: ",
		},
		{
			name: "duplicate key",
			text: backendA + "name = \"b\"\n",
			want: "lbgpt.toml:6: invalid TOML: key 'backend.name' has already been defined",
		},
		{
			name:    "unquoted key is withheld",
			text:    "version = 1\n[[backend]]\nname = \"a\"\napi_key = sk-FAKEunquoted123\n",
			want:    "lbgpt.toml:4: invalid TOML: error next to an API key setting (details withheld so that no key is shown)",
			without: "FAKE",
		},
		{
			name:    "unquoted key in an inline table",
			text:    "version = 1\nbackend = [{name = \"a\", api_key = abcdef0123}]\n",
			want:    "lbgpt.toml:2: invalid TOML: error next to an API key setting",
			without: "abcdef",
		},
		{
			name:    "unquoted key in api_key_env",
			text:    "version = 1\n[[backend]]\napi_key_env = abcdef0123\n",
			want:    "lbgpt.toml:3: invalid TOML: error next to an API key setting",
			without: "abcdef",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseError(t, tt.text)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("error %q, want it to start with %q", got, tt.want)
			}
			if tt.without != "" && strings.Contains(got, tt.without) {
				t.Errorf("error %q shows %q", got, tt.without)
			}
		})
	}
}

func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"weight", backendA + "weight = \"x\"\n", `lbgpt.toml:6: key "weight" in [[backend]] must be a number, not a string`},
		{"second backend", backendA + "weight = 2\n[[backend]]\nname = \"b\"\nweight = true\n",
			`lbgpt.toml:9: key "weight" in [[backend]] must be a number, not a boolean`},
		{"int", backendA + "max_concurrent = 2.5\n", `lbgpt.toml:6: key "max_concurrent" in [[backend]] must be an integer, not a float`},
		{"string", backendA + "base_url = 8080\n", `lbgpt.toml:6: key "base_url" in [[backend]] must be a string, not an integer`},
		{"secret", backendA + "api_key = 1234\n", `lbgpt.toml:6: key "api_key" in [[backend]] must be a string, not an integer`},
		{"strings", backendA + "models = \"gpt-4o\"\n", `lbgpt.toml:6: key "models" in [[backend]] must be an array of strings, not a string`},
		{"strings element", backendA + "models = [\"a\", 1]\n", `lbgpt.toml:6: key "models" in [[backend]] must be an array of strings, not an array holding an integer`},
		{"map", backendA + "model_map = 1\n", `lbgpt.toml:6: key "model_map" in [[backend]] must be a table of strings, not an integer`},
		{"map entry", backendA + "model_map = { \"gpt-4o\" = 4 }\n", `lbgpt.toml:6: key "gpt-4o" in model_map must be a string, not an integer`},
		{"duration number", backendA + "[daemon]\nrequest_timeout = 30\n",
			`lbgpt.toml:7: key "request_timeout" in [daemon] must be a duration such as "30s" or "2m", not an integer`},
		{"duration without unit", backendA + "[daemon]\nrequest_timeout = \"30\"\n",
			`lbgpt.toml:7: key "request_timeout" in [daemon] must be a duration such as "30s" or "2m", not "30"`},
		{"daemon", "daemon = \"x\"\n" + backendA, `lbgpt.toml:1: key "daemon" at the top level must be a table ([daemon]), not a string`},
		{"backend", "version = 1\nbackend = \"x\"\n", `lbgpt.toml:2: key "backend" at the top level must be an array of tables ([[backend]]), not a string`},
		{"backend elements", "version = 1\nbackend = [1]\n", `lbgpt.toml:2: key "backend" at the top level must be an array of tables ([[backend]]), not an array holding an integer`},
		{"backend as a table", "version = 1\n[backend]\nname = \"a\"\n", `lbgpt.toml:2: key "backend" at the top level must be an array of tables ([[backend]]), not a table`},
		{"version", "version = \"1\"\n", `lbgpt.toml:1: key "version" at the top level must be an integer, not a string`},
		{"date", backendA + "name = 2024-01-01\n", `lbgpt.toml:6: invalid TOML: key 'backend.name' has already been defined`},
		{"datetime", backendA + "priority = 2024-01-01T00:00:00Z\n", `lbgpt.toml:6: key "priority" in [[backend]] must be an integer, not a date or time`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseError(t, tt.text); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"missing", backendA[len("version = 1\n"):], `lbgpt.toml: missing version: add "version = 1" at the top`},
		{"newer, with keys this version does not know", "version = 2\n[[backend]]\nname = \"a\"\nshiny = true\n",
			`lbgpt.toml:1: version 2 is not supported: this lbgpt reads version 1`},
		{"zero", "version = 0\n", `lbgpt.toml:1: version 0 is not supported: this lbgpt reads version 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseError(t, tt.text); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		text string // appended to backendA
		want string
	}{
		{"no backends", "", `lbgpt.toml: no backends: add a [[backend]] table (see lbgpt.toml.example)`},
		{"name required", "[[backend]]\ntype = \"openai\"\napi_key_env = \"K\"\n", `lbgpt.toml:6: backend #2: name is required`},
		{"name pattern", "[[backend]]\nname = \"Azure East\"\ntype = \"openai\"\napi_key_env = \"K\"\n",
			`lbgpt.toml:7: backend "Azure East": name must be lower-case letters, digits, ".", "_" and "-", starting with a letter or digit`},
		{"name leading dash", "[[backend]]\nname = \"-x\"\ntype = \"openai\"\napi_key_env = \"K\"\n",
			`lbgpt.toml:7: backend "-x": name must be lower-case letters, digits, ".", "_" and "-", starting with a letter or digit`},
		{"name too long", "[[backend]]\nname = \"" + strings.Repeat("x", 65) + "\"\ntype = \"openai\"\napi_key_env = \"K\"\n",
			`lbgpt.toml:7: backend "` + strings.Repeat("x", 65) + `": name is longer than 64 bytes`},
		{"duplicate name", "\n[[backend]]\nname = \"a\"\ntype = \"openai\"\napi_key_env = \"K\"\n",
			`lbgpt.toml:8: backend "a": name is already used by the backend at line 2`},
		{"type required", "[[backend]]\nname = \"b\"\n", `lbgpt.toml:6: backend "b": type is required: "openai", "azure" or "openai-compatible"`},
		{"unknown type", "[[backend]]\nname = \"b\"\ntype = \"anthropic\"\n",
			`lbgpt.toml:8: backend "b": unknown type "anthropic": use "openai", "azure" or "openai-compatible"`},
		{"key required", "[[backend]]\nname = \"b\"\ntype = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\n",
			`lbgpt.toml:7: backend "b": type "azure" needs an API key: set api_key_env (or api_key_file)`},
		{"two keys", "[[backend]]\nname = \"b\"\ntype = \"openai\"\napi_key_env = \"K\"\napi_key = \"k\"\n",
			`lbgpt.toml:9: backend "b": set only one of api_key_env, api_key_file and api_key`},
		{"key in api_key_env", "[[backend]]\nname = \"b\"\ntype = \"openai\"\napi_key_env = \"sk-proj-abc\"\n",
			`lbgpt.toml:9: backend "b": api_key_env must be the name of an environment variable (A-Z, 0-9 and _), such as "OPENAI_API_KEY", not the key itself`},
		{"relative key file", "[[backend]]\nname = \"b\"\ntype = \"openai\"\napi_key_file = \"openai.key\"\n",
			`lbgpt.toml:9: backend "b": api_key_file must be an absolute path or start with "~/"`},
		{"azure needs base_url", "[[backend]]\nname = \"b\"\ntype = \"azure\"\napi_key_env = \"K\"\n",
			`lbgpt.toml:6: backend "b": base_url is required for type "azure": the resource endpoint, such as "https://RESOURCE.openai.azure.com"`},
		{"compatible needs base_url", "[[backend]]\nname = \"b\"\ntype = \"openai-compatible\"\n",
			`lbgpt.toml:6: backend "b": base_url is required for type "openai-compatible", such as "http://localhost:11434/v1"`},
		{"relative base_url", "[[backend]]\nname = \"b\"\ntype = \"openai-compatible\"\nbase_url = \"localhost:11434/v1\"\n",
			`lbgpt.toml:9: backend "b": base_url must be an absolute http:// or https:// URL, such as "https://api.openai.com/v1"`},
		{"ftp base_url", "[[backend]]\nname = \"b\"\ntype = \"openai-compatible\"\nbase_url = \"ftp://x/v1\"\n",
			`lbgpt.toml:9: backend "b": base_url must be an absolute http:// or https:// URL, such as "https://api.openai.com/v1"`},
		{"password in base_url", "[[backend]]\nname = \"b\"\ntype = \"openai-compatible\"\nbase_url = \"https://u:hunter2@x/v1\"\n",
			`lbgpt.toml:9: backend "b": base_url must not hold a user or password: give the key with api_key_env or api_key_file`},
		{"query in base_url", "[[backend]]\nname = \"b\"\ntype = \"openai-compatible\"\nbase_url = \"https://x/v1?key=1\"\n",
			`lbgpt.toml:9: backend "b": base_url must not have a query or a fragment`},
		{"api_version outside azure", "api_version = \"2024-10-21\"\n", `lbgpt.toml:6: backend "a": api_version is only valid for type "azure"`},
		{"model_map outside azure", "model_map = { \"gpt-4o\" = \"x\" }\n",
			`lbgpt.toml:6: backend "a": model_map is only valid for type "azure": other types get the model name as sent`},
		{"empty deployment", "[[backend]]\nname = \"b\"\ntype = \"azure\"\nbase_url = \"https://r.openai.azure.com\"\napi_key_env = \"K\"\nmodel_map = { \"gpt-4o\" = \"\" }\n",
			`lbgpt.toml:11: backend "b": model_map entry "gpt-4o" has an empty deployment name`},
		{"empty model", "models = [\"\"]\n", `lbgpt.toml:6: backend "a": models has an empty model name`},
		{"duplicate model", "models = [\"gpt-4o\", \"gpt-4o\"]\n", `lbgpt.toml:6: backend "a": models lists "gpt-4o" twice`},
		{"zero weight", "weight = 0\n", `lbgpt.toml:6: backend "a": weight must be a positive number, not 0`},
		{"negative weight", "weight = -1.5\n", `lbgpt.toml:6: backend "a": weight must be a positive number, not -1.5`},
		{"nan weight", "weight = nan\n", `lbgpt.toml:6: backend "a": weight must be a positive number, not NaN`},
		{"infinite weight", "weight = inf\n", `lbgpt.toml:6: backend "a": weight must be a positive number, not +Inf`},
		{"negative rpm", "limit_rpm = -1\n", `lbgpt.toml:6: backend "a": limit_rpm must be 0 (unknown) or more, not -1`},
		{"negative tpm", "limit_tpm = -1\n", `lbgpt.toml:6: backend "a": limit_tpm must be 0 (unknown) or more, not -1`},
		{"zero concurrency", "max_concurrent = 0\n", `lbgpt.toml:6: backend "a": max_concurrent must be 1 or more, not 0`},
		{"relative socket", "[daemon]\nsocket = \"lbgpt.sock\"\n", `lbgpt.toml:7: daemon: socket must be an absolute path`},
		{"long socket", "[daemon]\nsocket = \"/" + strings.Repeat("s", 107) + "\"\n",
			`lbgpt.toml:7: daemon: socket path is 108 bytes long; a Unix socket path can have at most 107`},
		{"zero timeout", "[daemon]\nrequest_timeout = \"0s\"\n", `lbgpt.toml:7: daemon: request_timeout must be positive, not "0s"`},
		{"attempts", "[daemon]\nmax_attempts = 101\n", `lbgpt.toml:7: daemon: max_attempts must be from 1 to 100, not 101`},
		{"zero attempts", "[daemon]\nmax_attempts = 0\n", `lbgpt.toml:7: daemon: max_attempts must be from 1 to 100, not 0`},
		{"message bytes", "[daemon]\nmax_message_bytes = 1024\n",
			`lbgpt.toml:7: daemon: max_message_bytes must be from 4096 (4 KiB) to 1073741824 (1 GiB), not 1024`},
		{"several, in line order", "weight = 0\n[daemon]\nmax_attempts = 0\n[[backend]]\nname = \"b\"\n",
			"lbgpt.toml:6: backend \"a\": weight must be a positive number, not 0\n" +
				"lbgpt.toml:8: daemon: max_attempts must be from 1 to 100, not 0\n" +
				"lbgpt.toml:9: backend \"b\": type is required: \"openai\", \"azure\" or \"openai-compatible\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := backendA + tt.text
			if tt.name == "no backends" {
				text = "version = 1\n"
			}
			if got := parseError(t, text); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := Parse([]byte(backendA+"modle = 1\nweight = 0\n[daemon]\nsoket = 1\n"), "x.toml")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) holds no *Error", err, err)
	}
	if e.File != "x.toml" || e.Line != 6 || !strings.Contains(e.Msg, "modle") {
		t.Errorf("first *Error = %+v", *e)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 2 {
		t.Errorf("%d errors joined, want 2 (type errors only once the keys are right)", n)
	}
}

func TestDefaults(t *testing.T) {
	text := `version = 1
[[backend]]
name = "openai"
type = "openai"
api_key_env = "OPENAI_API_KEY"

[[backend]]
name = "azure"
type = "azure"
base_url = "https://r.openai.azure.com"
api_key_file = "~/azure.key"
model_map = { "gpt-4o" = "prod-4o" }

[[backend]]
name = "ollama"
type = "openai-compatible"
base_url = "http://localhost:11434/v1/"
priority = -1
`
	c, err := Parse([]byte(text), "lbgpt.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Version: 1,
		Daemon:  Daemon{RequestTimeout: Duration{120 * time.Second}, MaxAttempts: 10, MaxMessageBytes: 8 << 20, DrainTimeout: Duration{DefaultDrainTimeout}, StreamIdleTimeout: Duration{DefaultStreamIdle}},
		HTTP:    HTTP{MaxBodyBytes: DefaultMaxBodyBytes},
		Balance: Balance{Strategy: "max_headroom", BackoffBase: Duration{200 * time.Millisecond}, BackoffMax: Duration{10 * time.Second}, Reprobe: Duration{5 * time.Minute}, HeaderTimeout: Duration{DefaultHeaderTimeout}},
		Cache:   Cache{Enabled: true, MaxBytes: DefaultCacheMaxBytes, Embedder: EmbedderLocal, EmbeddingModel: DefaultEmbeddingModel},
		Shared:  Shared{KeyPrefix: "lbgpt", Cache: true},
		Budget:  Budget{WarnAt: DefaultWarnAt},
		Backends: []Backend{
			{Name: "openai", Type: "openai", BaseURL: "https://api.openai.com/v1", APIKeyEnv: "OPENAI_API_KEY", Weight: 1, MaxConcurrent: 5},
			{Name: "azure", Type: "azure", BaseURL: "https://r.openai.azure.com", APIKeyFile: "~/azure.key", APIVersion: "2024-10-21",
				ModelMap: map[string]string{"gpt-4o": "prod-4o"}, Weight: 1, MaxConcurrent: 5},
			{Name: "ollama", Type: "openai-compatible", BaseURL: "http://localhost:11434/v1", Priority: -1, Weight: 1, MaxConcurrent: 5},
		},
	}
	if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestServesAndDeployment(t *testing.T) {
	tests := []struct {
		name       string
		b          Backend
		model      string
		serves     bool
		deployment string
	}{
		{"any model", Backend{Type: TypeOpenAI}, "gpt-4o", true, "gpt-4o"},
		{"listed", Backend{Type: TypeOpenAI, Models: []string{"gpt-4o"}}, "gpt-4o", true, "gpt-4o"},
		{"not listed", Backend{Type: TypeOpenAI, Models: []string{"gpt-4o"}}, "o3", false, "o3"},
		{"azure map", Backend{Type: TypeAzure, ModelMap: map[string]string{"gpt-4o": "prod"}}, "gpt-4o", true, "prod"},
		{"azure map, other model", Backend{Type: TypeAzure, ModelMap: map[string]string{"gpt-4o": "prod"}}, "o3", false, "o3"},
		{"azure models win over map", Backend{Type: TypeAzure, Models: []string{"o3"}, ModelMap: map[string]string{"gpt-4o": "prod"}}, "o3", true, "o3"},
		{"azure without map", Backend{Type: TypeAzure}, "gpt-4o", true, "gpt-4o"},
		{"map ignored outside azure", Backend{Type: TypeOpenAI, ModelMap: map[string]string{"gpt-4o": "prod"}}, "gpt-4o", true, "gpt-4o"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Serves(tt.model); got != tt.serves {
				t.Errorf("Serves(%q) = %v, want %v", tt.model, got, tt.serves)
			}
			if got := tt.b.Deployment(tt.model); got != tt.deployment {
				t.Errorf("Deployment(%q) = %q, want %q", tt.model, got, tt.deployment)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"models", "models", 0},
		{"modle", "model", 1},
		{"modle", "models", 2},
		{"weigth", "weight", 1},
		{"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCacheTable(t *testing.T) {
	const head = "version = 1\n[[backend]]\nname = \"a\"\ntype = \"openai-compatible\"\nbase_url = \"http://x/v1\"\n"
	c, err := Parse([]byte(head+"[cache]\nenabled = false\nttl = \"1h\"\nmax_bytes = 0\ndeterministic_only = true\nsemantic = \"all\"\nembedder = \"backend\"\nembedding_model = \"e\"\npath = \"/var/lib/x/c.db\"\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Cache{Path: "/var/lib/x/c.db", TTL: Duration{time.Hour}, DeterministicOnly: true, Semantic: "all", Embedder: "backend", EmbeddingModel: "e"}
	if c.Cache != want {
		t.Errorf("[cache] = %+v, want %+v", c.Cache, want)
	}
	for _, bad := range []string{`semantic = "fuzzy"`, `embedder = "cloud"`, `ttl = "-1s"`, `max_bytes = -1`, `path = "rel/c.db"`, `sematic = "all"`} {
		if _, err := Parse([]byte(head+"[cache]\n"+bad+"\n"), "t.toml"); err == nil || !strings.Contains(err.Error(), "t.toml:7:") {
			t.Errorf("[cache] %s: error %v, want one at line 7", bad, err)
		}
	}
}
