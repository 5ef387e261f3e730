package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestImmediateCancelAheadOfTheCloserKeepsItsCredit: a yearly subscription
// cancelled at once 30 seconds into March, before the closer has closed
// February, books its credit for March. Closing February must not take the
// cancellation for February's: March, which holds the credit, is invoiced
// too, and nothing after it.
func TestImmediateCancelAheadOfTheCloserKeepsItsCredit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-01 00:00"))
		sub := l.subscribe("lag", "KB Pro", billing.CycleYearly, false).Subscription
		l.walk(at("2024-02-01 00:00"))
		cancelAt := at("2024-03-01 00:00").Add(30e9)
		l.now = cancelAt // February has ended and is not closed yet
		l.cancel("lag", true)
		l.walk(at("2025-03-01 00:00"))

		credit, err := billing.Prorate(usd("300"), sub.Cycle(), cancelAt)
		if err != nil {
			t.Fatal(err)
		}
		l.checkInvoices("lag", []invoiceWant{
			{"2024-01", "2024-01-01 00:00", "2024-02-01 00:00", []line{{"base", "300"}}, "300"},
			{"2024-02", "2024-02-01 00:00", "2024-03-01 00:00", nil, "0"},
			{"2024-03", "2024-03-01 00:00", "2024-04-01 00:00", []line{{"credit", (-credit).String()}}, (-credit).String()},
		})
	})
}

// TestConcurrentFirstSubscriptionsMakeOne: eight processes (each its own
// connection pool) subscribe one user without a subscription at once. One
// creates the subscription; the others find it and change nothing, so the
// user has one active subscription and one invoice for January.
func TestConcurrentFirstSubscriptionsMakeOne(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		l := newLifecycleURL(t, url, at("2024-01-01 00:00"))
		const processes = 8
		outcomes := make([]store.ChangeOutcome, processes)
		dbs := make([]*store.DB, processes)
		for i := range dbs {
			dbs[i] = storetest.OpenURL(t, url)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, other := range dbs {
			wg.Go(func() {
				<-start
				r, err := other.Subscribe(l.ctx, "race", l.plans["KB Pro"], billing.CycleMonthly, store.SubscribeOptions{}, l.now)
				if err != nil {
					t.Errorf("subscribe: %v", err)
				}
				outcomes[i] = r.Outcome
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for _, o := range outcomes {
			if o == store.ChangeCreated {
				created++
			}
		}
		if created != 1 {
			t.Errorf("outcomes %v; want one %q", outcomes, store.ChangeCreated)
		}
		hist, err := l.db.SubscriptionHistory(l.ctx, "race", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 || hist[0].Event != billing.HistoryNew {
			t.Errorf("%d history entries (%+v); want one new subscription", len(hist), hist)
		}
		l.walk(at("2024-02-01 00:00").Add(store.CloseGrace))
		l.checkInvoices("race", []invoiceWant{
			{"2024-01", "2024-01-01 00:00", "2024-02-01 00:00", []line{{"base", "30"}}, "30"},
		})
	})
}

// TestCallSettledAfterThePeriodEndIsInvoiced: a call that starts ten
// minutes before January ends settles half an hour into February, into
// January, the period of its timestamp. January is closed only CloseGrace
// after its end, so the call is on its invoice, with the overage it causes.
func TestCallSettledAfterThePeriodEndIsInvoiced(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		t.Cleanup(func() { _ = meter.Close(context.Background()) })
		l.subscribe("edge", "KB Metered", billing.CycleMonthly, false)
		event := func(id string, started time.Time) billing.UsageEvent {
			return billing.UsageEvent{EventID: id, UserID: "edge", Provider: "openai", Model: "gpt-4", StatusCode: 200,
				Quantities: billing.Quantities{Input: 10}, Timestamp: started}
		}
		l.walk(at("2024-01-20 00:00"))
		for i := range 10 { // the plan's 10 calls
			if _, err := meter.Record(l.ctx, []billing.UsageEvent{event(fmt.Sprintf("edge-%d", i), l.now)}); err != nil {
				t.Fatal(err)
			}
		}
		l.walk(at("2024-01-31 23:50"))
		started := l.now
		r, err := meter.Reserve(l.ctx, billing.ReserveRequest{UserID: "edge", Provider: "openai", Model: "gpt-4", Tokens: 10, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		l.walk(at("2024-02-01 00:30"))
		if _, err := meter.Settle(l.ctx, r.ID, event("edge-late", started)); err != nil {
			t.Fatal(err)
		}
		l.walk(at("2024-02-01 00:00").Add(store.CloseGrace))
		l.checkInvoices("edge", []invoiceWant{
			{"2024-01", "2024-01-01 00:00", "2024-02-01 00:00", []line{{"base", "5"}, {"overage", "0.01"}}, "5.01"},
		})
	})
}
