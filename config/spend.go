package config

import (
	"fmt"
	"math"
)

// Price is one [[price]] table: what a model costs, in USD per 1M tokens
// as price lists give it. It replaces the built-in price of a model lbgpt
// knows (OpenAI's list prices; see docs/spend.md) and prices any other,
// such as a model of an OpenAI-compatible server. A model's dated
// snapshots ("NAME-2025-01-31", "NAME-0125") cost the same unless priced
// themselves. Amounts are kept to 0.001 USD per 1M tokens (a nano-dollar
// per token).
type Price struct {
	// Model is the model's name as requests and answers give it: required,
	// unique.
	Model string `toml:"model"`
	// Input is the price of an input token not read from the prompt cache.
	// Required.
	Input float64 `toml:"input"`
	// CachedInput is the price of an input token read from the prompt
	// cache. Default: Input.
	CachedInput float64 `toml:"cached_input"`
	// Output is the price of an output token, reasoning tokens included.
	// Required.
	Output float64 `toml:"output"`
}

// Budget is the [budget] table: limits, in USD, on what the answers paid
// upstream cost per UTC calendar day and month, overall and per namespace.
// A request that could cross one fails before it starts. 0 (the default)
// is no limit.
type Budget struct {
	Day   float64 `toml:"day"`
	Month float64 `toml:"month"`
	// WarnAt is the share of a limit past which it is reported as nearly
	// spent: more than 0, at most 1. Default 0.8.
	WarnAt float64 `toml:"warn_at"`
	// Namespaces limit single namespaces, within the overall limits.
	Namespaces []NamespaceBudget `toml:"namespace"`
}

// NamespaceBudget is a [[budget.namespace]] table: the limits of the
// requests of one namespace, in USD per UTC day and month; 0 is no limit.
type NamespaceBudget struct {
	// Name is the namespace: required, unique, not empty (the default
	// namespace has the overall limits only).
	Name  string  `toml:"name"`
	Day   float64 `toml:"day"`
	Month float64 `toml:"month"`
}

// Limits on amounts, beyond which a value is surely a mistake.
const (
	maxPrice  = 100_000       // USD per 1M tokens: $0.10 a token
	maxBudget = 1_000_000_000 // USD
)

// setSpendDefaults fills what the [[price]] and [budget] tables leave out;
// raw is the file decoded generically.
func setSpendDefaults(c *Config, raw map[string]any) {
	for i := range c.Prices {
		if _, ok := rawElem(raw["price"], i)["cached_input"]; !ok {
			c.Prices[i].CachedInput = c.Prices[i].Input
		}
	}
	if b, _ := raw["budget"].(map[string]any); b["warn_at"] == nil {
		c.Budget.WarnAt = DefaultWarnAt
	}
}

func (ck *checker) validatePrices(ps []Price) {
	seen := map[string]int{} // model -> index
	for i, p := range ps {
		at := func(key string) []seg { return []seg{{"price", i}, {key, -1}} }
		label := fmt.Sprintf("price %q", p.Model)
		if p.Model == "" {
			label = fmt.Sprintf("price #%d", i+1)
			ck.errorf(at("model"), "%s: model is required", label)
		} else if j, dup := seen[p.Model]; dup {
			ck.errorf(at("model"), "%s: the model is already priced by the [[price]] at line %d", label, ck.line(seg{"price", j}))
		} else {
			seen[p.Model] = i
		}
		set := rawElem(ck.raw["price"], i)
		for _, a := range []struct {
			key string
			v   float64
		}{{"input", p.Input}, {"cached_input", p.CachedInput}, {"output", p.Output}} {
			_, ok := set[a.key]
			switch {
			case !ok && a.key != "cached_input":
				ck.errorf(at("model"), "%s: %s is required (USD per 1M tokens; 0 if free)", label, a.key)
			case !ok:
			case !(a.v >= 0 && a.v <= maxPrice):
				ck.errorf(at(a.key), "%s: %s must be from 0 to %d (USD per 1M tokens), not %v", label, a.key, maxPrice, a.v)
			case math.Abs(a.v*1000-math.Round(a.v*1000)) > 1e-6:
				ck.errorf(at(a.key), "%s: %s %v is finer than 0.001: prices are USD per 1M tokens, kept to 0.001", label, a.key, a.v)
			}
		}
	}
}

func (ck *checker) validateBudget(b *Budget) {
	amount := func(path []seg, label, key string, v float64) {
		if !(v >= 0 && v <= maxBudget) {
			ck.errorf(path, "%s: %s must be from 0 (no limit) to %d (USD), not %v", label, key, maxBudget, v)
		}
	}
	at := func(key string) []seg { return []seg{{"budget", -1}, {key, -1}} }
	amount(at("day"), "budget", "day", b.Day)
	amount(at("month"), "budget", "month", b.Month)
	if !(b.WarnAt > 0 && b.WarnAt <= 1) {
		ck.errorf(at("warn_at"), "budget: warn_at must be more than 0 and at most 1, not %v", b.WarnAt)
	}
	seen := map[string]int{} // name -> index
	for i, n := range b.Namespaces {
		at := func(key string) []seg { return []seg{{"budget", -1}, {"namespace", i}, {key, -1}} }
		label := fmt.Sprintf("budget namespace %q", n.Name)
		switch j, dup := seen[n.Name]; {
		case n.Name == "":
			label = fmt.Sprintf("budget namespace #%d", i+1)
			ck.errorf(at("name"), "%s: name is required (the default namespace has the overall limits only)", label)
		case dup:
			ck.errorf(at("name"), "%s: the namespace already has the [[budget.namespace]] at line %d", label, ck.line(seg{"budget", -1}, seg{"namespace", j}))
		default:
			seen[n.Name] = i
		}
		amount(at("day"), label, "day", n.Day)
		amount(at("month"), label, "month", n.Month)
		if n.Day == 0 && n.Month == 0 {
			ck.errorf(at("name"), "%s: set day or month (USD), or remove the table", label)
		}
	}
}
