package store

import (
	"context"
	"fmt"
	"time"
)

// Mismatch is one summary that differs from the sum of its ledger rows.
type Mismatch struct {
	UserID, BillingPeriod, Provider string // Provider "" for the period total
	PeriodStart                     time.Time
	Field                           string
	Ledger, Summary                 int64
}

func (m Mismatch) String() string {
	where := m.UserID + " " + m.BillingPeriod + " (from " + m.PeriodStart.UTC().Format(time.RFC3339) + ")"
	if m.Provider != "" {
		where += " " + m.Provider
	}
	return fmt.Sprintf("%s %s: ledger %d, summary %d", where, m.Field, m.Ledger, m.Summary)
}

// Reconcile proves invariant 2: for every user, period and provider, the
// summaries equal the sums of the ledger's rows. It returns every mismatch
// (none on a healthy database). Money is compared as exact integers. The
// stored token totals (usage_summaries.total_tokens and
// usage_summary_providers.tokens) are compared too, with the ledger's
// input plus output tokens: PostgreSQL admission reads a provider's tokens
// from that column, so a drift there would let a token limit admit too
// much or too little. A period's last_event_at must be the latest
// timestamp of its rows: the usage logs of a period are read up to it.
func (db *DB) Reconcile(ctx context.Context) ([]Mismatch, error) {
	var out []Mismatch
	compare := func(kind, q string, provider bool) error {
		rows, err := db.readRows(ctx, q)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", kind, err)
		}
		defer rows.Close()
		for rows.Next() {
			var m Mismatch
			var lc, sc, le, se, li, si, lo, so, lt, st, lcost, scost int64
			var lLast, sLast *time.Time
			dest := []any{&m.UserID, &m.BillingPeriod, scanTime{&m.PeriodStart}}
			if provider {
				dest = append(dest, &m.Provider)
			}
			dest = append(dest, &lc, &sc, &le, &se, &li, &si, &lo, &so, &lt, &st, &lcost, &scost)
			if !provider {
				dest = append(dest, scanNullTime{&lLast}, scanNullTime{&sLast})
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			type field struct {
				name string
				l, s int64
			}
			fields := []field{{"calls", lc, sc}, {"errors", le, se}, {"tokens_input", li, si}, {"tokens_output", lo, so},
				{"tokens", lt, st}, {"cost", lcost, scost}}
			if !provider {
				fields = append(fields, field{"last_event_at (Unix µs)", unixMicro(lLast), unixMicro(sLast)})
			}
			for _, f := range fields {
				if f.l != f.s {
					m.Field, m.Ledger, m.Summary = f.name, f.l, f.s
					out = append(out, m)
				}
			}
		}
		return rows.Err()
	}
	// A FULL JOIN would be shorter, but SQLite before 3.39 lacks it; the
	// union of both sides with zeros works everywhere. The summaries'
	// period_start is read in the ledger's form (logTimeSQL), so that a
	// summary and its rows share one group.
	start := db.dialect.logTimeSQL("period_start") + " AS period_start"
	err := compare("totals", `SELECT user_id, billing_period, period_start,
			SUM(lc), SUM(sc), SUM(le), SUM(se), SUM(li), SUM(si), SUM(lo), SUM(so), SUM(lt), SUM(st), SUM(lcost), SUM(scost),
			MAX(llast), MAX(slast) FROM (
		SELECT user_id, billing_period, period_start, COUNT(*) AS lc, 0 AS sc,
			SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS le, 0 AS se,
			SUM(tokens_input) AS li, 0 AS si, SUM(tokens_output) AS lo, 0 AS so,
			SUM(tokens_input + tokens_output) AS lt, 0 AS st, SUM(cost_total) AS lcost, 0 AS scost,
			MAX("timestamp") AS llast, NULL AS slast
		FROM api_usage_logs GROUP BY user_id, billing_period, period_start
		UNION ALL
		SELECT user_id, billing_period, `+start+`, 0, total_calls, 0, total_errors, 0, tokens_input, 0, tokens_output,
			0, total_tokens, 0, total_cost, NULL, last_event_at
		FROM usage_summaries) AS t GROUP BY user_id, billing_period, period_start`, false)
	if err != nil {
		return nil, err
	}
	err = compare("providers", `SELECT user_id, billing_period, period_start, provider,
			SUM(lc), SUM(sc), SUM(le), SUM(se), SUM(li), SUM(si), SUM(lo), SUM(so), SUM(lt), SUM(st), SUM(lcost), SUM(scost) FROM (
		SELECT user_id, billing_period, period_start, provider, COUNT(*) AS lc, 0 AS sc,
			SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS le, 0 AS se,
			SUM(tokens_input) AS li, 0 AS si, SUM(tokens_output) AS lo, 0 AS so,
			SUM(tokens_input + tokens_output) AS lt, 0 AS st, SUM(cost_total) AS lcost, 0 AS scost
		FROM api_usage_logs GROUP BY user_id, billing_period, period_start, provider
		UNION ALL
		SELECT user_id, billing_period, `+start+`, provider, 0, calls, 0, errors, 0, tokens_input, 0, tokens_output, 0, tokens,
			0, cost
		FROM usage_summary_providers) AS t GROUP BY user_id, billing_period, period_start, provider`, true)
	return out, err
}

// unixMicro is t in Unix microseconds, 0 for none.
func unixMicro(t *time.Time) int64 {
	if t == nil {
		return 0
	}
	return t.UnixMicro()
}

// HeldReservationsMismatch counts reservations whose row contradicts the
// ledger: a held one that names a settling event or a finish time, a
// settled one without its event, or one whose settling event is not in the
// ledger (a settle writes both in one transaction). Held units need no
// check of their own: admission sums the held rows themselves.
func (db *DB) HeldReservationsMismatch(ctx context.Context) (int, error) {
	var n int
	err := db.readRow(ctx, `SELECT COUNT(*) FROM reservations r
		WHERE (r.status = 'held' AND (r.event_id IS NOT NULL OR r.finished_at IS NOT NULL))
		   OR (r.status = 'settled' AND r.event_id IS NULL)
		   OR (r.event_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM api_usage_logs l WHERE l.event_id = r.event_id))`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("check reservations: %w", err)
	}
	return n, nil
}
