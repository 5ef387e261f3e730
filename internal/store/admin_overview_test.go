package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func TestListUserOverviews(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		nov := date(2026, time.November, 10, 12, 0, 0, 0)
		oct := date(2026, time.October, 25, 12, 0, 0, 0)
		sep := date(2026, time.September, 5, 12, 0, 0, 0)

		a1 := storetest.Log("alice", "a1", nov)
		a1.TokensInput, a1.TokensOutput, a1.CostTotal = 100, 50, 3*money.Cent
		a2 := storetest.Log("alice", "a2", nov.Add(time.Hour))
		a2.Provider, a2.StatusCode, a2.CostTotal = "gemini", 500, money.Cent
		b1 := storetest.Log("bob", "b1", oct)
		b1.CostTotal = 2 * money.Dollar
		old := storetest.Log("carol", "c1", sep) // outside the asked periods
		storetest.Record(t, db, a1, a2, b1, old)

		plans, err := db.ListPlans(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		pro := plans[len(plans)-1].ID
		anchor := date(2026, time.October, 20, 0, 0, 0, 0)
		// An older cancelled subscription and a newer active one: the
		// active one is current.
		if _, err := db.CreateSubscription(ctx, billing.Subscription{UserID: "bob", PlanID: plans[0].ID, BillingCycle: "monthly",
			Status: billing.StatusCancelled, Anchor: anchor, CurrentPeriodStart: anchor, CurrentPeriodEnd: anchor.AddDate(0, 1, 0)}, anchor); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateSubscription(ctx, billing.Subscription{UserID: "bob", PlanID: pro, BillingCycle: "monthly",
			Status: billing.StatusActive, Anchor: anchor, CurrentPeriodStart: anchor, CurrentPeriodEnd: anchor.AddDate(0, 1, 0)}, anchor.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: "alw_dave0000", UserID: "dave", Role: billing.RoleUser, CreatedAt: nov}, "h1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: "alw_admin000", Role: billing.RoleAdmin, CreatedAt: nov}, "h2"); err != nil {
			t.Fatal(err)
		}

		got, err := db.ListUserOverviews(ctx, []string{"2026-11", "2026-10"}, 100)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range got {
			ids = append(ids, u.UserID)
		}
		if want := []string{"alice", "bob", "carol", "dave"}; !slices.Equal(ids, want) {
			t.Fatalf("users = %v, want %v (admin keys are not users)", ids, want)
		}
		alice, bob, carol, dave := got[0], got[1], got[2], got[3]
		if alice.Subscription != nil || dave.Subscription != nil {
			t.Errorf("alice and dave have no subscription: %+v %+v", alice.Subscription, dave.Subscription)
		}
		if bob.Subscription == nil || bob.Subscription.PlanID != pro || bob.Subscription.Status != billing.StatusActive {
			t.Fatalf("bob's current subscription = %+v, want the active one on plan %d", bob.Subscription, pro)
		}
		au := alice.Usage["2026-11"]
		if au.Total.Calls != 2 || au.Total.Errors != 1 || au.Total.Cost != 4*money.Cent || au.Total.Tokens() != 150 {
			t.Errorf("alice's November totals = %+v", au.Total)
		}
		if c := au.ByProvider["gemini"]; c.Calls != 1 || c.Cost != money.Cent {
			t.Errorf("alice's gemini = %+v", c)
		}
		if c := au.ByProvider["openai"]; c.Calls != 1 || c.Cost != 3*money.Cent {
			t.Errorf("alice's openai = %+v", c)
		}
		if bu := bob.Usage["2026-10"]; bu.Total.Cost != 2*money.Dollar || bu.Total.Calls != 1 {
			t.Errorf("bob's October = %+v", bu.Total)
		}
		if len(carol.Usage) != 0 || len(dave.Usage) != 0 {
			t.Errorf("carol and dave have no usage in the periods: %+v %+v", carol.Usage, dave.Usage)
		}

		limited, err := db.ListUserOverviews(ctx, nil, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(limited) != 2 || limited[1].UserID != "bob" || limited[1].Subscription == nil {
			t.Errorf("limit 2 = %+v", limited)
		}
	})
}

func TestListUserOverviewsEmpty(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		got, err := storetest.Open(t, b).ListUserOverviews(context.Background(), []string{"2026-11"}, 10)
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("no users: %v, %v", got, err)
		}
	})
}

func TestListRecentAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		for i, user := range []string{"u1", "u2", "u3"} {
			a := baseAlert()
			a.UserID = user
			if _, _, err := db.CreateAlert(ctx, a, alertNow.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.ListRecentAlerts(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].UserID != "u3" || got[1].UserID != "u2" {
			t.Fatalf("recent alerts = %+v, want u3 then u2", got)
		}
	})
}
