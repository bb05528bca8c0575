package spend

import (
	"errors"
	"fmt"
	"sync"

	"github.com/lbgpt/lbgpt/config"
)

// ErrOverBudget matches (errors.Is) every [*BudgetError].
var ErrOverBudget = errors.New("over budget")

// BudgetError is [Budget.Reserve]'s refusal: the request could cross Limit.
type BudgetError struct {
	Limit Limit
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget %s: %s of %s spent or reserved", e.Limit.Name(), e.Limit.Spent+e.Limit.Reserved, e.Limit.Max)
}

// Is reports whether target is ErrOverBudget.
func (e *BudgetError) Is(target error) bool { return target == ErrOverBudget }

// Limit is one budget limit and where it stands.
type Limit struct {
	Namespace string // the namespace it limits; "" for the overall limit
	Period    Period // Day or Month, UTC
	Max       Nanos
	Spent     Nanos // paid in the current period
	Reserved  Nanos // reserved by requests in flight
	Warn      bool  // Spent is past the warning share of Max
}

// Name names the limit in messages: `overall per day`, `namespace
// "research" per month`.
func (l Limit) Name() string {
	if l.Namespace == "" {
		return "overall per " + string(l.Period)
	}
	return fmt.Sprintf("namespace %q per %s", l.Namespace, l.Period)
}

// Budget holds the [budget] limits: what the answers paid upstream cost per
// UTC day and month, overall and per namespace, as the Ledger counts it
// (so a restart forgets nothing). Each request reserves its cost at most
// before it starts; a reservation that could take spent + reserved past a
// limit is refused. So, as long as no answer costs more than its
// reservation, concurrent requests together never spend past a limit.
// Every answer paid while a limit applies must be recorded through
// [Reservation.Commit], not [Ledger.Record], for the limits to hold.
// Answers of unpriced models cost nothing here.
//
// A Budget is safe for concurrent use.
type Budget struct {
	ledger *Ledger
	team   Team // nil: this daemon's spend alone

	mu       sync.Mutex // guards the fields below
	limits   []limit
	warnAt   float64
	reserved map[string]Nanos // by namespace
	all      Nanos            // reserved in every namespace
}

// Team holds a Budget's limits together with the other daemons of a team
// (package shared, through one Redis): the spend and the reservations of
// every host count against each limit. A Team is safe for concurrent use.
type Team interface {
	// Reserve reserves estimate, in namespace, under every limit of ls
	// that applies to it (ls is every configured limit, with Max set and
	// Spent, Reserved and Warn zero), team-wide. It returns a
	// *BudgetError, or an error wrapping one, when the request could
	// cross a limit, and another error when the team's spend is unknown.
	Reserve(namespace string, estimate Nanos, ls []Limit) (Hold, error)
	// Status returns ls with the team's Spent and Reserved, or an error
	// when the team's spend is unknown.
	Status(ls []Limit) ([]Limit, error)
}

// Hold is a reservation a [Team] holds.
type Hold interface {
	// Settle ends the hold. With answered, the answer cost cost and is
	// recorded in the ledger already; otherwise there was no answer.
	Settle(cost Nanos, answered bool)
}

// limit is a configured limit; namespace "" is the overall one.
type limit struct {
	namespace string
	period    Period
	max       Nanos
}

// NewBudget returns the budget of c, counting what l records.
func NewBudget(l *Ledger, c config.Budget) *Budget {
	return NewTeamBudget(l, c, nil)
}

// NewTeamBudget returns the budget of c held team-wide by t: Reserve and
// Status go by t's figures, every host's, and l stays this host's record.
// A nil t is NewBudget.
func NewTeamBudget(l *Ledger, c config.Budget, t Team) *Budget {
	b := &Budget{ledger: l, team: t, reserved: map[string]Nanos{}}
	b.Reconfigure(c)
	if t != nil {
		b.Status() // the team learns the limits, and this host the team's figures
	}
	return b
}

// Team reports whether the budget is held team-wide.
func (b *Budget) Team() bool { return b.team != nil }

// Reconfigure replaces the limits with those of c. The reservations made
// stay, and count against the new limits.
func (b *Budget) Reconfigure(c config.Budget) {
	var ls []limit
	add := func(ns string, p Period, usd float64) {
		if usd > 0 {
			ls = append(ls, limit{ns, p, USD(usd)})
		}
	}
	add("", Day, c.Day)
	add("", Month, c.Month)
	for _, n := range c.Namespaces {
		add(n.Name, Day, n.Day)
		add(n.Name, Month, n.Month)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limits, b.warnAt = ls, c.WarnAt
}

// Reserve reserves estimate, what a request of namespace may cost at most,
// under every limit that applies to it, or returns a *BudgetError naming
// the first limit it could cross. A reservation is ended by Commit or
// Release.
//
// In a team, the team's figures decide (see [Team]); this host's
// reservations are still counted here, for Status when the team's figures
// are unknown.
func (b *Budget) Reserve(namespace string, estimate Nanos) (*Reservation, error) {
	estimate = max(estimate, 0)
	if b.team != nil {
		b.mu.Lock()
		ls := make([]Limit, len(b.limits))
		for i, lim := range b.limits {
			ls[i] = Limit{Namespace: lim.namespace, Period: lim.period, Max: lim.max}
		}
		b.mu.Unlock()
		h, err := b.team.Reserve(namespace, estimate, ls)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		b.reserved[namespace] += estimate
		b.all += estimate
		return &Reservation{b: b, namespace: namespace, amount: estimate, hold: h}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sp := b.ledger.spent(namespace)
	for _, lim := range b.limits {
		if lim.namespace != "" && lim.namespace != namespace {
			continue
		}
		if l := b.state(lim, sp); l.Spent+l.Reserved+estimate > l.Max {
			return nil, &BudgetError{Limit: l}
		}
	}
	b.reserved[namespace] += estimate
	b.all += estimate
	return &Reservation{b: b, namespace: namespace, amount: estimate}, nil
}

// state returns where lim stands, sp being what was spent in its
// namespace. The caller holds mu.
func (b *Budget) state(lim limit, sp spent) Limit {
	l := Limit{Namespace: lim.namespace, Period: lim.period, Max: lim.max, Reserved: b.all}
	switch {
	case lim.namespace == "" && lim.period == Day:
		l.Spent = sp.allDay
	case lim.namespace == "":
		l.Spent = sp.allMonth
	case lim.period == Day:
		l.Spent, l.Reserved = sp.day, b.reserved[lim.namespace]
	default:
		l.Spent, l.Reserved = sp.month, b.reserved[lim.namespace]
	}
	l.Warn = float64(l.Spent) >= b.warnAt*float64(l.Max)
	return l
}

// Status returns where each limit stands, overall first, then by
// namespace as configured. In a team they are the team's figures; when
// those are unknown (Redis has not answered), this host's.
func (b *Budget) Status() []Limit {
	b.mu.Lock()
	ls := make([]Limit, len(b.limits))
	for i, lim := range b.limits {
		ls[i] = b.state(lim, b.ledger.spent(lim.namespace))
	}
	warnAt := b.warnAt
	b.mu.Unlock()
	if b.team == nil {
		return ls
	}
	ask := make([]Limit, len(ls))
	for i, l := range ls {
		ask[i] = Limit{Namespace: l.Namespace, Period: l.Period, Max: l.Max}
	}
	tl, err := b.team.Status(ask)
	if err != nil || len(tl) != len(ls) {
		return ls
	}
	for i := range tl {
		tl[i].Warn = float64(tl[i].Spent) >= warnAt*float64(tl[i].Max)
	}
	return tl
}

// Reservation is a request's reserved cost, from [Budget.Reserve].
type Reservation struct {
	b         *Budget
	namespace string
	amount    Nanos
	hold      Hold // the team's; nil alone
	done      bool // guarded by b.mu
}

// Commit records the answer e in the ledger, in the reservation's
// namespace (e.Namespace is set to it), and ends the reservation: the
// actual cost replaces the reserved one. Both happen under the budget's
// lock, so a reservation made meanwhile sees the answer as spent or as
// reserved, never as neither (an overspend) nor as both (a refusal that
// reads "$1.10 of $1.00"). A reservation already ended still records e:
// the answer was paid. The error is Record's.
func (r *Reservation) Commit(e Entry) error {
	e.Namespace = r.namespace
	var cost Nanos
	if e.Hit == "" && e.Priced {
		cost = e.Cost
	}
	var err error
	r.end(cost, true, func() { err = r.b.ledger.Record(e) })
	return err
}

// Release ends the reservation without an answer, as when the request
// failed. Releasing again, or after Commit, or a nil reservation, does
// nothing.
func (r *Reservation) Release() {
	if r == nil {
		return
	}
	r.end(0, false, nil)
}

// end ends the reservation, once: answered, its answer cost cost. record,
// if not nil, runs first under the budget's lock, ended or not.
func (r *Reservation) end(cost Nanos, answered bool, record func()) {
	r.b.mu.Lock()
	if record != nil {
		record()
	}
	if r.done {
		r.b.mu.Unlock()
		return
	}
	defer func() {
		if r.hold != nil {
			r.hold.Settle(cost, answered) // outside mu: it may ask Redis
		}
	}()
	defer r.b.mu.Unlock()
	r.done = true
	r.b.reserved[r.namespace] -= r.amount
	if r.b.reserved[r.namespace] == 0 {
		delete(r.b.reserved, r.namespace)
	}
	r.b.all -= r.amount
}
