package billing

import (
	"fmt"
	"slices"
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Billing cycles.
const (
	CycleMonthly = "monthly"
	CycleYearly  = "yearly"
)

// CycleMonths is how many usage periods (months) a billing cycle spans.
func CycleMonths(cycle string) int {
	if cycle == CycleYearly {
		return 12
	}
	return 1
}

// ValidCycle reports whether cycle names a billing cycle.
func ValidCycle(cycle string) bool { return cycle == CycleMonthly || cycle == CycleYearly }

// Price is what the plan costs for one billing cycle.
func (p Plan) Price(cycle string) money.Amount {
	if cycle == CycleYearly {
		return p.PriceYearly
	}
	return p.PriceMonthly
}

// Cycle is the subscription's current billing cycle.
func (s Subscription) Cycle() Period {
	return Period{Key: s.CurrentPeriodStart.Format("2006-01"), Start: s.CurrentPeriodStart, End: s.CurrentPeriodEnd}
}

// Invoice line types.
const (
	LineBase      = "base"      // a cycle's fee, charged in its first period
	LineUpgrade   = "upgrade"   // the prorated price difference of an upgrade
	LineDowngrade = "downgrade" // the prorated (negative) difference of an immediate downgrade
	LineCredit    = "credit"    // unused time of an immediate cancellation
	LineOverage   = "overage"   // usage above a soft limit
	// LineAdjustment bills usage reported for an earlier period after its
	// invoice was written: the overage it adds, and the calls it counts.
	LineAdjustment = "adjustment"
)

// InvoiceLine is one explained amount of an invoice.
type InvoiceLine struct {
	Type        string       `json:"type"`
	Description string       `json:"description"`
	PeriodStart time.Time    `json:"period_start"`
	PeriodEnd   time.Time    `json:"period_end"`
	Quantity    int64        `json:"quantity,omitempty"`
	UnitPrice   money.Amount `json:"unit_price,omitempty"`
	Amount      money.Amount `json:"amount"`
}

// Invoice statuses.
const (
	InvoiceDraft  = "draft"
	InvoiceIssued = "issued"
	InvoicePaid   = "paid"
	InvoiceVoid   = "void"
)

// Invoice is one billing_history row: what a subscription owes for one
// usage period.
type Invoice struct {
	ID             int64
	Number         string
	UserID         string
	SubscriptionID int64
	Period         Period
	PlanName       string
	Lines          []InvoiceLine
	Base           money.Amount // base fees and plan changes
	Overage        money.Amount
	Credits        money.Amount // credits, as a positive amount
	Total          money.Amount
	UsageCost      money.Amount // what the period's calls cost at provider prices
	Calls          int64
	Tokens         int64
	Status         string
	IssuedAt       *time.Time
	PaidAt         *time.Time
	VoidedAt       *time.Time
	CreatedAt      time.Time
}

// InvoiceNumber is the number of a subscription's invoice for a period:
// unique because the pair is.
func InvoiceNumber(subscriptionID int64, period string) string {
	return fmt.Sprintf("ALW-%s%s-%06d", period[:4], period[5:], subscriptionID)
}

// Prorate is the part of amount that the rest of cycle from at on is
// worth, to the second, rounded half away from zero.
func Prorate(amount money.Amount, cycle Period, at time.Time) (money.Amount, error) {
	span := cycle.End.Unix() - cycle.Start.Unix()
	rest := cycle.End.Unix() - at.Unix()
	rest = max(0, min(rest, span))
	return amount.MulRatio(rest, span)
}

// Overage prices a period's usage above a soft-limit plan's limits: calls
// above the total call limit at the per-call price, tokens above each
// provider's token limit at the price per 1,000 tokens. Plans with hard
// limits (or no overage prices) have none.
func Overage(plan Plan, u PeriodUsage, p Period) ([]InvoiceLine, error) {
	if !plan.SoftLimits {
		return nil, nil
	}
	var lines []InvoiceLine
	if plan.OveragePerCall != nil && plan.TotalCallsLimit != nil && u.Total.Calls > *plan.TotalCallsLimit {
		n := u.Total.Calls - *plan.TotalCallsLimit
		amt, err := plan.OveragePerCall.MulInt(n)
		if err != nil {
			return nil, err
		}
		lines = append(lines, InvoiceLine{Type: LineOverage, PeriodStart: p.Start, PeriodEnd: p.End, Quantity: n,
			UnitPrice: *plan.OveragePerCall, Amount: amt,
			Description: fmt.Sprintf("%d calls above the limit of %d", n, *plan.TotalCallsLimit)})
	}
	if plan.OveragePer1KTokens != nil {
		for _, prov := range sortedKeys(plan.ProviderLimits) {
			l := plan.ProviderLimits[prov]
			used := u.ByProvider[prov].Tokens()
			if l.Tokens == nil || used <= *l.Tokens {
				continue
			}
			n := used - *l.Tokens
			amt, err := plan.OveragePer1KTokens.MulRatio(n, 1000)
			if err != nil {
				return nil, err
			}
			lines = append(lines, InvoiceLine{Type: LineOverage, PeriodStart: p.Start, PeriodEnd: p.End, Quantity: n,
				UnitPrice: *plan.OveragePer1KTokens, Amount: amt,
				Description: fmt.Sprintf("%d %s tokens above the limit of %d (price per 1,000 tokens)", n, prov, *l.Tokens)})
		}
	}
	return lines, nil
}

// UsageSince is the usage of u above mark, an earlier reading of the same
// period: what a plan that took effect at the mark is to price. A plan
// changed at once in the middle of a period prices the usage up to the
// change itself, so the next plan's limits apply to the usage after it.
func UsageSince(u, mark PeriodUsage) PeriodUsage {
	out := PeriodUsage{UserID: u.UserID, Period: u.Period, Total: counterDiff(u.Total, mark.Total),
		ByProvider: make(map[string]Counters, len(u.ByProvider)), LastUpdated: u.LastUpdated}
	for prov, c := range u.ByProvider {
		out.ByProvider[prov] = counterDiff(c, mark.ByProvider[prov])
	}
	return out
}

// counterDiff is c less o, field by field.
func counterDiff(c, o Counters) Counters {
	return Counters{Calls: c.Calls - o.Calls, Errors: c.Errors - o.Errors, TokensInput: c.TokensInput - o.TokensInput,
		TokensOutput: c.TokensOutput - o.TokensOutput, Cost: c.Cost - o.Cost, ResponseTimeSum: c.ResponseTimeSum - o.ResponseTimeSum}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Totals fills in an invoice's totals from its lines: Total is exactly the
// sum of the lines.
func (inv *Invoice) Totals() error {
	var base, overage, credits, total money.Amount
	var err error
	for _, l := range inv.Lines {
		if total, err = total.Add(l.Amount); err != nil {
			return err
		}
		switch {
		case l.Type == LineOverage, l.Type == LineAdjustment && l.Amount >= 0:
			overage, err = overage.Add(l.Amount)
		case l.Amount < 0:
			credits, err = credits.Add(-l.Amount)
		default:
			base, err = base.Add(l.Amount)
		}
		if err != nil {
			return err
		}
	}
	inv.Base, inv.Overage, inv.Credits, inv.Total = base, overage, credits, total
	return nil
}

// Subscription history events.
const (
	HistoryNew       = "new"
	HistoryRenewal   = "renewal"
	HistoryUpgrade   = "upgrade"
	HistoryDowngrade = "downgrade"
	HistoryCancel    = "cancel"
	HistoryExpire    = "expire"
)

// HistoryEntry is one change or renewal of a subscription, with the usage
// of its period at that moment.
type HistoryEntry struct {
	ID             int64
	UserID         string
	SubscriptionID int64
	Event          string
	FromPlanID     *int64
	FromPlanName   string
	ToPlanID       *int64
	ToPlanName     string
	BillingCycle   string
	Period         Period
	UsageCalls     int64
	UsageTokens    int64
	UsageCost      money.Amount
	EffectiveAt    time.Time
	CreatedAt      time.Time
}
