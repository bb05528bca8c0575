package config

import (
	"strings"
	"testing"
	"time"
)

func TestBalance(t *testing.T) {
	const backend = "\n[[backend]]\nname = \"a\"\ntype = \"openai-compatible\"\nbase_url = \"http://localhost:8000/v1\"\n"
	tests := []struct {
		name string
		toml string
		err  string
	}{
		{"defaults", "version = 1\n" + backend, ""},
		{"strategy", "version = 1\n[balance]\nstrategy = \"random\"\n" + backend, `test.toml:3: balance: strategy must be "weighted", "max_headroom" or "priority", not "random"`},
		{"overallocate type", "version = 1\n[balance]\noverallocate = \"yes\"\n" + backend, `test.toml:3: key "overallocate" in [balance] must be true or false`},
		{"backoff order", "version = 1\n[balance]\nbackoff_base = \"2s\"\nbackoff_max = \"1s\"\n" + backend, "test.toml:4: balance: backoff_max (1s) must not be less than backoff_base (2s)"},
		{"misspelt key", "version = 1\n[balance]\nstrategie = \"weighted\"\n" + backend, `test.toml:3: unknown key "strategie" in [balance] (did you mean "strategy"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), "test.toml")
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				want := Balance{Strategy: StrategyMaxHeadroom, BackoffBase: Duration{200 * time.Millisecond}, BackoffMax: Duration{10 * time.Second}, Reprobe: Duration{5 * time.Minute}, HeaderTimeout: Duration{DefaultHeaderTimeout}}
				if c.Balance != want {
					t.Errorf("balance = %+v, want %+v", c.Balance, want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}
