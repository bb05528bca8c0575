package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

const examplePath = "../lbgpt.toml.example"

func readExample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestExample keeps lbgpt.toml.example loadable and its values meaningful.
func TestExample(t *testing.T) {
	env := map[string]string{"OPENAI_API_KEY": "sk-example-openai", "AZURE_OPENAI_API_KEY": "example-azure"}
	c, warns, err := Load(examplePath, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}
	for _, w := range warns {
		t.Errorf("warning: %s", w)
	}
	if c.Path != examplePath {
		t.Errorf("Path = %q, want %q", c.Path, examplePath)
	}
	d := c.Daemon
	if d.Socket != "" || d.RequestTimeout.Duration != DefaultRequestTimeout ||
		d.MaxAttempts != DefaultMaxAttempts || d.MaxMessageBytes != DefaultMaxMessageBytes ||
		d.DrainTimeout.Duration != DefaultDrainTimeout || d.SocketGroup != "" {
		t.Errorf("[daemon] = %+v, want the defaults (the example documents them)", d)
	}
	if want := (Shared{KeyPrefix: DefaultKeyPrefix, Cache: true}); c.Shared != want || c.Shared.Enabled() {
		t.Errorf("[shared] = %+v, want %+v: the example shares nothing", c.Shared, want)
	}
	if want := (Budget{WarnAt: DefaultWarnAt}); !reflect.DeepEqual(c.Budget, want) {
		t.Errorf("[budget] = %+v, want %+v: the example sets no limit", c.Budget, want)
	}
	if len(c.Backends) != 3 {
		t.Fatalf("%d backends, want openai, azure and openai-compatible", len(c.Backends))
	}
	types := map[string]*Backend{}
	for i := range c.Backends {
		types[c.Backends[i].Type] = &c.Backends[i]
	}
	openai, azure, local := types[TypeOpenAI], types[TypeAzure], types[TypeOpenAICompatible]
	if openai == nil || azure == nil || local == nil {
		t.Fatalf("backend types = %v, want one of each", types)
	}
	if openai.APIKeyEnv != "OPENAI_API_KEY" || openai.Key.Reveal() != "sk-example-openai" ||
		openai.BaseURL != DefaultOpenAIBaseURL || openai.Weight != 1 || openai.MaxConcurrent != DefaultMaxConcurrent {
		t.Errorf("openai backend = %+v", *openai)
	}
	if azure.APIVersion != DefaultAzureAPIVersion || azure.Deployment("gpt-4o") == "gpt-4o" ||
		!azure.Serves("gpt-4o-mini") || azure.Serves("o3") || azure.Weight != 3 || azure.LimitTPM == 0 {
		t.Errorf("azure backend = %+v", *azure)
	}
	if local.KeySource() != "none" || len(local.Models) == 0 || local.Priority != 1 || local.MaxConcurrent == DefaultMaxConcurrent {
		t.Errorf("openai-compatible backend = %+v", *local)
	}
	if len(c.Prices) == 0 {
		t.Errorf("no [[price]]: the example prices the openai-compatible backend's models")
	}
	for _, p := range c.Prices {
		if !slices.Contains(local.Models, p.Model) || p != (Price{Model: p.Model}) {
			t.Errorf("[[price]] %+v: want a model of the openai-compatible backend, free", p)
		}
	}
	if openai.Weight/(openai.Weight+azure.Weight) != 0.25 {
		t.Errorf("weights %v and %v do not give the original's 25/75 split", openai.Weight, azure.Weight)
	}
}

// TestExampleDocumentsEveryKey fails when a key is added to the structs but
// not to lbgpt.toml.example.
func TestExampleDocumentsEveryKey(t *testing.T) {
	text := string(readExample(t))
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for f := range typ.Fields() {
			tag := f.Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			// A key, or a table header, which may be dotted: [[budget.namespace]].
			re := regexp.MustCompile(`(?m)^[#\s]*(\[\[?([\w-]+\.)*)?` + regexp.QuoteMeta(tag) + `(\]\]?|\s*=)`)
			if !re.MatchString(text) {
				t.Errorf("%s: key %q (%s.%s) is not in the example", examplePath, tag, typ.Name(), f.Name)
			}
			switch ft := f.Type; {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
				walk(ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem())
			}
		}
	}
	walk(reflect.TypeFor[Config]())
}

func TestDefaultPath(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/lbgpt/lbgpt.toml"},
		{"relative xdg is ignored", map[string]string{"XDG_CONFIG_HOME": "xdg", "HOME": "/home/u"}, "/home/u/.config/lbgpt/lbgpt.toml"},
		{"home", map[string]string{"HOME": "/home/u"}, "/home/u/.config/lbgpt/lbgpt.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := defaultPath(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Errorf("defaultPath = %q, want %q", got, tt.want)
			}
		})
	}
}
