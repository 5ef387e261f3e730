package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// The subscription lifecycle. Every change writes, in one transaction, the
// subscription row, the charge or credit it leaves for the next invoice
// (invoice_items), a subscription_history entry with the period's usage,
// and the event for webhooks. Money moves only through invoice items and
// invoices, so every invoice line is explained by the change that made it.

// ChangeOutcome says what a subscribe call did.
type ChangeOutcome string

const (
	ChangeCreated   ChangeOutcome = "created"   // a new subscription
	ChangeUpgraded  ChangeOutcome = "upgraded"  // at once, the difference prorated
	ChangeChanged   ChangeOutcome = "changed"   // a downgrade at once, credited
	ChangeScheduled ChangeOutcome = "scheduled" // at the next renewal
	ChangeUnchanged ChangeOutcome = "unchanged"
)

// ChangeResult is a subscription after a lifecycle operation.
type ChangeResult struct {
	Subscription billing.Subscription
	Plan         billing.Plan
	Outcome      ChangeOutcome
	// EffectiveAt is when a scheduled change takes effect.
	EffectiveAt time.Time
}

// SubscribeOptions refine Subscribe.
type SubscribeOptions struct {
	// Immediate makes a downgrade take effect now, with the unused part
	// of the price difference credited, instead of at the next renewal.
	Immediate bool
	// TimeZone of a new subscription's periods ("" is UTC). A free plan
	// ignores it: it keeps the calendar months in UTC.
	TimeZone string
}

// lockClause locks the rows a lifecycle transaction reads on PostgreSQL;
// SQLite's write transactions are serialised already.
func (db *DB) lockClause() string {
	if db.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// lockUserSubscriptions serialises the subscription changes of one user
// on PostgreSQL. SELECT … FOR UPDATE locks only rows that exist, so two
// first subscriptions of a user would both find none and both insert one;
// a transaction-scoped advisory lock on the user makes the second wait
// and then see the first's row. The key has its own prefix so that it
// does not share the (user, period) keys admission locks. SQLite's write
// transactions are serialised already.
func (db *DB) lockUserSubscriptions(ctx context.Context, tx *sql.Tx, userID string) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('subscription' || chr(31) || $1, 0))`,
		userID); err != nil {
		return fmt.Errorf("lock subscriptions of %s: %w", userID, err)
	}
	return nil
}

// Subscribe starts a subscription to planID, or changes the current one:
// a dearer plan in the same cycle is an upgrade that takes effect at once
// (its prorated difference goes on the next invoice); a cheaper one waits
// for the renewal unless opts.Immediate (then the difference is credited);
// a change of cycle waits for the renewal. Errors: not_found (plan),
// invalid (inactive plan, unknown cycle).
func (db *DB) Subscribe(ctx context.Context, userID string, planID int64, cycle string, opts SubscribeOptions, now time.Time) (ChangeResult, error) {
	if !billing.ValidCycle(cycle) {
		return ChangeResult{}, billing.InvalidField("body.billing_cycle", "must be monthly or yearly", cycle)
	}
	plan, err := db.GetPlan(ctx, planID)
	if err != nil {
		return ChangeResult{}, err
	}
	if !plan.IsActive {
		return ChangeResult{}, billing.InvalidField("body.plan_id", fmt.Sprintf("plan %d (%s) is not offered any more", planID, plan.Name), planID)
	}
	if opts.TimeZone != "" {
		if _, err := time.LoadLocation(opts.TimeZone); err != nil {
			return ChangeResult{}, billing.InvalidField("body.time_zone", "unknown time zone", opts.TimeZone)
		}
	}
	now = now.Truncate(time.Second)
	var res ChangeResult
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockUserSubscriptions(ctx, tx, userID); err != nil {
			return err
		}
		cur, err := currentSubscription(ctx, tx, userID, db.lockClause())
		if err != nil {
			return err
		}
		if cur == nil {
			res, err = db.startSubscription(ctx, tx, userID, plan, cycle, opts.TimeZone, now)
			return err
		}
		res, err = db.changeSubscription(ctx, tx, *cur, plan, cycle, opts, now)
		return err
	})
	if err != nil {
		return ChangeResult{}, err
	}
	db.accountsChanged()
	return res, nil
}

// startSubscription creates the user's subscription. A paid plan starts
// its periods at now: the user pays for a fresh period. A free plan keeps
// the calendar months in UTC that users without a subscription have, its
// cycle starting with the month that holds now; otherwise subscribing to
// it, using its limits, cancelling and subscribing again would open a new
// period with empty counters each time, and a user key could reset its
// free limits at will.
func (db *DB) startSubscription(ctx context.Context, tx *sql.Tx, userID string, plan billing.Plan, cycle, tz string, now time.Time) (ChangeResult, error) {
	s := billing.Subscription{UserID: userID, PlanID: plan.ID, BillingCycle: cycle, Status: billing.StatusActive,
		AutoRenew: true, Anchor: now, TimeZone: tz, CurrentPeriodStart: now}
	if plan.IsFree() {
		cal := billing.CalendarMonths()
		s.Anchor, s.TimeZone, s.CurrentPeriodStart = cal.Anchor, "", cal.At(now).Start
	}
	s.CurrentPeriodEnd = s.Schedule().After(now, billing.CycleMonths(cycle))
	id, err := insertSubscription(ctx, tx, s, now)
	if err != nil {
		return ChangeResult{}, err
	}
	s.ID, s.InvoicedThrough, s.CreatedAt, s.UpdatedAt = id, s.CurrentPeriodStart, now, now
	if err := addCycleFee(ctx, tx, s, plan, now); err != nil {
		return ChangeResult{}, err
	}
	if err := addHistory(ctx, tx, s, billing.HistoryNew, nil, &plan, now); err != nil {
		return ChangeResult{}, err
	}
	return ChangeResult{Subscription: s, Plan: plan, Outcome: ChangeCreated}, notifyChange(ctx, tx, s, plan, string(ChangeCreated), now)
}

func (db *DB) changeSubscription(ctx context.Context, tx *sql.Tx, s billing.Subscription, plan billing.Plan, cycle string, opts SubscribeOptions, now time.Time) (ChangeResult, error) {
	old, err := db.GetPlan(ctx, s.PlanID)
	if err != nil {
		return ChangeResult{}, err
	}
	if plan.ID == s.PlanID && cycle == s.BillingCycle {
		// Asking for the current plan again undoes a scheduled change or
		// cancellation.
		if s.PendingPlanID != nil || s.PendingCycle != "" || s.CancelAtPeriodEnd {
			if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET pending_plan_id = NULL, pending_billing_cycle = NULL,
				cancel_at_period_end = FALSE, updated_at = $2 WHERE id = $1`, s.ID, ts(now)); err != nil {
				return ChangeResult{}, fmt.Errorf("undo scheduled change: %w", err)
			}
			s.PendingPlanID, s.PendingCycle, s.CancelAtPeriodEnd = nil, "", false
			return ChangeResult{Subscription: s, Plan: plan, Outcome: ChangeUnchanged}, notifyChange(ctx, tx, s, plan, "resumed", now)
		}
		return ChangeResult{Subscription: s, Plan: plan, Outcome: ChangeUnchanged}, nil
	}
	cyc := s.Cycle()
	switch {
	case cycle == s.BillingCycle && plan.Price(cycle) > old.Price(cycle):
		diff, err := plan.Price(cycle).Add(-old.Price(cycle))
		if err != nil {
			return ChangeResult{}, err
		}
		amt, err := billing.Prorate(diff, cyc, now)
		if err != nil {
			return ChangeResult{}, err
		}
		line := billing.InvoiceLine{Type: billing.LineUpgrade, PeriodStart: now, PeriodEnd: cyc.End, Amount: amt,
			Description: fmt.Sprintf("Upgrade from %s to %s: %s price difference for the rest of the cycle", old.Name, plan.Name, cycle)}
		return db.switchNow(ctx, tx, s, old, plan, line, billing.HistoryUpgrade, ChangeUpgraded, now)
	case cycle == s.BillingCycle && opts.Immediate:
		diff, err := old.Price(cycle).Add(-plan.Price(cycle))
		if err != nil {
			return ChangeResult{}, err
		}
		amt, err := billing.Prorate(diff, cyc, now)
		if err != nil {
			return ChangeResult{}, err
		}
		line := billing.InvoiceLine{Type: billing.LineDowngrade, PeriodStart: now, PeriodEnd: cyc.End, Amount: -amt,
			Description: fmt.Sprintf("Downgrade from %s to %s: unused %s price difference credited", old.Name, plan.Name, cycle)}
		return db.switchNow(ctx, tx, s, old, plan, line, billing.HistoryDowngrade, ChangeChanged, now)
	default:
		if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET pending_plan_id = $2, pending_billing_cycle = $3,
			cancel_at_period_end = FALSE, updated_at = $4 WHERE id = $1`, s.ID, plan.ID, cycle, ts(now)); err != nil {
			return ChangeResult{}, fmt.Errorf("schedule plan change: %w", err)
		}
		s.PendingPlanID, s.PendingCycle, s.CancelAtPeriodEnd = &plan.ID, cycle, false
		return ChangeResult{Subscription: s, Plan: old, Outcome: ChangeScheduled, EffectiveAt: cyc.End},
			notifyChange(ctx, tx, s, old, "change_scheduled", now)
	}
}

// switchNow moves s to plan at once and books, for the invoice of the
// usage period that holds now, the old plan's overage so far and line.
func (db *DB) switchNow(ctx context.Context, tx *sql.Tx, s billing.Subscription, old, plan billing.Plan, line billing.InvoiceLine,
	event string, outcome ChangeOutcome, now time.Time) (ChangeResult, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET plan_id = $2, pending_plan_id = NULL,
		pending_billing_cycle = NULL, cancel_at_period_end = FALSE, updated_at = $3 WHERE id = $1`, s.ID, plan.ID, ts(now)); err != nil {
		return ChangeResult{}, fmt.Errorf("change plan: %w", err)
	}
	s.PlanID, s.PendingPlanID, s.PendingCycle, s.CancelAtPeriodEnd = plan.ID, nil, "", false
	p := s.Schedule().At(now)
	u, err := bookOverageSoFar(ctx, tx, s, old, p, now)
	if err != nil {
		return ChangeResult{}, err
	}
	if line.Amount != 0 {
		if err := addItem(ctx, tx, s, p, line, now); err != nil {
			return ChangeResult{}, err
		}
	}
	// The entry marks u as priced by old: the same reading the overage
	// was priced on, so that no usage falls between the two plans.
	if err := insertHistory(ctx, tx, s, event, &old, &plan, u, true, now); err != nil {
		return ChangeResult{}, err
	}
	return ChangeResult{Subscription: s, Plan: plan, Outcome: outcome}, notifyChange(ctx, tx, s, plan, string(outcome), now)
}

// Cancel cancels the user's subscription: at the end of the billing cycle
// by default, or at once with the unused part of the cycle's price
// credited on the next invoice. Errors: not_found (no subscription).
func (db *DB) Cancel(ctx context.Context, userID string, immediate bool, now time.Time) (ChangeResult, error) {
	now = now.Truncate(time.Second)
	var res ChangeResult
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		s, err := currentSubscription(ctx, tx, userID, db.lockClause())
		if err != nil {
			return err
		}
		if s == nil {
			return billing.Errorf(billing.CodeNotFound, "user %s has no subscription to cancel", userID)
		}
		plan, err := db.GetPlan(ctx, s.PlanID)
		if err != nil {
			return err
		}
		if !immediate {
			if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET cancel_at_period_end = TRUE, pending_plan_id = NULL,
				pending_billing_cycle = NULL, updated_at = $2 WHERE id = $1`, s.ID, ts(now)); err != nil {
				return fmt.Errorf("schedule cancellation: %w", err)
			}
			s.CancelAtPeriodEnd, s.PendingPlanID, s.PendingCycle = true, nil, ""
			res = ChangeResult{Subscription: *s, Plan: plan, Outcome: ChangeScheduled, EffectiveAt: s.CurrentPeriodEnd}
			return notifyChange(ctx, tx, *s, plan, "cancel_scheduled", now)
		}
		cyc := s.Cycle()
		credit, err := billing.Prorate(plan.Price(s.BillingCycle), cyc, now)
		if err != nil {
			return err
		}
		if credit != 0 {
			line := billing.InvoiceLine{Type: billing.LineCredit, PeriodStart: now, PeriodEnd: cyc.End, Amount: -credit,
				Description: fmt.Sprintf("Cancellation of %s: unused part of the %s price", plan.Name, s.BillingCycle)}
			if err := addItem(ctx, tx, *s, s.Schedule().At(now), line, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET status = 'cancelled', cancelled_at = $2,
			pending_plan_id = NULL, pending_billing_cycle = NULL, updated_at = $2 WHERE id = $1`, s.ID, ts(now)); err != nil {
			return fmt.Errorf("cancel subscription: %w", err)
		}
		s.Status, s.CancelledAt = billing.StatusCancelled, &now
		if err := addHistory(ctx, tx, *s, billing.HistoryCancel, &plan, nil, now); err != nil {
			return err
		}
		res = ChangeResult{Subscription: *s, Plan: plan, Outcome: ChangeChanged}
		return notifyChange(ctx, tx, *s, plan, "cancelled", now)
	})
	if err != nil {
		return ChangeResult{}, err
	}
	db.accountsChanged()
	return res, nil
}

// SetSubscriptionState sets what an admin may set directly: the status
// (active or past_due) and auto-renewal. Nil leaves a field as it is.
// Errors: not_found, invalid.
func (db *DB) SetSubscriptionState(ctx context.Context, userID string, status *string, autoRenew *bool, now time.Time) (billing.Subscription, error) {
	if status != nil && *status != billing.StatusActive && *status != billing.StatusPastDue {
		return billing.Subscription{}, billing.InvalidField("body.status", "may be set to active or past_due (cancel through the cancel operation)", *status)
	}
	var out billing.Subscription
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		s, err := currentSubscription(ctx, tx, userID, db.lockClause())
		if err != nil {
			return err
		}
		if s == nil {
			return billing.Errorf(billing.CodeNotFound, "user %s has no subscription", userID)
		}
		if status != nil {
			s.Status = *status
		}
		if autoRenew != nil {
			s.AutoRenew = *autoRenew
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET status = $2, auto_renew = $3, updated_at = $4 WHERE id = $1`,
			s.ID, s.Status, s.AutoRenew, ts(now)); err != nil {
			return fmt.Errorf("update subscription: %w", err)
		}
		plan, err := db.GetPlan(ctx, s.PlanID)
		if err != nil {
			return err
		}
		out = *s
		return notifyChange(ctx, tx, *s, plan, "updated", now)
	})
	if err == nil {
		db.accountsChanged()
	}
	return out, err
}

// addCycleFee books the fee of s's current cycle on the invoice of the
// cycle's first usage period.
func addCycleFee(ctx context.Context, tx *sql.Tx, s billing.Subscription, plan billing.Plan, now time.Time) error {
	price := plan.Price(s.BillingCycle)
	if price == 0 {
		return nil
	}
	line := billing.InvoiceLine{Type: billing.LineBase, PeriodStart: s.CurrentPeriodStart, PeriodEnd: s.CurrentPeriodEnd,
		Quantity: 1, UnitPrice: price, Amount: price, Description: fmt.Sprintf("%s plan, %s", plan.Name, s.BillingCycle)}
	return addItem(ctx, tx, s, s.Schedule().At(s.CurrentPeriodStart), line, now)
}

// addItem books a line for the invoice of usage period p.
func addItem(ctx context.Context, tx *sql.Tx, s billing.Subscription, p billing.Period, l billing.InvoiceLine, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO invoice_items (subscription_id, user_id, billing_period, kind, description,
		amount, quantity, unit_price, period_start, period_end, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		s.ID, s.UserID, p.Key, l.Type, l.Description, int64(l.Amount), l.Quantity, int64(l.UnitPrice),
		ts(l.PeriodStart), ts(l.PeriodEnd), ts(now)); err != nil {
		return fmt.Errorf("book invoice item: %w", err)
	}
	return nil
}

// addHistory records a change with the usage of the usage period that
// holds now.
func addHistory(ctx context.Context, tx *sql.Tx, s billing.Subscription, event string, from, to *billing.Plan, now time.Time) error {
	p := s.Schedule().At(now)
	if event == billing.HistoryRenewal || event == billing.HistoryExpire || (event == billing.HistoryCancel && !now.Before(s.CurrentPeriodEnd)) {
		// At a cycle's end, the usage of the period that just ended.
		p = s.Schedule().At(now.Add(-time.Second))
	}
	u, err := periodUsage(ctx, tx, s.UserID, p)
	if err != nil {
		return err
	}
	return insertHistory(ctx, tx, s, event, from, to, u, false, now)
}

// insertHistory records a change with u, the usage of a period. When
// mark, the entry is that period's usage mark: u is priced already, by
// from, and a later plan prices only the usage above it.
func insertHistory(ctx context.Context, tx *sql.Tx, s billing.Subscription, event string, from, to *billing.Plan,
	u billing.PeriodUsage, mark bool, now time.Time) error {
	var fromID, toID, usagePeriod, providers any
	var fromName, toName string
	if from != nil {
		fromID, fromName = from.ID, from.Name
	}
	if to != nil {
		toID, toName = to.ID, to.Name
	}
	if mark {
		byProvider := make(map[string]markedCounters, len(u.ByProvider))
		for prov, c := range u.ByProvider {
			byProvider[prov] = markedCounters{Calls: c.Calls, TokensInput: c.TokensInput, TokensOutput: c.TokensOutput, Cost: int64(c.Cost)}
		}
		b, err := json.Marshal(byProvider)
		if err != nil {
			return err
		}
		usagePeriod, providers = u.Period.Key, string(b)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO subscription_history (user_id, subscription_id, event, from_plan_id,
		from_plan_name, to_plan_id, to_plan_name, billing_cycle, period_start, period_end, usage_calls, usage_tokens,
		usage_cost, usage_period, usage_providers, effective_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16)`,
		s.UserID, s.ID, event, fromID, fromName, toID, toName, s.BillingCycle, ts(s.CurrentPeriodStart), ts(s.CurrentPeriodEnd),
		u.Total.Calls, u.Total.Tokens(), int64(u.Total.Cost), usagePeriod, providers, ts(now)); err != nil {
		return fmt.Errorf("record subscription history: %w", err)
	}
	return nil
}

// bookOverageSoFar bills old's overage for the usage of period p since
// the last immediate plan change in p (or p's start) up to now, and
// returns the usage it read, for the change's history entry to mark as
// priced. The invoice is written with the plan in effect at
// the close; without this, an immediate change would drop the overage the
// old plan ran up, or price it against the new plan's limits.
func bookOverageSoFar(ctx context.Context, tx *sql.Tx, s billing.Subscription, old billing.Plan, p billing.Period, now time.Time) (billing.PeriodUsage, error) {
	u, err := periodUsage(ctx, tx, s.UserID, p)
	if err != nil {
		return u, err
	}
	lines, err := overageSince(ctx, tx, s.ID, old, p, u, now)
	if err != nil {
		return u, err
	}
	for _, l := range lines {
		if err := addItem(ctx, tx, s, p, l, now); err != nil {
			return u, err
		}
	}
	return u, nil
}

// overageSince prices with plan the usage u of period p above its usage
// mark, the part from the last immediate plan change (or p's start) to
// end. Lines for a part of the period name the plan that priced them.
func overageSince(ctx context.Context, tx *sql.Tx, subID int64, plan billing.Plan, p billing.Period, u billing.PeriodUsage, end time.Time) ([]billing.InvoiceLine, error) {
	mark, since, err := usageMark(ctx, tx, subID, p)
	if err != nil {
		return nil, err
	}
	lines, err := billing.Overage(plan, billing.UsageSince(u, mark), billing.Period{Key: p.Key, Start: since, End: end})
	if err != nil {
		return nil, err
	}
	if since.After(p.Start) || end.Before(p.End) {
		for i := range lines {
			lines[i].Description = plan.Name + ": " + lines[i].Description
		}
	}
	return lines, nil
}

// markedCounters is one provider's usage in a usage mark.
type markedCounters struct {
	Calls        int64 `json:"calls"`
	TokensInput  int64 `json:"tokens_input"`
	TokensOutput int64 `json:"tokens_output"`
	Cost         int64 `json:"cost"`
}

// usageMark returns the usage of subscription subID's period p that an
// earlier plan has priced, from the history entry of the last immediate
// plan change in p, and when it stopped; with no such change, no usage and
// p's start. The totals keep calls, cost and tokens only as a sum (in
// TokensInput): overage prices input and output tokens alike.
func usageMark(ctx context.Context, tx *sql.Tx, subID int64, p billing.Period) (billing.PeriodUsage, time.Time, error) {
	u := billing.PeriodUsage{Period: p, ByProvider: map[string]billing.Counters{}}
	var cost int64
	var providers string
	var at time.Time
	err := tx.QueryRowContext(ctx, `SELECT usage_calls, usage_tokens, usage_cost, usage_providers, effective_at
		FROM subscription_history WHERE subscription_id = $1 AND usage_period = $2
		ORDER BY effective_at DESC, id DESC LIMIT 1`, subID, p.Key).Scan(
		&u.Total.Calls, &u.Total.TokensInput, &cost, &providers, scanTime{&at})
	if errors.Is(err, sql.ErrNoRows) {
		return u, p.Start, nil
	}
	if err != nil {
		return u, at, fmt.Errorf("read usage mark of %s: %w", p.Key, err)
	}
	u.Total.Cost = money.Amount(cost)
	var byProvider map[string]markedCounters
	if err := json.Unmarshal([]byte(providers), &byProvider); err != nil {
		return u, at, fmt.Errorf("usage mark of %s: %w", p.Key, err)
	}
	for prov, c := range byProvider {
		u.ByProvider[prov] = billing.Counters{Calls: c.Calls, TokensInput: c.TokensInput, TokensOutput: c.TokensOutput,
			Cost: money.Amount(c.Cost)}
	}
	return u, at, nil
}

// notifyChange queues a subscription.changed event.
func notifyChange(ctx context.Context, tx *sql.Tx, s billing.Subscription, plan billing.Plan, change string, now time.Time) error {
	return notify(ctx, tx, "subscription.changed", map[string]any{
		"change": change, "user_id": s.UserID, "subscription_id": s.ID, "plan_id": plan.ID, "plan_name": plan.Name,
		"billing_cycle": s.BillingCycle, "status": s.Status, "auto_renew": s.AutoRenew,
		"current_period_start": s.CurrentPeriodStart, "current_period_end": s.CurrentPeriodEnd,
		"cancel_at_period_end": s.CancelAtPeriodEnd, "pending_plan_id": s.PendingPlanID,
	}, now)
}

// CloseGrace is how long a usage period stays open for usage after its
// end before it is invoiced. A call that starts just before the end
// settles after it, into the period of its start, and an event may be
// reported late; usage that arrives after the close is billed as an
// adjustment on the subscription's next invoice (see lateUsage). An hour covers the default reservation hold
// (ten minutes) and the calls in flight at the boundary many times over.
// It does not cover a hold asked for up to the 24-hour maximum nor an
// event reported days late (accepted up to billing.MaxEventAge): waiting
// that long would also keep a cycle's renewal, expiry, cancellation at its
// end or scheduled downgrade from taking effect, since they happen when
// the cycle's last period is closed. Until then the subscription keeps
// its plan, so the longer the grace, the longer a cancelled or downgraded
// user keeps the old plan's limits.
const CloseGrace = time.Hour

// CloseDue closes every usage period that ended at least CloseGrace
// before now, oldest first, catching up on as many as were missed: one
// invoice per subscription and period, then the renewal, expiry or
// cancellation a cycle's end calls for. Several processes may run it at
// once: a period is closed by the one transaction that moves the
// subscription's invoiced_through past it.
func (db *DB) CloseDue(ctx context.Context, now time.Time, limit int) (int, error) {
	closed := 0
	for closed < limit {
		rows, err := db.readRows(ctx, `SELECT id FROM user_subscriptions WHERE next_close_at <= $1
			ORDER BY next_close_at, id LIMIT 100`, ts(now.Add(-CloseGrace)))
		if err != nil {
			return closed, fmt.Errorf("find periods to close: %w", err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return closed, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return closed, err
		}
		if len(ids) == 0 {
			return closed, nil
		}
		progress := false
		for _, id := range ids {
			n, err := db.closeNext(ctx, id, now)
			if err != nil {
				return closed, err
			}
			closed += n
			progress = progress || n > 0
		}
		if !progress {
			return closed, nil
		}
	}
	return closed, nil
}

// closeNext closes the next usage period of one subscription if it has
// ended, in one transaction, and reports whether it did.
func (db *DB) closeNext(ctx context.Context, id int64, now time.Time) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		s, err := scanSubscription(tx.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM user_subscriptions
			WHERE id = $1`+db.lockClause(), id))
		if err != nil {
			return fmt.Errorf("read subscription %d: %w", id, err)
		}
		sched := s.Schedule()
		p := sched.At(s.InvoicedThrough)
		ended := s.Status == billing.StatusExpired ||
			(s.Status == billing.StatusCancelled && (s.CancelledAt == nil || !s.CancelledAt.After(p.Start)))
		if ended || !s.InvoicedThrough.Before(s.CurrentPeriodEnd) && s.Status == billing.StatusCancelled {
			_, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET next_close_at = NULL WHERE id = $1`, id)
			return err
		}
		if p.End.Add(CloseGrace).After(now) {
			// next_close_at is the period's end; CloseDue adds the grace.
			_, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET next_close_at = $2 WHERE id = $1`, id, ts(p.End))
			return err
		}
		// Move invoiced_through first: a concurrent closer that read the
		// same row finds it moved and changes nothing.
		res, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET invoiced_through = $2, updated_at = $3
			WHERE id = $1 AND invoiced_through = $4`, id, ts(p.End), ts(now), ts(s.InvoicedThrough))
		if err != nil {
			return fmt.Errorf("close period: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return nil
		}
		plan, err := db.planAt(ctx, tx, s, p.End)
		if err != nil {
			return err
		}
		if err := db.invoice(ctx, tx, s, plan, p, now); err != nil {
			return err
		}
		n = 1
		s.InvoicedThrough = p.End
		next := sched.At(p.End).End
		switch {
		case s.Status == billing.StatusCancelled && !p.End.Before(cancelledAt(s)):
			// Cancelled at once during this period: that was its last invoice.
			_, err = tx.ExecContext(ctx, `UPDATE user_subscriptions SET next_close_at = NULL WHERE id = $1`, id)
			return err
		case s.Status == billing.StatusCancelled:
			// Cancelled at once in a later period than this one, before the
			// closer caught up: the cancellation's credit and the usage up
			// to it are booked for the period that holds it, so go on
			// closing until that period is invoiced.
		case p.End.Before(s.CurrentPeriodEnd):
		case s.CancelAtPeriodEnd:
			if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET status = 'cancelled', cancelled_at = $2,
				next_close_at = NULL, updated_at = $3 WHERE id = $1`, id, ts(s.CurrentPeriodEnd), ts(now)); err != nil {
				return fmt.Errorf("cancel at cycle end: %w", err)
			}
			s.Status, s.CancelledAt = billing.StatusCancelled, &s.CurrentPeriodEnd
			if err := addHistory(ctx, tx, s, billing.HistoryCancel, &plan, nil, s.CurrentPeriodEnd); err != nil {
				return err
			}
			return notifyChange(ctx, tx, s, plan, "cancelled", now)
		case !s.AutoRenew:
			if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET status = 'expired', next_close_at = NULL,
				updated_at = $2 WHERE id = $1`, id, ts(now)); err != nil {
				return fmt.Errorf("expire subscription: %w", err)
			}
			s.Status = billing.StatusExpired
			if err := addHistory(ctx, tx, s, billing.HistoryExpire, &plan, nil, s.CurrentPeriodEnd); err != nil {
				return err
			}
			return notifyChange(ctx, tx, s, plan, "expired", now)
		default:
			if err := db.renew(ctx, tx, &s, plan, now); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE user_subscriptions SET next_close_at = $2 WHERE id = $1`, id, ts(next))
		return err
	})
	if err == nil && n > 0 {
		// A renewal, expiry or cancellation changes the user's plan.
		db.accountsChanged()
	}
	return n, err
}

// planAt returns the plan s had at end, the end of a period being closed:
// its plan now unless it changed plan at once since (in the hour before
// the period closes, or while the closer was behind), when the plan it
// changed from prices and names the period's invoice.
func (db *DB) planAt(ctx context.Context, tx *sql.Tx, s billing.Subscription, end time.Time) (billing.Plan, error) {
	id := s.PlanID
	var from sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT from_plan_id FROM subscription_history
		WHERE subscription_id = $1 AND effective_at >= $2 AND from_plan_id IS NOT NULL AND from_plan_id <> to_plan_id
		ORDER BY effective_at, id LIMIT 1`, s.ID, ts(end)).Scan(&from)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return billing.Plan{}, fmt.Errorf("read the plan of %s at %s: %w", s.UserID, end, err)
	case from.Valid:
		id = from.Int64
	}
	return db.GetPlan(ctx, id)
}

// cancelledAt is when s was cancelled; a cancelled subscription without
// the time (written before it was recorded) counts as cancelled at its
// cycle's start, so nothing after that is closed for it.
func cancelledAt(s billing.Subscription) time.Time {
	if s.CancelledAt == nil {
		return s.CurrentPeriodStart
	}
	return *s.CancelledAt
}

// renew starts s's next cycle at the end of the current one, with a
// scheduled plan or cycle change applied and an edited plan's newest
// version, and books the new cycle's fee.
func (db *DB) renew(ctx context.Context, tx *sql.Tx, s *billing.Subscription, plan billing.Plan, now time.Time) error {
	next := plan
	if s.PendingPlanID != nil {
		p, err := db.GetPlan(ctx, *s.PendingPlanID)
		if err != nil {
			return err
		}
		next = p
	}
	for next.ReplacedBy != nil {
		p, err := db.GetPlan(ctx, *next.ReplacedBy)
		if err != nil {
			return err
		}
		next = p
	}
	cycle := s.BillingCycle
	if s.PendingCycle != "" {
		cycle = s.PendingCycle
	}
	start := s.CurrentPeriodEnd
	end := s.Schedule().After(start, billing.CycleMonths(cycle))
	if _, err := tx.ExecContext(ctx, `UPDATE user_subscriptions SET plan_id = $2, billing_cycle = $3,
		current_period_start = $4, current_period_end = $5, pending_plan_id = NULL, pending_billing_cycle = NULL,
		updated_at = $6 WHERE id = $1`, s.ID, next.ID, cycle, ts(start), ts(end), ts(now)); err != nil {
		return fmt.Errorf("renew subscription: %w", err)
	}
	event := billing.HistoryRenewal
	switch {
	case next.Price(cycle) > plan.Price(s.BillingCycle) && next.ID != plan.ID:
		event = billing.HistoryUpgrade
	case next.Price(cycle) < plan.Price(s.BillingCycle) && next.ID != plan.ID:
		event = billing.HistoryDowngrade
	}
	s.PlanID, s.BillingCycle, s.CurrentPeriodStart, s.CurrentPeriodEnd = next.ID, cycle, start, end
	s.PendingPlanID, s.PendingCycle = nil, ""
	if err := addCycleFee(ctx, tx, *s, next, now); err != nil {
		return err
	}
	if err := addHistory(ctx, tx, *s, event, &plan, &next, start); err != nil {
		return err
	}
	return notifyChange(ctx, tx, *s, next, "renewed", now)
}

// invoice writes the invoice of usage period p: the items booked for it
// (among them the overage of plans changed at once during p), plan's
// overage for the usage since the last such change, an adjustment for each
// earlier period whose usage grew after its invoice, and p's usage totals.
// An invoice that exists already is left as it is.
func (db *DB) invoice(ctx context.Context, tx *sql.Tx, s billing.Subscription, plan billing.Plan, p billing.Period, now time.Time) error {
	rows, err := tx.QueryContext(ctx, `SELECT kind, description, amount, quantity, unit_price, period_start, period_end
		FROM invoice_items WHERE subscription_id = $1 AND billing_period = $2 ORDER BY id`, s.ID, p.Key)
	if err != nil {
		return fmt.Errorf("read invoice items: %w", err)
	}
	inv := billing.Invoice{UserID: s.UserID, SubscriptionID: s.ID, Period: p, PlanName: plan.Name,
		Number: billing.InvoiceNumber(s.ID, p.Key), Status: billing.InvoiceDraft, CreatedAt: now}
	for rows.Next() {
		var l billing.InvoiceLine
		var amount, unitPrice int64
		if err := rows.Scan(&l.Type, &l.Description, &amount, &l.Quantity, &unitPrice,
			scanTime{&l.PeriodStart}, scanTime{&l.PeriodEnd}); err != nil {
			rows.Close()
			return err
		}
		l.Amount, l.UnitPrice = money.Amount(amount), money.Amount(unitPrice)
		if l.Type == billing.LineBase && l.Quantity == 0 {
			// Booked before items kept their quantity.
			l.Quantity, l.UnitPrice = 1, l.Amount
		}
		inv.Lines = append(inv.Lines, l)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	u, err := periodUsage(ctx, tx, s.UserID, p)
	if err != nil {
		return err
	}
	over, err := overageSince(ctx, tx, s.ID, plan, p, u, p.End)
	if err != nil {
		return err
	}
	inv.Lines = append(inv.Lines, over...)
	late, billed, err := db.lateUsage(ctx, tx, s, p)
	if err != nil {
		return err
	}
	inv.Lines = append(inv.Lines, late...)
	inv.UsageCost, inv.Calls, inv.Tokens = u.Total.Cost, u.Total.Calls, u.Total.Tokens()
	if err := inv.Totals(); err != nil {
		return err
	}
	lines, err := json.Marshal(nonNil(inv.Lines))
	if err != nil {
		return err
	}
	overage, err := sumLines(over)
	if err != nil {
		return err
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO billing_history (user_id, subscription_id, invoice_number, billing_period,
		period_start, period_end, plan_name, base_cost, usage_cost, overage_cost, credits, total_amount, total_api_calls,
		total_tokens, line_items, status, created_at, updated_at, billed_plan_id, billed_calls, billed_tokens, billed_cost,
		billed_overage)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 'draft', $16, $16, $17, $13, $14, $9, $18)
		ON CONFLICT (subscription_id, billing_period) DO NOTHING RETURNING id`,
		inv.UserID, inv.SubscriptionID, inv.Number, p.Key, ts(p.Start), ts(p.End), inv.PlanName, int64(inv.Base),
		int64(inv.UsageCost), int64(inv.Overage), int64(inv.Credits), int64(inv.Total), inv.Calls, inv.Tokens,
		string(lines), ts(now), plan.ID, int64(overage)).Scan(&inv.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // written already, with any adjustments of earlier periods
	}
	if err != nil {
		return fmt.Errorf("write invoice %s: %w", inv.Number, err)
	}
	// In the transaction that wrote the adjustments: a later invoice finds
	// them billed, and a failed write leaves them for the next.
	for _, b := range billed {
		if err := b.save(ctx, tx); err != nil {
			return err
		}
	}
	if db.InvoiceReview > 0 {
		return nil // a draft until IssueDrafts (or an admin) issues it
	}
	return issue(ctx, tx, inv, now)
}

// lateUsageWindow is how long after a usage period's end its usage may
// still grow: events are accepted up to billing.MaxEventAge late, and a
// call held for up to a day settles into the period it started in.
const lateUsageWindow = billing.MaxEventAge + 24*time.Hour

// billedUsage is what an invoice has billed of its period's usage: the
// usage at the close plus later adjustments, and the overage that the plan
// at the close priced for it.
type billedUsage struct {
	invoiceID     int64
	period        billing.Period
	planID        int64
	calls, tokens int64
	cost, overage money.Amount
}

// save records b as what its invoice has billed.
func (b billedUsage) save(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE billing_history SET billed_calls = $2, billed_tokens = $3, billed_cost = $4,
		billed_overage = $5 WHERE id = $1`, b.invoiceID, b.calls, b.tokens, int64(b.cost), int64(b.overage)); err != nil {
		return fmt.Errorf("record usage billed for %s: %w", b.period.Key, err)
	}
	return nil
}

// lateUsage finds the usage that reached s's invoiced periods before p
// after their invoices were written, and prices it: one adjustment line per
// period, with the calls, tokens and provider cost added and the overage
// they add (the overage of the period's usage now, less what was billed).
// It returns the lines and what each period's invoice has then billed,
// for the caller to save once p's invoice is written. Only periods whose
// usage could have grown since p started are read; a voided invoice's
// period is not billed again.
func (db *DB) lateUsage(ctx context.Context, tx *sql.Tx, s billing.Subscription, p billing.Period) ([]billing.InvoiceLine, []billedUsage, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, billing_period, period_start, period_end, billed_plan_id, billed_calls,
		billed_tokens, billed_cost, billed_overage FROM billing_history
		WHERE subscription_id = $1 AND billed_plan_id IS NOT NULL AND status <> 'void' AND period_end <= $2 AND period_end > $3
		ORDER BY period_start`, s.ID, ts(p.Start), ts(p.Start.Add(-lateUsageWindow)))
	if err != nil {
		return nil, nil, fmt.Errorf("read billed usage: %w", err)
	}
	var earlier []billedUsage
	for rows.Next() {
		var b billedUsage
		var cost, overage int64
		if err := rows.Scan(&b.invoiceID, &b.period.Key, scanTime{&b.period.Start}, scanTime{&b.period.End}, &b.planID,
			&b.calls, &b.tokens, &cost, &overage); err != nil {
			rows.Close()
			return nil, nil, err
		}
		b.cost, b.overage = money.Amount(cost), money.Amount(overage)
		earlier = append(earlier, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	var lines []billing.InvoiceLine
	var billed []billedUsage
	for _, b := range earlier {
		l, after, changed, err := db.adjustment(ctx, tx, s, b)
		if err != nil {
			return nil, nil, err
		}
		if changed {
			lines, billed = append(lines, l), append(billed, after)
		}
	}
	return lines, billed, nil
}

// adjustment prices the usage of b's period beyond what b billed, and
// returns the line, what is billed with it, and whether there is any.
func (db *DB) adjustment(ctx context.Context, tx *sql.Tx, s billing.Subscription, b billedUsage) (billing.InvoiceLine, billedUsage, bool, error) {
	u, err := periodUsage(ctx, tx, s.UserID, b.period)
	if err != nil {
		return billing.InvoiceLine{}, b, false, err
	}
	if u.Total.Calls == b.calls && u.Total.Tokens() == b.tokens && u.Total.Cost == b.cost {
		return billing.InvoiceLine{}, b, false, nil
	}
	plan, err := db.GetPlan(ctx, b.planID)
	if err != nil {
		return billing.InvoiceLine{}, b, false, err
	}
	over, err := overageSince(ctx, tx, s.ID, plan, b.period, u, b.period.End)
	if err != nil {
		return billing.InvoiceLine{}, b, false, err
	}
	overage, err := sumLines(over)
	if err != nil {
		return billing.InvoiceLine{}, b, false, err
	}
	amount, err := overage.Add(-b.overage)
	if err != nil {
		return billing.InvoiceLine{}, b, false, err
	}
	calls, tokens, cost := u.Total.Calls-b.calls, u.Total.Tokens()-b.tokens, u.Total.Cost-b.cost
	l := billing.InvoiceLine{Type: billing.LineAdjustment, PeriodStart: b.period.Start, PeriodEnd: b.period.End,
		Quantity: calls, Amount: amount,
		Description: fmt.Sprintf("Usage of %s reported after its invoice: %d calls, %d tokens, %s at provider prices; %s overage",
			b.period.Key, calls, tokens, cost, amount)}
	b.calls, b.tokens, b.cost, b.overage = u.Total.Calls, u.Total.Tokens(), u.Total.Cost, overage
	return l, b, true, nil
}

// sumLines is the sum of the lines' amounts.
func sumLines(lines []billing.InvoiceLine) (money.Amount, error) {
	var sum money.Amount
	for _, l := range lines {
		var err error
		if sum, err = sum.Add(l.Amount); err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// issue moves a draft invoice to issued and announces it.
func issue(ctx context.Context, tx *sql.Tx, inv billing.Invoice, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE billing_history SET status = 'issued', issued_at = $2, updated_at = $2
		WHERE id = $1 AND status = 'draft'`, inv.ID, ts(now))
	if err != nil {
		return fmt.Errorf("issue invoice %s: %w", inv.Number, err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		return nil
	}
	inv.Status, inv.IssuedAt = billing.InvoiceIssued, &now
	return notify(ctx, tx, "invoice.issued", invoicePayload(inv), now)
}

// IssueDrafts issues the draft invoices written at or before before (the
// end of their review window) and returns how many.
func (db *DB) IssueDrafts(ctx context.Context, before, now time.Time) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, `SELECT `+invoiceColumns+` FROM billing_history
			WHERE status = 'draft' AND created_at <= $1 ORDER BY id LIMIT 1000`+db.lockClause(), ts(before))
		if err != nil {
			return fmt.Errorf("find drafts: %w", err)
		}
		var drafts []billing.Invoice
		for rows.Next() {
			inv, err := scanInvoice(rows)
			if err != nil {
				rows.Close()
				return err
			}
			drafts = append(drafts, inv)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, inv := range drafts {
			if err := issue(ctx, tx, inv, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func invoicePayload(inv billing.Invoice) map[string]any {
	return map[string]any{"invoice_number": inv.Number, "user_id": inv.UserID, "subscription_id": inv.SubscriptionID,
		"billing_period": inv.Period.Key, "period_start": inv.Period.Start, "period_end": inv.Period.End,
		"plan_name": inv.PlanName, "total": inv.Total, "base": inv.Base, "overage": inv.Overage, "credits": inv.Credits,
		"usage_cost": inv.UsageCost, "line_items": nonNil(inv.Lines), "status": inv.Status}
}

const invoiceColumns = `id, invoice_number, user_id, subscription_id, billing_period, period_start, period_end,
	plan_name, base_cost, usage_cost, overage_cost, credits, total_amount, total_api_calls, total_tokens, line_items,
	status, issued_at, payment_date, voided_at, created_at`

func scanInvoice(r rowScanner) (billing.Invoice, error) {
	var inv billing.Invoice
	var number sql.NullString
	var sub sql.NullInt64
	var lines string
	err := r.Scan(&inv.ID, &number, &inv.UserID, &sub, &inv.Period.Key, scanTime{&inv.Period.Start}, scanTime{&inv.Period.End},
		&inv.PlanName, &inv.Base, &inv.UsageCost, &inv.Overage, &inv.Credits, &inv.Total, &inv.Calls, &inv.Tokens, &lines,
		&inv.Status, scanNullTime{&inv.IssuedAt}, scanNullTime{&inv.PaidAt}, scanNullTime{&inv.VoidedAt}, scanTime{&inv.CreatedAt})
	if err != nil {
		return inv, err
	}
	inv.Number, inv.SubscriptionID = number.String, sub.Int64
	if err := json.Unmarshal([]byte(lines), &inv.Lines); err != nil {
		return inv, fmt.Errorf("invoice %d lines: %w", inv.ID, err)
	}
	return inv, nil
}

// InvoiceFilter selects invoices; empty fields select all.
type InvoiceFilter struct {
	UserID        string
	BillingPeriod string
	Limit, Offset int
}

// Invoices lists invoices, newest period first, and how many match.
func (db *DB) Invoices(ctx context.Context, f InvoiceFilter) ([]billing.Invoice, int, error) {
	where, args := `WHERE 1 = 1`, []any{}
	if f.UserID != "" {
		args = append(args, f.UserID)
		where += fmt.Sprintf(` AND user_id = $%d`, len(args))
	}
	if f.BillingPeriod != "" {
		args = append(args, f.BillingPeriod)
		where += fmt.Sprintf(` AND billing_period = $%d`, len(args))
	}
	var total int
	if err := db.readRow(ctx, `SELECT COUNT(*) FROM billing_history `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count invoices: %w", err)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	args = append(args, f.Limit, f.Offset)
	rows, err := db.readRows(ctx, `SELECT `+invoiceColumns+` FROM billing_history `+where+
		fmt.Sprintf(` ORDER BY period_start DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list invoices: %w", err)
	}
	defer rows.Close()
	out := []billing.Invoice{}
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, inv)
	}
	return out, total, rows.Err()
}

// SetInvoiceStatus moves an invoice along draft → issued → paid | void: a
// draft may be issued or voided, an issued invoice paid or voided; paid
// and void are final. Errors: not_found, invalid, conflict.
func (db *DB) SetInvoiceStatus(ctx context.Context, id int64, status string, now time.Time) (billing.Invoice, error) {
	if status != billing.InvoicePaid && status != billing.InvoiceVoid && status != billing.InvoiceIssued {
		return billing.Invoice{}, billing.InvalidField("body.status", "must be issued, paid or void", status)
	}
	var inv billing.Invoice
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvoice(tx.QueryRowContext(ctx, `SELECT `+invoiceColumns+` FROM billing_history WHERE id = $1`+db.lockClause(), id))
		if errors.Is(err, sql.ErrNoRows) {
			return billing.Errorf(billing.CodeNotFound, "invoice %d not found", id)
		}
		if err != nil {
			return err
		}
		if inv.Status == status {
			return nil
		}
		switch {
		case inv.Status == billing.InvoiceDraft && status == billing.InvoicePaid:
			return billing.Errorf(billing.CodeConflict, "invoice %s is a draft: issue it before marking it paid", inv.Number)
		case inv.Status != billing.InvoiceIssued && inv.Status != billing.InvoiceDraft,
			inv.Status == billing.InvoiceIssued && status == billing.InvoiceIssued:
			return billing.Errorf(billing.CodeConflict, "invoice %s is %s already", inv.Number, inv.Status)
		case status == billing.InvoiceIssued:
			if err := issue(ctx, tx, inv, now); err != nil {
				return err
			}
			inv.Status, inv.IssuedAt = billing.InvoiceIssued, &now
			return nil
		}
		col := "payment_date"
		if status == billing.InvoiceVoid {
			col = "voided_at"
		}
		if _, err := tx.ExecContext(ctx, `UPDATE billing_history SET status = $2, `+col+` = $3, updated_at = $3 WHERE id = $1`,
			id, status, ts(now)); err != nil {
			return fmt.Errorf("set invoice status: %w", err)
		}
		inv.Status = status
		if status == billing.InvoicePaid {
			inv.PaidAt = &now
		} else {
			inv.VoidedAt = &now
		}
		return nil
	})
	return inv, err
}

// SubscriptionHistory lists a user's subscription changes and renewals,
// newest first.
func (db *DB) SubscriptionHistory(ctx context.Context, userID string, limit int) ([]billing.HistoryEntry, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.readRows(ctx, `SELECT id, user_id, subscription_id, event, from_plan_id, from_plan_name,
		to_plan_id, to_plan_name, billing_cycle, period_start, period_end, usage_calls, usage_tokens, usage_cost,
		effective_at, created_at FROM subscription_history WHERE user_id = $1 ORDER BY effective_at DESC, id DESC LIMIT $2`,
		userID, limit)
	if err != nil {
		return nil, fmt.Errorf("read subscription history: %w", err)
	}
	defer rows.Close()
	out := []billing.HistoryEntry{}
	for rows.Next() {
		var h billing.HistoryEntry
		var from, to sql.NullInt64
		if err := rows.Scan(&h.ID, &h.UserID, &h.SubscriptionID, &h.Event, &from, &h.FromPlanName, &to, &h.ToPlanName,
			&h.BillingCycle, scanTime{&h.Period.Start}, scanTime{&h.Period.End}, &h.UsageCalls, &h.UsageTokens, &h.UsageCost,
			scanTime{&h.EffectiveAt}, scanTime{&h.CreatedAt}); err != nil {
			return nil, err
		}
		if from.Valid {
			h.FromPlanID = &from.Int64
		}
		if to.Valid {
			h.ToPlanID = &to.Int64
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// notify queues a webhook event in the caller's transaction.
func notify(ctx context.Context, tx *sql.Tx, typ string, payload any, now time.Time) error {
	return EnqueueEvent(ctx, tx, typ, payload, now)
}
