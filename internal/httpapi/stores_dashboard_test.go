package httpapi

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestDashboardReadsAgree: the dashboard's combined reads (the usage of the
// trend's periods and all time in one read, the unread alerts in one) give
// what the separate reads give: GET /usage's statistics, GET /trends'
// series, all time read alone, and a Store without UnreadAlerts, which
// lists the alerts with ListAlerts (for GET /usage too).
func TestDashboardReadsAgree(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, time.November, 15, 12, 0, 0, 0, time.UTC)
		rng := rand.New(rand.NewPCG(1, 2))
		var logs []billing.UsageLog
		for i := range 200 {
			// Within the trend's six months and before them.
			at := now.AddDate(0, -rng.IntN(10), -rng.IntN(14)).Truncate(time.Second)
			l := storetest.Log([]string{"u1", "u2"}[rng.IntN(2)], fmt.Sprintf("evt-%d", i), at)
			l.Provider = []string{"openai", "gemini", "anthropic"}[rng.IntN(3)]
			l.TokensInput, l.TokensOutput = rng.Int64N(5000), rng.Int64N(2000)
			l.CostTotal = money.Amount(rng.Int64N(int64(money.Dollar)))
			if rng.IntN(5) == 0 {
				l.StatusCode = 500
			}
			logs = append(logs, l)
		}
		storetest.Record(t, db, logs...)
		for i := range 40 {
			user := []string{"u1", "u1", "u2"}[rng.IntN(3)]
			period := []string{"2026-09", "2026-10", "2026-11"}[rng.IntN(3)]
			id, _, err := db.CreateAlert(ctx, billing.Alert{UserID: user, Type: billing.AlertUsageWarning,
				LimitKey: fmt.Sprintf("k%d", i), ThresholdPercentage: 80, Title: "Usage warning", Message: "80% used",
				Severity: "warning", BillingPeriod: period}, now.Add(-time.Duration(rng.IntN(4))*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if rng.IntN(4) == 0 {
				if err := db.MarkAlertRead(ctx, id, now); err != nil {
					t.Fatal(err)
				}
			}
		}

		clock := func() time.Time { return now }
		s := New(http.NewServeMux(), Config{Store: db, Now: clock})
		plain := struct{ Store }{db} // no UnreadAlerts
		if _, ok := Store(plain).(UnreadAlertsReader); ok {
			t.Fatal("the plain store reads unread alerts in one statement")
		}
		viaListAlerts := New(http.NewServeMux(), Config{Store: plain, Now: clock})
		for _, user := range []string{"u1", "u2", "nobody"} {
			d, err := s.dashboard(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if other, err := viaListAlerts.dashboard(ctx, user); err != nil || !reflect.DeepEqual(d, other) {
				t.Errorf("%s: the dashboard from ListAlerts differs (%v):\n%+v\n%+v", user, err, d, other)
			}
			if user == "u1" {
				// The data reaches past what the dashboard shows.
				var trend int64
				for _, n := range d.Trends.TotalCalls {
					trend += n
				}
				if len(d.Alerts) != dashboardAlerts || d.Summary.UnreadAlerts <= dashboardAlerts ||
					len(d.CurrentUsage.Alerts) == 0 || d.TotalUsage.TotalCalls <= trend {
					t.Fatalf("u1: %d of %d unread alerts shown, %d of the period; %d calls in all, %d in the trend",
						len(d.Alerts), d.Summary.UnreadAlerts, len(d.CurrentUsage.Alerts), d.TotalUsage.TotalCalls, trend)
				}
			}
			usage, err := s.usageStats(ctx, user, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"", "2026-10"} {
				a, errA := s.usageStats(ctx, user, key)
				b, errB := viaListAlerts.usageStats(ctx, user, key)
				if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
					t.Errorf("%s %q: GET /usage from ListAlerts differs (%v, %v):\n%+v\n%+v", user, key, errA, errB, a, b)
				}
			}
			if !reflect.DeepEqual(d.CurrentUsage, usage) {
				t.Errorf("%s: current usage differs from GET /usage:\n%+v\n%+v", user, d.CurrentUsage, usage)
			}
			v, err := s.userView(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			trends, current, err := s.trends(ctx, v, dashboardMonths)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.Trends, trends) {
				t.Errorf("%s: trends differ from GET /trends:\n%+v\n%+v", user, d.Trends, trends)
			}
			all, err := db.UsageForPeriods(ctx, user, []billing.Period{{Key: billing.AllTime}})
			if err != nil {
				t.Fatal(err)
			}
			recent, _, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: user, UnreadOnly: true, Limit: dashboardAlerts})
			if err != nil {
				t.Fatal(err)
			}
			if want := s.stats(v, all[0], current, recent); !reflect.DeepEqual(d.TotalUsage, want) {
				t.Errorf("%s: total usage differs from all time read alone:\n%+v\n%+v", user, d.TotalUsage, want)
			}
		}
	})
}
