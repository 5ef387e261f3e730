package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// RecordUsage appends rated usage logs to the ledger and adds them to the
// period summaries in the same transaction, so Σ logs = summaries at every
// commit. Each log must carry its period (BillingPeriod, PeriodStart) and a
// unique EventID; periodEnd gives each period's end by key. Errors: conflict
// when an event id is already recorded (or repeats in logs), in which case
// nothing of the batch is stored.
func (db *DB) RecordUsage(ctx context.Context, logs []billing.UsageLog, periodEnd map[string]time.Time, now time.Time) error {
	if err := db.prepareLedger(ctx); err != nil {
		return err
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		inserted, err := insertLogs(ctx, tx, &db.stmts, logs, now)
		if err != nil {
			return err
		}
		periods := map[periodKey]billing.Period{}
		for _, l := range logs {
			if !inserted[l.EventID] {
				return billing.Errorf(billing.CodeConflict, "event %q is already recorded", l.EventID)
			}
			delete(inserted, l.EventID)
			periods[periodKey{l.UserID, l.BillingPeriod}] = billing.Period{Key: l.BillingPeriod, Start: l.PeriodStart, End: periodEnd[l.BillingPeriod]}
		}
		return addLogsToSummaries(ctx, tx, &db.stmts, logs, periods, now)
	})
}

// UsageForPeriods returns the user's usage in each named period, in the
// order given, with zeros for periods without usage. The key billing.AllTime
// sums every period.
func (db *DB) UsageForPeriods(ctx context.Context, userID string, periods []billing.Period) ([]billing.PeriodUsage, error) {
	out := make([]billing.PeriodUsage, len(periods))
	index := map[string]int{}
	var keys []any
	all := -1
	for i, p := range periods {
		out[i] = billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}
		if p.Key == billing.AllTime {
			all = i
			continue
		}
		index[p.Key] = i
		keys = append(keys, p.Key)
	}
	if len(keys) > 0 {
		in := placeholders(2, len(keys))
		args := append([]any{userID}, keys...)
		rows, err := db.read.QueryContext(ctx, `SELECT billing_period, total_calls, total_errors, tokens_input,
			tokens_output, total_cost, response_time_sum, updated_at FROM usage_summaries
			WHERE user_id = $1 AND billing_period IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read usage summaries: %w", err)
		}
		if err := scanTotals(rows, func(key string) *billing.PeriodUsage { return &out[index[key]] }); err != nil {
			return nil, err
		}
		prow, err := db.read.QueryContext(ctx, `SELECT billing_period, provider, calls, errors, tokens_input,
			tokens_output, cost, response_time_sum FROM usage_summary_providers
			WHERE user_id = $1 AND billing_period IN (`+in+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read provider summaries: %w", err)
		}
		if err := scanProviders(prow, func(key string) *billing.PeriodUsage { return &out[index[key]] }); err != nil {
			return nil, err
		}
	}
	if all >= 0 {
		rows, err := db.read.QueryContext(ctx, `SELECT 'all', COALESCE(SUM(total_calls), 0), COALESCE(SUM(total_errors), 0),
			COALESCE(SUM(tokens_input), 0), COALESCE(SUM(tokens_output), 0), COALESCE(SUM(total_cost), 0),
			COALESCE(SUM(response_time_sum), 0), MAX(updated_at) FROM usage_summaries WHERE user_id = $1`, userID)
		if err != nil {
			return nil, fmt.Errorf("read all-time usage: %w", err)
		}
		if err := scanTotals(rows, func(string) *billing.PeriodUsage { return &out[all] }); err != nil {
			return nil, err
		}
		prow, err := db.read.QueryContext(ctx, `SELECT 'all', provider, SUM(calls), SUM(errors), SUM(tokens_input),
			SUM(tokens_output), SUM(cost), SUM(response_time_sum) FROM usage_summary_providers
			WHERE user_id = $1 GROUP BY provider`, userID)
		if err != nil {
			return nil, fmt.Errorf("read all-time provider usage: %w", err)
		}
		if err := scanProviders(prow, func(string) *billing.PeriodUsage { return &out[all] }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func scanTotals(rows *sql.Rows, target func(key string) *billing.PeriodUsage) error {
	defer rows.Close()
	for rows.Next() {
		var key string
		var c billing.Counters
		var updated *time.Time
		if err := rows.Scan(&key, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum, scanNullTime{&updated}); err != nil {
			return fmt.Errorf("scan usage summary: %w", err)
		}
		u := target(key)
		u.Total = c
		if updated != nil {
			u.LastUpdated = *updated
		}
	}
	return rows.Err()
}

func scanProviders(rows *sql.Rows, target func(key string) *billing.PeriodUsage) error {
	defer rows.Close()
	for rows.Next() {
		var key, provider string
		var c billing.Counters
		if err := rows.Scan(&key, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum); err != nil {
			return fmt.Errorf("scan provider summary: %w", err)
		}
		target(key).ByProvider[provider] = c
	}
	return rows.Err()
}

// placeholders returns "$from, $from+1, …" for n parameters.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

const logColumns = `id, event_id, user_id, provider, endpoint, method, model_used, tokens_input, tokens_output,
	tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, tokens_reasoning, request_count, search_count,
	image_count, page_count, cost_input, cost_output, cost_total, response_time, status_code, error_message,
	retry_count, unpriced, partial, metadata, "timestamp", billing_period, period_start`

// ListLogs returns one page of usage logs, newest first, and how many match.
func (db *DB) ListLogs(ctx context.Context, f billing.LogFilter) ([]billing.UsageLog, int64, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.UserID != "" {
		add("user_id = $%d", f.UserID)
	}
	if f.Provider != "" {
		add("provider = $%d", f.Provider)
	}
	if f.StatusCode != 0 {
		add("status_code = $%d", f.StatusCode)
	}
	if f.BillingPeriod != "" {
		add("billing_period = $%d", f.BillingPeriod)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	total, err := db.countLogs(ctx, f, cond, args)
	if err != nil {
		return nil, 0, err
	}
	args = append(args, f.Limit, f.Offset)
	rows, err := db.read.QueryContext(ctx, `SELECT `+logColumns+` FROM api_usage_logs`+cond+
		fmt.Sprintf(` ORDER BY "timestamp" DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list usage logs: %w", err)
	}
	defer rows.Close()
	logs := []billing.UsageLog{}
	for rows.Next() {
		var l billing.UsageLog
		var errMsg, meta sql.NullString
		if err := rows.Scan(&l.ID, &l.EventID, &l.UserID, &l.Provider, &l.Endpoint, &l.Method, &l.ModelUsed,
			&l.TokensInput, &l.TokensOutput, &l.TokensCachedInput, &l.TokensCacheWrite5m, &l.TokensCacheWrite1h,
			&l.TokensReasoning, &l.RequestCount, &l.SearchCount, &l.ImageCount, &l.PageCount,
			&l.CostInput, &l.CostOutput, &l.CostTotal, &l.ResponseTime, &l.StatusCode, &errMsg, &l.RetryCount,
			&l.Unpriced, &l.Partial, &meta, scanTime{&l.Timestamp}, &l.BillingPeriod, scanTime{&l.PeriodStart}); err != nil {
			return nil, 0, fmt.Errorf("scan usage log: %w", err)
		}
		l.ErrorMessage, l.Metadata = errMsg.String, meta.String
		logs = append(logs, l)
	}
	return logs, total, rows.Err()
}

// countLogs counts the logs that f selects; cond and args are its WHERE
// clause. Counting ledger rows costs as much as the ledger is large (a
// second for all users at ten million rows), so without a status filter the
// count comes from the period summaries instead: they hold exactly one call
// per log row of their user, period and provider, updated in the same
// transaction as the rows (invariant 2, checked by Reconcile), and they
// share the filter's column names. That reads one summary row per period
// (per provider) of the user, or every summary row for an all-users count:
// a number that grows with users and months, not with calls. Only a status
// filter counts ledger rows.
func (db *DB) countLogs(ctx context.Context, f billing.LogFilter, cond string, args []any) (int64, error) {
	q := `SELECT COUNT(*) FROM api_usage_logs` + cond
	switch {
	case f.StatusCode != 0:
	case f.Provider != "":
		q = `SELECT COALESCE(SUM(calls), 0) FROM usage_summary_providers` + cond
	default:
		q = `SELECT COALESCE(SUM(total_calls), 0) FROM usage_summaries` + cond
	}
	var total int64
	if err := db.read.QueryRowContext(ctx, q, args...).Scan(&total); err != nil {
		return 0, fmt.Errorf("count usage logs: %w", err)
	}
	return total, nil
}

// RecentCalls returns up to limit calls made since `since`, newest first,
// for health figures.
func (db *DB) RecentCalls(ctx context.Context, since time.Time, limit int) ([]billing.CallStat, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT provider, status_code, response_time FROM api_usage_logs
		WHERE "timestamp" >= $1 ORDER BY "timestamp" DESC LIMIT $2`, ts(since), limit)
	if err != nil {
		return nil, fmt.Errorf("read recent calls: %w", err)
	}
	defer rows.Close()
	var out []billing.CallStat
	for rows.Next() {
		var c billing.CallStat
		var status int
		if err := rows.Scan(&c.Provider, &status, &c.ResponseTime); err != nil {
			return nil, err
		}
		c.Failed = status >= 400
		out = append(out, c)
	}
	return out, rows.Err()
}

// Compile-time check that money.Amount scans from the driver's integers.
var _ sql.Scanner = (*money.Amount)(nil)

// ProviderErrors counts a provider's calls and failed calls since `since`.
func (db *DB) ProviderErrors(ctx context.Context, provider string, since time.Time) (calls, failed int64, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), 0)
		FROM api_usage_logs WHERE provider = $1 AND "timestamp" >= $2`, provider, ts(since)).Scan(&calls, &failed)
	if err != nil {
		err = fmt.Errorf("count %s errors: %w", provider, err)
	}
	return calls, failed, err
}
