package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// IngestItem is one rated event ready for the ledger.
type IngestItem struct {
	Log       billing.UsageLog
	PeriodEnd time.Time
	// ReservationID, when set, is settled by this event in the same
	// transaction (if it is still held).
	ReservationID string
	// Exclusive refuses the event (result status "conflict", nothing
	// stored) when ReservationID was settled by another event already.
	Exclusive bool
}

// AlertContext is what alert evaluation needs about the users of a batch:
// each user's plan, and the known providers.
type AlertContext struct {
	Plans     map[string]billing.Plan
	Providers []billing.Provider
	// Extra alerts to raise once (e.g. unpriced models), deduplicated by key.
	Extra []billing.Alert
	// Before, when set, returns a user's usage of a period as committed
	// before this transaction, if the caller holds it (the meter's
	// counters in memory on SQLite); the period's summaries are read
	// otherwise. Only calls, tokens and cost are needed.
	Before func(userID string, p billing.Period) (billing.PeriodUsage, bool)
}

// Ingest appends events to the ledger in one transaction: each new event's
// log row and its summary updates, and the alerts its period's totals now
// call for, commit together or not at all. An event whose id is already in
// the ledger changes nothing and returns its first result.
func (db *DB) Ingest(ctx context.Context, items []IngestItem, ac AlertContext, now time.Time) ([]billing.EventResult, error) {
	if err := db.prepareLedger(ctx); err != nil {
		return nil, err
	}
	var results []billing.EventResult
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		results, err = ingest(ctx, tx, &db.stmts, items, ac, now)
		return err
	})
	return results, err
}

func ingest(ctx context.Context, tx *sql.Tx, stmts *stmtCache, items []IngestItem, ac AlertContext, now time.Time) ([]billing.EventResult, error) {
	logs := make([]billing.UsageLog, 0, len(items))
	var released []billing.Reservation
	var conflicted map[int]bool
	for i, it := range items {
		if it.ReservationID != "" {
			r, held, err := finishRow(ctx, tx, it.ReservationID, billing.ReservationSettled, it.Log.EventID, now)
			if err != nil {
				return nil, err
			}
			if held {
				released = append(released, r)
			} else if it.Exclusive {
				ok, err := claimLate(ctx, tx, it.ReservationID, it.Log.EventID)
				if err != nil {
					return nil, err
				}
				if !ok {
					if conflicted == nil {
						conflicted = map[int]bool{}
					}
					conflicted[i] = true
					continue
				}
			}
		}
		logs = append(logs, it.Log)
	}
	// Event ids are inserted in one global order, so that concurrent
	// batches sharing ids (a client's retries) wait for each other on
	// PostgreSQL instead of deadlocking. insertLogs answers by id, so the
	// order changes nothing else.
	slices.SortFunc(logs, func(a, b billing.UsageLog) int { return strings.Compare(a.EventID, b.EventID) })
	inserted, err := insertLogs(ctx, tx, stmts, logs, now)
	if err != nil {
		return nil, err
	}
	results := make([]billing.EventResult, len(items))
	var fresh []billing.UsageLog
	var dups []string
	periods := map[periodKey]billing.Period{}
	for i, it := range items {
		l := it.Log
		if conflicted[i] {
			results[i] = billing.EventResult{EventID: l.EventID, Status: billing.EventConflict}
			continue
		}
		if !inserted[l.EventID] {
			dups = append(dups, l.EventID)
			continue
		}
		// An id inserted by this batch counts once, at its first item.
		delete(inserted, l.EventID)
		fresh = append(fresh, l)
		results[i] = billing.EventResult{EventID: l.EventID, Status: billing.EventRecorded, Cost: l.CostTotal,
			BillingPeriod: l.BillingPeriod, Unpriced: l.Unpriced}
		periods[periodKey{l.UserID, l.BillingPeriod}] = billing.Period{Key: l.BillingPeriod, Start: l.PeriodStart, End: it.PeriodEnd}
	}
	if len(dups) > 0 {
		first, err := eventResults(ctx, tx, stmts.dialect, dups)
		if err != nil {
			return nil, err
		}
		for i, it := range items {
			if results[i].EventID == "" {
				r, ok := first[it.Log.EventID]
				if !ok {
					return nil, fmt.Errorf("event %s neither inserted nor found", it.Log.EventID)
				}
				results[i] = r
			}
		}
	}
	if err := addLogsToSummaries(ctx, tx, stmts, fresh, periods, released, now); err != nil {
		return nil, err
	}
	keys := make([]periodKey, 0, len(periods))
	for k := range periods {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].user < keys[j].user || (keys[i].user == keys[j].user && keys[i].period < keys[j].period)
	})
	for _, k := range keys {
		plan, ok := ac.Plans[k.user]
		if !ok {
			continue
		}
		u, err := usageAfter(ctx, tx, stmts, ac, k, periods[k], fresh)
		if err != nil {
			return nil, err
		}
		for _, a := range billing.LimitAlerts(plan, ac.Providers, u) {
			if err := insertAlert(ctx, tx, stmts, a, now); err != nil {
				return nil, err
			}
		}
	}
	for _, a := range ac.Extra {
		if err := insertAlert(ctx, tx, stmts, a, now); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// usageAfter is a user's usage of a period including this transaction's
// fresh logs: what the caller knows from before plus those logs, or the
// summaries (which the transaction has updated already).
func usageAfter(ctx context.Context, tx *sql.Tx, stmts *stmtCache, ac AlertContext, k periodKey, p billing.Period, fresh []billing.UsageLog) (billing.PeriodUsage, error) {
	if ac.Before != nil {
		if u, ok := ac.Before(k.user, p); ok {
			for _, l := range fresh {
				if l.UserID != k.user || l.BillingPeriod != k.period {
					continue
				}
				u.Total = addLog(u.Total, l)
				u.ByProvider[l.Provider] = addLog(u.ByProvider[l.Provider], l)
			}
			return u, nil
		}
	}
	return periodUsage(ctx, stmtQuerier{ctx, tx, stmts}, k.user, p)
}

func addLog(c billing.Counters, l billing.UsageLog) billing.Counters {
	c.Calls++
	if l.Failed() {
		c.Errors++
	}
	c.TokensInput += l.TokensInput
	c.TokensOutput += l.TokensOutput
	c.Cost += l.CostTotal
	c.ResponseTimeSum += l.ResponseTime
	return c
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// stmtQuerier runs a transaction's queries through the prepared
// statements when there are some.
type stmtQuerier struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts *stmtCache
}

func (q stmtQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmts.get(ctx, q.tx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}

func (q stmtQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.stmts.query(ctx, q.tx, query, args...)
}

const periodTotalsSQL = `SELECT billing_period, total_calls, total_errors, tokens_input,
		tokens_output, total_cost, response_time_sum, updated_at FROM usage_summaries
		WHERE user_id = $1 AND billing_period = $2`

const periodProvidersSQL = `SELECT billing_period, provider, calls, errors, tokens_input,
		tokens_output, cost, response_time_sum FROM usage_summary_providers
		WHERE user_id = $1 AND billing_period = $2`

// periodUsage reads one user's counters for one period.
func periodUsage(ctx context.Context, q querier, userID string, p billing.Period) (billing.PeriodUsage, error) {
	u := billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}
	rows, err := q.QueryContext(ctx, periodTotalsSQL, userID, p.Key)
	if err != nil {
		return u, fmt.Errorf("read usage summary: %w", err)
	}
	if err := scanTotals(rows, func(string) *billing.PeriodUsage { return &u }); err != nil {
		return u, err
	}
	prow, err := q.QueryContext(ctx, periodProvidersSQL, userID, p.Key)
	if err != nil {
		return u, fmt.Errorf("read provider summaries: %w", err)
	}
	return u, scanProviders(prow, func(string) *billing.PeriodUsage { return &u })
}

const insertAlertSQL = `INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage,
		provider, title, message, severity, billing_period, dedupe_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (dedupe_key) DO NOTHING`

func insertAlert(ctx context.Context, tx *sql.Tx, stmts *stmtCache, a billing.Alert, now time.Time) error {
	var provider any
	if a.Provider != "" {
		provider = a.Provider
	}
	res, err := stmts.exec(ctx, tx, insertAlertSQL,
		a.UserID, a.Type, a.LimitKey, a.ThresholdPercentage, provider, a.Title, a.Message, a.Severity,
		a.BillingPeriod, a.DedupeKey(), ts(now))
	if err != nil {
		return fmt.Errorf("insert alert: %w", err)
	}
	// A new alert (not a repeat of one that exists) is announced to the
	// webhook endpoints in the same transaction.
	if n, _ := res.RowsAffected(); n > 0 {
		return alertCreated(ctx, tx, a, now)
	}
	return nil
}

// Reserve holds r's units if every limit still has room for them, counting
// what other reservations hold: one conditional update per counter row, in
// one transaction, so N concurrent reservations against K remaining units
// admit exactly K on either database. Errors: limit_exceeded (with the
// limit that refused), conflict for a reused id.
func (db *DB) Reserve(ctx context.Context, r billing.Reservation, lim billing.Limits, now time.Time) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.holdsOnly(ctx, tx); err != nil {
			return err
		}
		if err := ensureCounters(ctx, tx, r.UserID, r.Period, r.Provider, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE usage_summaries
			SET reserved_calls = reserved_calls + $3, reserved_cost = reserved_cost + $4
			WHERE user_id = $1 AND billing_period = $2
			  AND (CAST($5 AS BIGINT) IS NULL OR total_calls + reserved_calls + $3 <= $5)
			  AND (CAST($6 AS BIGINT) IS NULL OR total_cost + reserved_cost + $4 <= $6)`,
			r.UserID, r.Period.Key, r.Calls, int64(r.Cost), nullInt64(lim.TotalCalls), nullInt64(lim.Cost))
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return refusal(ctx, tx, r, lim, false)
		}
		res, err = tx.ExecContext(ctx, `UPDATE usage_summary_providers
			SET reserved_calls = reserved_calls + $4, reserved_tokens = reserved_tokens + $5, reserved_cost = reserved_cost + $6
			WHERE user_id = $1 AND billing_period = $2 AND provider = $3
			  AND (CAST($7 AS BIGINT) IS NULL OR calls + reserved_calls + $4 <= $7)
			  AND (CAST($8 AS BIGINT) IS NULL OR tokens + reserved_tokens + $5 <= $8)`,
			r.UserID, r.Period.Key, r.Provider, r.Calls, r.Tokens, int64(r.Cost), nullInt64(lim.ProviderCalls), nullInt64(lim.ProviderTokens))
		if err != nil {
			return fmt.Errorf("reserve: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return refusal(ctx, tx, r, lim, true)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO reservations (id, user_id, billing_period, provider, model, calls,
			tokens, cost, status, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', $9, $10)`,
			r.ID, r.UserID, r.Period.Key, r.Provider, r.Model, r.Calls, r.Tokens, int64(r.Cost), ts(r.ExpiresAt), ts(now))
		if err != nil {
			return fmt.Errorf("insert reservation: %w", conflict(err, "reservation %s already exists", r.ID))
		}
		return nil
	})
}

// holdsOnly lets a PostgreSQL transaction that changes only holds (a
// reservation, a release, an expiry; never usage) commit without waiting
// for its WAL flush. The counters' row locks are then held for
// microseconds, not a disk flush, so one user's concurrent admissions do
// not queue on commit latency. A crash of the database server can lose
// the last moment's holds, never usage: the same trade as SQLite's
// reservation journal.
func (db *DB) holdsOnly(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
		return fmt.Errorf("reservation transaction: %w", err)
	}
	return nil
}

// ensureCounters creates the zero counter rows a conditional update needs.
func ensureCounters(ctx context.Context, tx *sql.Tx, userID string, p billing.Period, provider string, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end,
		created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id, billing_period) DO NOTHING`,
		userID, p.Key, ts(p.Start), ts(p.End), ts(now)); err != nil {
		return fmt.Errorf("create usage summary: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO usage_summary_providers (user_id, billing_period, provider, updated_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, billing_period, provider) DO NOTHING`,
		userID, p.Key, provider, ts(now)); err != nil {
		return fmt.Errorf("create provider summary: %w", err)
	}
	return nil
}

// refusal explains which limit refused r. totalsHeld says the period-total
// update already applied r's units in this transaction and a provider limit
// refused: r's own call and cost are then not counted twice, and the totals
// are not blamed for the provider's refusal.
func refusal(ctx context.Context, tx *sql.Tx, r billing.Reservation, lim billing.Limits, totalsHeld bool) error {
	var calls, rcalls, cost, rcost, pcalls, prcalls, ptokens, prtokens int64
	if err := tx.QueryRowContext(ctx, `SELECT total_calls, reserved_calls, total_cost, reserved_cost
		FROM usage_summaries WHERE user_id = $1 AND billing_period = $2`, r.UserID, r.Period.Key).
		Scan(&calls, &rcalls, &cost, &rcost); err != nil {
		return fmt.Errorf("read counters: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT calls, reserved_calls, tokens, reserved_tokens
		FROM usage_summary_providers WHERE user_id = $1 AND billing_period = $2 AND provider = $3`,
		r.UserID, r.Period.Key, r.Provider).Scan(&pcalls, &prcalls, &ptokens, &prtokens); err != nil {
		return fmt.Errorf("read provider counters: %w", err)
	}
	if totalsHeld {
		rcalls -= r.Calls
		rcost -= int64(r.Cost)
	}
	checks := []billing.LimitInfo{
		{Key: "total_calls", Used: calls, Reserved: rcalls, Requested: r.Calls},
		{Key: r.Provider + "_calls", Provider: r.Provider, Used: pcalls, Reserved: prcalls, Requested: r.Calls},
		{Key: r.Provider + "_tokens", Provider: r.Provider, Used: ptokens, Reserved: prtokens, Requested: r.Tokens},
		{Key: "monthly_cost", Used: cost, Reserved: rcost, Requested: int64(r.Cost), Money: true},
	}
	// Only the limits of the update that refused can have refused.
	checked := []bool{!totalsHeld, totalsHeld, totalsHeld, !totalsHeld}
	var first *billing.LimitInfo
	for i, l := range []*int64{lim.TotalCalls, lim.ProviderCalls, lim.ProviderTokens, lim.Cost} {
		if l == nil || !checked[i] {
			continue
		}
		c := checks[i]
		c.Limit, c.Period = *l, r.Period.Key
		if first == nil {
			first = &c
		}
		if c.Used+c.Reserved+c.Requested > *l {
			return &billing.Error{Code: billing.CodeLimitExceeded, Message: c.RefusalMessage(), Limit: &c}
		}
	}
	// The counters moved between the update and this read (a concurrent
	// settle or release); the refusal stands, described by the first limit
	// the refusing update checked.
	if first != nil {
		return &billing.Error{Code: billing.CodeLimitExceeded, Message: first.RefusalMessage(), Limit: first}
	}
	return &billing.Error{Code: billing.CodeLimitExceeded, Message: "usage limit reached", Limit: &checks[0]}
}

const reservationColumns = `id, user_id, billing_period, provider, model, calls, tokens, cost, status, event_id, expires_at, created_at`

func scanReservation(r rowScanner) (billing.Reservation, error) {
	var v billing.Reservation
	var eventID sql.NullString
	err := r.Scan(&v.ID, &v.UserID, &v.Period.Key, &v.Provider, &v.Model, &v.Calls, &v.Tokens, &v.Cost, &v.Status,
		&eventID, scanTime{&v.ExpiresAt}, scanTime{&v.CreatedAt})
	v.EventID = eventID.String
	return v, err
}

// GetReservation returns a reservation. Errors: not_found.
func (db *DB) GetReservation(ctx context.Context, id string) (billing.Reservation, error) {
	r, err := scanReservation(db.read.QueryRowContext(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE id = $1`, id))
	if err != nil {
		return r, notFound(err, "reservation %s not found", id)
	}
	return r, nil
}

// finish moves a held reservation to status and returns what it held; it
// reports false when the reservation is not held (any more).
func finish(ctx context.Context, tx *sql.Tx, id, status, eventID string, now time.Time) (billing.Reservation, bool, error) {
	r, held, err := finishRow(ctx, tx, id, status, eventID, now)
	if err != nil || !held {
		return r, held, err
	}
	return r, true, unreserve(ctx, tx, r, now)
}

// finishRow is finish without giving the units back: the caller does, in
// its ordered pass over the summaries.
func finishRow(ctx context.Context, tx *sql.Tx, id, status, eventID string, now time.Time) (billing.Reservation, bool, error) {
	var ev any
	if eventID != "" {
		ev = eventID
	}
	r, err := scanReservation(tx.QueryRowContext(ctx, `UPDATE reservations SET status = $2, event_id = $3, finished_at = $4
		WHERE id = $1 AND status = 'held' RETURNING `+reservationColumns, id, status, ev, ts(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("finish reservation %s: %w", id, err)
	}
	return r, true, nil
}

// claimLate lets eventID settle a reservation that is no longer held
// (expired or released before its call ended; the call is still
// recorded) unless another event settled it. It reports false on such a
// conflict.
func claimLate(ctx context.Context, tx *sql.Tx, id, eventID string) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE reservations SET event_id = $2
		WHERE id = $1 AND (event_id IS NULL OR event_id = $2)`, id, eventID)
	if err != nil {
		return false, fmt.Errorf("settle reservation %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// unreserve gives back what a reservation held.
func unreserve(ctx context.Context, tx *sql.Tx, r billing.Reservation, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE usage_summaries SET reserved_calls = reserved_calls - $3,
		reserved_cost = reserved_cost - $4, updated_at = $5 WHERE user_id = $1 AND billing_period = $2`,
		r.UserID, r.Period.Key, r.Calls, int64(r.Cost), ts(now)); err != nil {
		return fmt.Errorf("release reserved totals: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE usage_summary_providers SET reserved_calls = reserved_calls - $4,
		reserved_tokens = reserved_tokens - $5, reserved_cost = reserved_cost - $6, updated_at = $7
		WHERE user_id = $1 AND billing_period = $2 AND provider = $3`,
		r.UserID, r.Period.Key, r.Provider, r.Calls, r.Tokens, int64(r.Cost), ts(now)); err != nil {
		return fmt.Errorf("release reserved provider units: %w", err)
	}
	return nil
}

// Settle records the real usage of a reservation and releases what it
// held, in one transaction. Settling again with the same event returns the
// first result. A reservation that expired or was released before its call
// finished still gets its usage recorded: the call happened. Errors:
// not_found, conflict (settled by another event).
func (db *DB) Settle(ctx context.Context, id string, item IngestItem, ac AlertContext, now time.Time) (billing.EventResult, error) {
	if err := db.prepareLedger(ctx); err != nil {
		return billing.EventResult{}, err
	}
	var result billing.EventResult
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, held, err := finish(ctx, tx, id, billing.ReservationSettled, item.Log.EventID, now)
		if err != nil {
			return err
		}
		if !held {
			r, err := scanReservation(tx.QueryRowContext(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE id = $1`, id))
			if err != nil {
				return notFound(err, "reservation %s not found", id)
			}
			// An expired or released reservation keeps the event that
			// settled it late, so a second, different event cannot record a
			// second call against it. The update is conditional so that two
			// racing settles cannot both claim it.
			res, err := tx.ExecContext(ctx, `UPDATE reservations SET event_id = $2
				WHERE id = $1 AND (event_id IS NULL OR event_id = $2)`, id, item.Log.EventID)
			if err != nil {
				return fmt.Errorf("settle reservation %s: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if err := tx.QueryRowContext(ctx, `SELECT event_id FROM reservations WHERE id = $1`, id).Scan(&r.EventID); err != nil {
					return fmt.Errorf("settle reservation %s: %w", id, err)
				}
				return billing.Errorf(billing.CodeConflict, "reservation %s was settled by event %s", id, r.EventID)
			}
		}
		results, err := ingest(ctx, tx, &db.stmts, []IngestItem{item}, ac, now)
		if err != nil {
			return err
		}
		result = results[0]
		return nil
	})
	return result, err
}

// Release gives back a held reservation's units. Releasing one that is no
// longer held changes nothing. Errors: not_found.
func (db *DB) Release(ctx context.Context, id string, now time.Time) (billing.Reservation, error) {
	var r billing.Reservation
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.holdsOnly(ctx, tx); err != nil {
			return err
		}
		var held bool
		var err error
		if r, held, err = finish(ctx, tx, id, billing.ReservationReleased, "", now); err != nil || held {
			return err
		}
		r, err = scanReservation(tx.QueryRowContext(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE id = $1`, id))
		return notFound(err, "reservation %s not found", id)
	})
	return r, err
}

// ExpireReservations releases up to limit held reservations whose expiry
// has passed (crashed clients never settle) and returns how many.
func (db *DB) ExpireReservations(ctx context.Context, now time.Time, limit int) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		n = 0
		rows, err := tx.QueryContext(ctx, `SELECT id FROM reservations WHERE status = 'held' AND expires_at <= $1
			ORDER BY expires_at LIMIT $2`, ts(now), limit)
		if err != nil {
			return fmt.Errorf("find expired reservations: %w", err)
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			_, held, err := finish(ctx, tx, id, billing.ReservationExpired, "", now)
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

// Counters returns a user's settled and reserved totals for a period and
// provider, for preflight checks.
func (db *DB) Counters(ctx context.Context, userID, period, provider string) (total, reservedTotal, prov, reservedProv billing.Counters, err error) {
	var rcalls, rcost, prcalls, prtokens, prcost int64
	err = db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(total_calls), 0), COALESCE(SUM(reserved_calls), 0),
		COALESCE(SUM(total_cost), 0), COALESCE(SUM(reserved_cost), 0) FROM usage_summaries
		WHERE user_id = $1 AND billing_period = $2`, userID, period).Scan(&total.Calls, &rcalls, &total.Cost, &rcost)
	if err != nil {
		return
	}
	err = db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(reserved_calls), 0),
		COALESCE(SUM(tokens_input), 0), COALESCE(SUM(tokens_output), 0), COALESCE(SUM(reserved_tokens), 0),
		COALESCE(SUM(cost), 0), COALESCE(SUM(reserved_cost), 0) FROM usage_summary_providers
		WHERE user_id = $1 AND billing_period = $2 AND provider = $3`, userID, period, provider).
		Scan(&prov.Calls, &prcalls, &prov.TokensInput, &prov.TokensOutput, &prtokens, &prov.Cost, &prcost)
	reservedTotal = billing.Counters{Calls: rcalls, Cost: money.Amount(rcost)}
	reservedProv = billing.Counters{Calls: prcalls, TokensInput: prtokens, Cost: money.Amount(prcost)}
	return
}

// UserKnown reports whether a user has a key or a subscription.
func (db *DB) UserKnown(ctx context.Context, userID string) (bool, error) {
	var ok bool
	err := db.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE user_id = $1)
		OR EXISTS (SELECT 1 FROM user_subscriptions WHERE user_id = $1)`, userID).Scan(&ok)
	return ok, err
}
