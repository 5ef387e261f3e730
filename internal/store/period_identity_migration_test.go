package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestPeriodIdentityMigration: migration 00010 makes a period (user, name,
// start). Rows written before it keep their counters, except a (user,
// name) whose ledger holds calls of two periods (a subscription started
// mid-month), which gets one summary row per period rebuilt from the
// ledger; alerts of a period that does not start at a calendar month get
// the start in their dedupe key, as billing.Alert.DedupeKey writes it; a
// held reservation takes the latest period of its name. Down merges the
// periods of one name again, and Up splits them again.
func TestPeriodIdentityMigration(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := openBare(t, url)
		if err := db.MigrateTo(ctx, 9); err != nil {
			t.Fatal(err)
		}
		raw := rawSQL(t, url)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := raw.ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		const june, sub = "2024-06-01T00:00:00.000000Z", "2024-06-10T10:00:00.000000Z"
		// A start with a fraction of a second (imported data): its key
		// takes whole seconds, truncated, as Go's time.Unix does.
		const frac = "2024-06-10T10:00:00.734512Z"
		// mid: 3 calls on the free plan, then 2 on a subscription that
		// began on the 10th, all in one summary row (version 9 kept one per
		// name). cal: 2 calls of a calendar month. paid: a subscription's
		// period alone.
		calls := []struct {
			user, start string
			n, tokens   int
			cost        int64
		}{{"mid", june, 3, 100, 7}, {"mid", sub, 2, 50, 11}, {"cal", june, 2, 10, 1}, {"paid", sub, 4, 20, 2}, {"frac", frac, 1, 10, 1}}
		seq := 0
		for _, c := range calls {
			for range c.n {
				seq++
				exec(`INSERT INTO api_usage_logs (event_id, user_id, provider, tokens_input, tokens_output, tokens_total,
					cost_total, response_time, status_code, "timestamp", billing_period, period_start, created_at)
					VALUES ($1, $2, 'openai', $3, 1, $4, $5, 0.5, $6, $7, '2024-06', $8, $7)`,
					fmt.Sprintf("e%03d", seq), c.user, c.tokens, c.tokens+1, c.cost, 200+300*(seq%2), c.start, c.start)
			}
		}
		exec(`INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end, total_calls, total_errors,
			tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at)
			SELECT user_id, billing_period, MIN(period_start), $1, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END),
				SUM(tokens_input), SUM(tokens_output), SUM(tokens_total), SUM(cost_total), SUM(response_time), $1, $1
			FROM api_usage_logs GROUP BY user_id, billing_period`, "2024-07-01T00:00:00.000000Z")
		exec(`INSERT INTO usage_summary_providers (user_id, billing_period, provider, calls, errors, tokens_input,
			tokens_output, tokens, cost, response_time_sum, updated_at)
			SELECT user_id, billing_period, provider, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END),
				SUM(tokens_input), SUM(tokens_output), SUM(tokens_total), SUM(cost_total), SUM(response_time), $1
			FROM api_usage_logs GROUP BY user_id, billing_period, provider`, "2024-07-01T00:00:00.000000Z")
		for _, u := range []string{"mid", "paid", "frac"} {
			exec(`INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage, title, message,
				billing_period, dedupe_key, created_at) VALUES ($1, 'usage_warning', 'total_calls', 80, 't', 'm', '2024-06', $2, $3)`,
				u, u+"|usage_warning|total_calls|80|2024-06", sub)
		}
		exec(`INSERT INTO reservations (id, user_id, billing_period, provider, calls, tokens, cost, status, expires_at, created_at)
			VALUES ('held-mid', 'mid', '2024-06', 'openai', 1, 10, 0, 'held', $1, $1)`, sub)

		junePeriod := billing.Period{Key: "2024-06", Start: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
		subPeriod := billing.Period{Key: "2024-06", Start: time.Date(2024, 6, 10, 10, 0, 0, 0, time.UTC)}
		check := func(stage string, want map[string]map[billing.Period]int64) {
			t.Helper()
			if m, err := db.Reconcile(ctx); err != nil || len(m) > 0 {
				t.Errorf("%s: reconcile: %v, %v", stage, m, err)
			}
			for user, periods := range want {
				for p, n := range periods {
					u, err := db.PeriodCounters(ctx, user, p)
					if err != nil {
						t.Fatal(err)
					}
					if u.Total.Calls != n || u.ByProvider["openai"].Calls != n {
						t.Errorf("%s: %s in %s from %s: %d calls (openai %d); want %d", stage, user, p.Key, p.Start, u.Total.Calls,
							u.ByProvider["openai"].Calls, n)
					}
				}
			}
		}
		// Up to the latest version: Reconcile reads its columns (00013's
		// last_event_at, filled from the ledger), and the way down below
		// takes every later migration's down too.
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		split := map[string]map[billing.Period]int64{
			"mid": {junePeriod: 3, subPeriod: 2}, "cal": {junePeriod: 2, subPeriod: 0}, "paid": {subPeriod: 4, junePeriod: 0}}
		check("up", split)
		keys := map[string]string{}
		rows, err := raw.QueryContext(ctx, `SELECT user_id, dedupe_key FROM usage_alerts`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var u, k string
			if err := rows.Scan(&u, &k); err != nil {
				t.Fatal(err)
			}
			keys[u] = k
		}
		rows.Close()
		// mid's row began on the free plan (its first writer): its alert
		// is the calendar month's. paid's began with the subscription.
		paidAlert := billing.Alert{UserID: "paid", Type: billing.AlertUsageWarning, LimitKey: "total_calls", ThresholdPercentage: 80,
			BillingPeriod: "2024-06", PeriodStart: subPeriod.Start}
		if want := paidAlert.DedupeKey(); keys["paid"] != want || keys["mid"] != "mid|usage_warning|total_calls|80|2024-06" ||
			want != "paid|usage_warning|total_calls|80|2024-06|"+strconv.FormatInt(subPeriod.Start.Unix(), 10) {
			t.Errorf("alert keys %v; want paid's %q and mid's unchanged", keys, want)
		}
		fracAlert := paidAlert
		fracAlert.UserID, fracAlert.PeriodStart = "frac", time.Date(2024, 6, 10, 10, 0, 0, 734512000, time.UTC)
		if want := fracAlert.DedupeKey(); keys["frac"] != want {
			t.Errorf("alert key of a start with a fraction of a second %q; want %q", keys["frac"], want)
		}
		var held sql.NullString
		if err := raw.QueryRowContext(ctx, `SELECT CAST(period_start AS TEXT) FROM reservations WHERE id = 'held-mid'`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		r, err := db.GetReservation(ctx, "held-mid")
		if err != nil || !r.Period.Start.Equal(subPeriod.Start) {
			t.Errorf("held reservation %+v (%v), period_start %v; want the subscription's period", r, err, held)
		}

		// Two alerts of one limit in the two periods named 2024-06, the
		// subscription's written first: Down keeps the calendar month's.
		exec(`INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage, title, message,
			billing_period, period_start, dedupe_key, created_at)
			VALUES ('cal', 'usage_warning', 'total_calls', 90, 't', 'm', '2024-06', $1, $2, $3)`,
			sub, "cal|usage_warning|total_calls|90|2024-06|"+strconv.FormatInt(subPeriod.Start.Unix(), 10), sub)
		exec(`INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage, title, message,
			billing_period, period_start, dedupe_key, created_at)
			VALUES ('cal', 'usage_warning', 'total_calls', 90, 't', 'm', '2024-06', $1, $2, $3)`,
			june, "cal|usage_warning|total_calls|90|2024-06", sub)
		if err := db.MigrateTo(ctx, 9); err != nil {
			t.Fatal(err)
		}
		var calKey string
		if err := raw.QueryRowContext(ctx, `SELECT dedupe_key FROM usage_alerts WHERE user_id = 'cal' AND threshold_percentage = 90`).Scan(&calKey); err != nil ||
			calKey != "cal|usage_warning|total_calls|90|2024-06" {
			t.Errorf("down: cal's alerts of one limit in two periods: %q, %v; want the calendar month's alone", calKey, err)
		}
		var n int64
		if err := raw.QueryRowContext(ctx, `SELECT total_calls FROM usage_summaries WHERE user_id = 'mid'`).Scan(&n); err != nil || n != 5 {
			t.Errorf("down: mid's one row of 2024-06 has %d calls (%v); want 5", n, err)
		}
		if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM usage_alerts WHERE dedupe_key = 'paid|usage_warning|total_calls|80|2024-06'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("down: paid's alert key restored %d times (%v); want 1", n, err)
		}
		// Up to the latest version: Reconcile reads its columns (00013's
		// last_event_at, filled from the ledger), and the way down below
		// takes every later migration's down too.
		if _, err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		check("up again", split)
	})
}
