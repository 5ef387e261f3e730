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
// whole group's upserts are two statements, which return the rows as they
// are after them (what the alert checks read), with the rows taken in the
// same sorted order as row by row (unnest keeps the arrays' order), so
// concurrent groups still cannot deadlock.

const upsertTotalsBatchSQL = `INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end,
	total_calls, total_errors, tokens_input, tokens_output, total_tokens, total_cost, response_time_sum,
	created_at, updated_at, last_event_at)
	SELECT u.user_id, u.billing_period, u.period_start, u.period_end, u.calls, u.errors, u.tokens_in, u.tokens_out,
		u.tokens_in + u.tokens_out, u.cost, u.response_time, $12, $12, u.last_event_at
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[], $6::bigint[],
		$7::bigint[], $8::bigint[], $9::bigint[], $10::float8[], $11::int[], $13::timestamptz[])
		AS u(user_id, billing_period, period_start, period_end, calls, errors, tokens_in, tokens_out, cost, response_time, ord,
			last_event_at)
	ORDER BY u.ord ` + addToTotals + `
	RETURNING user_id, billing_period, period_start, total_calls, total_errors, tokens_input, tokens_output,
		total_cost, response_time_sum, updated_at`

const upsertProvidersBatchSQL = `INSERT INTO usage_summary_providers (user_id, billing_period, period_start, provider,
	calls, errors, tokens_input, tokens_output, tokens, cost, response_time_sum, updated_at)
	SELECT u.user_id, u.billing_period, u.period_start, u.provider, u.calls, u.errors, u.tokens_in, u.tokens_out,
		u.tokens_in + u.tokens_out, u.cost, u.response_time, $12
	FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[],
		$8::bigint[], $9::bigint[], $10::float8[], $11::int[])
		AS u(user_id, billing_period, period_start, provider, calls, errors, tokens_in, tokens_out, cost, response_time, ord)
	ORDER BY u.ord ` + addToProviders + `
	RETURNING user_id, billing_period, period_start, provider, calls, errors, tokens_input, tokens_output, cost,
		response_time_sum`

// upsertSummariesBatch is addLogsToSummaries' write on PostgreSQL; tkeys
// and vkeys are sorted. It returns each period's usage after the write:
// the totals, and the providers this group used (the others did not
// change, so no alert of theirs can be due now).
func upsertSummariesBatch(ctx context.Context, tx *sql.Tx, totals map[periodKey]*counterDelta, tkeys []periodKey,
	byProvider map[providerKey]*counterDelta, vkeys []providerKey, periods map[periodKey]billing.Period, now time.Time) (map[periodKey]*billing.PeriodUsage, error) {
	after := make(map[periodKey]*billing.PeriodUsage, len(tkeys))
	n := len(tkeys)
	users, keys := make([]string, n), make([]string, n)
	starts, ends := make([]time.Time, n), make([]time.Time, n)
	calls, errs, in, out, cost := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	rt, ord, last := make([]float64, n), make([]int32, n), make([]time.Time, n)
	for i, k := range tkeys {
		d, p := totals[k], periods[k]
		users[i], keys[i], starts[i], ends[i], last[i] = k.user, k.period, p.Start, p.End, d.last
		calls[i], errs[i], in[i], out[i], cost[i], rt[i], ord[i] = d.calls, d.errors, d.tokensIn, d.tokensOut, d.cost, d.responseTime, int32(i)
		after[k] = &billing.PeriodUsage{UserID: k.user, Period: p, ByProvider: map[string]billing.Counters{}}
	}
	rows, err := tx.QueryContext(ctx, upsertTotalsBatchSQL, users, keys, starts, ends, calls, errs, in, out, cost, rt, ord, now, last)
	if err != nil {
		return nil, fmt.Errorf("update usage summaries: %w", err)
	}
	for rows.Next() {
		var k periodKey
		var start, updated time.Time
		var c billing.Counters
		if err := rows.Scan(&k.user, &k.period, &start, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum, &updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("update usage summaries: %w", err)
		}
		k.start = start.UnixMicro()
		if u := after[k]; u != nil {
			u.Total, u.LastUpdated = c, updated
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("update usage summaries: %w", err)
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
	prow, err := tx.QueryContext(ctx, upsertProvidersBatchSQL, users, keys, starts, provs, calls, errs, in, out, cost, rt, ord, now)
	if err != nil {
		return nil, fmt.Errorf("update provider usage summaries: %w", err)
	}
	defer prow.Close()
	for prow.Next() {
		var k periodKey
		var start time.Time
		var provider string
		var c billing.Counters
		if err := prow.Scan(&k.user, &k.period, &start, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput,
			&c.Cost, &c.ResponseTimeSum); err != nil {
			return nil, fmt.Errorf("update provider usage summaries: %w", err)
		}
		k.start = start.UnixMicro()
		if u := after[k]; u != nil {
			u.ByProvider[provider] = c
		}
	}
	if err := prow.Err(); err != nil {
		return nil, fmt.Errorf("update provider usage summaries: %w", err)
	}
	return after, nil
}
