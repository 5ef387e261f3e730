package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

const alertColumns = `id, user_id, alert_type, limit_key, threshold_percentage, provider, title, message, severity,
	is_sent, sent_at, is_read, read_at, billing_period, created_at`

// CreateAlert stores an alert unless one with the same identity exists, and
// reports whether it was new.
func (db *DB) CreateAlert(ctx context.Context, a billing.Alert, now time.Time) (int64, bool, error) {
	var provider any
	if a.Provider != "" {
		provider = a.Provider
	}
	var id int64
	created := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage,
		provider, title, message, severity, billing_period, period_start, dedupe_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`,
			a.UserID, a.Type, a.LimitKey, a.ThresholdPercentage, provider, a.Title, a.Message, a.Severity,
			a.BillingPeriod, periodStart(a), a.DedupeKey(), ts(now)).Scan(&id)
		if err == sql.ErrNoRows {
			return nil
		}
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
		created = true
		// Announced to the webhook endpoints in the same transaction.
		return alertCreated(ctx, tx, a, now)
	})
	if err != nil {
		return 0, false, err
	}
	return id, created, nil
}

// ListAlerts returns alerts newest first, with the number matching the
// filter (ignoring Limit) and the number unread.
func (db *DB) ListAlerts(ctx context.Context, f billing.AlertFilter) (alerts []billing.Alert, total, unread int64, err error) {
	q := alertQuery{}
	q.add("user_id = $%d", f.UserID)
	if f.BillingPeriod != "" {
		q.add("billing_period = $%d", f.BillingPeriod)
	}
	return db.listAlerts(ctx, q, f.UnreadOnly, f.Limit, 0)
}

// alertQuery is the conditions of an alert listing and their arguments.
type alertQuery struct {
	where []string
	args  []any
}

// add adds the condition cond, whose one placeholder ("$%d") takes v.
func (q *alertQuery) add(cond string, v any) {
	q.args = append(q.args, v)
	q.where = append(q.where, fmt.Sprintf(cond, len(q.args)))
}

// listAlerts returns a page of the alerts q selects, newest first, with
// the number q selects (ignoring limit and offset) and how many of those
// are unread; with unreadOnly the page holds unread alerts only and the
// first number is the second.
func (db *DB) listAlerts(ctx context.Context, q alertQuery, unreadOnly bool, limit, offset int) (alerts []billing.Alert, total, unread int64, err error) {
	base := "TRUE"
	if len(q.where) > 0 {
		base = strings.Join(q.where, " AND ")
	}
	if err := db.readRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN is_read THEN 0 ELSE 1 END), 0)
		FROM usage_alerts WHERE `+base, q.args...).Scan(&total, &unread); err != nil {
		return nil, 0, 0, fmt.Errorf("count alerts: %w", err)
	}
	cond := base
	if unreadOnly {
		cond += " AND is_read = FALSE"
		total = unread
	}
	args := append(slices.Clone(q.args), limit, offset)
	rows, err := db.readRows(ctx, `SELECT `+alertColumns+` FROM usage_alerts WHERE `+cond+
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	alerts = []billing.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, 0, 0, err
		}
		alerts = append(alerts, a)
	}
	return alerts, total, unread, rows.Err()
}

type rowScanner interface{ Scan(...any) error }

func scanAlert(r rowScanner) (billing.Alert, error) {
	var a billing.Alert
	var provider sql.NullString
	err := r.Scan(&a.ID, &a.UserID, &a.Type, &a.LimitKey, &a.ThresholdPercentage, &provider, &a.Title, &a.Message,
		&a.Severity, &a.IsSent, scanNullTime{&a.SentAt}, &a.IsRead, scanNullTime{&a.ReadAt}, &a.BillingPeriod,
		scanTime{&a.CreatedAt})
	if err != nil {
		return a, fmt.Errorf("scan alert: %w", err)
	}
	a.Provider = provider.String
	return a, nil
}

// GetAlert returns one alert. Errors: not_found.
func (db *DB) GetAlert(ctx context.Context, id int64) (billing.Alert, error) {
	a, err := scanAlert(db.readRow(ctx, `SELECT `+alertColumns+` FROM usage_alerts WHERE id = $1`, id))
	if err != nil {
		return a, notFound(err, "alert %d not found", id)
	}
	return a, nil
}

// MarkAlertRead marks an alert read; marking it again changes nothing.
// Errors: not_found.
func (db *DB) MarkAlertRead(ctx context.Context, id int64, now time.Time) error {
	r, err := db.write.ExecContext(ctx, `UPDATE usage_alerts SET is_read = TRUE, read_at = COALESCE(read_at, $2) WHERE id = $1`, id, ts(now))
	if err != nil {
		return fmt.Errorf("mark alert %d read: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return billing.Errorf(billing.CodeNotFound, "alert %d not found", id)
	}
	return nil
}
