package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestConcurrentReservesAdmitExactlyTheRemaining (invariant 4): 64
// reservations sent at once, one call each, against a plan with room for
// exactly 10 more (by its call limit, or by its cost limit) admit exactly
// 10, counting what the ledger already holds. On PostgreSQL they go one
// by one through DB.Reserve (alwrity_reserve, whose advisory lock is what
// serializes them: without it each reads the same counters and more are
// admitted); on SQLite, where DB.Reserve refuses to admit, through the
// meter, which admits in its own memory.
func TestConcurrentReservesAdmitExactlyTheRemaining(t *testing.T) {
	const n, remaining, used = 64, 10, 3
	unit := money.MustParse("0.01")
	cases := []struct {
		name string
		plan billing.Plan
		cost money.Amount // of each reservation
	}{
		{"calls", billing.Plan{TotalCallsLimit: billing.Ptr[int64](used + remaining)}, 0},
		{"cost", billing.Plan{MonthlyCostLimit: billing.Ptr(unit * (used + remaining))}, unit},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				db := storetest.Open(t, b)
				now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
				plan := c.plan
				plan.Name, plan.Tier, plan.IsActive = "KB Race "+c.name, "free", true
				id, err := db.CreatePlan(ctx, plan, now)
				if err != nil {
					t.Fatal(err)
				}
				user := "racer"
				if _, err := db.Subscribe(ctx, user, id, billing.CycleMonthly, store.SubscribeOptions{Immediate: true}, now); err != nil {
					t.Fatal(err)
				}
				// A free plan stays on the calendar months, the periods
				// storetest.Log writes the usage already spent into.
				p := billing.CalendarMonths().At(now)
				for i := range used {
					l := storetest.Log(user, fmt.Sprintf("used-%d", i), now.Add(-time.Hour))
					l.CostTotal = unit
					storetest.Record(t, db, l)
				}
				lim := billing.Limits{TotalCalls: plan.TotalCallsLimit}
				if plan.MonthlyCostLimit != nil {
					lim.Cost = billing.Ptr(int64(*plan.MonthlyCostLimit))
				}

				var reserve func(i int) error
				if b.Name == "postgres" {
					reserve = func(i int) error {
						return db.Reserve(ctx, billing.Reservation{ID: fmt.Sprintf("rsv-race-%02d", i), UserID: user, Period: p,
							Provider: "openai", Model: "gpt-4", Calls: 1, Tokens: 100, Cost: c.cost, Status: billing.ReservationHeld,
							ExpiresAt: now.Add(time.Hour), CreatedAt: now}, lim, now)
					}
				} else {
					meter := metering.New(db, func() time.Time { return now }, nil)
					t.Cleanup(func() { _ = meter.Close(context.Background()) })
					reserve = func(int) error {
						_, err := meter.Reserve(ctx, billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4",
							Tokens: 100, Cost: c.cost, TTL: time.Hour})
						return err
					}
				}

				start := make(chan struct{})
				errs := make([]error, n)
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = reserve(i)
					}()
				}
				close(start)
				wg.Wait()
				admitted := 0
				for i, err := range errs {
					switch billing.ErrorCode(err) {
					case "":
						if err != nil {
							t.Fatalf("reservation %d: %v", i, err)
						}
						admitted++
					case billing.CodeLimitExceeded:
					default:
						t.Fatalf("reservation %d: %v; want admitted or limit_exceeded", i, err)
					}
				}
				if admitted != remaining {
					t.Errorf("%d concurrent reservations against %d remaining admitted %d", n, remaining, admitted)
				}
				if b.Name == "postgres" {
					cs, err := db.Counters(ctx, user, p, "openai")
					if err != nil || cs.HeldTotal.Calls != remaining || cs.HeldTotal.Cost != c.cost*remaining {
						t.Errorf("held after the race = %+v, %v; want %d calls", cs.HeldTotal, err, remaining)
					}
				}
			})
		}
	})
}
