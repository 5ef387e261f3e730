package store_test

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/internal/webhook"
	"pgregory.net/rapid"
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

// lifecycle is a database with an injected clock that walks forward,
// closing periods as a running server would.
type lifecycle struct {
	t     *testing.T
	ctx   context.Context
	db    *store.DB
	now   time.Time
	plans map[string]int64
}

func newLifecycle(t *testing.T, b storetest.Backend, start time.Time) *lifecycle {
	return newLifecycleURL(t, b.URL(t), start)
}

func newLifecycleURL(t *testing.T, url string, start time.Time) *lifecycle {
	l := &lifecycle{t: t, ctx: context.Background(), db: storetest.OpenURL(t, url), now: start, plans: map[string]int64{}}
	for _, p := range []billing.Plan{
		{Name: "KB Basic", Tier: "basic", PriceMonthly: usd("10"), PriceYearly: usd("100")},
		{Name: "KB Pro", Tier: "pro", PriceMonthly: usd("30"), PriceYearly: usd("300")},
		{Name: "KB Max", Tier: "enterprise", PriceMonthly: usd("50"), PriceYearly: usd("500")},
		{Name: "KB Zero", Tier: "free"},
		{Name: "KB Metered", Tier: "pro", PriceMonthly: usd("5"), SoftLimits: true, TotalCallsLimit: billing.Ptr[int64](10),
			OveragePerCall: billing.Ptr(usd("0.01")), OveragePer1KTokens: billing.Ptr(usd("0.002")),
			ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](1000)}}},
	} {
		p.IsActive = true
		id, err := l.db.CreatePlan(l.ctx, p, start)
		if err != nil {
			t.Fatal(err)
		}
		l.plans[p.Name] = id
	}
	return l
}

// walk moves the clock to t a day at a time, closing due periods each day.
func (l *lifecycle) walk(to time.Time) {
	l.t.Helper()
	for l.now.Before(to) {
		l.now = l.now.Add(24 * time.Hour)
		if l.now.After(to) {
			l.now = to
		}
		if _, err := l.db.CloseDue(l.ctx, l.now, 1000); err != nil {
			l.t.Fatalf("close at %s: %v", l.now, err)
		}
	}
}

func (l *lifecycle) subscribe(user, plan, cycle string, immediate bool) store.ChangeResult {
	l.t.Helper()
	r, err := l.db.Subscribe(l.ctx, user, l.plans[plan], cycle, store.SubscribeOptions{Immediate: immediate}, l.now)
	if err != nil {
		l.t.Fatalf("subscribe %s to %s at %s: %v", user, plan, l.now, err)
	}
	return r
}

func (l *lifecycle) cancel(user string, immediate bool) {
	l.t.Helper()
	if _, err := l.db.Cancel(l.ctx, user, immediate, l.now); err != nil {
		l.t.Fatalf("cancel %s at %s: %v", user, l.now, err)
	}
}

// line is an expected invoice line: type and amount in dollars.
type line struct{ typ, amount string }

// invoiceWant is an expected invoice of one period.
type invoiceWant struct {
	period     string
	start, end string // "2006-01-02 15:04"
	lines      []line
	total      string
}

func (l *lifecycle) checkInvoices(user string, want []invoiceWant) {
	l.t.Helper()
	got, n, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: user, Limit: 1000})
	if err != nil {
		l.t.Fatal(err)
	}
	if n != len(want) || len(got) != len(want) {
		var have []string
		for _, inv := range got {
			have = append(have, inv.Period.Key+"="+inv.Total.String())
		}
		l.t.Fatalf("%s has %d invoices (%s); want %d", user, n, strings.Join(have, ", "), len(want))
	}
	// Invoices come newest first; want is oldest first.
	for i, w := range want {
		inv := got[len(got)-1-i]
		where := fmt.Sprintf("%s invoice %s", user, w.period)
		if inv.Period.Key != w.period || !inv.Period.Start.Equal(at(w.start)) || !inv.Period.End.Equal(at(w.end)) {
			l.t.Errorf("%s: period %s [%s, %s); want %s [%s, %s)", where, inv.Period.Key, inv.Period.Start, inv.Period.End, w.period, w.start, w.end)
		}
		if len(inv.Lines) != len(w.lines) {
			l.t.Errorf("%s: lines %+v; want %v", where, inv.Lines, w.lines)
			continue
		}
		var sum money.Amount
		for j, wl := range w.lines {
			gl := inv.Lines[j]
			if gl.Type != wl.typ || gl.Amount != usd(wl.amount) {
				l.t.Errorf("%s line %d: %s %s (%s); want %s %s", where, j, gl.Type, gl.Amount, gl.Description, wl.typ, wl.amount)
			}
			sum += gl.Amount
		}
		if inv.Total != usd(w.total) || sum != inv.Total {
			l.t.Errorf("%s: total %s, lines sum to %s; want %s", where, inv.Total, sum, w.total)
		}
		if inv.Number != billing.InvoiceNumber(inv.SubscriptionID, inv.Period.Key) || inv.Status != billing.InvoiceIssued {
			l.t.Errorf("%s: number %q status %q", where, inv.Number, inv.Status)
		}
	}
}

// TestSubscriptionScenario walks subscriptions through fourteen months
// (January 2024 to March 2025) with an injected clock, in the manner of
// Kill Bill's scenario tests, and asserts every invoice line: a start on
// January 31 through a leap February and a non-leap one, an upgrade in the
// middle of a period, a scheduled and an immediate downgrade, an upgrade
// from a free plan, cancellation at the period's end and at once, a yearly
// plan, and soft-limit overage.
func TestSubscriptionScenario(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-31 10:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)

		l.subscribe("kb", "KB Basic", billing.CycleMonthly, false)
		l.walk(at("2024-02-15 10:00"))
		if r := l.subscribe("kb", "KB Pro", billing.CycleMonthly, false); r.Outcome != store.ChangeUpgraded {
			t.Fatalf("Basic → Pro = %s; want upgraded", r.Outcome)
		}
		l.walk(at("2024-03-01 00:00"))
		l.subscribe("user3", "KB Pro", billing.CycleMonthly, false)
		l.walk(at("2024-03-10 10:00"))
		if r := l.subscribe("kb", "KB Basic", billing.CycleMonthly, false); r.Outcome != store.ChangeScheduled || !r.EffectiveAt.Equal(at("2024-03-31 10:00")) {
			t.Fatalf("Pro → Basic = %s at %s; want scheduled at the cycle's end", r.Outcome, r.EffectiveAt)
		}
		l.walk(at("2024-03-16 00:00"))
		l.cancel("user3", true)
		if s, err := l.db.CurrentSubscription(l.ctx, "user3"); err != nil || s != nil {
			t.Fatalf("user3 after an immediate cancellation: %+v, %v; want back on Free", s, err)
		}
		l.walk(at("2024-04-20 10:00"))
		if r := l.subscribe("kb", "KB Zero", billing.CycleMonthly, true); r.Outcome != store.ChangeChanged {
			t.Fatalf("immediate Basic → Zero = %s; want changed", r.Outcome)
		}
		l.walk(at("2024-05-05 10:00"))
		l.subscribe("kb", "KB Max", billing.CycleMonthly, false)
		l.walk(at("2024-06-01 00:00"))
		l.subscribe("meter", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-10 10:00"))
		l.cancel("kb", false)
		l.cancel("meter", false)
		for i := range 15 {
			if _, err := meter.Record(l.ctx, []billing.UsageEvent{{EventID: fmt.Sprintf("m-%d", i), UserID: "meter", Provider: "openai",
				Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100}, Timestamp: l.now}}); err != nil {
				t.Fatal(err)
			}
		}
		l.walk(at("2024-07-01 10:00"))
		if s, _ := l.db.CurrentSubscription(l.ctx, "kb"); s != nil {
			t.Fatalf("kb after cancelling at the period's end: %+v; want none", s)
		}
		l.subscribe("kb", "KB Pro", billing.CycleYearly, false)
		l.walk(at("2024-12-31 10:00"))
		l.subscribe("user2", "KB Basic", billing.CycleMonthly, false)
		l.walk(at("2025-04-01 00:00"))

		l.checkInvoices("kb", []invoiceWant{
			{"2024-01", "2024-01-31 10:00", "2024-02-29 10:00", []line{{"base", "10"}, {"upgrade", "9.655172413793"}}, "19.655172413793"},
			{"2024-02", "2024-02-29 10:00", "2024-03-31 10:00", []line{{"base", "30"}}, "30"},
			{"2024-03", "2024-03-31 10:00", "2024-04-30 10:00", []line{{"base", "10"}, {"downgrade", "-3.333333333333"}}, "6.666666666667"},
			{"2024-04", "2024-04-30 10:00", "2024-05-31 10:00", []line{{"upgrade", "41.935483870968"}}, "41.935483870968"},
			{"2024-05", "2024-05-31 10:00", "2024-06-30 10:00", []line{{"base", "50"}}, "50"},
			// The yearly subscription: its fee in its first month, then a
			// row per month with the month's usage and nothing to pay.
			{"2024-07", "2024-07-01 10:00", "2024-08-01 10:00", []line{{"base", "300"}}, "300"},
			{"2024-08", "2024-08-01 10:00", "2024-09-01 10:00", nil, "0"},
			{"2024-09", "2024-09-01 10:00", "2024-10-01 10:00", nil, "0"},
			{"2024-10", "2024-10-01 10:00", "2024-11-01 10:00", nil, "0"},
			{"2024-11", "2024-11-01 10:00", "2024-12-01 10:00", nil, "0"},
			{"2024-12", "2024-12-01 10:00", "2025-01-01 10:00", nil, "0"},
			{"2025-01", "2025-01-01 10:00", "2025-02-01 10:00", nil, "0"},
			{"2025-02", "2025-02-01 10:00", "2025-03-01 10:00", nil, "0"},
		})
		l.checkInvoices("user2", []invoiceWant{
			{"2024-12", "2024-12-31 10:00", "2025-01-31 10:00", []line{{"base", "10"}}, "10"},
			{"2025-01", "2025-01-31 10:00", "2025-02-28 10:00", []line{{"base", "10"}}, "10"},
			{"2025-02", "2025-02-28 10:00", "2025-03-31 10:00", []line{{"base", "10"}}, "10"},
		})
		l.checkInvoices("user3", []invoiceWant{
			{"2024-03", "2024-03-01 00:00", "2024-04-01 00:00", []line{{"base", "30"}, {"credit", "-15.483870967742"}}, "14.516129032258"},
		})
		l.checkInvoices("meter", []invoiceWant{
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "5"}, {"overage", "0.05"}, {"overage", "0.001"}}, "5.051"},
		})
		inv, _, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: "meter"})
		if err != nil {
			t.Fatal(err)
		}
		// gpt-4 at 0.03 per 1,000 input tokens: 15 × 100 tokens.
		if inv[0].Calls != 15 || inv[0].Tokens != 1500 || inv[0].UsageCost != usd("0.045") {
			t.Errorf("meter's June invoice: %d calls, %d tokens, usage cost %s; want 15, 1500, 0.045", inv[0].Calls, inv[0].Tokens, inv[0].UsageCost)
		}

		hist, err := l.db.SubscriptionHistory(l.ctx, "kb", 100)
		if err != nil {
			t.Fatal(err)
		}
		var events []string
		for i := len(hist) - 1; i >= 0; i-- {
			events = append(events, hist[i].Event+":"+hist[i].ToPlanName)
		}
		wantEvents := []string{"new:KB Basic", "upgrade:KB Pro", "renewal:KB Pro", "downgrade:KB Basic", "downgrade:KB Zero",
			"renewal:KB Zero", "upgrade:KB Max", "renewal:KB Max", "cancel:", "new:KB Pro"}
		if strings.Join(events, " ") != strings.Join(wantEvents, " ") {
			t.Errorf("kb's history:\n got %v\nwant %v", events, wantEvents)
		}
	})
}

// TestMidMonthSubscriptionBillsOnlyItsOwnUsage: a user who used the
// service on the free plan in June and subscribes on June 10 has a first
// period (June 10 – July 10) named "2024-06" like the free plan's calendar
// June, so both periods' usage lands in one summary row. The invoice and
// the history bill only the calls made in the subscription's own period:
// overage of 5 calls and 500 tokens over the plan's 10 calls and 1,000
// tokens, not of the 27 calls and 2,700 tokens of June.
func TestMidMonthSubscriptionBillsOnlyItsOwnUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		if _, err := l.db.CreateKey(l.ctx, billing.APIKey{Prefix: "alw_late0000", UserID: "late", Role: billing.RoleUser, CreatedAt: l.now}, "h"); err != nil {
			t.Fatal(err)
		}
		record := func(prefix string, n int) {
			t.Helper()
			for i := range n {
				if _, err := meter.Record(l.ctx, []billing.UsageEvent{{EventID: fmt.Sprintf("%s-%d", prefix, i), UserID: "late", Provider: "openai",
					Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100}, Timestamp: l.now}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		l.walk(at("2024-06-05 10:00"))
		record("free", 12)
		l.walk(at("2024-06-10 10:00"))
		l.subscribe("late", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-06-15 10:00"))
		record("paid", 15)
		l.cancel("late", false)
		l.walk(at("2024-07-11 10:00"))
		l.checkInvoices("late", []invoiceWant{
			{"2024-06", "2024-06-10 10:00", "2024-07-10 10:00", []line{{"base", "5"}, {"overage", "0.05"}, {"overage", "0.001"}}, "5.051"},
		})
		inv, _, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: "late"})
		if err != nil {
			t.Fatal(err)
		}
		if inv[0].Calls != 15 || inv[0].Tokens != 1500 || inv[0].UsageCost != usd("0.045") {
			t.Errorf("invoice: %d calls, %d tokens, usage cost %s; want 15, 1500, 0.045", inv[0].Calls, inv[0].Tokens, inv[0].UsageCost)
		}
		hist, err := l.db.SubscriptionHistory(l.ctx, "late", 10)
		if err != nil {
			t.Fatal(err)
		}
		// The snapshot of each change: none of the free plan's 12 calls.
		want := map[string]int64{billing.HistoryNew: 0, billing.HistoryCancel: 15}
		for _, h := range hist {
			if n, ok := want[h.Event]; !ok || h.UsageCalls != n {
				t.Errorf("history %s: %d calls; want %d (%v)", h.Event, h.UsageCalls, n, ok)
			}
			delete(want, h.Event)
		}
		if len(want) > 0 {
			t.Errorf("history lacks %v", want)
		}
	})
}

// TestSubscriptionStartedMidMonthStartsAFreshPeriod: a subscription that
// starts on the 10th has a first period named after the month, like the
// calendar month the user was in until then, but it is a period of its own:
// the month's earlier calls count towards neither its limits nor its
// alerts nor its usage, admission holds against it alone, and a call made
// before the subscription but reported after it stays in the calendar
// month.
func TestSubscriptionStartedMidMonthStartsAFreshPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-06-01 00:00"))
		id, err := l.db.CreatePlan(l.ctx, billing.Plan{Name: "KB Capped", Tier: "basic", IsActive: true,
			PriceMonthly: usd("10"), PriceYearly: usd("100"), TotalCallsLimit: billing.Ptr[int64](5)}, l.now)
		if err != nil {
			t.Fatal(err)
		}
		l.plans["KB Capped"] = id
		if _, err := l.db.CreateKey(l.ctx, billing.APIKey{Prefix: "alw_mid00000", UserID: "mid", Role: billing.RoleUser, CreatedAt: l.now}, "h"); err != nil {
			t.Fatal(err)
		}
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		t.Cleanup(func() { _ = meter.Close(context.Background()) })
		record := func(prefix string, n int, when time.Time) {
			t.Helper()
			for i := range n {
				if _, err := meter.Record(l.ctx, []billing.UsageEvent{{EventID: fmt.Sprintf("%s-%d", prefix, i), UserID: "mid",
					Provider: "openai", Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100}, Timestamp: when}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		l.walk(at("2024-06-05 10:00"))
		record("free", 12, l.now)
		l.walk(at("2024-06-10 10:00"))
		sub := l.subscribe("mid", "KB Capped", billing.CycleMonthly, false).Subscription
		l.walk(at("2024-06-12 10:00"))
		record("paid", 3, l.now)
		record("late", 1, at("2024-06-08 09:00"))

		// 3 of the 5 calls used: of 10 concurrent reservations exactly 2
		// are admitted (none if the month's free calls counted).
		var admitted []billing.Reservation
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				r, err := meter.Reserve(l.ctx, billing.ReserveRequest{UserID: "mid", Provider: "openai", Model: "gpt-4", Tokens: 100})
				switch {
				case err == nil:
					mu.Lock()
					admitted = append(admitted, r)
					mu.Unlock()
				case billing.ErrorCode(err) != billing.CodeLimitExceeded:
					t.Errorf("reserve: %v", err)
				}
			})
		}
		wg.Wait()
		if len(admitted) != 2 {
			t.Fatalf("admitted %d reservations; want 2 (3 of 5 calls used in the subscription's period)", len(admitted))
		}
		p := sub.Schedule().At(l.now)
		if want := (billing.Period{Key: "2024-06", Start: at("2024-06-10 10:00"), End: at("2024-07-10 10:00")}); admitted[0].Period.Key != want.Key ||
			!admitted[0].Period.Start.Equal(want.Start) || p != want {
			t.Errorf("reserved in %+v, the period at now is %+v; want %+v", admitted[0].Period, p, want)
		}
		if _, err := meter.Settle(l.ctx, admitted[0].ID, billing.UsageEvent{EventID: "paid-settled", UserID: "mid", Provider: "openai",
			Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100}, Timestamp: l.now}); err != nil {
			t.Fatal(err)
		}
		if _, err := meter.Release(l.ctx, admitted[1].ID); err != nil {
			t.Fatal(err)
		}

		// The period "2024-06" reads as the subscription's: 4 calls; the
		// calendar month before it keeps its 13 (the late call included).
		usage, err := l.db.UsageForPeriods(l.ctx, "mid", []billing.Period{p, billing.CalendarMonths().At(at("2024-06-05 10:00")), {Key: billing.AllTime}})
		if err != nil {
			t.Fatal(err)
		}
		if usage[0].Total.Calls != 4 || usage[1].Total.Calls != 17 || usage[2].Total.Calls != 17 {
			t.Errorf("usage: subscription's period %d calls, calendar June %d, all time %d; want 4, 17 (both periods of the name), 17",
				usage[0].Total.Calls, usage[1].Total.Calls, usage[2].Total.Calls)
		}
		free, err := l.db.PeriodCounters(l.ctx, "mid", billing.Schedule{Anchor: sub.Anchor}.At(at("2024-06-08 09:00")))
		if err != nil {
			t.Fatal(err)
		}
		if free.Total.Calls != 13 {
			t.Errorf("the calendar month before the subscription: %d calls; want 13", free.Total.Calls)
		}
		if m, err := l.db.Reconcile(l.ctx); err != nil || len(m) > 0 {
			t.Errorf("reconcile: %v, %v", m, err)
		}

		// 4 of 5 calls: the 80 % warning of the subscription's period, and
		// no limit reached (the month's 17 calls would have been 340 %).
		alerts, _, _, err := l.db.ListAlerts(l.ctx, billing.AlertFilter{UserID: "mid", Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range alerts {
			if a.LimitKey == "total_calls" {
				got = append(got, fmt.Sprintf("%s %d%%", a.Type, a.ThresholdPercentage))
			}
		}
		if want := []string{billing.AlertUsageWarning + " 80%"}; !slices.Equal(got, want) {
			t.Errorf("total_calls alerts %v; want %v", got, want)
		}
		// The invoice bills the subscription's own 4 calls.
		l.cancel("mid", false)
		l.walk(at("2024-07-11 10:00"))
		inv, _, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: "mid"})
		if err != nil {
			t.Fatal(err)
		}
		if len(inv) != 1 || inv[0].Calls != 4 {
			t.Errorf("invoices %+v; want one for 4 calls", inv)
		}
	})
}

// TestPeriodCloseIsIdempotent: closing again, and closing from several
// processes at once, writes one invoice per subscription and period.
func TestPeriodCloseIsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		l := newLifecycleURL(t, url, at("2024-01-01 00:00"))
		const users = 20
		for i := range users {
			l.subscribe(fmt.Sprintf("idem-%d", i), "KB Pro", billing.CycleMonthly, false)
		}
		// Five "processes" (each its own connection pool) close four
		// months at once, twice.
		end := at("2024-05-01 00:00").Add(store.CloseGrace)
		var wg sync.WaitGroup
		for range 5 {
			other := storetest.OpenURL(t, url)
			wg.Go(func() {
				for range 2 {
					if _, err := other.CloseDue(l.ctx, end, 10_000); err != nil {
						t.Errorf("close: %v", err)
					}
				}
			})
		}
		wg.Wait()
		invs, n, err := l.db.Invoices(l.ctx, store.InvoiceFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if n != users*4 {
			t.Fatalf("%d invoices after concurrent closes; want %d (one per subscription and month)", n, users*4)
		}
		seen := map[string]bool{}
		for _, inv := range invs {
			k := fmt.Sprint(inv.SubscriptionID, inv.Period.Key)
			if seen[k] {
				t.Fatalf("two invoices for subscription %d in %s", inv.SubscriptionID, inv.Period.Key)
			}
			seen[k] = true
			if inv.Total != usd("30") {
				t.Errorf("invoice %s total %s; want 30", inv.Number, inv.Total)
			}
		}
		if again, err := l.db.CloseDue(l.ctx, end, 10_000); err != nil || again != 0 {
			t.Fatalf("closing again = %d, %v; want 0", again, err)
		}
	})
}

// TestPropPlanChangesInvoiceExactly: random sequences of upgrades and
// downgrades (immediate or scheduled) at random seconds of a cycle give an
// invoice whose total is exactly the sum of its lines and within one
// rounding unit per prorated line of the exact price of the time spent on
// each plan.
func TestPropPlanChangesInvoiceExactly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2030-01-01 00:00"))
		names := []string{"KB Basic", "KB Pro", "KB Max", "KB Zero"}
		prices := map[string]money.Amount{"KB Basic": usd("10"), "KB Pro": usd("30"), "KB Max": usd("50"), "KB Zero": 0}
		iteration := 0
		rapid.Check(t, func(rt *rapid.T) {
			iteration++
			user := fmt.Sprintf("prop-%d", iteration)
			start := at("2030-01-01 00:00").Add(time.Duration(iteration) * 40 * 24 * time.Hour)
			l.now = start
			first := rapid.SampledFrom(names).Draw(rt, "first")
			r := l.subscribe(user, first, billing.CycleMonthly, false)
			cyc := r.Subscription.Cycle()
			span := cyc.End.Unix() - cyc.Start.Unix()
			offsets := rapid.SliceOfN(rapid.Int64Range(1, span-2), 0, 6).Draw(rt, "offsets")
			slices.Sort(offsets)
			cur, last := first, int64(0)
			exact := new(big.Rat)
			prorated := 0
			for _, off := range offsets {
				next := rapid.SampledFrom(names).Draw(rt, "plan")
				immediate := rapid.Bool().Draw(rt, "immediate")
				l.now = cyc.Start.Add(time.Duration(off) * time.Second)
				res := l.subscribe(user, next, billing.CycleMonthly, immediate)
				if res.Outcome == store.ChangeUpgraded || res.Outcome == store.ChangeChanged {
					exact.Add(exact, share(prices[cur], off-last, span))
					cur, last = next, off
					prorated++
				}
			}
			exact.Add(exact, share(prices[cur], span-last, span))
			l.now = cyc.End.Add(-time.Second)
			l.cancel(user, false)
			if _, err := l.db.CloseDue(l.ctx, cyc.End.Add(store.CloseGrace), 100); err != nil {
				rt.Fatal(err)
			}
			invs, n, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: user})
			if err != nil || n != 1 {
				rt.Fatalf("%d invoices, %v; want 1", n, err)
			}
			inv := invs[0]
			var sum money.Amount
			for _, ln := range inv.Lines {
				sum += ln.Amount
			}
			if sum != inv.Total {
				rt.Fatalf("total %s; lines sum to %s", inv.Total, sum)
			}
			diff := new(big.Rat).Sub(new(big.Rat).SetInt64(int64(inv.Total)), exact)
			if diff.Abs(diff).Cmp(big.NewRat(int64(prorated), 1)) > 0 {
				rt.Fatalf("total %s is %s units from the exact %s with %d prorated lines: %+v",
					inv.Total, diff.FloatString(2), exact.FloatString(2), prorated, inv.Lines)
			}
		})
	})
}

// share is price × part / whole, exactly.
func share(price money.Amount, part, whole int64) *big.Rat {
	return new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(int64(price)), big.NewInt(part)), big.NewInt(whole))
}

// TestPlanEditsAreVersions: editing a plan makes a new version; existing
// subscribers keep theirs until renewal (then move to the newest), unless
// the edit moves them at once; the retired version is not offered.
func TestPlanEditsAreVersions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-01 00:00"))
		l.subscribe("keeps", "KB Pro", billing.CycleMonthly, false)
		l.subscribe("moves", "KB Basic", billing.CycleMonthly, false)
		l.walk(at("2024-01-10 00:00"))
		pro, err := l.db.GetPlan(l.ctx, l.plans["KB Pro"])
		if err != nil {
			t.Fatal(err)
		}
		pro.PriceMonthly = usd("40")
		res, err := l.db.EditPlan(l.ctx, pro.ID, pro, false, l.now)
		if err != nil {
			t.Fatal(err)
		}
		if res.Plan.Name != "KB Pro" || res.Plan.Version != 2 || res.Previous.IsActive || res.Previous.ReplacedBy == nil ||
			*res.Previous.ReplacedBy != res.Plan.ID || res.Previous.Name != "KB Pro (version 1)" {
			t.Fatalf("edit: new %+v, previous %+v", res.Plan, res.Previous)
		}
		if _, err := l.db.EditPlan(l.ctx, pro.ID, pro, false, l.now); billing.ErrorCode(err) != billing.CodeConflict {
			t.Fatalf("editing a replaced version: %v; want conflict", err)
		}
		if _, err := l.db.Subscribe(l.ctx, "late", pro.ID, billing.CycleMonthly, store.SubscribeOptions{}, l.now); billing.ErrorCode(err) != billing.CodeInvalid {
			t.Fatalf("subscribing to a retired version: %v; want invalid", err)
		}
		basic, _ := l.db.GetPlan(l.ctx, l.plans["KB Basic"])
		basic.TotalCallsLimit = billing.Ptr[int64](5)
		moved, err := l.db.EditPlan(l.ctx, basic.ID, basic, true, l.now)
		if err != nil || moved.Moved != 1 {
			t.Fatalf("edit moving subscribers now: %+v, %v; want 1 moved", moved, err)
		}
		if s, _ := l.db.CurrentSubscription(l.ctx, "moves"); s == nil || s.PlanID != moved.Plan.ID {
			t.Fatalf("moves's subscription %+v; want on plan %d", s, moved.Plan.ID)
		}
		if s, _ := l.db.CurrentSubscription(l.ctx, "keeps"); s == nil || s.PlanID != pro.ID {
			t.Fatalf("keeps's subscription before renewal %+v; want still on plan %d", s, pro.ID)
		}
		l.walk(at("2024-02-05 00:00"))
		if s, _ := l.db.CurrentSubscription(l.ctx, "keeps"); s == nil || s.PlanID != res.Plan.ID {
			t.Fatalf("keeps's subscription after renewal %+v; want on plan %d", s, res.Plan.ID)
		}
		l.checkInvoices("keeps", []invoiceWant{
			{"2024-01", "2024-01-01 00:00", "2024-02-01 00:00", []line{{"base", "30"}}, "30"},
		})
		l.walk(at("2024-03-02 00:00"))
		l.checkInvoices("keeps", []invoiceWant{
			{"2024-01", "2024-01-01 00:00", "2024-02-01 00:00", []line{{"base", "30"}}, "30"},
			{"2024-02", "2024-02-01 00:00", "2024-03-01 00:00", []line{{"base", "40"}}, "40"},
		})
	})
}

// TestLifecycleEventsReachTheOutbox: every subscription change and every
// issued invoice is queued for the endpoints that subscribed to it, in
// the transaction of the change.
func TestLifecycleEventsReachTheOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-01 00:00"))
		ep, err := l.db.CreateWebhookEndpoint(l.ctx, webhook.Endpoint{URL: "https://billing.example.net/hooks", Active: true,
			Events: []string{"subscription.changed", "invoice.issued"}, Secret: "whsec_test"}, l.now)
		if err != nil {
			t.Fatal(err)
		}
		l.subscribe("hooked", "KB Basic", billing.CycleMonthly, false) // created
		l.now = at("2024-01-10 00:00")
		l.subscribe("hooked", "KB Pro", billing.CycleMonthly, false) // upgraded
		l.walk(at("2024-02-02 00:00"))                               // invoice issued, renewed
		ds, n, err := l.db.ListWebhookDeliveries(l.ctx, webhook.DeliveryFilter{EndpointID: ep.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, d := range ds {
			count[d.EventType]++
		}
		if n != 4 || count["subscription.changed"] != 3 || count["invoice.issued"] != 1 {
			t.Fatalf("%d deliveries queued (%v); want 3 subscription.changed (created, upgraded, renewed) and 1 invoice.issued", n, count)
		}
	})
}

// TestInvoiceReviewWindow: with a review window, a closed period's invoice
// is a draft until the window ends (or an admin issues it); it is
// announced when issued, and only then may it be paid.
func TestInvoiceReviewWindow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-01 00:00"))
		l.db.InvoiceReview = 24 * time.Hour
		ep, err := l.db.CreateWebhookEndpoint(l.ctx, webhook.Endpoint{URL: "https://billing.example.net/hooks", Active: true,
			Events: []string{"invoice.issued"}, Secret: "whsec_test"}, l.now)
		if err != nil {
			t.Fatal(err)
		}
		l.subscribe("reviewed", "KB Pro", billing.CycleMonthly, false)
		l.subscribe("early", "KB Basic", billing.CycleMonthly, false)
		l.now = at("2024-02-01 06:00")
		if _, err := l.db.CloseDue(l.ctx, l.now, 100); err != nil {
			t.Fatal(err)
		}
		status := func(user string) billing.Invoice {
			t.Helper()
			invs, n, err := l.db.Invoices(l.ctx, store.InvoiceFilter{UserID: user})
			if err != nil || n != 1 {
				t.Fatalf("%s: %d invoices, %v", user, n, err)
			}
			return invs[0]
		}
		draft := status("reviewed")
		if draft.Status != billing.InvoiceDraft || draft.IssuedAt != nil {
			t.Fatalf("invoice during review: %s issued %v; want a draft", draft.Status, draft.IssuedAt)
		}
		if _, err := l.db.SetInvoiceStatus(l.ctx, draft.ID, billing.InvoicePaid, l.now); billing.ErrorCode(err) != billing.CodeConflict {
			t.Fatalf("paying a draft: %v; want conflict", err)
		}
		early := status("early")
		if inv, err := l.db.SetInvoiceStatus(l.ctx, early.ID, billing.InvoiceIssued, l.now); err != nil || inv.Status != billing.InvoiceIssued {
			t.Fatalf("an admin issuing a draft: %+v, %v", inv, err)
		}
		if n, err := l.db.IssueDrafts(l.ctx, l.now.Add(-l.db.InvoiceReview), l.now); err != nil || n != 0 {
			t.Fatalf("issuing drafts inside the window = %d, %v; want 0", n, err)
		}
		l.now = at("2024-02-02 06:00")
		if n, err := l.db.IssueDrafts(l.ctx, l.now.Add(-l.db.InvoiceReview), l.now); err != nil || n != 1 {
			t.Fatalf("issuing drafts after the window = %d, %v; want 1", n, err)
		}
		if inv := status("reviewed"); inv.Status != billing.InvoiceIssued || inv.IssuedAt == nil || !inv.IssuedAt.Equal(l.now) {
			t.Fatalf("invoice after the window: %s at %v; want issued now", inv.Status, inv.IssuedAt)
		}
		if inv, err := l.db.SetInvoiceStatus(l.ctx, draft.ID, billing.InvoicePaid, l.now); err != nil || inv.Status != billing.InvoicePaid {
			t.Fatalf("paying the issued invoice: %+v, %v", inv, err)
		}
		_, n, err := l.db.ListWebhookDeliveries(l.ctx, webhook.DeliveryFilter{EndpointID: ep.ID, Limit: 100})
		if err != nil || n != 2 {
			t.Fatalf("%d invoice.issued deliveries, %v; want 2 (one per invoice, when issued)", n, err)
		}
	})
}
