package cache

import (
	"encoding/json"
	"testing"
)

func query(t *testing.T, raw, enc string, p KeyParams) (Query, bool) {
	t.Helper()
	q, ok, err := SemanticQuery(json.RawMessage(raw), enc, p)
	if err != nil {
		t.Fatalf("SemanticQuery(%s, %s): %v", raw, enc, err)
	}
	return q, ok
}

func TestSemanticText(t *testing.T) {
	const raw = `{"model":"m","messages":[{"role":"system","content":"Be brief. "},{"role":"user","content":"Hi there\n"},{"role":"assistant","content":"Hello"},{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`
	tests := map[string]string{
		EncodingUserOnly:   "[user]: Hi there\n\n[user]: What is this?",
		EncodingAll:        "[system]: Be brief.\n\n[user]: Hi there\n\n[assistant]: Hello\n\n[user]: What is this?",
		EncodingSystemOnly: "[system]: Be brief.",
	}
	for enc, want := range tests {
		q, ok := query(t, raw, enc, KeyParams{})
		if !ok || q.Text != want {
			t.Errorf("%s: text %q (%v), want %q", enc, q.Text, ok, want)
		}
	}
	if _, _, err := SemanticQuery(json.RawMessage(raw), "fuzzy", KeyParams{}); err == nil {
		t.Error("an unknown encoding is not an error")
	}
}

// TestSemanticPartition: only the chosen text is fuzzy; everything else
// separates partitions.
func TestSemanticPartition(t *testing.T) {
	const base = `{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]}`
	b, _ := query(t, base, EncodingUserOnly, KeyParams{})
	same := []string{
		`{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is the capital of France?"}]}`,
		`{"temperature":0.0,"model":"m","stream":true,"messages":[{"role":"system","content":"Be brief.  "},{"role":"user","content":"Capital of Germany?"}]}`,
	}
	for _, raw := range same {
		if q, _ := query(t, raw, EncodingUserOnly, KeyParams{}); q.Partition != b.Partition {
			t.Errorf("partition differs for %s", raw)
		}
	}
	other := map[string]string{
		"system prompt": `{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be verbose."},{"role":"user","content":"Capital of France?"}]}`,
		"model":         `{"model":"m2","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]}`,
		"temperature":   `{"model":"m","temperature":1,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]}`,
		"max_tokens":    `{"model":"m","temperature":0,"max_tokens":5,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]}`,
		"tools":         `{"model":"m","temperature":0,"tools":[{"type":"function","function":{"name":"f"}}],"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Capital of France?"}]}`,
		"image":         `{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Capital of France?"},{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`,
		"user name":     `{"model":"m","temperature":0,"messages":[{"role":"system","content":"Be brief."},{"role":"user","name":"bob","content":"Capital of France?"}]}`,
	}
	for name, raw := range other {
		if q, _ := query(t, raw, EncodingUserOnly, KeyParams{}); q.Partition == b.Partition {
			t.Errorf("%s: same partition", name)
		}
	}
	if q, _ := query(t, base, EncodingUserOnly, KeyParams{Namespace: "x"}); q.Partition == b.Partition {
		t.Error("namespaces share a partition")
	}
	if q, _ := query(t, base, EncodingAll, KeyParams{}); q.Partition == b.Partition {
		t.Error("encodings share a partition")
	}
	alias, _ := query(t, base, EncodingUserOnly, KeyParams{ModelAlias: "m2"})
	m2, _ := query(t, other["model"], EncodingUserOnly, KeyParams{})
	if alias.Partition != m2.Partition {
		t.Error("model_alias does not select the aliased model's partition")
	}
}

func TestSemanticSkipped(t *testing.T) {
	skip := map[string]string{
		"empty text":   `{"model":"m","messages":[{"role":"user","content":"   "}]}`,
		"image only":   `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`,
		"no system":    `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		"tool call":    `{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"w","arguments":"{}"}}]}]}`,
		"tool message": `{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"tool","tool_call_id":"1","content":"sunny"}]}`,
	}
	for name, raw := range skip {
		enc := EncodingUserOnly
		if name == "no system" {
			enc = EncodingSystemOnly
		}
		if _, ok := query(t, raw, enc, KeyParams{}); ok {
			t.Errorf("%s: the semantic cache is used", name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for raw, want := range map[string]bool{
		`{"temperature":0}`: true, `{"temperature":0.0}`: true, `{"temperature":0.2}`: false, `{}`: false, `{"temperature":null}`: false,
	} {
		r, err := ParseRequest(json.RawMessage(raw))
		if err != nil || r.Deterministic() != want {
			t.Errorf("%s: Deterministic = %v (%v), want %v", raw, !want, err, want)
		}
	}
}
