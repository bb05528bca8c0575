package spend

import (
	"testing"

	"github.com/lbgpt/lbgpt/config"
)

func TestNanosString(t *testing.T) {
	tests := []struct {
		n    Nanos
		want string
	}{
		{0, "$0.00"},
		{4_120_000_000, "$4.12"},
		{4_125_000_000, "$4.13"}, // half a cent rounds up
		{4_124_999_999, "$4.12"},
		{Dollar, "$1.00"},
		{1234 * Dollar, "$1234.00"},
		{Cent, "$0.01"},
		{999_999_999, "$1.00"},
		{996_000_000, "$1.00"},
		{994_000_000, "$0.99"},
		{500_000_000, "$0.50"},
		{325_000_000, "$0.33"},
		{100_000_000, "$0.10"},
		{99_600_000, "$0.10"},
		{20_864_000, "$0.021"},
		{3_100_000, "$0.0031"},
		{3_149_999, "$0.0031"},
		{3_150_000, "$0.0032"},
		{3_000_000, "$0.003"},
		{42_000, "$0.000042"},
		{7_500, "$0.0000075"},
		{12, "$0.000000012"},
		{5, "$0.000000005"},
		{9_996_000, "$0.01"},
		{-4_120_000_000, "-$4.12"},
		{-3_100_000, "-$0.0031"},
	}
	for _, tt := range tests {
		if got := tt.n.String(); got != tt.want {
			t.Errorf("Nanos(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestConversions(t *testing.T) {
	if got := USD(4.12); got != 4_120_000_000 {
		t.Errorf("USD(4.12) = %d", got)
	}
	for usd, want := range map[float64]Nanos{2.5: 2500, 0.15: 150, 0.075: 75, 0.005: 5, 0.025: 25, 60: 60000} {
		if got := PerMillion(usd); got != want {
			t.Errorf("PerMillion(%v) = %d, want %d", usd, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	gpt4o, gpt4oMini := builtin["gpt-4o"], builtin["gpt-4o-mini"]
	tests := []struct {
		model string
		want  Price
		ok    bool
	}{
		{"gpt-4o", gpt4o, true},
		{"gpt-4o-2024-08-06", gpt4o, true},
		{"gpt-4o-mini", gpt4oMini, true},
		{"gpt-4o-mini-2024-07-18", gpt4oMini, true},
		{"gpt-3.5-turbo-0125", builtin["gpt-3.5-turbo"], true},
		{"gpt-35-turbo", builtin["gpt-3.5-turbo"], true},
		{"o3-mini-2025-01-31", builtin["o3-mini"], true},
		{"gpt-5-2025-08-07", builtin["gpt-5"], true},
		{"o3-pro", Price{}, false},                             // another model, not a snapshot
		{"gpt-4o-realtime-preview-2024-12-17", Price{}, false}, // idem
		{"gpt-4o-2024-8-6", Price{}, false},                    // not a date
		{"2024-08-06", Price{}, false},
		{"-0125", Price{}, false},
		{"llama3.2", Price{}, false},
		{"", Price{}, false},
	}
	var zero Prices
	for _, tt := range tests {
		got, ok := zero.Lookup(tt.model)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", tt.model, got, ok, tt.want, tt.ok)
		}
	}
}

// TestBuiltin checks that every model in common use has a price, with the
// cached input no dearer than the input.
func TestBuiltin(t *testing.T) {
	for _, m := range []string{
		"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano",
		"gpt-4o", "gpt-4o-mini", "o1", "o3", "o3-mini", "o4-mini", "gpt-4-turbo", "gpt-3.5-turbo",
		"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
	} {
		p, ok := (*Prices)(nil).Lookup(m)
		if !ok || p.Input <= 0 || p.CachedInput <= 0 || p.CachedInput > p.Input {
			t.Errorf("%s: price %+v, %v", m, p, ok)
		}
	}
}

func TestNewPrices(t *testing.T) {
	p := NewPrices([]config.Price{
		{Model: "gpt-4o", Input: 2, CachedInput: 1, Output: 8},
		{Model: "gpt-4o-2024-05-13", Input: 5, CachedInput: 5, Output: 15},
		{Model: "llama3.2"},
	})
	tests := []struct {
		model string
		want  Price
	}{
		{"gpt-4o", Price{2000, 1000, 8000}},
		{"gpt-4o-2024-08-06", Price{2000, 1000, 8000}},  // the override's snapshot
		{"gpt-4o-2024-05-13", Price{5000, 5000, 15000}}, // priced itself
		{"gpt-4o-mini", builtin["gpt-4o-mini"]},
		{"llama3.2", Price{}},
	}
	for _, tt := range tests {
		if got, ok := p.Lookup(tt.model); !ok || got != tt.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", tt.model, got, ok, tt.want)
		}
	}
	if c, ok := p.Cost("llama3.2", Usage{Input: 1000, Output: 1000}); !ok || c != 0 {
		t.Errorf("a free model costs %v, %v; want $0, priced", c, ok)
	}
	if _, ok := p.Cost("mistral", Usage{Input: 1000}); ok {
		t.Errorf("an unknown model is priced")
	}
	if got := builtin["gpt-4o"]; got != (Price{2500, 1250, 10000}) {
		t.Errorf("NewPrices changed the built-in table: gpt-4o = %+v", got)
	}
}
