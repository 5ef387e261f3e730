package app_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
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

// TestServerPurgesFinishedReservations: a running server deletes, on its
// own, the finished reservations older than the retention (35 days by
// default, ALWRITY_RESERVATION_RETENTION when set) and keeps the newer
// ones, and says how many went.
func TestServerPurgesFinishedReservations(t *testing.T) {
	day := 24 * time.Hour
	for _, tt := range []struct {
		name       string
		retention  time.Duration
		gone, kept []time.Duration // ages at the server's clock
	}{
		{"default", 0, []time.Duration{36 * day, 400 * day}, []time.Duration{34 * day, day}},
		{"60 days", 60 * day, []time.Duration{61 * day}, []time.Duration{59 * day, 36 * day}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, b storetest.Backend) {
				ctx := context.Background()
				url := b.URL(t)
				db := storetest.OpenURL(t, url)
				var gone, kept []string
				for i, age := range tt.gone {
					gone = append(gone, storetest.ReleasedReservation(t, db, "purge-user", now.Add(-age), uint64(i)))
				}
				for i, age := range tt.kept {
					kept = append(kept, storetest.ReleasedReservation(t, db, "purge-user", now.Add(-age), uint64(100+i)))
				}
				s := start(t, url, func(c *app.Config) { c.ReservationRetention = tt.retention })
				defer s.stop()
				deadline := time.Now().Add(20 * time.Second)
				for {
					left := 0
					for _, id := range gone {
						if _, err := db.GetReservation(ctx, id); billing.ErrorCode(err) != billing.CodeNotFound {
							left++
						}
					}
					if left == 0 && strings.Contains(s.logs.String(), "finished reservations purged") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%d of %d old reservations left 20 s after start; logs:\n%s", left, len(gone), s.logs)
					}
					time.Sleep(50 * time.Millisecond)
				}
				for _, id := range kept {
					if _, err := db.GetReservation(ctx, id); err != nil {
						t.Errorf("reservation %s within the retention: %v; want kept", id, err)
					}
				}
				var line string
				for _, l := range strings.Split(s.logs.String(), "\n") {
					if strings.Contains(l, "finished reservations purged") {
						line = l
					}
				}
				if !strings.Contains(line, `"level":"INFO"`) || !strings.Contains(line, `"reservations":`+strconv.Itoa(len(gone))) {
					t.Errorf("purge log line %s; want INFO with reservations %d", line, len(gone))
				}
				if n, err := db.HeldReservationsMismatch(ctx); err != nil || n != 0 {
					t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
				}
			})
		})
	}
}

// TestReservationRetentionConfig: ALWRITY_RESERVATION_RETENTION is a
// duration of at least 35 days; shorter ones are refused.
func TestReservationRetentionConfig(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == "ALWRITY_RESERVATION_RETENTION" {
				return v
			}
			return ""
		}
	}
	for v, want := range map[string]time.Duration{"": 0, "840h": 840 * time.Hour, "2160h": 90 * 24 * time.Hour} {
		c := app.DefaultConfig()
		if err := c.FromEnv(env(v)); err != nil || c.ReservationRetention != want {
			t.Errorf("%q: retention %s, %v; want %s", v, c.ReservationRetention, err, want)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"24h", "839h", "-1h"} {
		c := app.DefaultConfig()
		if err := c.FromEnv(env(v)); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ALWRITY_RESERVATION_RETENTION") {
			t.Errorf("%q: Validate = %v; want an error naming ALWRITY_RESERVATION_RETENTION", v, err)
		}
	}
	c := app.DefaultConfig()
	if err := c.FromEnv(env("a month")); err == nil || !strings.Contains(err.Error(), "ALWRITY_RESERVATION_RETENTION") {
		t.Errorf("garbage: %v; want an error naming ALWRITY_RESERVATION_RETENTION", err)
	}
}
