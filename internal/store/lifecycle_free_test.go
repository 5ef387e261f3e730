package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestFreePlanResubscriptionKeepsItsLimit: a user who subscribes to a free
// plan, uses its monthly limit, cancels at once and subscribes again, four
// times in one month, is admitted the plan's limit once in all: a free
// plan stays on the calendar months, so none of this opens a new period.
func TestFreePlanResubscriptionKeepsItsLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		l := newLifecycle(t, b, at("2024-01-03 09:00"))
		const limit = 5
		id, err := l.db.CreatePlan(l.ctx, billing.Plan{Name: "KB Free Capped", Tier: "free", IsActive: true,
			TotalCallsLimit: billing.Ptr[int64](limit)}, l.now)
		if err != nil {
			t.Fatal(err)
		}
		l.plans["KB Free Capped"] = id
		meter := metering.New(l.db, func() time.Time { return l.now }, nil)
		t.Cleanup(func() { _ = meter.Close(context.Background()) })

		admitted := 0
		for round := range 4 {
			l.now = l.now.Add(5 * time.Hour)
			sub := l.subscribe("hopper", "KB Free Capped", billing.CycleMonthly, false).Subscription
			if p := sub.Schedule().At(l.now); p != billing.CalendarMonths().At(l.now) {
				t.Errorf("round %d: the free subscription's period is %+v; want the calendar month", round, p)
			}
			for i := range 2 * limit {
				r, err := meter.Reserve(l.ctx, billing.ReserveRequest{UserID: "hopper", Provider: "openai", Model: "gpt-4", Tokens: 100})
				if billing.ErrorCode(err) == billing.CodeLimitExceeded {
					continue
				}
				if err != nil {
					t.Fatalf("reserve: %v", err)
				}
				admitted++
				if _, err := meter.Settle(l.ctx, r.ID, billing.UsageEvent{EventID: fmt.Sprintf("hop-%d-%d", round, i), UserID: "hopper",
					Provider: "openai", Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100}, Timestamp: l.now}); err != nil {
					t.Fatal(err)
				}
			}
			l.cancel("hopper", true)
		}
		if admitted != limit {
			t.Errorf("admitted %d calls in four rounds of subscribe, use and cancel; want the plan's %d", admitted, limit)
		}
	})
}
