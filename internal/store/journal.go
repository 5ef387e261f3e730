package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// The reservation journal. On SQLite one server process owns the database,
// and the meter admits calls against counters it holds in memory: the
// database then records reservations after the fact — the ones still held
// a moment after they were made — so that holds survive a restart. These functions
// are that journal's writes and the reads a restart needs.

// IngestJournal is Ingest preceded, in the same transaction, by writing
// held reservations to the journal. An item of the batch may settle a reservation
// journaled by the same call.
func (db *DB) IngestJournal(ctx context.Context, held []billing.Reservation, items []IngestItem, ac AlertContext, now time.Time) ([]billing.EventResult, error) {
	if len(items) > 0 {
		if err := db.prepareLedger(ctx); err != nil {
			return nil, err
		}
	}
	var results []billing.EventResult
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range held {
			if err := journal(ctx, tx, r); err != nil {
				return err
			}
		}
		if len(items) == 0 {
			results = nil
			return nil
		}
		var err error
		results, err = ingest(ctx, tx, &db.stmts, items, ac, now)
		return err
	})
	return results, err
}

// journal writes one held reservation: it was admitted already, and from
// its commit on it counts as held (admission and preflight sum the held
// rows).
func journal(ctx context.Context, tx *sql.Tx, r billing.Reservation) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO reservations (id, user_id, billing_period, period_start, provider,
		model, calls, tokens, cost, status, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'held', $10, $11)`,
		r.ID, r.UserID, r.Period.Key, ts(r.Period.Start), r.Provider, r.Model, r.Calls, r.Tokens, int64(r.Cost), ts(r.ExpiresAt), ts(r.CreatedAt)); err != nil {
		return fmt.Errorf("journal reservation: %w", conflict(err, "reservation %s already exists", r.ID))
	}
	return nil
}

// FinishReservations moves the listed reservations that are still held to
// status (released or expired), which gives back their units, in one
// transaction; it returns how many were held.
func (db *DB) FinishReservations(ctx context.Context, ids []string, status string, now time.Time) (int, error) {
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		for _, id := range ids {
			_, held, err := finishRow(ctx, tx, id, status, "", now)
			if err != nil {
				return err
			}
			if held {
				n++
			}
		}
		return nil
	})
	return n, err
}

// HeldReservations returns every reservation still held, oldest first.
func (db *DB) HeldReservations(ctx context.Context) ([]billing.Reservation, error) {
	rows, err := db.readRows(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE status = 'held' ORDER BY created_at`)
	if err != nil {
		return nil, fmt.Errorf("read held reservations: %w", err)
	}
	defer rows.Close()
	var out []billing.Reservation
	for rows.Next() {
		r, err := scanReservation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PeriodCounters returns a user's settled totals for one period, overall
// and per provider.
func (db *DB) PeriodCounters(ctx context.Context, userID string, p billing.Period) (billing.PeriodUsage, error) {
	return periodUsage(ctx, db.read, userID, p)
}
