package store_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestUnreadAlerts checks UnreadAlerts' one statement against a model of
// the stored alerts (newest first, ties by id) and against ListAlerts, for
// users with and without alerts, periods with and without them, and every
// kind of limit.
func TestUnreadAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		rng := rand.New(rand.NewPCG(3, 5))
		base := date(2026, time.November, 1, 0, 0, 0, 0)
		var stored []billing.Alert
		for i := range 90 {
			a := billing.Alert{
				UserID: []string{"u1", "u1", "u2"}[rng.IntN(3)], Type: billing.AlertUsageWarning,
				LimitKey: fmt.Sprintf("k%d", i), ThresholdPercentage: 80, Title: "Usage warning",
				Message: "80% used", Severity: "warning", BillingPeriod: []string{"2026-09", "2026-10", "2026-11"}[rng.IntN(3)],
			}
			// Few distinct instants, so many alerts tie and id decides.
			at := base.Add(time.Duration(rng.IntN(6)) * time.Hour)
			id, created, err := db.CreateAlert(ctx, a, at)
			if err != nil || !created {
				t.Fatalf("create alert: %v %v", created, err)
			}
			a.ID, a.CreatedAt = id, at
			if rng.IntN(3) == 0 {
				if err := db.MarkAlertRead(ctx, id, at); err != nil {
					t.Fatal(err)
				}
				a.IsRead = true
			}
			stored = append(stored, a)
		}
		slices.SortFunc(stored, func(x, y billing.Alert) int {
			return cmp.Or(y.CreatedAt.Compare(x.CreatedAt), cmp.Compare(y.ID, x.ID))
		})
		// newest returns the ids of the user's newest n unread alerts of
		// the period (any period for ""), and how many there are in all.
		newest := func(user, period string, n int) ([]int64, int64) {
			ids := []int64{}
			var count int64
			for _, a := range stored {
				if a.UserID == user && !a.IsRead && (period == "" || a.BillingPeriod == period) {
					count++
					if len(ids) < n {
						ids = append(ids, a.ID)
					}
				}
			}
			return ids, count
		}
		idsOf := func(alerts []billing.Alert) []int64 {
			ids := []int64{}
			for _, a := range alerts {
				ids = append(ids, a.ID)
			}
			return ids
		}
		for _, user := range []string{"u1", "u2", "nobody"} {
			for _, key := range []string{"2026-10", "2026-11", "2027-01"} {
				for _, lim := range [][2]int{{5, 10}, {0, 0}, {1, 0}, {0, 3}, {2, 2}, {100, 100}} {
					recent, ofPeriod := lim[0], lim[1]
					name := fmt.Sprintf("%s %s recent=%d of period=%d", user, key, recent, ofPeriod)
					p, err := billing.CalendarMonths().ByKey(key)
					if err != nil {
						t.Fatal(err)
					}
					got, err := db.UnreadAlerts(ctx, user, p, recent, ofPeriod)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					wantRecent, wantCount := newest(user, "", recent)
					wantPeriod, _ := newest(user, key, ofPeriod)
					if !reflect.DeepEqual(idsOf(got.Recent), wantRecent) || !reflect.DeepEqual(idsOf(got.Period), wantPeriod) ||
						got.Count != wantCount {
						t.Errorf("%s: recent %v, period %v, count %d; want %v, %v, %d", name,
							idsOf(got.Recent), idsOf(got.Period), got.Count, wantRecent, wantPeriod, wantCount)
					}
					// The same alerts, field for field, as ListAlerts reads them.
					listed, _, unread, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: user, UnreadOnly: true, Limit: recent})
					if err != nil {
						t.Fatal(err)
					}
					inPeriod, _, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: user, UnreadOnly: true, BillingPeriod: key, Limit: ofPeriod})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got.Recent, listed) || !reflect.DeepEqual(got.Period, inPeriod) || got.Count != unread {
						t.Errorf("%s: differs from ListAlerts:\n got %+v\nwant %+v", name, got, listed)
					}
				}
			}
		}
	})
}

// TestUnreadAlertsOfASubscriptionsFirstPeriod: the calendar month a
// subscription began in and the subscription's first period share a name;
// each alerts once for the same limit, and the subscription's period lists
// only its own alerts (the calendar month, which starts earlier, lists
// both, as its usage sums both periods of the name).
func TestUnreadAlertsOfASubscriptionsFirstPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := openMigrated(t, b)
		calendar := billing.Period{Key: "2024-06", Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2024, 6, 10, 10, 0, 0, 0, time.UTC)}
		sub := billing.Period{Key: "2024-06", Start: calendar.End, End: time.Date(2024, 7, 10, 10, 0, 0, 0, time.UTC)}
		var ids []int64
		for _, p := range []billing.Period{calendar, sub, sub} {
			id, created, err := db.CreateAlert(ctx, billing.Alert{UserID: "u", Type: billing.AlertUsageWarning, LimitKey: "total_calls",
				ThresholdPercentage: 80, Title: "t", Message: "m", Severity: "warning", BillingPeriod: p.Key, PeriodStart: p.Start}, p.Start.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if created {
				ids = append(ids, id)
			}
		}
		if len(ids) != 2 {
			t.Fatalf("created %d alerts; want one per period (the repeat is deduplicated)", len(ids))
		}
		for _, c := range []struct {
			p    billing.Period
			want []int64
		}{{sub, ids[1:]}, {calendar, []int64{ids[1], ids[0]}}} {
			got, err := db.UnreadAlerts(ctx, "u", c.p, 10, 10)
			if err != nil {
				t.Fatal(err)
			}
			var period []int64
			for _, a := range got.Period {
				period = append(period, a.ID)
			}
			if !slices.Equal(period, c.want) || len(got.Recent) != 2 || got.Count != 2 {
				t.Errorf("period from %s: its alerts %v, %d recent, %d unread; want %v, 2, 2", c.p.Start, period, len(got.Recent), got.Count, c.want)
			}
		}
	})
}
