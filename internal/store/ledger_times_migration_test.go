package store_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestLedgerIntegerTimesMigration: migration 00014 turns SQLite's ledger
// times from store.ts's text into Unix microseconds. Rows written as
// version 13 held them read back with the same instants to the
// microsecond (a fraction with leading zeros, the last microsecond of a
// second, times before 2001 and before 1970), the summaries still reconcile with the
// ledger, the table keeps its indexes, and Down gives back the very text
// it started from. New rows of both INSERT shapes are stored as integers.
// A stored time in another layout stops the migration, which then changes
// nothing. On PostgreSQL the migration does nothing and the same reads
// hold.
func TestLedgerIntegerTimesMigration(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := openBare(t, url)
		if err := db.MigrateTo(ctx, 13); err != nil {
			t.Fatal(err)
		}
		raw := rawSQL(t, url)
		sqlite := db.Dialect() == store.SQLite
		rows := []struct{ event, at, start, recorded string }{
			{"m-1", "2026-03-31T23:59:59.999999Z", "2026-03-01T00:00:00.000000Z", "2026-04-01T00:00:00.000001Z"},
			{"m-2", "2026-03-05T10:00:00.000042Z", "2026-03-01T00:00:00.000000Z", "2026-03-05T10:00:01.500000Z"},
			{"m-3", "1999-12-31T23:59:59.734512Z", "1999-12-01T00:00:00.000000Z", "2026-03-05T10:00:02.000000Z"},
			{"m-4", "1969-12-31T23:59:59.734512Z", "1969-12-01T00:00:00.000000Z", "1969-12-31T23:59:58.000001Z"},
		}
		for i, r := range rows {
			mustExec(t, raw, `INSERT INTO api_usage_logs (event_id, user_id, provider, model_used, tokens_input, tokens_output,
				tokens_total, cost_total, status_code, error_message, metadata, "timestamp", billing_period, period_start, created_at)
				VALUES ($1, 'mig', 'openai', 'gpt-4', $2, 1, $3, 7, $4, $5, $6, $7, $8, $9, $10)`,
				r.event, 10*(i+1), 10*(i+1)+1, []int{200, 502, 200, 200}[i], []any{nil, "upstream", nil, nil}[i], []any{nil, nil, `{"k":1}`, nil}[i],
				r.at, r.at[:7], r.start, r.recorded)
		}
		// Summaries as the store keeps them, so that Reconcile has both
		// sides to compare after the migration.
		mustExec(t, raw, `INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end, total_calls, total_errors,
			tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at, last_event_at)
			SELECT user_id, billing_period, period_start, period_start, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END),
				SUM(tokens_input), SUM(tokens_output), SUM(tokens_total), SUM(cost_total), 0, MIN(created_at), MAX(created_at),
				MAX("timestamp")
			FROM api_usage_logs GROUP BY user_id, billing_period, period_start`)
		mustExec(t, raw, `INSERT INTO usage_summary_providers (user_id, billing_period, period_start, provider, calls, errors,
			tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
			SELECT user_id, billing_period, period_start, provider, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END),
				SUM(tokens_input), SUM(tokens_output), SUM(tokens_total), SUM(cost_total), 0, MAX(created_at)
			FROM api_usage_logs GROUP BY user_id, billing_period, period_start, provider`)
		indexes := func() []string {
			t.Helper()
			q := `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'api_usage_logs' ORDER BY indexname`
			if sqlite {
				q = `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'api_usage_logs' ORDER BY name`
			}
			rs, err := raw.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			var names []string
			for rs.Next() {
				var n string
				if err := rs.Scan(&n); err != nil {
					t.Fatal(err)
				}
				names = append(names, n)
			}
			return names
		}
		storedText := func() [][3]string {
			t.Helper()
			q := `SELECT "timestamp", period_start, created_at FROM api_usage_logs ORDER BY id`
			if !sqlite {
				q = `SELECT to_char("timestamp" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
					to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
					to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM api_usage_logs ORDER BY id`
			}
			rs, err := raw.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			var out [][3]string
			for rs.Next() {
				var v [3]string
				if err := rs.Scan(&v[0], &v[1], &v[2]); err != nil {
					t.Fatal(err)
				}
				out = append(out, v)
			}
			return out
		}
		var before [][3]string
		for _, r := range rows {
			before = append(before, [3]string{r.at, r.start, r.recorded})
		}
		if got := storedText(); !reflect.DeepEqual(got, before) {
			t.Fatalf("version 13 holds %v, want %v", got, before)
		}
		indexesBefore := indexes()

		// A time in another layout stops the migration, and nothing of it
		// stays.
		if sqlite {
			mustExec(t, raw, `INSERT INTO api_usage_logs (event_id, user_id, provider, "timestamp", billing_period, period_start, created_at)
				VALUES ('odd', 'mig', 'openai', '2026-03-05 10:00:00', '2026-03', '2026-03-01T00:00:00.000000Z', '2026-03-05T10:00:00.000000Z')`)
			if err := db.MigrateTo(ctx, 14); err == nil || !strings.Contains(err.Error(), "NOT NULL") {
				t.Fatalf("migrating a ledger with a time in another layout: %v; want the NOT NULL constraint to stop it", err)
			}
			if cur, _, err := db.SchemaVersion(ctx); err != nil || cur != 13 {
				t.Fatalf("schema version after the refused migration %d (%v), want 13", cur, err)
			}
			if got := indexes(); !reflect.DeepEqual(got, indexesBefore) {
				t.Fatalf("indexes after the refused migration %v, want %v", got, indexesBefore)
			}
			mustExec(t, raw, `DELETE FROM api_usage_logs WHERE event_id = 'odd'`)
			if got := storedText(); !reflect.DeepEqual(got, before) {
				t.Fatalf("after the refused migration the ledger holds %v, want %v", got, before)
			}
		}

		if err := db.MigrateTo(ctx, 14); err != nil {
			t.Fatal(err)
		}
		if got := indexes(); !reflect.DeepEqual(got, indexesBefore) {
			t.Errorf("indexes after the migration %v, want %v", got, indexesBefore)
		}
		if sqlite {
			var notInt int
			if err := raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_usage_logs WHERE typeof("timestamp") <> 'integer'
				OR typeof(period_start) <> 'integer' OR typeof(created_at) <> 'integer'`).Scan(&notInt); err != nil || notInt != 0 {
				t.Errorf("%d rows (%v) hold a time that is not an integer", notInt, err)
			}
			for _, r := range rows {
				at, _ := time.Parse(time.RFC3339Nano, r.at)
				recorded, _ := time.Parse(time.RFC3339Nano, r.recorded)
				var gotAt, gotRecorded int64
				if err := raw.QueryRowContext(ctx, `SELECT "timestamp", created_at FROM api_usage_logs WHERE event_id = $1`, r.event).
					Scan(&gotAt, &gotRecorded); err != nil || gotAt != at.UnixMicro() || gotRecorded != recorded.UnixMicro() {
					t.Errorf("%s holds %d, %d (%v); want %d, %d", r.event, gotAt, gotRecorded, err, at.UnixMicro(), recorded.UnixMicro())
				}
			}
		}
		logs, total, err := db.ListLogs(ctx, billing.LogFilter{UserID: "mig", Limit: 10})
		if err != nil || total != int64(len(rows)) || len(logs) != len(rows) {
			t.Fatalf("ListLogs after the migration: %d of %d (%v), want %d", len(logs), total, err, len(rows))
		}
		// Newest first: m-1, m-2, m-3, m-4.
		for i, r := range rows {
			at, _ := time.Parse(time.RFC3339Nano, r.at)
			start, _ := time.Parse(time.RFC3339Nano, r.start)
			if l := logs[i]; l.EventID != r.event || !l.Timestamp.Equal(at) || !l.PeriodStart.Equal(start) {
				t.Errorf("log %d: %s at %s from %s; want %s at %s from %s", i, l.EventID, l.Timestamp.Format(time.RFC3339Nano),
					l.PeriodStart.Format(time.RFC3339Nano), r.event, r.at, r.start)
			}
		}
		// A period's page reads between its bounds, which come from the
		// summaries' text.
		march, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: "mig", BillingPeriod: "2026-03", Limit: 10})
		if err != nil || len(march) != 2 || march[0].EventID != "m-1" || march[1].EventID != "m-2" {
			t.Errorf("ListLogs of 2026-03 after the migration: %v (%v), want m-1 and m-2", eventIDs(march), err)
		}
		page, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: "mig", Limit: 10,
			Before: &billing.LogPosition{Timestamp: logs[0].Timestamp, ID: logs[0].ID}})
		if err != nil || !slices.Equal(eventIDs(page), []string{"m-2", "m-3", "m-4"}) {
			t.Errorf("keyset page after m-1: %v (%v), want m-2, m-3, m-4", eventIDs(page), err)
		}
		if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
			t.Errorf("reconcile after the migration: %v, %v", m, err)
		}

		// New rows of both shapes are written as integers.
		plain := storetest.Log("mig", "new-plain", date(2026, time.March, 6, 9, 0, 0, 123456789))
		full := storetest.Log("mig", "new-full", date(2026, time.March, 6, 9, 0, 1, 5000))
		full.Metadata = `{"a":1}`
		storetest.Record(t, db, plain, full)
		if sqlite {
			var at, start int64
			for _, l := range []billing.UsageLog{plain, full} {
				if err := raw.QueryRowContext(ctx, `SELECT "timestamp", period_start FROM api_usage_logs WHERE event_id = $1`, l.EventID).
					Scan(&at, &start); err != nil || at != l.Timestamp.UnixMicro() || start != l.PeriodStart.UnixMicro() {
					t.Errorf("%s stored %d from %d (%v); want %d from %d", l.EventID, at, start, err, l.Timestamp.UnixMicro(), l.PeriodStart.UnixMicro())
				}
			}
		}
		mustExec(t, raw, `DELETE FROM api_usage_logs WHERE event_id LIKE 'new-%'`)

		if err := db.MigrateTo(ctx, 13); err != nil {
			t.Fatal(err)
		}
		if got := storedText(); !reflect.DeepEqual(got, before) {
			t.Errorf("down again holds %v, want %v", got, before)
		}
		if got := indexes(); !reflect.DeepEqual(got, indexesBefore) {
			t.Errorf("indexes after down %v, want %v", got, indexesBefore)
		}
	})
}

func eventIDs(logs []billing.UsageLog) []string {
	ids := make([]string, len(logs))
	for i, l := range logs {
		ids[i] = l.EventID
	}
	return ids
}
