package billing

import (
	"math"
	"math/big"
)

// Usage statuses, as ALwrity's frontend reads them.
const (
	UsageActive       = "active"
	UsageWarning      = "warning"
	UsageLimitReached = "limit_reached"
)

// WarningPercent is the share of a limit at which a user is warned.
const WarningPercent = 80

// LimitUsage is one limit of a plan beside the usage it constrains.
type LimitUsage struct {
	Key      string // total_calls, <provider>_calls, <provider>_tokens, monthly_cost
	Provider string // "" for total_calls and monthly_cost
	Limit    *int64 // nil is unlimited, 0 is not allowed; pico-dollars when Money
	Used     int64
	Money    bool
}

// Percentage returns Used as a percentage of Limit, rounded to two decimals:
// 0 for an unlimited limit, and 100 for any use of a disallowed one.
func (l LimitUsage) Percentage() float64 {
	switch {
	case l.Limit == nil:
		return 0
	case *l.Limit == 0:
		if l.Used > 0 {
			return 100
		}
		return 0
	}
	// big.Rat keeps the ratio exact for pico-dollar magnitudes until the one
	// rounding step.
	r := new(big.Rat).Mul(new(big.Rat).SetFrac64(l.Used, *l.Limit), big.NewRat(100, 1))
	f, _ := r.Float64()
	return math.Round(f*100) / 100
}

// Remaining returns how much of the limit is left, or nil when unlimited.
func (l LimitUsage) Remaining() *int64 {
	if l.Limit == nil {
		return nil
	}
	return Ptr(max(0, *l.Limit-l.Used))
}

// EvaluateLimits lists every limit a plan can have for the known providers,
// in a stable order, with the usage each one constrains.
func EvaluateLimits(plan Plan, providers []Provider, u PeriodUsage) []LimitUsage {
	out := []LimitUsage{{Key: "total_calls", Limit: plan.TotalCallsLimit, Used: u.Total.Calls}}
	for _, p := range providers {
		pl := plan.ProviderLimits[p.Name]
		c := u.ByProvider[p.Name]
		out = append(out, LimitUsage{Key: p.Name + "_calls", Provider: p.Name, Limit: pl.Calls, Used: c.Calls})
	}
	for _, p := range providers {
		if !p.MetersTokens {
			continue
		}
		pl := plan.ProviderLimits[p.Name]
		c := u.ByProvider[p.Name]
		out = append(out, LimitUsage{Key: p.Name + "_tokens", Provider: p.Name, Limit: pl.Tokens, Used: c.Tokens()})
	}
	var cost *int64
	if plan.MonthlyCostLimit != nil {
		cost = Ptr(int64(*plan.MonthlyCostLimit))
	}
	return append(out, LimitUsage{Key: "monthly_cost", Limit: cost, Used: int64(u.Total.Cost), Money: true})
}

// UsageStatus is "limit_reached" when any finite limit is used up,
// "warning" at 80 % of any, else "active". Limits that forbid something the
// user never used do not count as reached.
func UsageStatus(limits []LimitUsage) string {
	status := UsageActive
	for _, l := range limits {
		if l.Limit == nil || (*l.Limit == 0 && l.Used == 0) {
			continue
		}
		switch pct := l.Percentage(); {
		case pct >= 100:
			return UsageLimitReached
		case pct >= WarningPercent:
			status = UsageWarning
		}
	}
	return status
}
