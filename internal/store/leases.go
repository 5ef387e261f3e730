package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// Leases (PostgreSQL). A lease is a held reservation of many calls' units
// that one process takes with one atomic admission (alwrity_reserve, as
// any reservation) and then hands out to its own calls in memory. What it
// holds counts against every limit like any held reservation, so the
// database never admits more than the limits allow, whichever process
// admits. Each call's units leave the lease in the transaction that
// records the call's usage (debitLeases), and the process gives back what
// it has not handed out (ShrinkLease) or ends the lease (finished like any
// reservation) when it stops using it. A process that dies leaves its
// leases to expire like any reservation.

// debitLeases shrinks each lease by the units of its calls whose usage
// this transaction records: used goes up and held down together, so
// admission never counts a call twice or not at all. A lease that is no
// longer held (expired) holds nothing to shrink.
func debitLeases(ctx context.Context, tx *sql.Tx, debits []LeaseDebit) error {
	if len(debits) == 0 {
		return nil
	}
	sum := map[string]LeaseDebit{}
	for _, d := range debits {
		t := sum[d.ID]
		t.ID, t.Calls, t.Tokens, t.Cost = d.ID, t.Calls+d.Calls, t.Tokens+d.Tokens, t.Cost+d.Cost
		sum[d.ID] = t
	}
	ids := make([]string, 0, len(sum))
	for id := range sum {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, strings.Compare) // one lock order for every transaction
	calls, tokens, costs := make([]int64, len(ids)), make([]int64, len(ids)), make([]int64, len(ids))
	for i, id := range ids {
		calls[i], tokens[i], costs[i] = sum[id].Calls, sum[id].Tokens, int64(sum[id].Cost)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE reservations AS r
		SET calls = r.calls - d.calls, tokens = r.tokens - d.tokens, cost = r.cost - d.cost
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(id, calls, tokens, cost)
		WHERE r.id = d.id AND r.status = 'held'`, ids, calls, tokens, costs); err != nil {
		return fmt.Errorf("debit leases: %w", err)
	}
	return nil
}

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
