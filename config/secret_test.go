package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// secretConfig is a loaded config holding fakeKey both as a literal api_key
// and as resolved keys.
func secretConfig(t *testing.T) *Config {
	t.Helper()
	text := `version = 1
[[backend]]
name = "lit"
type = "openai"
api_key = "` + fakeKey + `"

[[backend]]
name = "env"
type = "azure"
base_url = "https://r.openai.azure.com"
api_key_env = "AZURE_OPENAI_API_KEY"
model_map = { "gpt-4o" = "prod" }
`
	c, err := Parse([]byte(text), "lbgpt.toml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(mapEnv(map[string]string{"AZURE_OPENAI_API_KEY": fakeKey})); err != nil {
		t.Fatal(err)
	}
	if c.Backends[0].Key.Reveal() != fakeKey || c.Backends[1].Key.Reveal() != fakeKey {
		t.Fatal("keys not resolved")
	}
	return c
}

func TestSecretRedaction(t *testing.T) {
	c := secretConfig(t)
	values := map[string]any{
		"Config":    *c,
		"*Config":   c,
		"Backend":   c.Backends[0],
		"*Backend":  &c.Backends[1],
		"[]Backend": c.Backends,
		"Secret":    c.Backends[0].Key,
		"*Secret":   &c.Backends[0].Key,
		"map":       map[string]any{"b": c.Backends[0]},
	}
	var outputs []string
	for name, v := range values {
		// Every verb: %d or %x on a struct prints its string fields too.
		// Not %p on a value that is not a pointer: fmt then reports a bad
		// verb by printing the raw value with every method disabled, which
		// no type can prevent; go vet rejects that call.
		verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%e", "%g", "%c", "%U", "%b", "%o", "%T", "%10.3v", "%-20s"}
		if strings.HasPrefix(name, "*") || name == "[]Backend" || name == "map" {
			verbs = append(verbs, "%p")
		}
		for _, verb := range verbs {
			outputs = append(outputs, name+" "+verb+": "+fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, name+" Sprint: "+fmt.Sprint(v), name+" Sprintln: "+fmt.Sprintln(v))
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", name, err)
		}
		outputs = append(outputs, name+" json: "+string(j))
		for _, h := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		} {
			var buf bytes.Buffer
			log := slog.New(h(&buf))
			log.Info("config", "value", v, slog.Any("any", v), slog.Group("g", "v", v))
			outputs = append(outputs, name+" slog: "+buf.String())
		}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, "toml: "+buf.String())

	for _, out := range outputs {
		if strings.Contains(out, fakeKey) || strings.Contains(out, fmt.Sprintf("%x", fakeKey)) ||
			strings.Contains(strings.ToLower(out), strings.ToLower(fmt.Sprintf("%x", fakeKey))) {
			t.Errorf("the key leaks into %s", out)
		}
	}
	// The redaction is visible, so nobody mistakes it for an empty key.
	for _, want := range []string{"Config %v: ", "Config json: ", "Secret slog: "} {
		for _, out := range outputs {
			if strings.HasPrefix(out, want) && !strings.Contains(out, redacted) {
				t.Errorf("%s does not say %s", out, redacted)
			}
		}
	}
}

func TestSecretForms(t *testing.T) {
	tests := []struct {
		name string
		s    Secret
		want string
	}{
		{"set", Secret(fakeKey), redacted},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, _ := tt.s.MarshalText()
			j, _ := tt.s.MarshalJSON()
			got := map[string]string{
				"String":      tt.s.String(),
				"MarshalText": string(text),
				"LogValue":    tt.s.LogValue().String(),
				"%v":          fmt.Sprintf("%v", tt.s),
				"%s":          fmt.Sprintf("%s", tt.s),
			}
			for form, g := range got {
				if g != tt.want {
					t.Errorf("%s = %q, want %q", form, g, tt.want)
				}
			}
			wantJSON, _ := json.Marshal(tt.want)
			if string(j) != string(wantJSON) {
				t.Errorf("MarshalJSON = %s, want %s", j, wantJSON)
			}
			wantGo := tt.want
			if wantGo == "" {
				wantGo = `""`
			}
			if g := tt.s.GoString(); g != wantGo {
				t.Errorf("GoString = %q, want %q", g, wantGo)
			}
			if g := fmt.Sprintf("%q", tt.s); g != fmt.Sprintf("%q", tt.want) {
				t.Errorf("%%q = %s", g)
			}
			if tt.s.Reveal() != string(tt.s) {
				t.Errorf("Reveal = %q", tt.s.Reveal())
			}
		})
	}
}

func TestBackendLogValue(t *testing.T) {
	c := secretConfig(t)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("backend", "b", c.Backends[1])
	out := buf.String()
	for _, want := range []string{"b.name=env", "b.type=azure", "b.key=\"env AZURE_OPENAI_API_KEY\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Duration != 90*time.Second {
		t.Fatalf("UnmarshalText = %v, %v", d, err)
	}
	if text, _ := d.MarshalText(); string(text) != "1m30s" {
		t.Errorf("MarshalText = %s", text)
	}
	if err := d.UnmarshalText([]byte("90")); err == nil {
		t.Errorf("UnmarshalText(90) succeeded")
	}
}
