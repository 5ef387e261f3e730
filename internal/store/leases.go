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

// LeaseUnits are the units a lease row holds.
type LeaseUnits struct {
	Calls, Tokens int64
	Cost          money.Amount
}

// ShrinkLease gives back units of a held lease: its process knows the row
// holds from and sets it to to (no more than from in any unit, none
// negative). Only that process writes a lease's amounts, so the update is
// conditional on from: when an earlier attempt committed but its caller
// never learnt it (a timeout), the row no longer holds from and nothing is
// given back twice. It returns what the row holds afterwards and whether
// it is still held (an expired or finished lease holds nothing).
func (db *DB) ShrinkLease(ctx context.Context, id string, from, to LeaseUnits) (LeaseUnits, bool, error) {
	if db.dialect != Postgres {
		return LeaseUnits{}, false, errors.New("leases are PostgreSQL admission")
	}
	if to.Calls < 0 || to.Tokens < 0 || to.Cost < 0 || to.Calls > from.Calls || to.Tokens > from.Tokens || to.Cost > from.Cost {
		return LeaseUnits{}, false, fmt.Errorf("shrink lease %s from %+v to %+v: not a give-back", id, from, to)
	}
	cur, held := to, true
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.holdsOnly(ctx, tx); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE reservations SET calls = $5, tokens = $6, cost = $7
			WHERE id = $1 AND status = 'held' AND calls = $2 AND tokens = $3 AND cost = $4`,
			id, from.Calls, from.Tokens, int64(from.Cost), to.Calls, to.Tokens, int64(to.Cost))
		if err != nil {
			return fmt.Errorf("shrink lease %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		var status string
		var cost int64
		err = tx.QueryRowContext(ctx, `SELECT status, calls, tokens, cost FROM reservations WHERE id = $1`, id).
			Scan(&status, &cur.Calls, &cur.Tokens, &cost)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			cur, held = LeaseUnits{}, false
			return nil
		case err != nil:
			return fmt.Errorf("read lease %s: %w", id, err)
		}
		cur.Cost, held = money.Amount(cost), status == "held"
		return nil
	})
	return cur, held, err
}
