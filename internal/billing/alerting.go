package billing

import (
	"fmt"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Alert thresholds, in percent of a limit, lowest first.
var alertThresholds = []int{WarningPercent, 100}

// LimitAlerts returns the alerts a user's usage in a period calls for: one
// per limit and threshold crossed (80 % and 100 %). Storage keeps at most one
// per (user, type, limit, threshold, period), so returning an alert that
// already exists is harmless and makes the check stateless.
func LimitAlerts(plan Plan, providers []Provider, u PeriodUsage) []Alert {
	// The limits of EvaluateLimits, in its order, but a limit's key and
	// the providers' display names are built only for an alert: this runs
	// for every user of every ledger commit, and most limits are far from
	// their thresholds or unlimited.
	a := limitAlerter{plan: plan, providers: providers, u: u}
	if a.due(plan.TotalCallsLimit, u.Total.Calls) {
		a.add(LimitUsage{Key: "total_calls", Limit: plan.TotalCallsLimit, Used: u.Total.Calls})
	}
	for _, p := range providers {
		pl, c := plan.ProviderLimits[p.Name], u.ByProvider[p.Name]
		if a.due(pl.Calls, c.Calls) {
			a.add(LimitUsage{Key: p.Name + "_calls", Provider: p.Name, Limit: pl.Calls, Used: c.Calls})
		}
	}
	for _, p := range providers {
		pl, c := plan.ProviderLimits[p.Name], u.ByProvider[p.Name]
		if p.MetersTokens && a.due(pl.Tokens, c.Tokens()) {
			a.add(LimitUsage{Key: p.Name + "_tokens", Provider: p.Name, Limit: pl.Tokens, Used: c.Tokens()})
		}
	}
	if plan.MonthlyCostLimit != nil {
		cost := int64(*plan.MonthlyCostLimit)
		if a.due(&cost, int64(u.Total.Cost)) {
			a.add(LimitUsage{Key: "monthly_cost", Limit: &cost, Used: int64(u.Total.Cost), Money: true})
		}
	}
	return a.out
}

// limitAlerter collects the alerts of LimitAlerts.
type limitAlerter struct {
	plan      Plan
	providers []Provider
	u         PeriodUsage
	names     map[string]string // display names, once an alert needs them
	out       []Alert
}

// due reports whether a limit calls for an alert: it is finite, allows
// some use (a disallowed one is refused at admission instead) and used
// reaches the lowest threshold.
func (a *limitAlerter) due(limit *int64, used int64) bool {
	return limit != nil && *limit != 0 && reached(used, *limit, alertThresholds[0])
}

// add appends the alerts of each threshold l has reached.
func (a *limitAlerter) add(l LimitUsage) {
	for _, th := range alertThresholds {
		if !reached(l.Used, *l.Limit, th) {
			continue
		}
		if a.names == nil {
			a.names = displayNames(a.providers)
		}
		a.out = append(a.out, limitAlert(a.plan, l, th, a.u.UserID, a.u.Period, a.names))
	}
}

// displayNames maps provider names to their display names, where set.
func displayNames(providers []Provider) map[string]string {
	names := map[string]string{}
	for _, p := range providers {
		if p.DisplayName != "" {
			names[p.Name] = p.DisplayName
		}
	}
	return names
}

func limitAlert(plan Plan, l LimitUsage, threshold int, userID string, period Period, names map[string]string) Alert {
	a := Alert{UserID: userID, LimitKey: l.Key, ThresholdPercentage: threshold, Provider: l.Provider,
		BillingPeriod: period.Key, PeriodStart: period.Start, Limit: *l.Limit}
	what := describeLimit(l, names)
	used, limit := groupDigits(l.Used), groupDigits(*l.Limit)
	if l.Money {
		used, limit = money.Amount(l.Used).Dollars(), money.Amount(*l.Limit).Dollars()
	}
	switch {
	case l.Money && threshold >= 100:
		a.Type, a.Severity = AlertCostOverrun, "error"
		a.Title = "Monthly cost limit reached"
	case l.Money:
		a.Type, a.Severity = AlertCostWarning, "warning"
		a.Title = fmt.Sprintf("%d%% of the monthly cost limit used", threshold)
	case threshold >= 100:
		a.Type, a.Severity = AlertLimitReached, "error"
		a.Title = "Limit reached: " + what
	default:
		a.Type, a.Severity = AlertUsageWarning, "warning"
		a.Title = fmt.Sprintf("%d%% of %s used", threshold, what)
	}
	a.Message = fmt.Sprintf("%s: used %s of %s on the %s plan in period %s.", upperFirst(what), used, limit, plan.Name, period.Key)
	return a
}

func describeLimit(l LimitUsage, names map[string]string) string {
	provider := l.Provider
	if n, ok := names[provider]; ok {
		provider = n
	}
	switch {
	case l.Key == "total_calls":
		return "API calls this month"
	case l.Money:
		return "monthly cost"
	case strings.HasSuffix(l.Key, "_tokens"):
		return provider + " tokens this month"
	}
	return provider + " calls this month"
}

// groupDigits writes n with thousands separators: 87,300.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// UnpricedAlert is the admin alert raised once per model that has no price.
func UnpricedAlert(provider, model string) Alert {
	return Alert{
		Type: AlertUnpricedModel, LimitKey: "model:" + provider + "/" + model, Severity: "error",
		Provider: provider, Title: "Unpriced model: " + provider + "/" + model,
		Message: fmt.Sprintf("Calls to %s model %q are recorded with no cost because no price matches it. "+
			"Add a price (or an alias) so they are billed.", provider, model),
	}
}

// reached reports used ≥ threshold % of limit, exactly.
func reached(used, limit int64, threshold int) bool {
	return LimitUsage{Limit: &limit, Used: used}.atLeast(threshold)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
