package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestServerClosesBillingPeriods: a running server closes the periods that
// have ended on its own, writing their invoices and renewing.
func TestServerClosesBillingPeriods(t *testing.T) {
	ctx := context.Background()
	url := storetest.SQLiteURL(t)
	db := storetest.OpenURL(t, url)
	planID, err := db.CreatePlan(ctx, billing.Plan{Name: "Job Pro", Tier: "pro", PriceMonthly: money.MustParse("30"), IsActive: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	// Subscribed 45 days before the server's clock: one period has ended.
	if _, err := db.Subscribe(ctx, "job-user", planID, billing.CycleMonthly, store.SubscribeOptions{}, now.Add(-45*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	s := start(t, url)
	defer s.stop()
	deadline := time.Now().Add(20 * time.Second)
	for {
		invs, n, err := db.Invoices(ctx, store.InvoiceFilter{UserID: "job-user"})
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if invs[0].Total != money.MustParse("30") {
				t.Fatalf("invoice total %s; want 30", invs[0].Total)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d invoices 20 s after start; want the ended period's one", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub, err := db.CurrentSubscription(ctx, "job-user")
	if err != nil || sub == nil || !sub.CurrentPeriodEnd.After(now) {
		t.Fatalf("subscription after the close: %+v, %v; want renewed past the server's clock", sub, err)
	}
}
