package billing

import (
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// limitAlertsReference is LimitAlerts as the specification reads: every
// limit EvaluateLimits lists, each threshold it reached.
func limitAlertsReference(plan Plan, providers []Provider, u PeriodUsage) []Alert {
	var out []Alert
	names := displayNames(providers)
	for _, l := range EvaluateLimits(plan, providers, u) {
		if l.Limit == nil || *l.Limit == 0 {
			continue
		}
		for _, th := range alertThresholds {
			if reachedBig(l.Used, *l.Limit, th) {
				out = append(out, limitAlert(plan, l, th, u.UserID, u.Period, names))
			}
		}
	}
	return out
}

// reachedBig is used × 100 ≥ limit × pct in arbitrary precision.
func reachedBig(used, limit int64, pct int) bool {
	u := new(big.Int).Mul(big.NewInt(used), big.NewInt(100))
	return u.Cmp(new(big.Int).Mul(big.NewInt(limit), big.NewInt(int64(pct)))) >= 0
}

// TestLimitAlertsAsEvaluated: the alerts LimitAlerts builds lazily are
// exactly those of every limit EvaluateLimits lists, in its order, over
// random plans (unlimited, disallowed and finite limits), providers and
// usage up to int64's extremes, where the thresholds are compared in
// arbitrary precision.
func TestLimitAlertsAsEvaluated(t *testing.T) {
	limit := rapid.OneOf(rapid.Just[*int64](nil), rapid.Just(Ptr[int64](0)),
		rapid.Map(rapid.Int64Range(1, 1000), func(n int64) *int64 { return &n }),
		rapid.Map(rapid.Int64Range(1, math.MaxInt64), func(n int64) *int64 { return &n }))
	amount := rapid.OneOf(rapid.Int64Range(0, 1500), rapid.Int64Range(0, math.MaxInt64))
	rapid.Check(t, func(t *rapid.T) {
		var providers []Provider
		for i, name := range []string{"openai", "gemini", "tavily"} {
			if rapid.Bool().Draw(t, "listed") {
				p := Provider{Name: name, MetersTokens: i < 2 && rapid.Bool().Draw(t, "meters")}
				if rapid.Bool().Draw(t, "display") {
					p.DisplayName = "Display " + name
				}
				providers = append(providers, p)
			}
		}
		plan := Plan{Name: "p", TotalCallsLimit: limit.Draw(t, "total"), ProviderLimits: map[string]ProviderLimit{}}
		if l := limit.Draw(t, "cost"); l != nil {
			c := money.Amount(*l)
			plan.MonthlyCostLimit = &c
		}
		u := PeriodUsage{UserID: "u", Period: Period{Key: "2026-11"}, ByProvider: map[string]Counters{}}
		u.Total = Counters{Calls: amount.Draw(t, "calls"), Cost: money.Amount(amount.Draw(t, "spent"))}
		for _, p := range providers {
			plan.ProviderLimits[p.Name] = ProviderLimit{Calls: limit.Draw(t, "provider calls"), Tokens: limit.Draw(t, "provider tokens")}
			in := amount.Draw(t, "in")
			u.ByProvider[p.Name] = Counters{Calls: amount.Draw(t, "provider used"), TokensInput: in,
				TokensOutput: rapid.Int64Range(0, math.MaxInt64-in).Draw(t, "out")}
		}
		got, want := LimitAlerts(plan, providers, u), limitAlertsReference(plan, providers, u)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("LimitAlerts = %+v\nwant %+v", got, want)
		}
		for _, l := range EvaluateLimits(plan, providers, u) {
			if l.Limit == nil {
				continue
			}
			for _, pct := range []int{0, 1, 80, 99, 100, 101, 10_000} {
				if got, want := l.atLeast(pct), reachedBig(l.Used, *l.Limit, pct); got != want {
					t.Fatalf("%s: atLeast(%d) with used %d of %d = %v, want %v", l.Key, pct, l.Used, *l.Limit, got, want)
				}
			}
		}
	})
}

// TestAlertDedupeKeyNamesThePeriod: a period that starts at a UTC calendar
// month's start is named by its key alone (as every alert was before
// periods had starts); any other also by its start, so that a
// subscription's first period and the calendar month it began in, which
// share a key, each alert once.
func TestAlertDedupeKeyNamesThePeriod(t *testing.T) {
	base := Alert{UserID: "u", Type: AlertUsageWarning, LimitKey: "total_calls", ThresholdPercentage: 80, BillingPeriod: "2024-06"}
	calendar, sub, none := base, base, base
	calendar.PeriodStart = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	sub.PeriodStart = time.Date(2024, 6, 10, 10, 0, 0, 0, time.UTC)
	if got, want := calendar.DedupeKey(), "u|usage_warning|total_calls|80|2024-06"; got != want {
		t.Errorf("calendar month: %q; want %q", got, want)
	}
	if got := none.DedupeKey(); got != calendar.DedupeKey() {
		t.Errorf("no period start: %q; want the calendar month's %q", got, calendar.DedupeKey())
	}
	if got, want := sub.DedupeKey(), "u|usage_warning|total_calls|80|2024-06|1718013600"; got != want {
		t.Errorf("subscription's period: %q; want %q", got, want)
	}
	// A month start in another zone is not a UTC month start.
	ny := sub
	ny.PeriodStart = time.Date(2024, 6, 1, 4, 0, 0, 0, time.UTC)
	if ny.DedupeKey() == calendar.DedupeKey() {
		t.Errorf("a period starting 2024-06-01 04:00 UTC shares the calendar month's key %q", calendar.DedupeKey())
	}
	// A New York subscription anchored at 2024-06-30 20:00 local time: its
	// period "2024-06" starts at July's UTC start, and must not share the
	// key of June's calendar period.
	west := sub
	west.PeriodStart = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	if got, want := west.DedupeKey(), "u|usage_warning|total_calls|80|2024-06|1719792000"; got != want {
		t.Errorf("a period named 2024-06 starting 2024-07-01 00:00 UTC: %q; want %q", got, want)
	}
}
