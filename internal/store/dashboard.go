package store

import (
	"context"
	"fmt"
	"slices"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// UnreadAlerts are a user's unread alerts as a dashboard shows them.
type UnreadAlerts struct {
	Recent []billing.Alert // the newest of any period, newest first
	Period []billing.Alert // the newest of one period, newest first
	Count  int64           // how many are unread in all
}

// UnreadAlerts returns the user's newest unread alerts: up to `recent` of
// any period and up to `ofPeriod` of the period p (alerts of its name
// about it or about no period start: see UsageForPeriods), each newest
// first, and how many are unread in all. It answers what ListAlerts with
// UnreadOnly answers for each list (and its total, for Count) in one
// statement instead of four.
func (db *DB) UnreadAlerts(ctx context.Context, userID string, p billing.Period, recent, ofPeriod int) (UnreadAlerts, error) {
	out := UnreadAlerts{Recent: []billing.Alert{}, Period: []billing.Alert{}}
	// The count rides on the rows, and none comes back when no alert is
	// unread; so the newest unread alert is read even when recent is 0.
	rows, err := db.readRows(ctx, unreadAlertsSQL, userID, p.Key, max(recent, 1), max(ofPeriod, 0), ts(p.Start))
	if err != nil {
		return out, fmt.Errorf("list unread alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var inPeriod bool
		a, err := scanAlert(withLeading{rows, []any{&inPeriod, &out.Count}})
		if err != nil {
			return out, err
		}
		if inPeriod {
			out.Period = append(out.Period, a)
		} else if len(out.Recent) < recent {
			out.Recent = append(out.Recent, a)
		}
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("list unread alerts: %w", err)
	}
	return out, nil
}

// unreadAlertsSQL lists a user's ($1) newest unread alerts: at most $3 of
// any period, then at most $4 of the period $2 starting at $5, each part newest first and
// flagged by whether it is the period's, every row with the count of the
// user's unread alerts. Each part reads the user's alerts as ListAlerts
// does, by the index on (user_id, created_at); the count is an
// uncorrelated subquery, which both databases run at most once a part.
const unreadAlertsSQL = `SELECT * FROM (SELECT FALSE AS of_period, ` + unreadCountSQL + ` AS unread, ` + alertColumns + `
		FROM usage_alerts WHERE user_id = $1 AND is_read = FALSE
		ORDER BY created_at DESC, id DESC LIMIT $3) r
	UNION ALL
	SELECT * FROM (SELECT TRUE AS of_period, ` + unreadCountSQL + ` AS unread, ` + alertColumns + `
		FROM usage_alerts WHERE user_id = $1 AND is_read = FALSE AND billing_period = $2
			AND (period_start IS NULL OR period_start >= $5)
		ORDER BY created_at DESC, id DESC LIMIT $4) p
	ORDER BY of_period, created_at DESC, id DESC`

const unreadCountSQL = `(SELECT COUNT(*) FROM usage_alerts WHERE user_id = $1 AND is_read = FALSE)`

// withLeading scans a row's first columns into leading and the rest into
// the destinations its caller (a row scanner such as scanAlert) passes.
type withLeading struct {
	r       rowScanner
	leading []any
}

func (w withLeading) Scan(dest ...any) error {
	return w.r.Scan(slices.Concat(w.leading, dest)...)
}
