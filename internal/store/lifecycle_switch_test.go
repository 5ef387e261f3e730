package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// record meters n successful OpenAI calls of tokens input tokens each for
// user at the lifecycle's clock.
func (l *lifecycle) record(meter *metering.Meter, user, prefix string, n int, tokens int64) {
	l.t.Helper()
	l.recordAt(meter, user, prefix, n, tokens, l.now)
}

// recordAt meters calls as record does, made at when and reported now.
func (l *lifecycle) recordAt(meter *metering.Meter, user, prefix string, n int, tokens int64, when time.Time) {
	l.t.Helper()
	for i := range n {
		if _, err := meter.Record(l.ctx, []billing.UsageEvent{{EventID: fmt.Sprintf("%s-%d", prefix, i), UserID: user,
			Provider: "openai", Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: tokens},
			Timestamp: when}}); err != nil {
			l.t.Fatal(err)
		}
	}
}

// prorated is the part of the June 2024 cycle's price difference that an
// immediate change at at books.
func prorated(t *testing.T, diff string, at time.Time) string {
	t.Helper()
	cyc := billing.Period{Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)}
	amt, err := billing.Prorate(usd(diff), cyc, at)
	if err != nil {
		t.Fatal(err)
	}
	return amt.String()
}

// sum adds dollar amounts.
func sum(amounts ...string) string {
	var s money.Amount
	for _, a := range amounts {
		s += usd(a)
	}
	return s.String()
}

// TestImmediateSwitchBillsOverageSoFar: a soft-limit plan used for 15
// calls (5 above its limit of 10) and then upgraded at once keeps the
// overage it ran up: the 5 calls are billed at its price on June's
// invoice, named after it, beside the prorated upgrade, and the lines add
// up to the total.
func TestImmediateSwitchBillsOverageSoFar(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("switcher", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-10 00:00"))
		l.record(meter, "switcher", "before", 15, 10)
		l.walk(at("2024-06-21 00:00"))
		if r := l.subscribe("switcher", "KB Pro", billing.CycleMonthly, true); r.Outcome != store.ChangeUpgraded {
			t.Fatalf("Metered → Pro = %s; want upgraded", r.Outcome)
		}
		l.record(meter, "switcher", "after", 3, 10)
		l.cancel("switcher", false)
		l.walk(at("2024-07-02 00:00"))

		upgrade := prorated(t, "25", at("2024-06-21 00:00"))
		l.checkInvoices("switcher", []invoiceWant{
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00",
				[]line{{"base", "5"}, {"overage", "0.05"}, {"upgrade", upgrade}}, sum("5", "0.05", upgrade)},
		})
		inv := l.invoices("switcher")[0]
		if inv.Overage != usd("0.05") || inv.Calls != 18 {
			t.Errorf("invoice overage %s for %d calls; want 0.05 for 18", inv.Overage, inv.Calls)
		}
		if d := inv.Lines[1].Description; !strings.Contains(d, "KB Metered") || inv.Lines[1].Quantity != 5 ||
			inv.Lines[1].UnitPrice != usd("0.01") || !inv.Lines[1].PeriodEnd.Equal(at("2024-06-21 00:00")) {
			t.Errorf("overage line %+v; want 5 calls at 0.01 of KB Metered until the switch", inv.Lines[1])
		}
	})
}

// TestSwitchesPriceEachPlansOwnUsage: each plan in effect during a period
// prices the usage from the change that started it (or the period's
// start) to the next change (or the close) against its own limits, calls
// and each provider's tokens alike: Metered's 15 calls and 1,500 tokens,
// Metered Plus's 4 calls and 400 tokens (under its limits, however far the
// period's total is above them), and Metered's 13 calls and 1,300 tokens
// after the change back.
func TestSwitchesPriceEachPlansOwnUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		plus, err := l.db.CreatePlan(l.ctx, billing.Plan{Name: "KB Metered Plus", Tier: "pro", PriceMonthly: usd("8"),
			IsActive: true, SoftLimits: true, TotalCallsLimit: billing.Ptr[int64](10), OveragePerCall: billing.Ptr(usd("0.02")),
			OveragePer1KTokens: billing.Ptr(usd("0.004")),
			ProviderLimits:     map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](1000)}}}, l.now)
		if err != nil {
			t.Fatal(err)
		}
		l.plans["KB Metered Plus"] = plus
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("chain", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-05 00:00"))
		l.record(meter, "chain", "metered", 15, 100)
		l.walk(at("2024-06-11 00:00"))
		l.subscribe("chain", "KB Metered Plus", billing.CycleMonthly, true)
		l.record(meter, "chain", "plus", 4, 100)
		l.walk(at("2024-06-21 00:00"))
		l.subscribe("chain", "KB Metered", billing.CycleMonthly, true)
		l.record(meter, "chain", "back", 13, 100)
		l.cancel("chain", false)
		l.walk(at("2024-07-02 00:00"))

		up, down := prorated(t, "3", at("2024-06-11 00:00")), "-"+prorated(t, "3", at("2024-06-21 00:00"))
		l.checkInvoices("chain", []invoiceWant{
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{
				{"base", "5"},
				{"overage", "0.05"}, {"overage", "0.001"}, // Metered: 5 calls, 500 tokens
				{"upgrade", up},
				{"downgrade", down},
				{"overage", "0.03"}, {"overage", "0.0006"}, // Metered again: 3 calls, 300 tokens
			}, sum("5", "0.05", "0.001", up, down, "0.03", "0.0006")},
		})
	})
}

// TestImmediateSwitchWithoutOverageBooksNothing: a switch from a
// soft-limit plan used within its limits books no overage line.
func TestImmediateSwitchWithoutOverageBooksNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("within", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-10 00:00"))
		l.record(meter, "within", "calls", 10, 10)
		l.walk(at("2024-06-21 00:00"))
		l.subscribe("within", "KB Pro", billing.CycleMonthly, true)
		l.cancel("within", false)
		l.walk(at("2024-07-02 00:00"))
		upgrade := prorated(t, "25", at("2024-06-21 00:00"))
		l.checkInvoices("within", []invoiceWant{
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "5"}, {"upgrade", upgrade}}, sum("5", upgrade)},
		})
	})
}

// invoices lists user's invoices, newest first.
func (l *lifecycle) invoices(user string) []billing.Invoice {
	l.t.Helper()
	invs, _, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: user, Limit: 100})
	if err != nil {
		l.t.Fatal(err)
	}
	return invs
}

// TestPlanEditMovingSubscribersBillsOverageSoFar: an admin edit that moves
// a plan's subscribers to its new version at once is an immediate plan
// change for each of them: the old version's overage so far goes on the
// period's invoice, and the new version (here with a higher limit) prices
// only the usage after the move. Moved without a mark, the new version
// priced the whole month and the 5 calls above the old limit were free.
func TestPlanEditMovingSubscribersBillsOverageSoFar(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("edited", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-10 00:00"))
		l.record(meter, "edited", "before", 15, 10)
		l.walk(at("2024-06-21 00:00"))
		old, err := l.db.GetPlan(l.ctx, l.plans["KB Metered"])
		if err != nil {
			t.Fatal(err)
		}
		edit := old
		edit.Name, edit.TotalCallsLimit = "", billing.Ptr[int64](100)
		res, err := l.db.EditPlan(l.ctx, old.ID, edit, true, l.now)
		if err != nil || res.Moved != 1 {
			t.Fatalf("edit moving subscribers = %+v, %v; want 1 moved", res, err)
		}
		l.record(meter, "edited", "after", 3, 10)
		l.cancel("edited", false)
		l.walk(at("2024-07-02 00:00"))
		l.checkInvoices("edited", []invoiceWant{
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "5"}, {"overage", "0.05"}}, sum("5", "0.05")},
		})
	})
}

// TestSwitchBeforeThePeriodClosesKeepsItsPlan: a plan changed at once in
// the hour after a period ended, before that period is closed, does not
// price it: the period's invoice names and prices the plan it was used
// under (here its overage), and the new plan starts with the new period.
func TestSwitchBeforeThePeriodClosesKeepsItsPlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("early", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-10 00:00"))
		l.record(meter, "early", "june", 15, 10)
		l.walk(at("2024-07-01 00:30")) // June ended; it closes at 01:00
		if r := l.subscribe("early", "KB Pro", billing.CycleMonthly, true); r.Outcome != store.ChangeUpgraded {
			t.Fatalf("Metered → Pro = %s; want upgraded", r.Outcome)
		}
		l.walk(at("2024-07-02 00:00"))
		invs, _, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: "early", BillingPeriod: "2024-06", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(invs) != 1 || invs[0].PlanName != "KB Metered" || invs[0].Overage != usd("0.05") {
			t.Fatalf("June's invoices = %+v; want one, KB Metered's, with its 0.05 overage", invs)
		}
	})
}
