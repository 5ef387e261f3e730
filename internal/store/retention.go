package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// ReservationRetention is how long a finished (settled, released or
// expired) reservation is kept, and the shortest retention
// PurgeReservations accepts. A settle or release resent for a finished
// reservation answers its first result only while the reservation row
// exists (the row names the event that settled it); event ids are
// idempotent for 35 days (DESIGN.md, invariant 3) and an event older than
// billing.MaxEventAge is refused anyway, so rows are kept exactly that
// long.
const ReservationRetention = billing.MaxEventAge

// purgeBatchRows bounds the rows one purge transaction deletes, so that no
// purge holds the SQLite writer or PostgreSQL row locks for long.
var purgeBatchRows = 1000

// idClockSlack is how far ahead of the purging process's clock another
// replica's clock may run and still mint ids that the purge treats as
// time-ordered (see PurgeReservations).
const idClockSlack = 24 * time.Hour

// PurgeReservations deletes up to limit finished reservations (any status
// but held) that finished more than retention before now, in transactions
// of at most purgeBatchRows rows, and returns how many it deleted. Held
// reservations are never deleted here, however old: ExpireReservations
// finishes them first. A retention shorter than ReservationRetention is
// refused (invalid), since a resent settle must find its reservation.
//
// How rows are found, without an index of their own: every reservation
// row is inserted and updated once per admitted call on PostgreSQL, and
// an index on finished_at (even one partial on status <> 'held') would
// add an index entry to every settle, release and expiry — the entry
// migration 00009 took away from the sweeper's index. Instead the purge
// walks the primary key. Reservation ids come from billing.NewID: "rsv_"
// and the creation time in hex nanoseconds, so they sort by creation
// time, and a reservation finishes after it is created. Every id that
// sorts below "rsv_"+hex(cutoff) was therefore minted before the cutoff,
// and the rows that finished before the cutoff lie in that key range,
// read in key order from its low end (pass 1). Ids that follow no such
// order (hand-made ones, the random ids from before billing.NewID) may sort
// anywhere: those below the cutoff's bound are in pass 1 already, and
// those at or above "rsv_"+hex(now + idClockSlack) — past any id minted so
// far — are read by pass 2, an empty key range on a database whose ids
// all come from billing.NewID. Only the ids minted in the retention window
// itself lie between the two ranges, and each leaves that window as the
// cutoff passes it. Which rows go is decided by status and finished_at
// alone in every pass; the key ranges only narrow the scan, so a foreign
// id is at worst kept longer, never deleted early.
//
// Each batch reads at most limit matching ids in key order from the
// primary key, then deletes the key range between the first and the last
// of them (re-checking status and finished_at), and the next batch starts
// after the last: no batch reads the entries of rows deleted before it.
func (db *DB) PurgeReservations(ctx context.Context, now time.Time, retention time.Duration, limit int) (int, error) {
	if retention < ReservationRetention {
		return 0, billing.Errorf(billing.CodeInvalid, "reservations are kept at least %s (resent settles find them), not %s",
			ReservationRetention, retention)
	}
	if limit <= 0 {
		return 0, nil
	}
	cutoff := ts(now.Add(-retention))
	lo, hi := idBound(now.Add(-retention)), idBound(now.Add(idClockSlack))
	total := 0
	for _, r := range []keyRange{{to: lo}, {from: hi, fromIncl: true}} {
		for total < limit {
			n, last, more, err := db.purgeBatch(ctx, cutoff, r, min(limit-total, purgeBatchRows))
			total += n
			if err != nil {
				return total, err
			}
			if !more {
				break
			}
			r.from, r.fromIncl = last, false
		}
	}
	return total, nil
}

// keyRange is a range of reservation ids: from (inclusive or not, none
// when empty and not inclusive) up to before to (none when empty).
type keyRange struct {
	from     string
	fromIncl bool
	to       string
}

// where returns the range's condition on id with its first bind variable
// at $next, and its arguments.
func (r keyRange) where(next int) (string, []any) {
	var cond string
	var args []any
	switch {
	case r.fromIncl:
		cond += fmt.Sprintf(" AND id >= $%d", next)
		args = append(args, r.from)
		next++
	case r.from != "":
		cond += fmt.Sprintf(" AND id > $%d", next)
		args = append(args, r.from)
		next++
	}
	if r.to != "" {
		cond += fmt.Sprintf(" AND id < $%d", next)
		args = append(args, r.to)
	}
	return cond, args
}

// purgeBatch deletes up to n purgeable reservations of range r in one
// transaction. It returns how many went, the last id it read and whether
// the range may hold more.
func (db *DB) purgeBatch(ctx context.Context, cutoff string, r keyRange, n int) (int, string, bool, error) {
	var deleted int
	var last string
	var more bool
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// Losing a purge in a crash of the database server loses nothing:
		// the rows are purged again next time.
		if err := db.holdsOnly(ctx, tx); err != nil {
			return err
		}
		cond, args := r.where(3)
		var count int
		var first, lastID sql.NullString
		// MIN and MAX over the ids read, in the database's own order of
		// text, so the range deleted below is exactly the one read.
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*), MIN(id), MAX(id) FROM (SELECT id FROM reservations
			WHERE status <> 'held' AND finished_at < $1`+cond+` ORDER BY id LIMIT $2) AS s`,
			append([]any{cutoff, n}, args...)...).Scan(&count, &first, &lastID); err != nil {
			return fmt.Errorf("find finished reservations: %w", err)
		}
		deleted, last, more = 0, lastID.String, count == n
		if count == 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM reservations WHERE id >= $2 AND id <= $3
			AND status <> 'held' AND finished_at < $1`, cutoff, first.String, lastID.String)
		if err != nil {
			return fmt.Errorf("purge finished reservations: %w", err)
		}
		d, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("purge finished reservations: %w", err)
		}
		deleted = int(d)
		return nil
	})
	if err != nil {
		return 0, "", false, err
	}
	return deleted, last, more, nil
}

// idBound is the smallest id billing.NewID("rsv_") can mint at t: every id
// minted before t sorts below it.
func idBound(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(t.UnixNano(), 0)))
	return "rsv_" + hex.EncodeToString(b[:])
}
