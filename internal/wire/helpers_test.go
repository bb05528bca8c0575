package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// decode decodes JSON with numbers kept as written.
func decode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// jsonDiff returns how JSON value got differs from want ("" when they are
// equal), numbers compared as written.
func jsonDiff(t testing.TB, want, got []byte) string {
	t.Helper()
	w, err := decode(want)
	if err != nil {
		t.Fatalf("want: %v\n%s", err, want)
	}
	g, err := decode(got)
	if err != nil {
		t.Fatalf("got: %v\n%s", err, got)
	}
	return cmp.Diff(w, g)
}

// field decodes one member of a JSON object payload (nil when absent).
func member(t testing.TB, payload []byte, path ...string) any {
	t.Helper()
	v, err := decode(payload)
	if err != nil {
		t.Fatalf("%v: %s", err, payload)
	}
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// readSSE reads a server-sent-event fixture: its events in order, "[DONE]"
// left out.
func readSSE(t testing.TB, name string) []Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []Event
	var e Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if e.Data != nil {
				events = append(events, e)
			}
			e = Event{}
		case strings.HasPrefix(line, "event: "):
			e.Name = strings.TrimPrefix(line, "event: ")
		case line == "data: [DONE]":
		case strings.HasPrefix(line, "data: "):
			e.Data = []byte(strings.TrimPrefix(line, "data: "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if e.Data != nil {
		events = append(events, e)
	}
	return events
}

// payloads returns the events' data.
func payloads(events []Event) [][]byte {
	var out [][]byte
	for _, e := range events {
		out = append(out, e.Data)
	}
	return out
}

// golden compares got with a golden file as JSON, or rewrites the file
// (indented) under -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		var b bytes.Buffer
		if err := json.Indent(&b, got, "", "  "); err != nil {
			t.Fatal(err)
		}
		b.WriteByte('\n')
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := jsonDiff(t, want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", name, d)
	}
	return want
}

// checkChunks checks what every chunk ChatChunks writes must be: one compact
// line, a chat.completion.chunk with the completion's top-level fields, usage
// only on a last chunk with no choices, and text pieces of at most maxPiece
// bytes unless cut by token.
func checkChunks(t testing.TB, completion []byte, chunks [][]byte) {
	t.Helper()
	top, err := decode(completion)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		if bytes.ContainsAny(c, "\r\n") {
			t.Fatalf("chunk %d is not one line: %q", i, c)
		}
		v, err := decode(c)
		if err != nil {
			t.Fatalf("chunk %d: %v: %s", i, err, c)
		}
		m, _ := v.(map[string]any)
		if m["object"] != "chat.completion.chunk" {
			t.Fatalf("chunk %d: object %v", i, m["object"])
		}
		for k, want := range top.(map[string]any) {
			if k == "object" || k == "choices" || k == "usage" {
				continue
			}
			if d := cmp.Diff(want, m[k]); d != "" {
				t.Fatalf("chunk %d: %s (-want +got):\n%s", i, k, d)
			}
		}
		if u, ok := m["usage"]; ok {
			if u == nil || i != len(chunks)-1 || len(m["choices"].([]any)) != 0 {
				t.Fatalf("chunk %d of %d has usage %v: %s", i, len(chunks), u, c)
			}
		}
		for _, ch := range m["choices"].([]any) {
			choice := ch.(map[string]any)
			delta := choice["delta"].(map[string]any)
			for _, k := range textKeys {
				s, _ := delta[k].(string)
				if len(s) > maxPiece && !byTokenLogprobs(choice) {
					t.Fatalf("chunk %d: %s piece of %d bytes", i, k, len(s))
				}
			}
		}
	}
}

// byTokenLogprobs reports whether a chunk's choice carries one token's
// logprobs.
func byTokenLogprobs(choice map[string]any) bool {
	lp, _ := choice["logprobs"].(map[string]any)
	for _, k := range textKeys {
		if l, ok := lp[k].([]any); ok && len(l) == 1 {
			return true
		}
	}
	return false
}
