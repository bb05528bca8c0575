package sim

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lbgpt/lbgpt/internal/tokens"
)

type embeddingList struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func norm(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func TestEmbeddings(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	tests := []struct {
		name       string
		body       string
		wantN      int
		wantDims   int
		wantTokens int
	}{
		{"string", `{"model":"text-embedding-3-small","input":"hello world"}`, 1, 1536, 2},
		{"strings", `{"model":"text-embedding-3-small","input":["hello world","good morning","hello world"]}`, 3, 1536,
			2 + tokens.Count("text-embedding-3-small", "good morning") + 2},
		{"dimensions", `{"model":"text-embedding-3-small","input":"hello world","dimensions":256}`, 1, 256, 2},
		{"token ids", `{"model":"text-embedding-3-small","input":[15339,1917]}`, 1, 1536, 2},
		{"token id arrays", `{"model":"text-embedding-3-small","input":[[15339,1917],[15339]]}`, 2, 1536, 3},
	}
	for _, w := range wires {
		for _, tt := range tests {
			t.Run(w.name+" "+tt.name, func(t *testing.T) {
				resp, b := w.call(t, ts.URL, "embeddings", "k", tt.body)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
				got := decode[embeddingList](t, b)
				if got.Object != "list" || got.Model != "text-embedding-3-small" || len(got.Data) != tt.wantN ||
					got.Usage.PromptTokens != tt.wantTokens || got.Usage.TotalTokens != tt.wantTokens {
					t.Fatalf("list %s", b[:min(len(b), 200)])
				}
				for i, d := range got.Data {
					if d.Object != "embedding" || d.Index != i || len(d.Embedding) != tt.wantDims {
						t.Errorf("item %d: object %q index %d dims %d", i, d.Object, d.Index, len(d.Embedding))
					}
					if n := norm(d.Embedding); math.Abs(n-1) > 1e-5 {
						t.Errorf("item %d: norm %v", i, n)
					}
				}
				if tt.name == "strings" {
					if diff := cmp.Diff(got.Data[0].Embedding, got.Data[2].Embedding); diff != "" {
						t.Errorf("same input, different vectors")
					}
					if cmp.Equal(got.Data[0].Embedding, got.Data[1].Embedding) {
						t.Errorf("different inputs, same vector")
					}
				}
			})
		}
	}
}

// TestEmbeddingsConsistent: a shortened vector is the normalised prefix of
// the full one, and base64 encodes the same floats.
func TestEmbeddingsConsistent(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	_, b := openaiWire.call(t, ts.URL, "embeddings", "k", `{"model":"text-embedding-3-small","input":"x"}`)
	full := decode[embeddingList](t, b).Data[0].Embedding
	_, b = openaiWire.call(t, ts.URL, "embeddings", "k", `{"model":"text-embedding-3-small","input":"x","dimensions":8}`)
	short := decode[embeddingList](t, b).Data[0].Embedding
	n := norm(full[:8])
	for i := range short {
		if math.Abs(short[i]-full[i]/n) > 1e-5 {
			t.Fatalf("dimension %d: %v, want %v", i, short[i], full[i]/n)
		}
	}
	_, b = openaiWire.call(t, ts.URL, "embeddings", "k", `{"model":"text-embedding-3-small","input":"x","encoding_format":"base64"}`)
	enc := decode[struct{ Data []struct{ Embedding string } }](t, b)
	raw, err := base64.StdEncoding.DecodeString(enc.Data[0].Embedding)
	if err != nil || len(raw) != 4*1536 {
		t.Fatalf("base64 embedding: %d bytes, %v", len(raw), err)
	}
	for i := range full {
		if f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); f != float32(full[i]) {
			t.Fatalf("base64 dimension %d: %v, float says %v", i, f, full[i])
		}
	}
}

func TestEmbeddingErrors(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}, Models: []string{"text-embedding-3-small", "text-embedding-ada-002", "gpt-4o"}})
	tests := []struct{ name, body, want string }{
		{"no input", `{"model":"text-embedding-3-small"}`, `"param":"input"`},
		{"empty string", `{"model":"text-embedding-3-small","input":""}`, `"param":"input"`},
		{"empty array", `{"model":"text-embedding-3-small","input":[]}`, `"param":"input"`},
		{"object input", `{"model":"text-embedding-3-small","input":{}}`, `"param":"input"`},
		{"too many dims", `{"model":"text-embedding-3-small","input":"x","dimensions":2000}`, `"param":"dimensions"`},
		{"dims on ada", `{"model":"text-embedding-ada-002","input":"x","dimensions":10}`, `"param":"dimensions"`},
		{"chat model", `{"model":"gpt-4o","input":"x"}`, `does not support embeddings`},
		{"bad format", `{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}`, `encoding_format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := openaiWire.call(t, ts.URL, "embeddings", "k", tt.body)
			if resp.StatusCode != 400 || !strings.Contains(b, tt.want) {
				t.Errorf("got %d %s, want 400 with %s", resp.StatusCode, b, tt.want)
			}
		})
	}
}

func TestModels(t *testing.T) {
	_, ts := start(t, Options{Accounts: []Account{{Key: "k"}}})
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	type list struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}
	want := list{Object: "list"}
	for _, m := range DefaultModels {
		want.Data = append(want.Data, model{ID: m, Object: "model", Created: modelCreated, OwnedBy: "lbgpt-sim"})
	}
	for _, w := range wires {
		resp, b := w.call(t, ts.URL, "models", "k", "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", w.name, resp.StatusCode)
		}
		if diff := cmp.Diff(want, decode[list](t, b)); diff != "" {
			t.Errorf("%s models (-want +got):\n%s", w.name, diff)
		}
	}
}
