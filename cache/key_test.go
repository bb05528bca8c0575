package cache

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type keyPair struct {
	Name string `json:"name"`
	A    string `json:"a"`
	B    string `json:"b"`
	Same bool   `json:"same"`
}

func readPairs(t *testing.T) []keyPair {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "key_pairs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pairs []keyPair
	if err := json.Unmarshal(data, &pairs); err != nil {
		t.Fatal(err)
	}
	return pairs
}

func mustKey(t *testing.T, raw string, p KeyParams) string {
	t.Helper()
	k, err := Key(json.RawMessage(raw), p)
	if err != nil {
		t.Fatalf("Key(%s): %v", raw, err)
	}
	return k
}

// TestKeyPairs: what does not change an answer does not change the key
// (field order, 0 vs 0.0, white space, the excluded fields); every
// parameter that changes the answer does.
func TestKeyPairs(t *testing.T) {
	for _, p := range readPairs(t) {
		t.Run(p.Name, func(t *testing.T) {
			a, b := mustKey(t, p.A, KeyParams{}), mustKey(t, p.B, KeyParams{})
			if (a == b) != p.Same {
				t.Errorf("same key = %v, want %v\na: %s\nb: %s", a == b, p.Same, p.A, p.B)
			}
		})
	}
}

// TestKeyGolden pins the keys themselves: a change of the canonical form
// would silently turn every stored entry into a miss. Run with -update
// after a deliberate change (and bump keyVersion).
func TestKeyGolden(t *testing.T) {
	got := map[string]string{}
	for _, p := range readPairs(t) {
		got[p.Name] = mustKey(t, p.A, KeyParams{})
	}
	got["namespace team-a"] = mustKey(t, readPairs(t)[0].A, KeyParams{Namespace: "team-a"})
	got["alias gpt-4o"] = mustKey(t, readPairs(t)[0].A, KeyParams{ModelAlias: "gpt-4o"})
	got["embedding kind"] = mustKey(t, readPairs(t)[0].A, KeyParams{Kind: KindEmbedding})
	path := filepath.Join("testdata", "keys.golden.json")
	if *update {
		data, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestKeyGolden -update)", err)
	}
	var want map[string]string
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for name, k := range got {
		if want[name] != k {
			t.Errorf("%s: key %s, golden %s", name, k, want[name])
		}
	}
}

func TestKeyNamespaceAndAlias(t *testing.T) {
	const a = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	const b = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	if mustKey(t, a, KeyParams{}) == mustKey(t, a, KeyParams{Namespace: "x"}) {
		t.Error("namespaces share a key")
	}
	if mustKey(t, a, KeyParams{Namespace: "x"}) == mustKey(t, a, KeyParams{Namespace: "y"}) {
		t.Error("two namespaces share a key")
	}
	if mustKey(t, a, KeyParams{ModelAlias: "gpt-4o"}) != mustKey(t, b, KeyParams{}) {
		t.Error("a request with model_alias gpt-4o does not key as a gpt-4o request")
	}
	if mustKey(t, a, KeyParams{}) == mustKey(t, a, KeyParams{Kind: KindEmbedding}) {
		t.Error("kinds share a key")
	}
}

// TestKeyWithoutText: messages without text still key, and differently.
func TestKeyWithoutText(t *testing.T) {
	img := `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`
	tool := `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`
	if mustKey(t, img, KeyParams{}) == mustKey(t, tool, KeyParams{}) {
		t.Error("different text-less requests share a key")
	}
}

func TestKeyRejects(t *testing.T) {
	for _, raw := range []string{``, `[]`, `null`, `{"model":`, `{} {}`} {
		if _, err := Key(json.RawMessage(raw), KeyParams{}); err == nil {
			t.Errorf("Key(%q): no error", raw)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	tests := map[string]string{
		"0": "0", "-0": "0", "0.000": "0", "0e10": "0", "1": "1", "1.0": "1", "10": "1e1", "100.00": "1e2",
		"0.5": "5e-1", "5E-1": "5e-1", "-1.50": "-15e-1", "12345678901234567890": "1234567890123456789e1",
		"1e400": "1e400", "0.1e1": "1",
	}
	for in, want := range tests {
		if got := canonicalNumber(in); got != want {
			t.Errorf("canonicalNumber(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add(`{"model":"m","messages":[{"role":"user","content":"hi "}],"temperature":0.0}`)
	f.Add(`{"a":[1,2.50,{"b":null}],"c":true}`)
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Canonical(json.RawMessage(raw))
		if err != nil {
			return
		}
		// Canonical is a fixed point, and valid JSON.
		c2, err := Canonical(c)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", c, err)
		}
		if string(c) != string(c2) {
			t.Fatalf("not a fixed point: %s then %s", c, c2)
		}
	})
}

func BenchmarkKey(b *testing.B) {
	raw := json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"cache benchmark question 12345, with a little more text to be realistic"}]}`)
	for b.Loop() {
		if _, err := Key(raw, KeyParams{}); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzWriteString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ <tag> & \n\r\t\x01", "\u2028\u2029é漢", "bad \xff utf8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		var b bytes.Buffer
		writeString(&b, s)
		if b.String() != string(want) {
			t.Fatalf("writeString(%q) = %s, json.Marshal %s", s, b.String(), want)
		}
	})
}

// FuzzQuickKey holds QuickKey to Key: the same key for every request Key
// accepts.
func FuzzQuickKey(f *testing.F) {
	for _, p := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi \n"},{"role":"user","content":[{"type":"text","text":"a\t"},{"type":"image_url","image_url":{"url":"x"}}]}],"temperature":0.0,"stream":true}`,
		`{"b":1,"a":[1,2.50,{"b":null,"a":true}],"c":"\u00e9\ud83d\ude00","model":"x","model":"y"}`,
		`{"messages":{"content":"x "},"user":"u","metadata":{},"seed":12345678901234567890}`,
		`{"messages":[1,"x",[{"text":"t "}],{"content":{"text":"y "}}]}`,
		`{"s":"bad \xff utf8","n":-0.0e-0}`,
		`{"model":"m","messages":[{"role":"user","content":"say \"x\" \\ \/ \b\f\n\r\t<&> \\"},{"role":"user","content":"\u00e9 and \n"}]}`,
	} {
		f.Add(p, "", "")
		f.Add(p, "ns", "alias")
	}
	f.Fuzz(func(t *testing.T, raw, ns, alias string) {
		p := KeyParams{Namespace: ns, ModelAlias: alias}
		want, err := Key(json.RawMessage(raw), p)
		got, qerr := QuickKey(json.RawMessage(raw), p)
		if err != nil {
			return // QuickKey may accept what Key refuses; the daemon validates first
		}
		if qerr != nil || got != want {
			t.Fatalf("QuickKey(%q) = %s, %v; Key = %s", raw, got, qerr, want)
		}
	})
}

func TestQuickKeyPairs(t *testing.T) {
	for _, p := range readPairs(t) {
		for _, raw := range []string{p.A, p.B} {
			for _, kp := range []KeyParams{{}, {Namespace: "n", ModelAlias: "a", Kind: KindEmbedding}} {
				want := mustKey(t, raw, kp)
				if got, err := QuickKey(json.RawMessage(raw), kp); err != nil || got != want {
					t.Errorf("%s: QuickKey = %s, %v; Key = %s", p.Name, got, err, want)
				}
			}
		}
	}
}

// BenchmarkQuickKey keys a short chat request, and one with a source file
// pasted (this package's key.go, about 10 kB: new lines, tabs and quotes
// throughout).
func BenchmarkQuickKey(b *testing.B) {
	src, err := os.ReadFile("key.go")
	if err != nil {
		b.Fatal(err)
	}
	code, _ := json.Marshal("Review this:\n\n" + string(src))
	for _, c := range []struct {
		name string
		raw  json.RawMessage
	}{
		{"short", json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"max_tokens":16,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"cache benchmark question 12345, with a little more text to be realistic"}]}`)},
		{"pasted-code", json.RawMessage(`{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"system","content":"You review code."},{"role":"user","content":` + string(code) + `}]}`)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := QuickKey(c.raw, KeyParams{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
