package spend

import (
	"maps"
	"math"
	"strconv"
	"strings"

	"github.com/lbgpt/lbgpt/config"
)

// Nanos is an amount of US dollars in nano-dollars (10⁻⁹ USD): integer, so
// that sums are exact. An int64 holds ±9.2 billion dollars.
type Nanos int64

// Units of Nanos.
const (
	Cent   Nanos = 10_000_000
	Dollar Nanos = 1_000_000_000
)

// USD converts an amount in dollars to Nanos, to the nearest nano-dollar.
func USD(dollars float64) Nanos { return Nanos(math.Round(dollars * float64(Dollar))) }

// PerMillion converts a price in USD per 1M tokens, as price lists give
// them, to Nanos per token (×1000), to the nearest nano-dollar.
func PerMillion(usd float64) Nanos { return Nanos(math.Round(usd * 1000)) }

// String shows n as dollars: from a dollar up to the cent ("$4.12"), and
// below with two significant digits ("$0.33", "$0.0031", "$0.000042"), so
// that the cost of one request stays readable. Zero is "$0.00".
func (n Nanos) String() string {
	sign := ""
	u := uint64(n)
	if n < 0 {
		sign, u = "-", -u
	}
	if u > 0 && u < uint64(Dollar) {
		// Round to the two leading digits of the nine decimals.
		drop := max(len(strconv.FormatUint(u, 10))-2, 0)
		p := uint64(math.Pow10(drop))
		q := (u + p/2) / p
		if q == 100 { // 0.0996 -> 0.10
			q, drop = 10, drop+1
		}
		if drop < 8 { // else it rounded up to a dollar
			frac := pad(q, 9-drop)
			for len(frac) > 2 && frac[len(frac)-1] == '0' {
				frac = frac[:len(frac)-1]
			}
			return sign + "$0." + frac
		}
	}
	cents := (u + uint64(Cent)/2) / uint64(Cent)
	return sign + "$" + strconv.FormatUint(cents/100, 10) + "." + pad(cents%100, 2)
}

// pad formats v in at least width digits, with leading zeros.
func pad(v uint64, width int) string {
	s := strconv.FormatUint(v, 10)
	return strings.Repeat("0", max(width-len(s), 0)) + s
}

// Price is what a model costs per token, in Nanos per token (USD per 1M
// tokens × 1000).
type Price struct {
	Input       Nanos // an input token not read from the prompt cache
	CachedInput Nanos // an input token read from the prompt cache
	Output      Nanos // an output token, reasoning tokens included
}

// Cost returns what u costs at p: uncached input, cached input and output
// tokens at their prices. Reasoning tokens are part of the output tokens
// and are not charged again.
func (p Price) Cost(u Usage) Nanos {
	cached := min(u.CachedInput, u.Input)
	return Nanos(u.Input-cached)*p.Input + Nanos(cached)*p.CachedInput + Nanos(u.Output)*p.Output
}

// Source and date of the built-in prices.
const (
	PricesSource = "https://openai.com/api/pricing/ (Standard tier)"
	PricesDate   = "2025-08-07"
)

// builtin holds OpenAI's list prices as published at PricesSource on
// PricesDate, in Nanos per token, which is USD per 1M tokens × 1000 (1250
// is $1.25 per 1M tokens). They are list prices of the Standard tier: not a
// negotiated discount, the Batch or Flex tiers, nor the ~10 % surcharge of
// Azure's regional and data-zone deployments (Azure's global deployments
// list the same prices). Prices change: [[price]] in lbgpt.toml overrides
// any of them, and prices any other model.
//
// A model without a prompt-cache discount has CachedInput = Input.
var builtin = map[string]Price{
	//                       input  cached  output
	"gpt-5":                  {1250, 125, 10000},
	"gpt-5-mini":             {250, 25, 2000},
	"gpt-5-nano":             {50, 5, 400},
	"gpt-4.1":                {2000, 500, 8000},
	"gpt-4.1-mini":           {400, 100, 1600},
	"gpt-4.1-nano":           {100, 25, 400},
	"gpt-4o":                 {2500, 1250, 10000},
	"gpt-4o-mini":            {150, 75, 600},
	"o1":                     {15000, 7500, 60000},
	"o3":                     {2000, 500, 8000},
	"o3-mini":                {1100, 550, 4400},
	"o4-mini":                {1100, 275, 4400},
	"gpt-4-turbo":            {10000, 10000, 30000},
	"gpt-3.5-turbo":          {500, 500, 1500},
	"gpt-35-turbo":           {500, 500, 1500}, // Azure's name for gpt-3.5-turbo
	"text-embedding-3-small": {20, 20, 0},
	"text-embedding-3-large": {130, 130, 0},
	"text-embedding-ada-002": {100, 100, 0},
}

// Prices maps model names to prices. The zero Prices (and a nil *Prices)
// is the built-in table. A Prices never changes once made, and is safe for
// concurrent use.
type Prices struct {
	m map[string]Price
}

// NewPrices returns the built-in prices with overrides applied: each
// [[price]] table replaces the built-in price of its model, or adds one.
// config.Parse has validated them.
func NewPrices(overrides []config.Price) *Prices {
	m := maps.Clone(builtin)
	for _, o := range overrides {
		m[o.Model] = Price{Input: PerMillion(o.Input), CachedInput: PerMillion(o.CachedInput), Output: PerMillion(o.Output)}
	}
	return &Prices{m: m}
}

// Lookup returns the price of model. A dated snapshot has its base model's
// price unless it is priced itself: "gpt-4o-2024-08-06" is gpt-4o's,
// "gpt-4o-mini-2024-07-18" gpt-4o-mini's (the longest name that, with a
// date, makes the snapshot's), "gpt-3.5-turbo-0125" gpt-3.5-turbo's. Only a
// date is dropped: "o3-pro" or "gpt-4o-realtime-preview" are other models
// with other prices, so they are unpriced until a [[price]] names them.
func (p *Prices) Lookup(model string) (Price, bool) {
	m := builtin
	if p != nil && p.m != nil {
		m = p.m
	}
	if pr, ok := m[model]; ok {
		return pr, true
	}
	if base, ok := snapshotBase(model); ok {
		pr, ok := m[base]
		return pr, ok
	}
	return Price{}, false
}

// Cost returns what u costs on model, and false when model has no price:
// its cost is unknown, not zero.
func (p *Prices) Cost(model string, u Usage) (Nanos, bool) {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0, false
	}
	return pr.Cost(u), true
}

// snapshotBase returns the model a dated snapshot is of: model without its
// "-YYYY-MM-DD" or "-MMDD" suffix; false when it has none.
func snapshotBase(model string) (string, bool) {
	for _, n := range []int{len("-2006-01-02"), len("-0102")} {
		if len(model) <= n || model[len(model)-n] != '-' {
			continue
		}
		date := model[len(model)-n+1:]
		if isDate(date) {
			return model[:len(model)-n], true
		}
	}
	return "", false
}

// isDate reports whether s is YYYY-MM-DD or MMDD: digits, with dashes at
// the places of a YYYY-MM-DD.
func isDate(s string) bool {
	for i, c := range []byte(s) {
		if len(s) == len("2006-01-02") && (i == 4 || i == 7) {
			if c != '-' {
				return false
			}
		} else if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
