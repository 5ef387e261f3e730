package store

import (
	"context"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// The reads in this file serve the dashboard pages (internal/web): the admin
// overview of every user and alerts across users. Each is a fixed number of queries whatever the
// number of users, so a page never issues one query per row.

// UserOverview is one user as the admin overview lists them: the current
// subscription (nil on the default plan) and the usage of each period asked
// for, by period key (absent keys had no usage).
type UserOverview struct {
	UserID       string
	Subscription *billing.Subscription
	Usage        map[string]billing.PeriodUsage
}

// ListUserOverviews returns up to limit users, ordered by id, with their
// current subscription and their usage in the named periods. A user is
// anyone with usage, a subscription or a user key. The caller passes every
// period key a user's current period may have (this calendar month's and the
// previous one's: a subscription anchored on the 20th is still in the period
// that started last month) and picks each user's own by its schedule. Of
// two periods of one name (a subscription that started mid-month and the
// calendar month before it) it returns the later, the subscription's.
func (db *DB) ListUserOverviews(ctx context.Context, periodKeys []string, limit int) ([]UserOverview, error) {
	rows, err := db.readRows(ctx, `SELECT user_id FROM (
			SELECT user_id FROM usage_summaries
			UNION SELECT user_id FROM user_subscriptions
			UNION SELECT user_id FROM api_keys WHERE role = 'user' AND user_id <> ''
		) u ORDER BY user_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []UserOverview
	index := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan user: %w", err)
		}
		index[id] = len(out)
		out = append(out, UserOverview{UserID: id, Usage: map[string]billing.PeriodUsage{}})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	if len(out) == 0 {
		return []UserOverview{}, nil
	}

	// The newest active or past-due subscription per user, as
	// CurrentSubscription picks it: rows come newest first per user.
	subs, err := db.readRows(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE status IN ('active', 'past_due') ORDER BY user_id, created_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	for subs.Next() {
		s, err := scanSubscription(subs)
		if err != nil {
			subs.Close()
			return nil, fmt.Errorf("scan subscription: %w", err)
		}
		if i, ok := index[s.UserID]; ok && out[i].Subscription == nil {
			out[i].Subscription = &s
		}
	}
	subs.Close()
	if err := subs.Err(); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}

	if len(periodKeys) == 0 {
		return out, nil
	}
	in := placeholders(1, len(periodKeys))
	args := make([]any, len(periodKeys))
	for i, k := range periodKeys {
		args[i] = k
	}
	// get returns a listed user's usage of a period (zero when none yet);
	// put stores it back.
	get := func(userID, key string) (billing.PeriodUsage, bool) {
		i, ok := index[userID]
		if !ok {
			return billing.PeriodUsage{}, false
		}
		u, ok := out[i].Usage[key]
		if !ok {
			u = billing.PeriodUsage{UserID: userID, Period: billing.Period{Key: key}, ByProvider: map[string]billing.Counters{}}
		}
		return u, true
	}
	put := func(u billing.PeriodUsage) { out[index[u.UserID]].Usage[u.Period.Key] = u }
	type named struct{ user, key string }
	latest := map[named]time.Time{} // the start of each user's latest period of a name
	totals, err := db.readRows(ctx, `SELECT user_id, billing_period, period_start, total_calls, total_errors,
		tokens_input, tokens_output, total_cost, response_time_sum, updated_at FROM usage_summaries
		WHERE billing_period IN (`+in+`) ORDER BY period_start`, args...)
	if err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	for totals.Next() {
		var userID, key string
		var start time.Time
		var c billing.Counters
		var updated *time.Time
		if err := totals.Scan(&userID, &key, scanTime{&start}, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum, scanNullTime{&updated}); err != nil {
			totals.Close()
			return nil, fmt.Errorf("scan usage summary: %w", err)
		}
		if u, ok := get(userID, key); ok {
			latest[named{userID, key}] = start
			u.Total, u.ByProvider = c, map[string]billing.Counters{}
			if updated != nil {
				u.LastUpdated = *updated
			}
			put(u)
		}
	}
	totals.Close()
	if err := totals.Err(); err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	prov, err := db.readRows(ctx, `SELECT user_id, billing_period, period_start, provider, calls, errors,
		tokens_input, tokens_output, cost, response_time_sum FROM usage_summary_providers WHERE billing_period IN (`+in+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read provider summaries: %w", err)
	}
	defer prov.Close()
	for prov.Next() {
		var userID, key, provider string
		var start time.Time
		var c billing.Counters
		if err := prov.Scan(&userID, &key, scanTime{&start}, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum); err != nil {
			return nil, fmt.Errorf("scan provider summary: %w", err)
		}
		if u, ok := get(userID, key); ok && start.Equal(latest[named{userID, key}]) {
			u.ByProvider[provider] = c
			put(u)
		}
	}
	return out, prov.Err()
}

// ListRecentAlerts returns the newest alerts of every user, newest first.
func (db *DB) ListRecentAlerts(ctx context.Context, limit int) ([]billing.Alert, error) {
	rows, err := db.readRows(ctx, `SELECT `+alertColumns+` FROM usage_alerts
		ORDER BY created_at DESC, id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list recent alerts: %w", err)
	}
	defer rows.Close()
	alerts := []billing.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		alerts = append(alerts, a)
	}
	return alerts, rows.Err()
}
