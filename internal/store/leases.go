package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Leases (PostgreSQL). A lease is a held reservation of many calls' units
// that one process takes with one atomic admission (alwrity_reserve, as
// any reservation) and then hands out to its own calls in memory. What it
// holds counts against every limit like any held reservation, so the
// database never admits more than the limits allow, whichever process
// admits. The process gives back (ShrinkLease) the units of calls whose
// usage is recorded, a moment later, and what it will not hand out, and
// ends the lease (finished like any reservation) when it stops using it.
// Until a recorded call's units are given back they count twice, which
// can only refuse early, never admit past a limit. A process that dies
// leaves its leases to expire like any reservation.

// ShrinkLease gives back units of a held lease that its process has not
// handed out. It reports whether the lease was still held.
func (db *DB) ShrinkLease(ctx context.Context, id string, calls, tokens int64, cost money.Amount) (bool, error) {
	if db.dialect != Postgres {
		return false, errors.New("leases are PostgreSQL admission")
	}
	var held bool
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.holdsOnly(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE reservations SET calls = calls - $2, tokens = tokens - $3, cost = cost - $4
			WHERE id = $1 AND status = 'held'`, id, calls, tokens, int64(cost))
		if err != nil {
			return fmt.Errorf("shrink lease %s: %w", id, err)
		}
		n, _ := res.RowsAffected()
		held = n > 0
		return nil
	})
	return held, err
}
