package metering_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// alertKeys lists alerts as "type limit_key threshold", sorted.
func alertKeys(as []billing.Alert) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, fmt.Sprintf("%s %s %d", a.Type, a.LimitKey, a.ThresholdPercentage))
	}
	sort.Strings(out)
	return out
}

func wantAlerts(t *testing.T, what string, got []billing.Alert, want ...string) {
	t.Helper()
	sort.Strings(want)
	if g := alertKeys(got); strings.Join(g, "; ") != strings.Join(want, "; ") {
		t.Fatalf("%s: alerts %q; want %q", what, g, want)
	}
}

// gpt4Calls returns n gpt-4 calls by user ending at end, one second apart.
func gpt4Calls(prefix, user string, end time.Time, n int) []billing.UsageEvent {
	out := make([]billing.UsageEvent, n)
	for i := range out {
		out[i] = gpt4Event(fmt.Sprintf("%s-%d", prefix, i), user, end.Add(-time.Duration(i)*time.Second), 10, 5)
	}
	return out
}

// recordInBatches records events in batches of at most 25 (small batches
// keep SQLite's multi-row inserts fast under -race).
func (f *fixture) recordInBatches(events []billing.UsageEvent) {
	f.t.Helper()
	for len(events) > 0 {
		n := min(len(events), 25)
		f.record(events[:n]...)
		events = events[n:]
	}
}

// TestCallAlertsFireOncePerThresholdAndPeriod records 799, 1 and 200 calls
// of a Free user (1,000 calls a month): the 800th call warns, the 1,000th
// reaches the limit, more calls raise nothing new, and the next month
// starts clean.
func TestCallAlertsFireOncePerThresholdAndPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "alert-free-user"
		f.keyUser(user)
		march := billing.CalendarMonths().At(baseTime).Key

		f.recordInBatches(gpt4Calls("a", user, baseTime, 799))
		wantAlerts(t, "after 799 calls", f.alerts(user, march))
		f.record(gpt4Calls("b", user, baseTime, 1)...)
		wantAlerts(t, "after 800 calls", f.alerts(user, march), "usage_warning total_calls 80")
		f.recordInBatches(gpt4Calls("c", user, baseTime, 200))
		wantAlerts(t, "after 1,000 calls", f.alerts(user, march),
			"usage_warning total_calls 80", "limit_reached total_calls 100")
		// Resending and going over raise nothing new.
		f.record(gpt4Calls("c", user, baseTime, 10)...)
		f.record(gpt4Calls("d", user, baseTime, 5)...)
		as := f.alerts(user, march)
		wantAlerts(t, "after 1,005 calls", as, "usage_warning total_calls 80", "limit_reached total_calls 100")
		for _, a := range as {
			if a.UserID != user || a.BillingPeriod != march {
				t.Fatalf("alert %+v; want user %s, period %s", a, user, march)
			}
		}
		if got := f.usage(user, billing.CalendarMonths().At(baseTime)).Total.Calls; got != 1005 {
			t.Fatalf("calls in March: %d; want 1005", got)
		}

		// April starts clean: its first 799 calls warn of nothing, and its
		// 800th warns once, in April.
		f.clk.Set(time.Date(2025, time.April, 20, 0, 0, 0, 0, time.UTC))
		april := billing.CalendarMonths().At(f.clk.Now()).Key
		f.recordInBatches(gpt4Calls("e", user, f.clk.Now(), 799))
		wantAlerts(t, "after 799 April calls", f.alerts(user, april))
		f.record(gpt4Calls("f", user, f.clk.Now(), 1)...)
		wantAlerts(t, "after 800 April calls", f.alerts(user, april), "usage_warning total_calls 80")
		wantAlerts(t, "March after April's calls", f.alerts(user, march),
			"usage_warning total_calls 80", "limit_reached total_calls 100")
		f.consistent()
	})
}

// TestCostAlerts records 0.06 USD calls against a 1 USD monthly cost limit:
// the call that reaches 0.80 warns, the one that reaches 1.00 is an
// overrun, each once.
func TestCostAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "alert-cost-user"
		f.planUser(user, billing.Plan{Name: "cost-1usd", MonthlyCostLimit: billing.Ptr(usd("1"))})
		period := billing.CalendarMonths().At(baseTime).Key
		gpt4 := func(i int) billing.UsageEvent { // 1,000 in + 500 out = 0.06 USD
			return gpt4Event(fmt.Sprintf("cost-%d", i), user, baseTime.Add(-time.Duration(i)*time.Minute), 1000, 500)
		}
		next := 0
		recordUpTo := func(n int) { // total calls n, at 0.06 each
			var evs []billing.UsageEvent
			for ; next < n; next++ {
				evs = append(evs, gpt4(next))
			}
			f.record(evs...)
		}
		recordUpTo(13) // 0.78
		wantAlerts(t, "at 0.78 of 1 USD", f.alerts(user, period))
		recordUpTo(14) // 0.84
		wantAlerts(t, "at 0.84 of 1 USD", f.alerts(user, period), "cost_warning monthly_cost 80")
		recordUpTo(16) // 0.96
		wantAlerts(t, "at 0.96 of 1 USD", f.alerts(user, period), "cost_warning monthly_cost 80")
		recordUpTo(17) // 1.02
		wantAlerts(t, "at 1.02 of 1 USD", f.alerts(user, period), "cost_warning monthly_cost 80", "cost_overrun monthly_cost 100")
		recordUpTo(20)
		wantAlerts(t, "at 1.20 of 1 USD", f.alerts(user, period), "cost_warning monthly_cost 80", "cost_overrun monthly_cost 100")
		if got := f.usage(user, billing.CalendarMonths().At(baseTime)).Total.Cost; got != usd("1.2") {
			t.Fatalf("cost: %s; want 1.2", got.Dollars())
		}
		f.consistent()
	})
}

// TestCostAlertAtExactThreshold checks the 80 % boundary exactly, in
// pico-dollars: 0.799999999999 USD of 1 USD does not warn, 0.8 does.
func TestCostAlertAtExactThreshold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "alert-exact-user"
		f.planUser(user, billing.Plan{Name: "cost-1usd-exact", MonthlyCostLimit: billing.Ptr(usd("1"))})
		period := billing.CalendarMonths().At(baseTime).Key
		// Two custom prices make any pico-dollar total reachable: a micro
		// dollar and a pico-dollar per input token.
		for name, unit := range map[string]int64{"micro-model": 1_000_000, "pico-model": 1} {
			if _, err := f.db.CreatePrice(f.ctx, billing.Price{Provider: "openai", ModelName: name, IsActive: true,
				Tier:          billing.PriceTier{Input: money.Amount(unit), Output: money.Amount(unit)},
				EffectiveFrom: billing.DefaultPricesEffective}, baseTime); err != nil {
				t.Fatal(err)
			}
		}
		ev := func(id, model string, in int64) billing.UsageEvent {
			e := gpt4Event(id, user, baseTime, in, 0)
			e.Model = model
			return e
		}
		// 0.799999999999 USD = 799,999 micro-dollars + 999,999 pico-dollars.
		f.record(ev("micro", "micro-model", 799_999), ev("pico", "pico-model", 999_999))
		if got := f.usage(user, billing.CalendarMonths().At(baseTime)).Total.Cost; got != usd("0.799999999999") {
			t.Fatalf("cost: %s; want 0.799999999999", got.Dollars())
		}
		wantAlerts(t, "one pico-dollar short of 80 %", f.alerts(user, period))
		f.record(ev("pico-last", "pico-model", 1))
		wantAlerts(t, "at exactly 80 %", f.alerts(user, period), "cost_warning monthly_cost 80")
		f.consistent()
	})
}

// TestUnpricedModelsRaiseOneAdminAlertEach records many calls to two
// unknown models, by two users, in several batches.
func TestUnpricedModelsRaiseOneAdminAlertEach(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.keyUser("unpriced-a")
		f.keyUser("unpriced-b")
		call := func(id, user, provider, model string) billing.UsageEvent {
			e := gpt4Event(id, user, baseTime, 100, 100)
			e.Provider, e.Model = provider, model
			return e
		}
		for batch := range 3 {
			var evs []billing.UsageEvent
			for i := range 5 {
				id := fmt.Sprintf("u-%d-%d", batch, i)
				evs = append(evs, call(id+"-x", "unpriced-a", "openai", "mystery-x"),
					call(id+"-y", "unpriced-b", "anthropic", "mystery-y"),
					call(id+"-p", "unpriced-b", "openai", "gpt-4o")) // priced
			}
			for i, r := range f.record(evs...) {
				if wantUnpriced := i%3 != 2; r.Unpriced != wantUnpriced || (r.Unpriced && r.Cost != 0) {
					t.Fatalf("result %+v; want unpriced %v (and no cost when unpriced)", r, wantUnpriced)
				}
			}
		}
		as := f.alerts("", "")
		wantAlerts(t, "admin alerts", as, "unpriced_model model:openai/mystery-x 0", "unpriced_model model:anthropic/mystery-y 0")
		for _, a := range as {
			if a.UserID != "" {
				t.Fatalf("unpriced-model alert for user %q; want an admin alert (user \"\")", a.UserID)
			}
		}
		for _, u := range []string{"unpriced-a", "unpriced-b"} {
			wantAlerts(t, "alerts of "+u, f.alerts(u, ""))
		}
		// The unpriced calls are in the ledger and the summaries, at no cost.
		logs, total, err := f.db.ListLogs(f.ctx, billing.LogFilter{UserID: "unpriced-a", Limit: 100})
		if err != nil || total != 15 {
			t.Fatalf("logs of unpriced-a: %d, %v; want 15", total, err)
		}
		for _, l := range logs {
			if !l.Unpriced || l.CostTotal != 0 {
				t.Fatalf("log %s: unpriced %v, cost %s; want flagged unpriced at no cost", l.EventID, l.Unpriced, l.CostTotal.Dollars())
			}
		}
		f.consistent()
	})
}

// TestRaisedLimitAlertsAgain: an upgrade in the middle of a period raises
// the limit at once; the new limit warns and is reached with alerts of its
// own, though the old one's thresholds alerted in the same period.
func TestRaisedLimitAlertsAgain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "upgrading-user"
		f.planUser(user, billing.Plan{Name: "small", PriceMonthly: usd("1"), TotalCallsLimit: billing.Ptr[int64](10)})
		big := billing.Plan{Name: "big", Tier: "pro", IsActive: true, PriceMonthly: usd("2"), TotalCallsLimit: billing.Ptr[int64](20)}
		bigID, err := f.db.CreatePlan(f.ctx, big, f.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		period := billing.CalendarMonths().At(baseTime).Key
		f.record(gpt4Calls("small", user, baseTime, 10)...)
		wantAlerts(t, "10 of 10", f.alerts(user, period), "usage_warning total_calls 80", "limit_reached total_calls 100")
		if _, err := f.db.Subscribe(f.ctx, user, bigID, billing.CycleMonthly, store.SubscribeOptions{}, f.clk.Now()); err != nil {
			t.Fatal(err)
		}
		f.record(gpt4Calls("big", user, baseTime, 10)...)
		var reached20 bool
		for _, a := range f.alerts(user, period) {
			if a.Type == billing.AlertLimitReached && strings.Contains(a.Message, "20 of 20") {
				reached20 = true
			}
		}
		if !reached20 {
			t.Fatalf("no limit_reached alert for 20 of 20 after the upgrade: %+v", f.alerts(user, period))
		}
	})
}
