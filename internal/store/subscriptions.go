package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

const subscriptionColumns = `id, user_id, plan_id, billing_cycle, status, auto_renew, period_anchor, time_zone,
	current_period_start, current_period_end, created_at, updated_at`

// CurrentSubscription returns the user's newest subscription that is
// active or past due, or nil when the user has none (and so is on Free).
func (db *DB) CurrentSubscription(ctx context.Context, userID string) (*billing.Subscription, error) {
	var s billing.Subscription
	err := db.read.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE user_id = $1 AND status IN ('active', 'past_due') ORDER BY created_at DESC, id DESC LIMIT 1`, userID).
		Scan(&s.ID, &s.UserID, &s.PlanID, &s.BillingCycle, &s.Status, &s.AutoRenew, scanTime{&s.Anchor}, &s.TimeZone,
			scanTime{&s.CurrentPeriodStart}, scanTime{&s.CurrentPeriodEnd}, scanTime{&s.CreatedAt}, scanTime{&s.UpdatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription of %s: %w", userID, err)
	}
	return &s, nil
}

// CreateSubscription stores a subscription and returns its id.
func (db *DB) CreateSubscription(ctx context.Context, s billing.Subscription, now time.Time) (int64, error) {
	var id int64
	err := db.write.QueryRowContext(ctx, `INSERT INTO user_subscriptions (user_id, plan_id, billing_cycle, status,
		auto_renew, period_anchor, time_zone, current_period_start, current_period_end, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id`,
		s.UserID, s.PlanID, s.BillingCycle, s.Status, s.AutoRenew, ts(s.Anchor), s.TimeZone,
		ts(s.CurrentPeriodStart), ts(s.CurrentPeriodEnd), ts(now)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert subscription for %s: %w", s.UserID, err)
	}
	db.accountsChanged()
	return id, nil
}
