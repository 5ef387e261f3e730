package billing

import (
	"math/big"
	"math/bits"
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
	// The ratio is rounded to hundredths of a percent in integers, half away
	// from zero, so the one rounding is exact: a float product would turn
	// 1.005 % into 1.00 % (1.005 × 100 = 100.4999… in float64), and int64
	// would overflow at pico-dollar magnitudes.
	num := new(big.Int).Mul(big.NewInt(l.Used), big.NewInt(10_000))
	den := big.NewInt(*l.Limit)
	q, r := new(big.Int).QuoRem(num, den, new(big.Int)) // truncates toward zero
	if new(big.Int).Lsh(new(big.Int).Abs(r), 1).CmpAbs(den) >= 0 {
		if num.Sign() == den.Sign() {
			q.Add(q, big.NewInt(1))
		} else {
			q.Sub(q, big.NewInt(1))
		}
	}
	f, _ := new(big.Rat).SetFrac(q, big.NewInt(100)).Float64()
	return f
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
		// Compare exact counts, not the rounded Percentage: 99.996 % rounds
		// to 100 while admission still lets the last calls through.
		switch {
		case l.atLeast(100):
			return UsageLimitReached
		case l.atLeast(WarningPercent):
			status = UsageWarning
		}
	}
	return status
}

// atLeast reports, exactly, whether Used is at least pct % of a finite
// Limit.
func (l LimitUsage) atLeast(pct int) bool {
	if l.Used >= 0 && *l.Limit >= 0 && pct >= 0 {
		// Used × 100 and Limit × pct in 128 bits: no overflow, no
		// allocation (every settle checks every limit of its user).
		uh, ul := bits.Mul64(uint64(l.Used), 100)
		lh, ll := bits.Mul64(uint64(*l.Limit), uint64(pct))
		return uh > lh || (uh == lh && ul >= ll)
	}
	used, limit := big.NewInt(l.Used), big.NewInt(*l.Limit)
	return used.Mul(used, big.NewInt(100)).Cmp(limit.Mul(limit, big.NewInt(int64(pct)))) >= 0
}
