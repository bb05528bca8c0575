package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPrices(t *testing.T) {
	tests := []struct {
		name string
		toml string // after backendA
		want []Price
		err  string
	}{
		{"none", "", nil, ""},
		{
			"cached_input defaults to input",
			"[[price]]\nmodel = \"gpt-4o\"\ninput = 2\noutput = 8.5\n[[price]]\nmodel = \"llama\"\ninput = 0.0\ncached_input = 0.0\noutput = 0.0\n",
			[]Price{{Model: "gpt-4o", Input: 2, CachedInput: 2, Output: 8.5}, {Model: "llama"}},
			"",
		},
		{"explicit cached_input", "[[price]]\nmodel = \"m\"\ninput = 0.15\ncached_input = 0.075\noutput = 0.6\n", []Price{{Model: "m", Input: 0.15, CachedInput: 0.075, Output: 0.6}}, ""},
		{"no model", "[[price]]\ninput = 1\noutput = 1\n", nil, "lbgpt.toml:6: price #1: model is required"},
		{"no input", "[[price]]\nmodel = \"m\"\noutput = 1\n", nil, `lbgpt.toml:7: price "m": input is required (USD per 1M tokens; 0 if free)`},
		{"no output", "[[price]]\nmodel = \"m\"\ninput = 1\n", nil, `lbgpt.toml:7: price "m": output is required`},
		{"negative", "[[price]]\nmodel = \"m\"\ninput = 1\noutput = -2\n", nil, `lbgpt.toml:9: price "m": output must be from 0 to 100000 (USD per 1M tokens), not -2`},
		{"not a number", "[[price]]\nmodel = \"m\"\ninput = nan\noutput = 1\n", nil, `lbgpt.toml:8: price "m": input must be from 0 to 100000 (USD per 1M tokens), not NaN`},
		{"infinite", "[[price]]\nmodel = \"m\"\ninput = 1\ncached_input = inf\noutput = 1\n", nil, `lbgpt.toml:9: price "m": cached_input must be from 0 to 100000`},
		{"too fine", "[[price]]\nmodel = \"m\"\ninput = 0.0000025\noutput = 1\n", nil, `lbgpt.toml:8: price "m": input 2.5e-06 is finer than 0.001: prices are USD per 1M tokens, kept to 0.001`},
		{
			"duplicate model",
			"[[price]]\nmodel = \"m\"\ninput = 1\noutput = 1\n\n[[price]]\nmodel = \"m\"\ninput = 2\noutput = 2\n",
			nil, `lbgpt.toml:12: price "m": the model is already priced by the [[price]] at line 6`,
		},
		{"string amount", "[[price]]\nmodel = \"m\"\ninput = \"1.0\"\noutput = 1\n", nil, `lbgpt.toml:8: key "input" in [[price]] must be a number, not a string`},
		{"misspelt key", "[[price]]\nmodel = \"m\"\ninput = 1\noutput = 1\ncached = 0.5\n", nil, `lbgpt.toml:10: unknown key "cached" in [[price]] (did you mean "cached_input"?)`},
		{"plural table", "[[prices]]\nmodel = \"m\"\n", nil, `lbgpt.toml:6: unknown table [[prices]] (did you mean [[price]]?)`},
	}
	for _, tt := range tests {
		parseCase(t, tt.name, tt.toml, tt.err, tt.want, func(c *Config) []Price { return c.Prices })
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		name string
		toml string // after backendA
		want Budget
		err  string
	}{
		{"none", "", Budget{WarnAt: DefaultWarnAt}, ""},
		{
			"overall and namespaces",
			"[budget]\nday = 20\nmonth = 300.5\nwarn_at = 1\n[[budget.namespace]]\nname = \"research\"\nday = 5.0\n[[budget.namespace]]\nname = \"batch\"\nmonth = 50\n",
			Budget{Day: 20, Month: 300.5, WarnAt: 1, Namespaces: []NamespaceBudget{{Name: "research", Day: 5}, {Name: "batch", Month: 50}}},
			"",
		},
		{"namespace alone", "[[budget.namespace]]\nname = \"r\"\nday = 1\n", Budget{WarnAt: DefaultWarnAt, Namespaces: []NamespaceBudget{{Name: "r", Day: 1}}}, ""},
		{"negative", "[budget]\nday = -5\n", Budget{}, "lbgpt.toml:7: budget: day must be from 0 (no limit) to 1000000000 (USD), not -5"},
		{"warn_at zero", "[budget]\nwarn_at = 0\n", Budget{}, "lbgpt.toml:7: budget: warn_at must be more than 0 and at most 1, not 0"},
		{"warn_at over one", "[budget]\nmonth = 10\nwarn_at = 1.5\n", Budget{}, "lbgpt.toml:8: budget: warn_at must be more than 0 and at most 1, not 1.5"},
		{"namespace negative", "[[budget.namespace]]\nname = \"r\"\nmonth = -1\n", Budget{}, `lbgpt.toml:8: budget namespace "r": month must be from 0 (no limit)`},
		{"namespace without limits", "[[budget.namespace]]\nname = \"r\"\n", Budget{}, `lbgpt.toml:7: budget namespace "r": set day or month (USD), or remove the table`},
		{"namespace without name", "[[budget.namespace]]\nday = 1\n", Budget{}, "lbgpt.toml:6: budget namespace #1: name is required"},
		{
			"duplicate namespace",
			"[[budget.namespace]]\nname = \"r\"\nday = 1\n\n[[budget.namespace]]\nname = \"r\"\nmonth = 1\n",
			Budget{}, `lbgpt.toml:11: budget namespace "r": the namespace already has the [[budget.namespace]] at line 6`,
		},
		{"misspelt key", "[budget]\ndaily = 3\n", Budget{}, `lbgpt.toml:7: unknown key "daily" in [budget] (did you mean "day"?)`},
		{"misspelt namespace key", "[[budget.namespace]]\nname = \"r\"\nmonthly = 3\n", Budget{}, `lbgpt.toml:8: unknown key "monthly" in [[budget.namespace]] (did you mean "month"?)`},
		{"namespace as a table", "[budget.namespace]\nname = \"r\"\n", Budget{}, `key "namespace" in [budget] must be an array of tables ([[budget.namespace]]), not a table`},
	}
	for _, tt := range tests {
		parseCase(t, tt.name, tt.toml, tt.err, tt.want, func(c *Config) Budget { return c.Budget })
	}
}

// parseCase parses backendA and text: the error must contain wantErr, or,
// with none, the part of the config got reads must be want.
func parseCase[T any](t *testing.T, name, text, wantErr string, want T, got func(*Config) T) {
	t.Run(name, func(t *testing.T) {
		c, err := Parse([]byte(backendA+text), "lbgpt.toml")
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("err = %v, want %q", err, wantErr)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got(c)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
