package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// ReserveItem is one reservation of a group and the limits it must fit,
// as DB.Reserve takes them one at a time.
type ReserveItem struct {
	Reservation billing.Reservation
	Limits      billing.Limits
	// Now is the reservation's creation time.
	Now time.Time
}

// reserveBatchSQL calls alwrity_reserve_batch (migration 00010). The times
// travel as our text, as DB.Reserve binds them, and PostgreSQL parses them.
const reserveBatchSQL = `SELECT ord, admitted, used_calls, held_calls, used_cost, held_cost,
	used_provider_calls, held_provider_calls, used_provider_tokens, held_provider_tokens
	FROM alwrity_reserve_batch($1, $2, $3, $4::text[]::timestamptz[], $5, $6, $7, $8, $9, $10::text[]::timestamptz[],
		$11::text[]::timestamptz[], $12, $13, $14, $15)`

// ReserveBatch decides a group of reservations in one statement and one
// transaction (PostgreSQL): in the order given, each is admitted or refused
// exactly as DB.Reserve would decide it alone, counting the holds admitted
// before it in the same group. It returns one answer per item, in order:
// nil for a reservation now held, a limit_exceeded *billing.Error naming
// the limit for one refused. An error of its own means nothing of the group
// was held (a reused id fails the whole group, for instance): the caller
// may retry the items one by one with DB.Reserve.
func (db *DB) ReserveBatch(ctx context.Context, items []ReserveItem) ([]error, error) {
	if db.dialect != Postgres {
		return nil, errors.New("store.ReserveBatch is PostgreSQL admission; on SQLite the meter admits in memory")
	}
	n := len(items)
	if n == 0 {
		return nil, nil
	}
	ids, users, periods, providers, models := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	calls, tokens, costs := make([]int64, n), make([]int64, n), make([]int64, n)
	starts, expires, created := make([]string, n), make([]string, n), make([]string, n)
	limCalls, limCost, limProviderCalls, limProviderTokens := make([]*int64, n), make([]*int64, n), make([]*int64, n), make([]*int64, n)
	for i, it := range items {
		r := it.Reservation
		ids[i], users[i], periods[i], providers[i], models[i] = r.ID, r.UserID, r.Period.Key, r.Provider, r.Model
		starts[i], calls[i], tokens[i], costs[i] = ts(r.Period.Start), r.Calls, r.Tokens, int64(r.Cost)
		expires[i], created[i] = ts(r.ExpiresAt), ts(it.Now)
		limCalls[i], limCost[i] = it.Limits.TotalCalls, it.Limits.Cost
		limProviderCalls[i], limProviderTokens[i] = it.Limits.ProviderCalls, it.Limits.ProviderTokens
	}
	rows, err := db.write.QueryContext(ctx, reserveBatchSQL, ids, users, periods, starts, providers, models,
		calls, tokens, costs, expires, created, limCalls, limCost, limProviderCalls, limProviderTokens)
	if err != nil {
		return nil, fmt.Errorf("reserve %d: %w", n, err)
	}
	defer rows.Close()
	answers := make([]error, n)
	seen := 0
	for rows.Next() {
		var ord int
		var admitted bool
		var c Counters
		if err := rows.Scan(&ord, &admitted, &c.Total.Calls, &c.HeldTotal.Calls, &c.Total.Cost, &c.HeldTotal.Cost,
			&c.Provider.Calls, &c.HeldProvider.Calls, &c.Provider.TokensInput, &c.HeldProvider.TokensInput); err != nil {
			return nil, fmt.Errorf("reserve %d: %w", n, err)
		}
		if ord < 1 || ord > n {
			return nil, fmt.Errorf("reserve %d: alwrity_reserve_batch answered for request %d", n, ord)
		}
		seen++
		if admitted {
			continue
		}
		it := items[ord-1]
		if l := c.Exceeded(it.Reservation, it.Limits); l != nil {
			answers[ord-1] = &billing.Error{Code: billing.CodeLimitExceeded, Message: l.RefusalMessage(), Limit: l}
			continue
		}
		answers[ord-1] = fmt.Errorf("reserve: alwrity_reserve_batch refused %s but its counters leave room", it.Reservation.ID)
	}
	// The function inserts the admitted reservations after its last row:
	// only a clean end of the rows means they are held.
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reserve %d: %w", n, err)
	}
	if seen != n {
		return nil, fmt.Errorf("reserve %d: alwrity_reserve_batch answered %d", n, seen)
	}
	return answers, nil
}
