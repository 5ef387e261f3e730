package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Plans are edited without code: an edit makes a new version (a new plan
// row under the plan's name) and retires the old row under a versioned
// name, pointing it at its successor. Subscribers keep the version they
// have until their next renewal, which moves them to the newest version,
// unless the edit says to move them at once.

// EditResult is a plan edit's outcome.
type EditResult struct {
	Plan     billing.Plan // the new version
	Previous billing.Plan // the retired one
	// Moved counts the subscriptions moved to the new version at once.
	Moved int
}

// EditPlan replaces plan id with a new version holding p (its name, when
// empty, is kept). With moveNow the current subscribers move to it at
// once; otherwise at their next renewal. Errors: not_found, conflict (the
// plan was replaced already, the name is taken, or the edit would leave
// no active free plan for users without a subscription), invalid.
func (db *DB) EditPlan(ctx context.Context, id int64, p billing.Plan, moveNow bool, now time.Time) (EditResult, error) {
	old, err := db.GetPlan(ctx, id)
	if err != nil {
		return EditResult{}, err
	}
	if old.ReplacedBy != nil {
		return EditResult{}, billing.Errorf(billing.CodeConflict, "plan %d was replaced by plan %d: edit the newest version", id, *old.ReplacedBy)
	}
	if p.Name == "" {
		p.Name = old.Name
	}
	p.Version = old.Version + 1
	var res EditResult
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if !(p.IsFree() && p.IsActive) {
			if err := db.keepAFreePlan(ctx, tx, old, "replaced by a paid or inactive version"); err != nil {
				return err
			}
		}
		retired := fmt.Sprintf("%s (version %d)", old.Name, old.Version)
		r, err := tx.ExecContext(ctx, `UPDATE subscription_plans SET name = $2, is_active = FALSE, updated_at = $3
			WHERE id = $1 AND replaced_by IS NULL`, id, retired, ts(now))
		if err != nil {
			return fmt.Errorf("retire plan %d: %w", id, conflict(err, "a plan named %q already exists", retired))
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return billing.Errorf(billing.CodeConflict, "plan %d was replaced concurrently", id)
		}
		newID, err := createPlan(ctx, tx, p, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscription_plans SET replaced_by = $2 WHERE id = $1`, id, newID); err != nil {
			return fmt.Errorf("link plan versions: %w", err)
		}
		if moveNow {
			next := p
			next.ID = newID
			if res.Moved, err = db.moveSubscribers(ctx, tx, old, next, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET pending_plan_id = $2
			WHERE pending_plan_id = $1`, id, newID); err != nil {
			return fmt.Errorf("move scheduled changes: %w", err)
		}
		p.ID = newID
		return nil
	})
	if err != nil {
		return EditResult{}, err
	}
	db.accountsChanged()
	if res.Plan, err = db.GetPlan(ctx, p.ID); err != nil {
		return EditResult{}, err
	}
	res.Previous, err = db.GetPlan(ctx, id)
	return res, err
}

// moveSubscribers moves the current subscribers of old to its new version
// next at once, as an immediate plan change does: old's overage for the
// usage so far goes on the period's invoice, the change's history entry
// marks that usage as priced (next prices only what comes after), and a
// subscription.changed event announces it. The cycle's fee stays as it
// was booked; the new version's price applies from the next renewal.
func (db *DB) moveSubscribers(ctx context.Context, tx *sql.Tx, old, next billing.Plan, now time.Time) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions
		WHERE plan_id = $1 AND status IN ('active', 'past_due') ORDER BY id`+db.lockClause(), old.ID)
	if err != nil {
		return 0, fmt.Errorf("find subscribers: %w", err)
	}
	var subs []billing.Subscription
	for rows.Next() {
		s, err := scanSubscription(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		subs = append(subs, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find subscribers: %w", err)
	}
	event := billing.HistoryUpgrade
	if next.PriceMonthly < old.PriceMonthly {
		event = billing.HistoryDowngrade
	}
	for _, s := range subs {
		u, err := bookOverageSoFar(ctx, tx, s, old, s.Schedule().At(now), now)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET plan_id = $2, updated_at = $3 WHERE id = $1`,
			s.ID, next.ID, ts(now)); err != nil {
			return 0, fmt.Errorf("move subscriber %s: %w", s.UserID, err)
		}
		s.PlanID = next.ID
		if err := insertHistory(ctx, tx, s, event, &old, &next, u, true, now); err != nil {
			return 0, err
		}
		if err := notifyChange(ctx, tx, s, next, "plan_edited", now); err != nil {
			return 0, err
		}
	}
	return len(subs), nil
}

// SetPlanActive offers a plan to new subscribers or stops offering it;
// its subscribers keep it. The last active free plan (the plan of users
// without a subscription) cannot be deactivated. Errors: not_found,
// conflict.
func (db *DB) SetPlanActive(ctx context.Context, id int64, active bool, now time.Time) (billing.Plan, error) {
	p, err := db.GetPlan(ctx, id)
	if err != nil {
		return p, err
	}
	if active && p.ReplacedBy != nil {
		return p, billing.Errorf(billing.CodeConflict, "plan %d was replaced by plan %d", id, *p.ReplacedBy)
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if !active {
			if err := db.keepAFreePlan(ctx, tx, p, "deactivated"); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscription_plans SET is_active = $2, updated_at = $3 WHERE id = $1`,
			id, active, ts(now)); err != nil {
			return fmt.Errorf("set plan %d active: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	db.accountsChanged()
	p.IsActive = active
	return p, nil
}

// keepAFreePlan refuses, with a conflict naming why, to take plan p out
// of the offer when it is the only active free plan: the cheapest of them
// is the plan of every user without a subscription, and without one
// DefaultPlan finds none. It runs in the transaction that takes p out and
// reads the plans there; on PostgreSQL it locks every active free plan in
// id order, so two transactions retiring the last two at once cannot both
// see the other's plan still active and both succeed: the second waits,
// then no longer finds the first's plan active.
func (db *DB) keepAFreePlan(ctx context.Context, tx *sql.Tx, p billing.Plan, change string) error {
	rows, err := tx.QueryContext(ctx, `SELECT id FROM subscription_plans WHERE is_active = TRUE
		AND price_monthly = 0 AND price_yearly = 0 ORDER BY id`+db.lockClause())
	if err != nil {
		return fmt.Errorf("find free plans: %w", err)
	}
	offered, others := false, 0
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("find free plans: %w", err)
		}
		if id == p.ID {
			offered = true
		} else {
			others++
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find free plans: %w", err)
	}
	if offered && others == 0 {
		return billing.Errorf(billing.CodeConflict, "plan %s cannot be %s: it is the only active free plan, the plan of users "+
			"without a subscription (create or activate another free plan first)", p.Name, change)
	}
	return nil
}
