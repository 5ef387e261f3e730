package store

import (
	"context"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// AllAlertsFilter selects alerts across users for an admin, newest first.
// Empty fields select everything.
type AllAlertsFilter struct {
	UserID        string // only this user's alerts
	Type          string // only alerts of this type (billing.AlertUsageWarning, …)
	UnreadOnly    bool
	BillingPeriod string
	Limit         int
	Offset        int
}

// ListAllAlerts returns a page of the alerts of every user, the admin
// alerts (which belong to no user) among them, newest first, with the
// number f selects (ignoring Limit and Offset) and how many of those are
// unread. As in ListAlerts, UnreadOnly makes the first number the second.
func (db *DB) ListAllAlerts(ctx context.Context, f AllAlertsFilter) (alerts []billing.Alert, total, unread int64, err error) {
	q := alertQuery{}
	if f.UserID != "" {
		q.add("user_id = $%d", f.UserID)
	}
	if f.Type != "" {
		q.add("alert_type = $%d", f.Type)
	}
	if f.BillingPeriod != "" {
		q.add("billing_period = $%d", f.BillingPeriod)
	}
	return db.listAlerts(ctx, q, f.UnreadOnly, f.Limit, f.Offset)
}
