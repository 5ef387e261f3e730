package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestEditKeepsAnActiveFreePlan: an edit retires the old version, so an
// edit of the only active free plan into a paid or inactive version would
// leave users without a subscription with no plan. It is refused as a
// conflict that says why, and DefaultPlan still answers; a free edit, or
// one made while another free plan is offered, goes through.
func TestEditKeepsAnActiveFreePlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx, now := context.Background(), at("2024-01-01 00:00")
		db := storetest.Open(t, b)
		free, err := db.DefaultPlan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range map[string]billing.Plan{
			"paid":     {Tier: "free", PriceMonthly: usd("1"), PriceYearly: usd("10"), IsActive: true},
			"inactive": {Tier: "free"},
		} {
			_, err := db.EditPlan(ctx, free.ID, p, false, now)
			if billing.ErrorCode(err) != billing.CodeConflict || !strings.Contains(err.Error(), "only active free plan") {
				t.Errorf("%s edit of the only free plan: %v; want a conflict naming the only active free plan", name, err)
			}
			if d, err := db.DefaultPlan(ctx); err != nil || d.ID != free.ID {
				t.Fatalf("after the refused %s edit the default plan is %d, %v; want plan %d", name, d.ID, err, free.ID)
			}
		}

		res, err := db.EditPlan(ctx, free.ID, billing.Plan{Tier: "free", IsActive: true, TotalCallsLimit: billing.Ptr[int64](500)}, false, now)
		if err != nil {
			t.Fatalf("free edit of the free plan: %v", err)
		}
		other, err := db.CreatePlan(ctx, billing.Plan{Name: "Free Too", Tier: "free", IsActive: true}, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.EditPlan(ctx, res.Plan.ID, billing.Plan{Tier: "basic", PriceMonthly: usd("1"), PriceYearly: usd("10"), IsActive: true}, false, now); err != nil {
			t.Fatalf("paid edit while another free plan is offered: %v", err)
		}
		if d, err := db.DefaultPlan(ctx); err != nil || d.ID != other {
			t.Errorf("default plan %+v, %v; want the other free plan %d", d, err, other)
		}
	})
}

// TestDeactivationsKeepAnActiveFreePlan: two processes deactivating the
// last two free plans at once leave one of them offered; the guard runs in
// the deactivating transaction, so neither can pass it on a stale read.
func TestDeactivationsKeepAnActiveFreePlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx, now := context.Background(), at("2024-01-01 00:00")
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		free, err := db.DefaultPlan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 5 {
			other, err := db.CreatePlan(ctx, billing.Plan{Name: "Free " + string(rune('A'+round)), Tier: "free", IsActive: true}, now)
			if err != nil {
				t.Fatal(err)
			}
			ids := []int64{free.ID, other}
			dbs := []*store.DB{storetest.OpenURL(t, url), storetest.OpenURL(t, url)}
			errs := make([]error, 2)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range ids {
				wg.Go(func() {
					<-start
					_, errs[i] = dbs[i].SetPlanActive(ctx, ids[i], false, now.Add(time.Duration(round)*time.Second))
				})
			}
			close(start)
			wg.Wait()
			refused := 0
			for _, err := range errs {
				switch code := billing.ErrorCode(err); {
				case err == nil:
				case code == billing.CodeConflict:
					refused++
				default:
					t.Fatalf("deactivate: %v", err)
				}
			}
			d, err := db.DefaultPlan(ctx)
			if refused != 1 || err != nil {
				t.Fatalf("round %d: %d of 2 deactivations refused, default plan %d, %v; want 1 refused and a free plan left", round, refused, d.ID, err)
			}
			// The one left offered is deactivated with the next round's plan.
			free = d
		}
	})
}
