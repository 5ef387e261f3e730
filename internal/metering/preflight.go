package metering

import (
	"context"
	"fmt"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// PreflightOp is one operation a client plans to make.
type PreflightOp struct {
	Provider      string
	Model         string
	Tokens        int64
	OperationType string
}

// PreflightCheck is the verdict on one operation.
type PreflightCheck struct {
	Op      PreflightOp
	Cost    money.Amount
	Allowed bool
	// Binding is the limit that decides the operation: the first that
	// refuses it, else the tightest finite one, else (no finite limit
	// applies) the operation's provider calls with a nil Limit, so that the
	// usage is reported even when nothing limits it. It is never nil.
	Binding *billing.LimitUsage
	Message string
}

// Preflight is the advisory answer to "would these operations fit now?".
type Preflight struct {
	CanProceed bool
	TotalCost  money.Amount
	Checks     []PreflightCheck
	Period     billing.Period
	Usage      billing.Counters // settled this period
	Reserved   billing.Counters // held by reservations
}

// Preflight checks operations against the user's limits, counting what is
// already used and held and what the earlier operations of the list would
// add. It reserves nothing. Errors: invalid.
func (m *Meter) Preflight(ctx context.Context, userID string, ops []PreflightOp) (Preflight, error) {
	if len(ops) == 0 || len(ops) > 100 {
		return Preflight{}, billing.InvalidField("body.operations", "must hold 1 to 100 operations", len(ops))
	}
	for i, op := range ops {
		if err := m.checkProvider(ctx, op.Provider); err != nil {
			return Preflight{}, billing.InvalidField(fmt.Sprintf("body.operations[%d].provider", i), billing.ErrorMessage(err), op.Provider)
		}
		if op.Tokens < 0 || op.Tokens > billing.MaxTokensPerEvent {
			return Preflight{}, billing.InvalidField(fmt.Sprintf("body.operations[%d].tokens_requested", i),
				fmt.Sprintf("must be between 0 and %d", billing.MaxTokensPerEvent), op.Tokens)
		}
	}
	now := m.now()
	acct, err := m.account(ctx, userID)
	if err != nil {
		return Preflight{}, err
	}
	pf := Preflight{CanProceed: true, Period: acct.schedule.At(now)}
	// Settled plus held units per limit key, grown by each operation.
	pending := map[string]int64{}
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Provider] {
			continue
		}
		seen[op.Provider] = true
		total, reservedTotal, prov, reservedProv, err := m.counters(ctx, userID, pf.Period, op.Provider)
		if err != nil {
			return Preflight{}, err
		}
		pf.Usage, pf.Reserved = total, reservedTotal
		pending["total_calls"] = total.Calls + reservedTotal.Calls
		pending["monthly_cost"] = int64(total.Cost + reservedTotal.Cost)
		pending[op.Provider+"_calls"] = prov.Calls + reservedProv.Calls
		pending[op.Provider+"_tokens"] = prov.Tokens() + reservedProv.TokensInput
	}
	for _, op := range ops {
		cost, err := m.estimate(ctx, op.Provider, op.Model, op.Tokens, now)
		if err != nil {
			return Preflight{}, err
		}
		pf.TotalCost, err = pf.TotalCost.Add(cost)
		if err != nil {
			return Preflight{}, billing.Errorf(billing.CodeInvalid, "estimated cost out of range")
		}
		lim := billing.LimitsFor(acct.plan, op.Provider)
		adds := []struct {
			key   string
			limit *int64
			n     int64
			money bool
		}{
			{"total_calls", lim.TotalCalls, 1, false},
			{op.Provider + "_calls", lim.ProviderCalls, 1, false},
			{op.Provider + "_tokens", lim.ProviderTokens, max(op.Tokens, MinHeldTokens), false},
			{"monthly_cost", lim.Cost, int64(max(cost, MinHeldCost)), true},
		}
		c := PreflightCheck{Op: op, Cost: cost, Allowed: true, Message: "within limits"}
		for _, a := range adds {
			pending[a.key] += a.n
			if a.limit == nil {
				continue
			}
			l := billing.LimitUsage{Key: a.key, Limit: a.limit, Used: pending[a.key] - a.n, Money: a.money}
			if pending[a.key] > *a.limit && c.Allowed {
				c.Allowed, c.Binding = false, &l
				c.Message = fmt.Sprintf("%s would exceed its limit (%d of %d used or held)", a.key, l.Used, *a.limit)
				if a.money {
					c.Message = fmt.Sprintf("monthly cost would exceed its limit (%s of %s used or held)",
						money.Amount(l.Used).Dollars(), money.Amount(*a.limit).Dollars())
				}
			}
			if c.Allowed && (c.Binding == nil || *l.Remaining() < *c.Binding.Remaining()) {
				c.Binding = &l
			}
		}
		if c.Binding == nil {
			// Unlimited: what the provider's calls come to before this
			// operation, with no limit and so nothing remaining to count.
			key := op.Provider + "_calls"
			c.Binding = &billing.LimitUsage{Key: key, Provider: op.Provider, Used: pending[key] - 1}
		}
		if !c.Allowed {
			pf.CanProceed = false
		}
		pf.Checks = append(pf.Checks, c)
	}
	return pf, nil
}

// counters returns a user's settled and held units in a period, overall
// and for one provider.
func (m *Meter) counters(ctx context.Context, userID string, p billing.Period, provider string) (total, heldTotal, prov, heldProv billing.Counters, err error) {
	a, err := m.memory(ctx)
	if err != nil {
		return
	}
	if a != nil {
		return m.memCounters(ctx, a, userID, p, provider)
	}
	c, err := m.db.Counters(ctx, userID, p, provider)
	return c.Total, c.HeldTotal, c.Provider, c.HeldProvider, err
}
