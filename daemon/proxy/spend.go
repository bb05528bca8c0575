package proxy

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lbgpt/lbgpt/config"
	"github.com/lbgpt/lbgpt/rpc"
	"github.com/lbgpt/lbgpt/shared"
	"github.com/lbgpt/lbgpt/spend"
)

// spending prices answers, keeps what they cost in the ledger (the state
// directory's spend.* files, docs/spend.md) and holds the [budget] limits.
// In a team ([shared] redis), the ledger's figures also go to the team's
// totals and the limits hold team-wide (docs/teams.md, "One budget"); the
// ledger stays this host's record.
type spending struct {
	ledger  *spend.Ledger // nil when it could not be opened: see openErr
	budget  *spend.Budget // nil with the ledger
	team    *shared.Budget
	openErr error

	mu     sync.Mutex // guards cfg and prices
	cfg    *config.Config
	prices *spend.Prices
}

// budgetOutputTokens is what a budget reserves for the answer of a
// request that sets no bound on it (max_tokens and the like): more than
// most answers, so that a budget holds; the answer's real cost replaces
// the reservation when it comes.
const budgetOutputTokens = 16384

// openSpend opens the ledger in the state directory. A ledger that does
// not open (damaged, or held by another lbgptd) is logged and shown in
// status; answers are then not counted, and a request that a [budget]
// limit applies to fails rather than spend past a limit nobody counts.
func (pl *Pipeline) openSpend(cfg *config.Config) {
	l, err := spend.Open(pl.stateDir, time.Now)
	if err != nil {
		pl.spend.openErr = err
		pl.log.Error("spend is not kept: the ledger did not open", "err", err)
		return
	}
	pl.spend.ledger = l
	if pl.team != nil {
		pl.spend.team = shared.NewBudget(pl.team, l)
		pl.spend.budget = spend.NewTeamBudget(l, cfg.Budget, pl.spend.team)
	} else {
		pl.spend.budget = spend.NewBudget(l, cfg.Budget)
	}
	pl.spend.cfg, pl.spend.prices = cfg, spend.NewPrices(cfg.Prices)
}

// closeSpend folds the ledger's journal and closes it.
func (pl *Pipeline) closeSpend() {
	if pl.spend.ledger != nil {
		if err := pl.spend.ledger.Close(); err != nil {
			pl.log.Warn("closing the spend ledger", "err", err)
		}
	}
}

// pricing is the price list and budget of the config in force, made anew
// after a reload.
func (pl *Pipeline) pricing() *spend.Prices {
	cfg := pl.config()
	pl.spend.mu.Lock()
	defer pl.spend.mu.Unlock()
	if pl.spend.cfg != cfg {
		pl.spend.cfg, pl.spend.prices = cfg, spend.NewPrices(cfg.Prices)
		if pl.spend.budget != nil {
			pl.spend.budget.Reconfigure(cfg.Budget)
		}
	}
	return pl.spend.prices
}

// hasBudget reports whether [budget] sets any limit.
func hasBudget(b config.Budget) bool {
	return b.Day > 0 || b.Month > 0 || len(b.Namespaces) > 0
}

// reserve holds, against the budgets, the most r could cost: its prompt's
// tokens (counted as admission counts them) and its answer's bound, at its
// model's price. It returns nil when no limit applies or the model has no
// price (an unpriced answer counts against no budget).
func (pl *Pipeline) reserve(r *Request, ns string) (*spend.Reservation, error) {
	prices := pl.pricing()
	if !hasBudget(pl.config().Budget) || (!r.chat() && !r.responses()) {
		return nil, nil
	}
	out := r.bound()
	if out == 0 {
		out = budgetOutputTokens
	}
	most, priced := prices.Cost(r.view.Model, spend.Usage{Input: r.promptTokens(), Output: out})
	if !priced {
		return nil, nil
	}
	if pl.spend.budget == nil {
		return nil, &rpc.Error{Code: rpc.CodeBudget, Message: fmt.Sprintf("[budget] is set but the spend ledger did not open (%v), so no limit could be held: the request was not sent (docs/spend.md, \"When the ledger does not open\")", pl.spend.openErr),
			Data: &rpc.ErrorData{Kind: "budget"}}
	}
	resv, err := pl.spend.budget.Reserve(ns, most)
	if err != nil {
		if errors.Is(err, spend.ErrOverBudget) {
			hint := ""
			if r.bound() == 0 {
				hint = fmt.Sprintf(" (it sets no max_tokens, so %d answer tokens were reserved: a max_tokens reserves less)", budgetOutputTokens)
			}
			return nil, &rpc.Error{Code: rpc.CodeBudget,
				Message: fmt.Sprintf("%v: this request could cost up to %v%s, more than is left; nothing was sent ([budget] in the config; `lbgpt spend` shows what was spent)", err, most, hint),
				Data:    &rpc.ErrorData{Kind: "budget"}}
		}
		// In a team whose spend is unknown: refused rather than spent
		// past a limit nobody can count.
		return nil, &rpc.Error{Code: rpc.CodeBudget, Message: fmt.Sprintf("%v: the request was not sent", err),
			Data: &rpc.ErrorData{Kind: "budget"}}
	}
	return resv, nil
}

// account records what an answer paid upstream (or, coalesced, shared)
// cost, in the ledger and in its metadata, and settles its reservation.
func (pl *Pipeline) account(r *Request, ns string, ans answer, coalesced bool, resv *spend.Reservation, m *rpc.Meta) {
	e := spend.Entry{Backend: ans.rep.Backend, Model: r.view.Model, Namespace: ns, Usage: ans.usage}
	if ans.counted {
		e.Cost, e.Priced = pl.pricing().Cost(r.view.Model, ans.usage)
	}
	var err error
	switch {
	case coalesced:
		e.Hit = spend.Coalesced
		resv.Release() // nil-safe: this request paid nothing
		if e.Priced {
			m.Cost, m.Saved = usd(0), usd(e.Cost)
		}
		err = pl.record(e)
	case resv != nil:
		if e.Priced {
			m.Cost = usd(e.Cost)
		}
		err = resv.Commit(e)
	default:
		if e.Priced {
			m.Cost = usd(e.Cost)
		}
		err = pl.record(e)
	}
	if err != nil {
		pl.log.Warn("spend not recorded", "err", err)
	}
}

// accountHit records what a cache hit saved: what its answer cost when it
// was paid (its usage at its model's price).
func (pl *Pipeline) accountHit(r *Request, ns string, body []byte, m *rpc.Meta) {
	kind := spend.Exact
	if m.Cache == rpc.CacheSemantic {
		kind = spend.Semantic
	}
	e := spend.Entry{Model: r.view.Model, Namespace: ns, Hit: kind}
	if u, ok := spend.ParseUsage(body); ok {
		e.Usage = u
		if e.Cost, e.Priced = pl.pricing().Cost(r.view.Model, u); e.Priced {
			m.Cost, m.Saved = usd(0), usd(e.Cost)
		}
	}
	if err := pl.record(e); err != nil {
		pl.log.Warn("spend not recorded", "err", err)
	}
}

// accountEmbeddings records what an embeddings call cost. (Budgets do not
// hold embeddings back: they cost a small share of what chat does.)
func (pl *Pipeline) accountEmbeddings(backend, model, ns string, tokens int) {
	e := spend.Entry{Backend: backend, Model: model, Namespace: ns, Usage: spend.Usage{Input: tokens}}
	e.Cost, e.Priced = pl.pricing().Cost(model, e.Usage)
	if err := pl.record(e); err != nil {
		pl.log.Warn("spend not recorded", "err", err)
	}
}

// record adds e to the ledger, if there is one.
func (pl *Pipeline) record(e spend.Entry) error {
	if pl.spend.ledger == nil {
		return nil
	}
	return pl.spend.ledger.Record(e)
}

func usd(n spend.Nanos) *float64 {
	f := float64(n) / float64(spend.Dollar)
	return &f
}

// SpendStatus is today's and this month's spend and the budgets, for
// status; nil when the ledger did not open.
func (pl *Pipeline) SpendStatus() *rpc.SpendStatus {
	l := pl.spend.ledger
	if l == nil {
		return nil
	}
	pl.pricing() // a reloaded [budget] is the one shown
	now := time.Now()
	st := &rpc.SpendStatus{PricesDate: spend.PricesDate}
	for _, p := range []struct {
		to     *rpc.SpendTotals
		period spend.Period
	}{{&st.Today, spend.Day}, {&st.Month, spend.Month}} {
		if rep, err := l.Report(p.period.Since(now), ""); err == nil {
			*p.to = spendTotals(rep.Total)
		}
	}
	if pl.spend.team != nil {
		ts := pl.spend.team.State()
		st.Team, st.TeamHosts, st.TeamAsOf, st.TeamDegradedSince = true, ts.Hosts, ts.AsOf, ts.DegradedSince
		st.TeamToday, st.TeamMonth = teamTotals(ts.Day), teamTotals(ts.Month)
	}
	if hasBudget(pl.config().Budget) {
		for _, lim := range pl.spend.budget.Status() {
			st.Budgets = append(st.Budgets, rpc.Budget{Namespace: lim.Namespace, Period: string(lim.Period),
				LimitUSD: *usd(lim.Max), SpentUSD: *usd(lim.Spent), ReservedUSD: *usd(lim.Reserved), Warn: lim.Warn})
		}
	}
	return st
}

// SpendError says why no spend is kept (the ledger did not open); "" when
// it is.
func (pl *Pipeline) SpendError() string {
	if pl.spend.openErr == nil {
		return ""
	}
	return pl.spend.openErr.Error()
}

// SpendReport is the spend since a time, grouped by backend, model or
// namespace ("" for the total only).
func (pl *Pipeline) SpendReport(since time.Time, by string) (rpc.SpendResult, error) {
	if pl.spend.ledger == nil {
		return rpc.SpendResult{}, &rpc.Error{Code: rpc.CodeInternal, Message: fmt.Sprintf("lbgptd keeps no spend: its ledger did not open (%v)", pl.spend.openErr)}
	}
	rep, err := pl.spend.ledger.Report(since, spend.Group(by))
	if err != nil {
		return rpc.SpendResult{}, err
	}
	res := rpc.SpendResult{Since: rep.Since, By: by, Total: spendTotals(rep.Total), PricesDate: spend.PricesDate}
	for _, row := range rep.Rows {
		res.Rows = append(res.Rows, rpc.SpendRow{Name: row.Name, SpendTotals: spendTotals(row.Totals)})
	}
	return res, nil
}

func teamTotals(t shared.Spend) rpc.SpendTotals {
	return rpc.SpendTotals{CostUSD: *usd(t.Cost), SavedUSD: *usd(t.Saved), Requests: t.Requests, Hits: t.Hits, Unpriced: t.Unpriced,
		InputTokens: int64(t.Tokens.Input), CachedInputTokens: int64(t.Tokens.CachedInput),
		OutputTokens: int64(t.Tokens.Output), ReasoningTokens: int64(t.Tokens.Reasoning)}
}

func spendTotals(t spend.Totals) rpc.SpendTotals {
	return rpc.SpendTotals{
		CostUSD: *usd(t.Cost), SavedUSD: *usd(t.Saved()),
		Requests: t.Requests, Hits: t.Exact.Hits + t.Semantic.Hits + t.Coalesced.Hits,
		Unpriced:    t.Unpriced + t.Exact.Unpriced + t.Semantic.Unpriced + t.Coalesced.Unpriced,
		InputTokens: int64(t.Tokens.Input), CachedInputTokens: int64(t.Tokens.CachedInput),
		OutputTokens: int64(t.Tokens.Output), ReasoningTokens: int64(t.Tokens.Reasoning),
	}
}
