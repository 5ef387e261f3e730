package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// A group commit on PostgreSQL touches the summary rows of every user in
// it. Row by row that is two upserts and two reads per (user, period), each
// a round trip while the transaction holds those users' rows; here the
// whole group's upserts are two statements and its reads two more, with the
// rows taken in the same sorted order as row by row (unnest keeps the
// arrays' order), so concurrent groups still cannot deadlock.

const upsertTotalsBatchSQL = `INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end,
	total_calls, total_errors, tokens_input, tokens_output, total_tokens, total_cost, response_time_sum,
	created_at, updated_at)
	SELECT u.user_id, u.billing_period, u.period_start, u.period_end, u.calls, u.errors, u.tokens_in, u.tokens_out,
		u.tokens_in + u.tokens_out, u.cost, u.response_time, $12, $12
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[], $6::bigint[],
		$7::bigint[], $8::bigint[], $9::bigint[], $10::float8[], $11::int[])
		AS u(user_id, billing_period, period_start, period_end, calls, errors, tokens_in, tokens_out, cost, response_time, ord)
	ORDER BY u.ord ` + addToTotals

const upsertProvidersBatchSQL = `INSERT INTO usage_summary_providers (user_id, billing_period, period_start, provider,
	calls, errors, tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
	SELECT u.user_id, u.billing_period, u.period_start, u.provider, u.calls, u.errors, u.tokens_in, u.tokens_out,
		u.tokens_in + u.tokens_out, u.cost, u.response_time, $12
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
		$8::bigint[], $9::bigint[], $10::float8[], $11::int[])
		AS u(user_id, billing_period, period_start, provider, calls, errors, tokens_in, tokens_out, cost, response_time, ord)
	ORDER BY u.ord ` + addToProviders

// upsertSummariesBatch is addLogsToSummaries' write on PostgreSQL; tkeys
// and vkeys are sorted.
func upsertSummariesBatch(ctx context.Context, tx *sql.Tx, totals map[periodKey]*counterDelta, tkeys []periodKey,
	byProvider map[providerKey]*counterDelta, vkeys []providerKey, periods map[periodKey]billing.Period, now time.Time) error {
	n := len(tkeys)
	users, keys := make([]string, n), make([]string, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	calls, errs, in, out, cost := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	rt, ord := make([]float64, n), make([]int32, n)
	for i, k := range tkeys {
		d, p := totals[k], periods[k]
		users[i], keys[i], starts[i], ends[i] = k.user, k.period, p.Start, p.End
		calls[i], errs[i], in[i], out[i], cost[i], rt[i], ord[i] = d.calls, d.errors, d.tokensIn, d.tokensOut, d.cost, d.responseTime, int32(i)
	}
	if _, err := tx.ExecContext(ctx, upsertTotalsBatchSQL, users, keys, starts, ends, calls, errs, in, out, cost, rt, ord, now); err != nil {
		return fmt.Errorf("update usage summaries: %w", err)
	}
	n = len(vkeys)
	users, keys, provs := make([]string, n), make([]string, n), make([]string, n)
	starts = make([]time.Time, n)
	calls, errs, in, out, cost = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	rt, ord = make([]float64, n), make([]int32, n)
	for i, k := range vkeys {
		d := byProvider[k]
		users[i], keys[i], starts[i], provs[i] = k.user, k.period, periods[k.periodKey].Start, k.provider
		calls[i], errs[i], in[i], out[i], cost[i], rt[i], ord[i] = d.calls, d.errors, d.tokensIn, d.tokensOut, d.cost, d.responseTime, int32(i)
	}
	if _, err := tx.ExecContext(ctx, upsertProvidersBatchSQL, users, keys, starts, provs, calls, errs, in, out, cost, rt, ord, now); err != nil {
		return fmt.Errorf("update provider usage summaries: %w", err)
	}
	return nil
}

// periodUsages reads the usage of several (user, period)s in two
// statements (PostgreSQL).
func periodUsages(ctx context.Context, tx *sql.Tx, keys []periodKey, periods map[periodKey]billing.Period) (map[periodKey]*billing.PeriodUsage, error) {
	out := make(map[periodKey]*billing.PeriodUsage, len(keys))
	users, ps := make([]string, len(keys)), make([]string, len(keys))
	starts := make([]time.Time, len(keys))
	for i, k := range keys {
		users[i], ps[i], starts[i] = k.user, k.period, periods[k].Start
		out[k] = &billing.PeriodUsage{UserID: k.user, Period: periods[k], ByProvider: map[string]billing.Counters{}}
	}
	rows, err := tx.QueryContext(ctx, `SELECT s.user_id, s.billing_period, s.period_start, s.total_calls, s.total_errors,
		s.tokens_input, s.tokens_output, s.total_cost, s.response_time_sum, s.updated_at
		FROM usage_summaries s JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(user_id, billing_period, period_start)
		ON s.user_id = k.user_id AND s.billing_period = k.billing_period AND s.period_start = k.period_start`, users, ps, starts)
	if err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k periodKey
		var start time.Time
		var c billing.Counters
		var updated time.Time
		if err := rows.Scan(&k.user, &k.period, &start, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum, &updated); err != nil {
			return nil, fmt.Errorf("scan usage summary: %w", err)
		}
		k.start = start.UnixMicro()
		if u := out[k]; u != nil {
			u.Total, u.LastUpdated = c, updated
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	prow, err := tx.QueryContext(ctx, `SELECT p.user_id, p.billing_period, p.period_start, p.provider, p.calls, p.errors,
		p.tokens_input, p.tokens_output, p.cost, p.response_time_sum
		FROM usage_summary_providers p JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(user_id, billing_period, period_start)
		ON p.user_id = k.user_id AND p.billing_period = k.billing_period AND p.period_start = k.period_start`, users, ps, starts)
	if err != nil {
		return nil, fmt.Errorf("read provider summaries: %w", err)
	}
	defer prow.Close()
	for prow.Next() {
		var k periodKey
		var start time.Time
		var provider string
		var c billing.Counters
		if err := prow.Scan(&k.user, &k.period, &start, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput,
			&c.Cost, &c.ResponseTimeSum); err != nil {
			return nil, fmt.Errorf("scan provider summary: %w", err)
		}
		k.start = start.UnixMicro()
		if u := out[k]; u != nil {
			u.ByProvider[provider] = c
		}
	}
	if err := prow.Err(); err != nil {
		return nil, fmt.Errorf("read provider summaries: %w", err)
	}
	return out, nil
}
