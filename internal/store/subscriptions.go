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
	current_period_start, current_period_end, created_at, updated_at, pending_plan_id, pending_billing_cycle,
	cancel_at_period_end, cancelled_at, invoiced_through`

func scanSubscription(r rowScanner) (billing.Subscription, error) {
	var s billing.Subscription
	var pending sql.NullInt64
	var pendingCycle sql.NullString
	var invoiced *time.Time
	err := r.Scan(&s.ID, &s.UserID, &s.PlanID, &s.BillingCycle, &s.Status, &s.AutoRenew, scanTime{&s.Anchor}, &s.TimeZone,
		scanTime{&s.CurrentPeriodStart}, scanTime{&s.CurrentPeriodEnd}, scanTime{&s.CreatedAt}, scanTime{&s.UpdatedAt},
		&pending, &pendingCycle, &s.CancelAtPeriodEnd, scanNullTime{&s.CancelledAt}, scanNullTime{&invoiced})
	if pending.Valid {
		s.PendingPlanID = &pending.Int64
	}
	s.PendingCycle = pendingCycle.String
	s.InvoicedThrough = s.CurrentPeriodStart
	if invoiced != nil {
		s.InvoicedThrough = *invoiced
	}
	return s, err
}

// CurrentSubscription returns the user's newest subscription that is
// active or past due, or nil when the user has none (and so is on Free).
func (db *DB) CurrentSubscription(ctx context.Context, userID string) (*billing.Subscription, error) {
	return currentSubscription(ctx, db.read, userID, "")
}

func currentSubscription(ctx context.Context, q querier, userID, lock string) (*billing.Subscription, error) {
	s, err := scanSubscription(q.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE user_id = $1 AND status IN ('active', 'past_due') ORDER BY created_at DESC, id DESC LIMIT 1`+lock, userID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read subscription of %s: %w", userID, err)
	}
	return &s, nil
}

// CreateSubscription stores a subscription as it is given (no invoice
// items or history: Subscribe does the lifecycle) and returns its id.
func (db *DB) CreateSubscription(ctx context.Context, s billing.Subscription, now time.Time) (int64, error) {
	var id int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		id, err = insertSubscription(ctx, tx, s, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	db.accountsChanged()
	return id, nil
}

func insertSubscription(ctx context.Context, tx *sql.Tx, s billing.Subscription, now time.Time) (int64, error) {
	var id int64
	next := s.Schedule().At(s.CurrentPeriodStart).End
	err := tx.QueryRowContext(ctx, `INSERT INTO user_subscriptions (user_id, plan_id, billing_cycle, status,
		auto_renew, period_anchor, time_zone, current_period_start, current_period_end, created_at, updated_at,
		invoiced_through, next_close_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $8, $11) RETURNING id`,
		s.UserID, s.PlanID, s.BillingCycle, s.Status, s.AutoRenew, ts(s.Anchor), s.TimeZone,
		ts(s.CurrentPeriodStart), ts(s.CurrentPeriodEnd), ts(now), ts(next)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("insert subscription for %s: %w", s.UserID, err)
	}
	return id, nil
}
