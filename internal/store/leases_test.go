package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestShrinkLeaseGivesBackOnce (PostgreSQL): a give-back names what the
// row held and what it holds after, so one repeated after a lost answer
// gives nothing back twice; a give-back that would add units is refused;
// a finished lease holds nothing.
func TestShrinkLeaseGivesBackOnce(t *testing.T) {
	ctx := context.Background()
	db := storetest.OpenURL(t, storetest.PostgresURL(t))
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	p := billing.CalendarMonths().At(now)
	if err := db.Reserve(ctx, billing.Reservation{ID: "lse_1", UserID: "u", Period: p, Provider: "openai", Calls: 10, Tokens: 1000,
		Cost: 50, ExpiresAt: now.Add(time.Hour), CreatedAt: now}, billing.Limits{}, now); err != nil {
		t.Fatal(err)
	}
	held := func() billing.Counters {
		c, err := db.Counters(ctx, "u", p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		return c.HeldTotal
	}
	from, to := store.LeaseUnits{Calls: 10, Tokens: 1000, Cost: 50}, store.LeaseUnits{Calls: 7, Tokens: 700, Cost: 35}
	for attempt := range 2 {
		cur, ok, err := db.ShrinkLease(ctx, "lse_1", from, to)
		if err != nil || !ok || cur != to {
			t.Fatalf("give-back %d: %+v, %v, %v; want %+v, held", attempt+1, cur, ok, err, to)
		}
		if h := held(); h.Calls != 7 || h.Cost != 35 {
			t.Fatalf("after give-back %d the lease holds %+v; want 7 calls", attempt+1, h)
		}
	}
	if _, _, err := db.ShrinkLease(ctx, "lse_1", to, from); err == nil {
		t.Error("a give-back that adds units was accepted")
	}
	if _, _, err := db.ShrinkLease(ctx, "lse_1", to, store.LeaseUnits{Calls: -1}); err == nil {
		t.Error("a give-back to negative units was accepted")
	}
	if _, err := db.FinishReservations(ctx, []string{"lse_1"}, billing.ReservationReleased, now); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.ShrinkLease(ctx, "lse_1", to, store.LeaseUnits{Calls: 1}); err != nil || ok {
		t.Errorf("give-back to a finished lease: held %v, %v; want not held", ok, err)
	}
	if h := held(); h != (billing.Counters{}) {
		t.Errorf("a finished lease holds %+v", h)
	}
}
