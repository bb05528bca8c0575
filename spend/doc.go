// Package spend says what answers cost, keeps the running totals, and holds
// budgets.
//
// Money is [Nanos], integer nano-dollars, so sums are exact. [Prices] maps a
// model to its [Price] per token: the built-in list prices of the OpenAI
// models in common use (see prices.go for their source and date), overridden
// and extended by lbgpt.toml's [[price]] tables. A model without a price
// has an unknown cost, never a zero one. [ParseUsage] reads the tokens an
// answer body reports (chat completions, Responses, embeddings, the last
// chunk or event of a stream), and [Price.Cost] prices them.
//
// A [Ledger] keeps the totals — cost, tokens, requests, and what cache hits
// saved — by backend, model and namespace in hourly buckets, persisted in a
// state directory so that they survive a restart and a kill -9 with nothing
// counted twice, and reports them for any window ([Ledger.Report]). A
// [Budget] enforces the [budget] limits per UTC day and month, overall and
// per namespace, by reservation: [Budget.Reserve] before a request,
// [Reservation.Commit] with the answer, [Reservation.Release] on failure.
// [NewTeamBudget] holds the limits over a team of daemons instead, through
// a [Team] (package shared); the Ledger stays this daemon's own record.
//
// A Ledger, a Budget and a Prices are safe for concurrent use. The zero
// Prices is the built-in table; Ledger and Budget come from [Open] and
// [NewBudget]. Nothing here records a prompt, an answer or a key.
package spend
