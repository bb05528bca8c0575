package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// mapEnv is an env func over m.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// fakeKey is recognisable in any output it leaks into.
const fakeKey = "sk-FAKE-lbgpt-test-7f3a9c1e5b2d"

func TestFromEnv(t *testing.T) {
	openai := Backend{Name: "openai", Type: TypeOpenAI, BaseURL: DefaultOpenAIBaseURL, APIKeyEnv: "OPENAI_API_KEY",
		Weight: 1, MaxConcurrent: 5, Key: fakeKey}
	azure := Backend{Name: "azure", Type: TypeAzure, BaseURL: "https://r.openai.azure.com", APIKeyEnv: "AZURE_OPENAI_API_KEY",
		APIVersion: DefaultAzureAPIVersion, Weight: 1, MaxConcurrent: 5, Key: "azure-key"}
	with := func(b Backend, f func(*Backend)) Backend { f(&b); return b }
	tests := []struct {
		name string
		env  map[string]string
		want []Backend
	}{
		{"openai", map[string]string{"OPENAI_API_KEY": fakeKey}, []Backend{openai}},
		{"openai with base url", map[string]string{"OPENAI_API_KEY": fakeKey, "OPENAI_BASE_URL": "http://localhost:8080/v1/"},
			[]Backend{with(openai, func(b *Backend) { b.BaseURL = "http://localhost:8080/v1" })}},
		{"azure", map[string]string{"AZURE_OPENAI_API_KEY": "azure-key", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com/"},
			[]Backend{azure}},
		{"azure api version", map[string]string{"AZURE_OPENAI_API_KEY": "azure-key", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
			"OPENAI_API_VERSION": "2024-06-01"},
			[]Backend{with(azure, func(b *Backend) { b.APIVersion = "2024-06-01" })}},
		{"azure api version, specific wins", map[string]string{"AZURE_OPENAI_API_KEY": "azure-key", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
			"OPENAI_API_VERSION": "2024-06-01", "AZURE_OPENAI_API_VERSION": "2025-01-01-preview"},
			[]Backend{with(azure, func(b *Backend) { b.APIVersion = "2025-01-01-preview" })}},
		{"both, split 25/75", map[string]string{"OPENAI_API_KEY": fakeKey, "AZURE_OPENAI_API_KEY": "azure-key", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"},
			[]Backend{openai, with(azure, func(b *Backend) { b.Weight = 3 })}},
		{"endpoint alone is not azure", map[string]string{"OPENAI_API_KEY": fakeKey, "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"},
			[]Backend{openai}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(mapEnv(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			want := &Config{
				Version:  1,
				Daemon:   Daemon{RequestTimeout: Duration{DefaultRequestTimeout}, MaxAttempts: 10, MaxMessageBytes: 8 << 20, DrainTimeout: Duration{DefaultDrainTimeout}, StreamIdleTimeout: Duration{DefaultStreamIdle}},
				HTTP:     HTTP{MaxBodyBytes: DefaultMaxBodyBytes},
				Balance:  Balance{Strategy: StrategyMaxHeadroom, BackoffBase: Duration{200 * time.Millisecond}, BackoffMax: Duration{10 * time.Second}, Reprobe: Duration{5 * time.Minute}, HeaderTimeout: Duration{DefaultHeaderTimeout}},
				Cache:    Cache{Enabled: true, MaxBytes: DefaultCacheMaxBytes, Embedder: EmbedderLocal, EmbeddingModel: DefaultEmbeddingModel},
				Shared:   Shared{KeyPrefix: DefaultKeyPrefix, Cache: true},
				Budget:   Budget{WarnAt: DefaultWarnAt},
				Backends: tt.want,
			}
			if diff := cmp.Diff(want, c, cmpopts.IgnoreUnexported(Config{})); diff != "" {
				t.Errorf("FromEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFromEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"neither", map[string]string{"HOME": "/home/u", "OPENAI_API_KEY": "  "}, ""},
		{"azure without endpoint", map[string]string{"AZURE_OPENAI_API_KEY": "k"},
			"AZURE_OPENAI_API_KEY is set but AZURE_OPENAI_ENDPOINT is not: set it to the resource endpoint, such as https://RESOURCE.openai.azure.com"},
		{"bad base url", map[string]string{"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "https://user:" + fakeKey + "@proxy/v1"},
			"OPENAI_BASE_URL must not hold a user or password: give the key with api_key_env or api_key_file"},
		{"bad endpoint", map[string]string{"AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "r.openai.azure.com"},
			`AZURE_OPENAI_ENDPOINT must be an absolute http:// or https:// URL, such as "https://api.openai.com/v1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(mapEnv(tt.env))
			if err == nil {
				t.Fatalf("FromEnv succeeded: %+v", c)
			}
			if tt.want == "" {
				if !errors.Is(err, ErrNoBackends) {
					t.Errorf("err = %v, want ErrNoBackends", err)
				}
				return
			}
			if errors.Is(err, ErrNoBackends) || err.Error() != tt.want {
				t.Errorf("err = %q, want %q", err, tt.want)
			}
		})
	}
}

func TestErrNoBackendsMessage(t *testing.T) {
	msg := ErrNoBackends.Error()
	for _, want := range []string{"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY and AZURE_OPENAI_ENDPOINT", DefaultPath(), "lbgpt demo"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ErrNoBackends = %q, want it to name %q", msg, want)
		}
	}
}

// writeFile writes data to name in dir with mode perm, whatever the umask.
func writeFile(t *testing.T, dir, name, data string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.key", "\n  "+fakeKey+"\r\n", 0o600)
	writeFile(t, dir, "empty.key", " \n", 0o600)
	writeFile(t, dir, "env.key", "OPENAI_API_KEY="+fakeKey+"\nOTHER=x\n", 0o600)
	writeFile(t, dir, "big.key", strings.Repeat("k", maxKeyFile+1), 0o600)
	env := map[string]string{"HOME": dir, "KEY": " " + fakeKey + "\n", "EMPTY": ""}

	tests := []struct {
		name    string
		b       Backend
		want    string // the key, when no error
		wantErr string // the error
	}{
		{"env", Backend{APIKeyEnv: "KEY"}, fakeKey, ""},
		{"env unset", Backend{APIKeyEnv: "UNSET"}, "", `backend "b": environment variable UNSET (api_key_env) is not set or is empty`},
		{"env empty", Backend{APIKeyEnv: "EMPTY"}, "", `backend "b": environment variable EMPTY (api_key_env) is not set or is empty`},
		{"file", Backend{APIKeyFile: filepath.Join(dir, "good.key")}, fakeKey, ""},
		{"file under home", Backend{APIKeyFile: "~/good.key"}, fakeKey, ""},
		{"file missing", Backend{APIKeyFile: filepath.Join(dir, "missing.key")}, "",
			`backend "b": api_key_file: open ` + filepath.Join(dir, "missing.key") + `: no such file or directory`},
		{"file empty", Backend{APIKeyFile: "~/empty.key"}, "", `backend "b": api_key_file: ` + filepath.Join(dir, "empty.key") + ` is empty`},
		{"file with more than the key", Backend{APIKeyFile: "~/env.key"}, "",
			`backend "b": api_key_file: ` + filepath.Join(dir, "env.key") + ` must hold only the key, on one line`},
		{"file too big", Backend{APIKeyFile: "~/big.key"}, "",
			`backend "b": api_key_file: ` + filepath.Join(dir, "big.key") + ` is larger than 64 KiB: it should hold only the key`},
		{"file is a directory", Backend{APIKeyFile: dir}, "", `backend "b": api_key_file: ` + dir + ` is a directory`},
		{"literal", Backend{APIKey: fakeKey + "\n"}, fakeKey, ""},
		{"none", Backend{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.b.Name = "b"
			tt.b.Key = "stale"
			c := &Config{Backends: []Backend{tt.b}}
			warns, err := c.Resolve(mapEnv(env))
			if len(warns) > 0 {
				t.Errorf("warnings: %q", warns)
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), fakeKey) {
					t.Errorf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Backends[0].Key.Reveal(); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestResolveAllErrors(t *testing.T) {
	c := &Config{Path: "lbgpt.toml", Backends: []Backend{
		{Name: "a", APIKeyEnv: "A"}, {Name: "ok", APIKeyEnv: "OK"}, {Name: "c", APIKeyFile: "/nonexistent/lbgpt.key"},
	}}
	_, err := c.Resolve(mapEnv(map[string]string{"OK": "k"}))
	want := "lbgpt.toml: backend \"a\": environment variable A (api_key_env) is not set or is empty\n" +
		"lbgpt.toml: backend \"c\": api_key_file: open /nonexistent/lbgpt.key: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err does not match fs.ErrNotExist")
	}
	if c.Backends[1].Key.Reveal() != "k" {
		t.Errorf("the backend without a problem was not resolved")
	}
}

func TestResolveHomeUnset(t *testing.T) {
	c := &Config{Backends: []Backend{{Name: "b", APIKeyFile: "~/x.key"}}}
	_, err := c.Resolve(mapEnv(nil))
	if want := `backend "b": api_key_file: cannot expand ~/x.key: HOME is not set`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestLoadWarnings(t *testing.T) {
	literal := "version = 1\n[[backend]]\nname = \"lit\"\ntype = \"openai\"\napi_key = \"" + fakeKey + "\"\n"
	fromFile := "version = 1\n[[backend]]\nname = \"file\"\ntype = \"openai\"\napi_key_file = \"~/openai.key\"\n"
	tests := []struct {
		name    string
		config  string
		cfgPerm os.FileMode
		keyPerm os.FileMode
		want    []string // substrings, one per warning
	}{
		{"literal key, private file", literal, 0o600, 0o600, nil},
		{"literal key, readable file", literal, 0o644, 0o600,
			[]string{`lbgpt.toml: backend "lit" has a literal api_key and the file is readable by group or others (mode 0644): move the key to api_key_env or api_key_file, or run chmod 600 `}},
		{"literal key, group-readable file", literal, 0o640, 0o600, []string{"(mode 0640)"}},
		{"key file, private", fromFile, 0o644, 0o600, nil},
		{"key file, readable", fromFile, 0o600, 0o644,
			[]string{`backend "file": key file ~/openai.key is readable by group or others (mode 0644): run chmod 600 ~/openai.key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "lbgpt.toml", tt.config, tt.cfgPerm)
			writeFile(t, dir, "openai.key", fakeKey+"\n", tt.keyPerm)
			c, warns, err := Load(path, mapEnv(map[string]string{"HOME": dir}))
			if err != nil {
				t.Fatal(err)
			}
			if c.Path != path || c.Backends[0].Key.Reveal() != fakeKey {
				t.Errorf("Path = %q, Key resolved = %v", c.Path, c.Backends[0].Key.Reveal() == fakeKey)
			}
			if len(warns) != len(tt.want) {
				t.Fatalf("warnings = %q, want %d", warns, len(tt.want))
			}
			for i, w := range warns {
				if !strings.Contains(w, tt.want[i]) {
					t.Errorf("warning %q, want it to contain %q", w, tt.want[i])
				}
				if strings.Contains(w, fakeKey) {
					t.Errorf("warning shows the key: %q", w)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := Load(filepath.Join(dir, "missing.toml"), mapEnv(nil))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "load config: ") {
		t.Errorf("missing file: err = %v, want a wrapped fs.ErrNotExist", err)
	}

	path := writeFile(t, dir, "bad.toml", backendA+"wieght = 2\n", 0o600)
	_, _, err = Load(path, mapEnv(nil))
	if want := path + `:6: unknown key "wieght" in [[backend]] (did you mean "weight"?)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}

	path = writeFile(t, dir, "unresolved.toml", backendA, 0o600)
	c, _, err := Load(path, mapEnv(nil))
	if want := path + `:5: backend "a": environment variable KEY_A (api_key_env) is not set or is empty`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
	if c != nil {
		t.Errorf("Load returned a config with its error")
	}
}
