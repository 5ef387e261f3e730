package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestLateUsageIsAdjustedOnTheNextInvoice: calls of May 20 reported after
// May's invoice was written (events are accepted up to billing.MaxEventAge
// late) are billed once, on June's invoice, as an adjustment line with
// May's overage for them; July's invoice, and the invoices of a user whose
// usage came on time, have none. Five processes close June at once.
func TestLateUsageIsAdjustedOnTheNextInvoice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		l := newLifecycleURL(t, url, at("2024-05-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("late", "KB Metered", billing.CycleMonthly, false)
		l.subscribe("ontime", "KB Metered", billing.CycleMonthly, false)
		l.walk(at("2024-05-20 00:00"))
		l.record(meter, "late", "late-may", 12, 10)
		l.record(meter, "ontime", "ontime-may", 12, 10)
		l.walk(at("2024-06-05 00:00"))
		l.recordAt(meter, "late", "late-may-late", 3, 10, at("2024-05-20 00:00"))

		l.now = at("2024-07-01 00:00").Add(store.CloseGrace)
		var wg sync.WaitGroup
		for range 5 {
			other := storetest.OpenURL(t, url)
			wg.Go(func() {
				if _, err := other.CloseDue(l.ctx, l.now, 1000); err != nil {
					t.Errorf("close: %v", err)
				}
			})
		}
		wg.Wait()
		l.walk(at("2024-08-05 00:00"))

		l.checkInvoices("late", []invoiceWant{
			{"2024-05", "2024-05-01 00:00", "2024-06-01 00:00", []line{{"base", "5"}, {"overage", "0.02"}}, "5.02"},
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "5"}, {"adjustment", "0.03"}}, "5.03"},
			{"2024-07", "2024-07-01 00:00", "2024-08-01 00:00", []line{{"base", "5"}}, "5"},
		})
		l.checkInvoices("ontime", []invoiceWant{
			{"2024-05", "2024-05-01 00:00", "2024-06-01 00:00", []line{{"base", "5"}, {"overage", "0.02"}}, "5.02"},
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "5"}}, "5"},
			{"2024-07", "2024-07-01 00:00", "2024-08-01 00:00", []line{{"base", "5"}}, "5"},
		})
		june := l.invoices("late")[1]
		if len(june.Lines) != 2 {
			t.Fatalf("June's lines %+v; want the base fee and an adjustment", june.Lines)
		}
		adj := june.Lines[1]
		if june.Overage != usd("0.03") || adj.Quantity != 3 || !adj.PeriodStart.Equal(at("2024-05-01 00:00")) {
			t.Errorf("June: overage %s, adjustment %+v; want 0.03 for May's 3 calls", june.Overage, adj)
		}
	})
}

// TestLateUsageWithinLimitsIsRecorded: late usage that costs no overage
// (a plan with hard limits) still appears on the next invoice, as a line
// of no amount, so that every call is on an invoice.
func TestLateUsageWithinLimitsIsRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-05-01 00:00"))
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		l.subscribe("pro", "KB Pro", billing.CycleMonthly, false)
		l.walk(at("2024-06-05 00:00"))
		l.recordAt(meter, "pro", "pro-may-late", 2, 10, at("2024-05-31 23:00"))
		l.walk(at("2024-07-05 00:00"))
		l.checkInvoices("pro", []invoiceWant{
			{"2024-05", "2024-05-01 00:00", "2024-06-01 00:00", []line{{"base", "30"}}, "30"},
			{"2024-06", "2024-06-01 00:00", "2024-07-01 00:00", []line{{"base", "30"}, {"adjustment", "0"}}, "30"},
		})
		if lines := l.invoices("pro")[0].Lines; len(lines) != 2 || lines[1].Quantity != 2 {
			t.Errorf("June's lines %+v; want an adjustment for May's 2 calls", lines)
		}
	})
}
