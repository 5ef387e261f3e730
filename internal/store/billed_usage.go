package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// billedUsage is the usage of a subscription's usage period p, as its
// invoice and history bill it. Summaries are keyed by the month a period
// starts in (ALwrity's YYYY-MM), so a subscription that starts in the
// middle of a month shares its first period's key with the calendar month
// the user was on until then (the free plan's), and that summary row also
// holds the usage from before the subscription began — the row's
// period_start, the first period to write to it, is then earlier than p's.
// In that case the usage is summed from the ledger rows stamped with p's
// own start (each log row carries its period's start), so a subscription
// is never billed for calls made before it; otherwise it is the summary.
func billedUsage(ctx context.Context, tx *sql.Tx, userID string, p billing.Period) (billing.PeriodUsage, error) {
	var first time.Time
	err := tx.QueryRowContext(ctx, `SELECT period_start FROM usage_summaries WHERE user_id = $1 AND billing_period = $2`,
		userID, p.Key).Scan(scanTime{&first})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}, nil
	case err != nil:
		return billing.PeriodUsage{}, fmt.Errorf("read usage summary: %w", err)
	case !first.Before(p.Start):
		return periodUsage(ctx, tx, userID, p)
	}
	u := billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}
	rows, err := tx.QueryContext(ctx, `SELECT provider, COUNT(*), SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END),
		SUM(tokens_input), SUM(tokens_output), SUM(cost_total), SUM(response_time) FROM api_usage_logs
		WHERE user_id = $1 AND billing_period = $2 AND period_start = $3 GROUP BY provider`, userID, p.Key, ts(p.Start))
	if err != nil {
		return u, fmt.Errorf("sum the period's usage logs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var provider string
		var c billing.Counters
		var cost int64
		if err := rows.Scan(&provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &cost, &c.ResponseTimeSum); err != nil {
			return u, fmt.Errorf("sum the period's usage logs: %w", err)
		}
		c.Cost = money.Amount(cost)
		u.ByProvider[provider] = c
		u.Total.Calls += c.Calls
		u.Total.Errors += c.Errors
		u.Total.TokensInput += c.TokensInput
		u.Total.TokensOutput += c.TokensOutput
		u.Total.Cost += c.Cost
		u.Total.ResponseTimeSum += c.ResponseTimeSum
	}
	return u, rows.Err()
}
