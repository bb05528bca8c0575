package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lbgpt/lbgpt/provider"
)

// The bound admission uses when a bucket has room to spare is never below
// the count it stands for, whatever the text: a bound below it would let
// more into a limit than fits.
func TestPromptBoundIsABound(t *testing.T) {
	texts := []string{
		"",
		"hi",
		"Summarise the attached quarterly report in three bullet points.",
		"東京の天気は今日どうですか？明日の予報も教えてください。",
		"🙂🙃😉 emoji ⚡️🔥 and flags 🇫🇷🇩🇪 — dashes – quotes “like this”",
		"func main() {\n\tfmt.Println(\"hello\\tworld\")\n}\n",
		strings.Repeat("lorem ipsum dolor sit amet ", 2000),
		strings.Repeat("0123456789abcdef", 5000), // hex: few merges
		"\u0000\u0001 control and \\ backslashes \" quotes </script>",
		punctuation(3000), // about a token a byte
	}
	var bodies []string
	for _, s := range texts {
		q, _ := json.Marshal(s)
		bodies = append(bodies,
			`{"model":"gpt-4o","messages":[{"role":"user","content":`+string(q)+`}]}`,
			`{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","name":"ann","content":`+string(q)+`}]}`,
			`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":`+string(q)+`},{"type":"image_url","image_url":{"url":"https://x.io/a.png"}}]}]}`,
			`{"model":"gpt-4o","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":`+string(q)+`}}]}]}`,
			`{"model":"gpt-3.5-turbo","max_tokens":5,"messages":[{"role":"user","content":`+string(q)+`}]}`,
		)
		responses := []string{
			`{"model":"gpt-4o","input":` + string(q) + `}`,
			`{"model":"gpt-4o","instructions":` + string(q) + `,"input":[{"role":"user","content":[{"type":"input_text","text":"x"},{"type":"input_image","image_url":"https://x.io/b.png"}]}]}`,
		}
		for _, b := range responses {
			r, err := Parse(provider.PathResponses, json.RawMessage(b))
			if err != nil {
				t.Fatal(err)
			}
			if bound, n := r.promptBound(), r.promptTokens(); bound < n {
				t.Errorf("responses %.80s: bound %d < %d tokens", b, bound, n)
			}
		}
	}
	// Images are priced flat, above what their parts take in the body.
	img := `{"type":"image_url","image_url":{"url":"a"}}`
	bodies = append(bodies, `{"model":"gpt-4o","messages":[{"role":"user","content":[`+strings.Repeat(img+",", 9)+img+`]}]}`)
	for _, b := range bodies {
		r, err := Parse(provider.PathChat, json.RawMessage(b))
		if err != nil {
			t.Fatal(err)
		}
		if bound, n := r.promptBound(), r.promptTokens(); bound < n || n == 0 {
			t.Errorf("chat %.80s: bound %d, %d tokens", b, bound, n)
		}
	}
}

// punctuation is n bytes of punctuation, which the tokenizers rarely merge.
func punctuation(n int) string {
	const marks = "!#$%&()*+,-./:;<=>?@[]^_`{|}~"
	b := make([]byte, n)
	for i := range b {
		b[i] = marks[(i*7+i/5)%len(marks)]
	}
	return string(b)
}
