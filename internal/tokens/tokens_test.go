package tokens

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	tiktoken "github.com/pkoukk/tiktoken-go"
)

// TestLoad checks that Load loads both encodings, once each (Count with an
// empty text, the old preload, loaded nothing and left the first request a
// second of work), whatever ran before it.
func TestLoad(t *testing.T) {
	Load()
	if n := loads.Load(); n != 2 {
		t.Fatalf("Load loaded %d encodings, want 2", n)
	}
}

func TestEncoding(t *testing.T) {
	tests := []struct {
		model, want string
	}{
		{"gpt-4o", O200kBase},
		{"gpt-4o-mini", O200kBase},
		{"gpt-4o-2024-08-06", O200kBase},
		{"chatgpt-4o-latest", O200kBase},
		{"gpt-4.1", O200kBase},
		{"gpt-4.1-nano", O200kBase},
		{"gpt-4.5-preview", O200kBase},
		{"gpt-5", O200kBase},
		{"gpt-5-mini", O200kBase},
		{"o1", O200kBase},
		{"o1-mini", O200kBase},
		{"o3-mini", O200kBase},
		{"o4-mini", O200kBase},
		{"gpt-4", Cl100kBase},
		{"gpt-4-turbo", Cl100kBase},
		{"gpt-4-0613", Cl100kBase},
		{"gpt-3.5-turbo", Cl100kBase},
		{"gpt-35-turbo", Cl100kBase}, // Azure's spelling
		{"text-embedding-3-small", Cl100kBase},
		{"text-embedding-ada-002", Cl100kBase},
		{"ft:gpt-4o-mini:org::id", O200kBase},
		{"ft:gpt-3.5-turbo-0613:my-org:custom:abc123", Cl100kBase},
		{"openai/gpt-4-turbo", Cl100kBase},
		{"  GPT-4O-Mini ", O200kBase},
		{"", O200kBase},
		{"llama-3-70b", O200kBase},
		{"my-azure-deployment", O200kBase},
	}
	for _, tt := range tests {
		if got := Encoding(tt.model); got != tt.want {
			t.Errorf("Encoding(%q) = %q, want %q", tt.model, got, tt.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := map[string]string{
		"ft:gpt-4o-mini:org::id":                  "gpt-4o-mini",
		"ft:gpt-4o-mini-2024-07-18:acme:x:9XyZ":   "gpt-4o-mini-2024-07-18",
		"openai/gpt-4o":                           "gpt-4o",
		" GPT-4o ":                                "gpt-4o",
		"gpt-4.1":                                 "gpt-4.1",
		"azure/ft:gpt-35-turbo-0125:contoso::abc": "gpt-35-turbo-0125",
	}
	for in, want := range tests {
		if got := Canonical(in); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		name, model, text string
		want              int
	}{
		{"empty", "gpt-4o", "", 0},
		{"hello o200k", "gpt-4o", "hello world", 2},
		{"hello cl100k", "gpt-4", "hello world", 2},
		{"special token as text", "gpt-4o", "<|endoftext|>", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Count(tt.model, tt.text); got != tt.want {
				t.Errorf("Count(%q, %q) = %d, want %d", tt.model, tt.text, got, tt.want)
			}
		})
	}
}

// TestCountMatchesTiktoken checks counts against tiktoken-go called directly.
func TestCountMatchesTiktoken(t *testing.T) {
	texts := []string{
		"hello world",
		"tiktoken is great!",
		"The quick brown fox jumps over the lazy dog.",
		"Schöne Grüße aus Köln — 12345 ñ 日本語のテキスト 🙂",
		"func main() {\n\tfmt.Println(\"hi\")\n}\n",
		"   leading and trailing spaces   ",
	}
	for _, enc := range []string{O200kBase, Cl100kBase} {
		tk, err := tiktoken.GetEncoding(enc)
		if err != nil {
			t.Fatal(err)
		}
		model := map[string]string{O200kBase: "gpt-4o", Cl100kBase: "gpt-4"}[enc]
		for _, text := range texts {
			if got, want := Count(model, text), len(tk.EncodeOrdinary(text)); got != want {
				t.Errorf("%s: Count(%q) = %d, tiktoken says %d", enc, text, got, want)
			}
		}
	}
}

// TestCountMessages uses the example of OpenAI's cookbook "How to count
// tokens with tiktoken", which reports 129 prompt tokens for gpt-4 and 124
// for gpt-4o, as the API's usage does.
func TestCountMessages(t *testing.T) {
	msgs := []Message{
		{Role: "system", Content: "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
		{Role: "system", Name: "example_user", Content: "New synergies will help drive top-line growth."},
		{Role: "system", Name: "example_assistant", Content: "Things working well together will increase revenue."},
		{Role: "system", Name: "example_user", Content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
		{Role: "system", Name: "example_assistant", Content: "Let's talk later when we're less busy about how to do better."},
		{Role: "user", Content: "This late pivot means we don't have time to boil the ocean for the client deliverable."},
	}
	tests := []struct {
		model string
		want  int
	}{
		{"gpt-4", 129},
		{"gpt-3.5-turbo", 129},
		{"gpt-4o", 124},
		{"gpt-4o-mini", 124},
	}
	for _, tt := range tests {
		if got := CountMessages(tt.model, msgs); got != tt.want {
			t.Errorf("CountMessages(%q) = %d, want %d", tt.model, got, tt.want)
		}
	}
	// By hand: 3 (reply) + 3 (message) + 1 ("user") + 2 ("hello world").
	if got := CountMessages("gpt-4o", []Message{{Role: "user", Content: "hello world"}}); got != 9 {
		t.Errorf("one message: got %d, want 9", got)
	}
	if got := CountMessages("gpt-4o", nil); got != 3 {
		t.Errorf("no messages: got %d, want 3", got)
	}
}

func TestTruncate(t *testing.T) {
	text := "Schöne Grüße, 日本語 and some more words 🙂 here"
	total := Count("gpt-4o", text)
	for n := 0; n <= total+1; n++ {
		got, c := Truncate("gpt-4o", text, n)
		if !strings.HasPrefix(text, got) {
			t.Fatalf("Truncate(%d) = %q, not a prefix", n, got)
		}
		if c > n || c != Count("gpt-4o", got) {
			t.Fatalf("Truncate(%d) = %q with count %d, recount %d", n, got, c, Count("gpt-4o", got))
		}
		if n >= total && got != text {
			t.Fatalf("Truncate(%d) = %q, want the whole text", n, got)
		}
	}
}

func TestConcurrent(t *testing.T) {
	text := strings.Repeat("Concurrency is not parallelism. ", 8)
	want := map[string]int{"gpt-4o": Count("gpt-4o", text), "gpt-4": Count("gpt-4", text)}
	var wg sync.WaitGroup
	for i := range 16 {
		model := "gpt-4o"
		if i%2 == 1 {
			model = "gpt-4"
		}
		wg.Go(func() {
			for range 5 {
				if got := Count(model, text); got != want[model] {
					t.Errorf("%s: got %d, want %d", model, got, want[model])
				}
				CountMessages(model, []Message{{Role: "user", Content: text}})
			}
		})
	}
	wg.Wait()
}

func BenchmarkCount(b *testing.B) {
	prompt := strings.Repeat("Summarise the following paragraph in two sentences, keeping numbers like 42 and 3.14 exact. ", 12)[:1024]
	Count("gpt-4o-mini", prompt) // load the encoding outside the timing
	b.SetBytes(int64(len(prompt)))
	b.ReportAllocs()
	for b.Loop() {
		Count("gpt-4o-mini", prompt)
	}
}

// Estimate is exact up to 32 KiB and within a few percent beyond, on
// prose, code, a mixture that changes along the text, and text without
// spaces; EstimateMessages agrees with CountMessages on short messages.
func TestEstimate(t *testing.T) {
	if raceEnabled {
		t.Skip("slow under the race detector; make test runs this test without it")
	}
	read := func(glob string) string {
		paths, _ := filepath.Glob(glob)
		var b strings.Builder
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
		if b.Len() < 64<<10 {
			t.Fatalf("%s: only %d bytes", glob, b.Len())
		}
		return b.String()
	}
	prose := read("../../docs/*.md")
	code := read("../../balance/*.go")
	r := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 200<<10)
	for i := range noise {
		noise[i] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"[r.IntN(64)]
	}
	cases := map[string]string{
		"prose":             prose,
		"code":              code,
		"prose then code":   prose + code,
		"base64, no spaces": string(noise),
		"cjk":               strings.Repeat("東京は日本の首都であり、世界最大の都市圏を持つ。", 3000),
		"short":             "How large is the moon?",
	}
	for name, text := range cases {
		for _, model := range []string{"gpt-4o", "gpt-4"} {
			exact, est := Count(model, text), Estimate(model, text)
			if len(text) <= exactLimit && est != exact {
				t.Errorf("%s, %s: %d bytes estimated %d, want exactly %d", name, model, len(text), est, exact)
			}
			if off := math.Abs(float64(est-exact)) / float64(exact); off > 0.05 {
				t.Errorf("%s, %s: estimate %d, exact %d: off by %.1f%%", name, model, est, exact, 100*off)
			}
			t.Logf("%s, %s: %d bytes, exact %d, estimate %d", name, model, len(text), exact, est)
		}
	}
	msgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Name: "ann", Content: "How large is the moon?"}}
	if e, c := EstimateMessages("gpt-4o", msgs), CountMessages("gpt-4o", msgs); e != c {
		t.Errorf("EstimateMessages %d, CountMessages %d", e, c)
	}
}

// BenchmarkEstimate8MB is admission's token estimate of an 8 MB prompt:
// see its bytes per op beside BenchmarkCount's.
func BenchmarkEstimate8MB(b *testing.B) {
	text := strings.Repeat("hello world lorem ipsum dolor ", 8<<20/30)
	Load()
	b.ReportAllocs()
	for b.Loop() {
		Estimate("gpt-4o", text)
	}
}

// A remembered estimate is the estimate: the same text counts the same
// from the cache, different texts of one length do not share a count.
func TestEstimateRemembered(t *testing.T) {
	enc := encoder("gpt-4o-mini")
	a := strings.Repeat("alpha beta gamma ", 40)
	b := strings.Repeat("ααα βββ γγγ δδ ", 40)[:len(a)] // same length, other tokens
	for _, s := range []string{a, b} {
		want := estimateText(enc, s)
		for range 3 {
			if got := estimate(enc, s); got != want {
				t.Errorf("estimate %d, counted %d", got, want)
			}
		}
	}
	if estimate(enc, a) == estimate(enc, b) {
		t.Error("two texts of one length share a count")
	}
}

// A chat's turn: eleven messages of about 1.5 KB, ten of them the history
// the previous turn sent, one new. Uncached, every turn counts the whole
// history again.
func BenchmarkEstimateTurn(b *testing.B) {
	history := make([]Message, 10)
	for i := range history {
		history[i] = Message{Role: "user", Content: fmt.Sprintf("Turn %d. ", i) + strings.Repeat("Summarise the paragraph in two sentences, keeping numbers like 42 and 3.14 exact. ", 18)}
	}
	EstimateMessages("gpt-4o-mini", history) // load the encoding, remember the history
	turn := 0
	run := func(b *testing.B, est func([]Message) int) {
		b.ReportAllocs()
		for b.Loop() {
			turn++
			msgs := append(history[:10:10], Message{Role: "user", Content: fmt.Sprintf("New question %d: ", turn) + history[0].Content})
			est(msgs)
		}
	}
	b.Run("remembered", func(b *testing.B) {
		run(b, func(m []Message) int { return EstimateMessages("gpt-4o-mini", m) })
	})
	b.Run("uncached", func(b *testing.B) {
		enc := encoder("gpt-4o-mini")
		run(b, func(m []Message) int { return countMessages(enc, m, estimateText) })
	})
}
