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
// plan was replaced already, or the name is taken), invalid.
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
			r, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET plan_id = $2, updated_at = $3
				WHERE plan_id = $1 AND status IN ('active', 'past_due')`, id, newID, ts(now))
			if err != nil {
				return fmt.Errorf("move subscribers: %w", err)
			}
			n, _ := r.RowsAffected()
			res.Moved = int(n)
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

// SetPlanActive offers a plan to new subscribers or stops offering it;
// its subscribers keep it. The last active free plan (the plan of users
// without a subscription) cannot be deactivated. Errors: not_found,
// conflict.
func (db *DB) SetPlanActive(ctx context.Context, id int64, active bool, now time.Time) (billing.Plan, error) {
	p, err := db.GetPlan(ctx, id)
	if err != nil {
		return p, err
	}
	if !active && p.IsFree() && p.IsActive {
		var others int
		if err := db.readRow(ctx, `SELECT COUNT(*) FROM subscription_plans WHERE is_active = TRUE
			AND price_monthly = 0 AND price_yearly = 0 AND id <> $1`, id).Scan(&others); err != nil {
			return p, err
		}
		if others == 0 {
			return p, billing.Errorf(billing.CodeConflict, "plan %s is the only active free plan, the plan of users without a subscription", p.Name)
		}
	}
	if active && p.ReplacedBy != nil {
		return p, billing.Errorf(billing.CodeConflict, "plan %d was replaced by plan %d", id, *p.ReplacedBy)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE subscription_plans SET is_active = $2, updated_at = $3 WHERE id = $1`,
		id, active, ts(now)); err != nil {
		return p, fmt.Errorf("set plan %d active: %w", id, err)
	}
	db.accountsChanged()
	p.IsActive = active
	return p, nil
}
