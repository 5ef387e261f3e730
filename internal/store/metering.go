package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
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
	Plans map[string]billing.Plan
	// Anchors are when each user's plan began to apply (the anchor of its
	// schedule): a period that starts earlier was under another plan and
	// is not checked against this one. A user without one is checked in
	// every period.
	Anchors   map[string]time.Time
	Providers []billing.Provider
	// Extra alerts to raise once (e.g. unpriced models), deduplicated by key.
	Extra []billing.Alert
	// Before, when set, returns a user's usage of a period as committed
	// before this transaction, if the caller holds it (the meter's
	// counters in memory on SQLite); the period's summaries are read
	// otherwise. Only calls, tokens and cost are needed.
	Before func(userID string, p billing.Period) (billing.PeriodUsage, bool)
	// RatedWith is the pricing catalog version the items were rated with;
	// the transaction fails with ErrStaleCatalog, writing nothing, when
	// the prices changed since (0 skips the check). One read per
	// transaction lets the caller rate from a cached catalog.
	RatedWith int64
}

// ErrStaleCatalog means prices changed after the items were rated: rate
// them again from the current catalog and retry.
var ErrStaleCatalog = errors.New("the prices changed while the events were rated")

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
	if ac.RatedWith != 0 {
		var v int64
		if err := stmts.queryRow(ctx, tx, catalogVersionSQL).Scan(&v); err != nil {
			return nil, fmt.Errorf("read catalog version: %w", err)
		}
		if v != ac.RatedWith {
			return nil, ErrStaleCatalog
		}
	}
	logs := make([]billing.UsageLog, 0, len(items))
	settled, err := settleHeld(ctx, tx, stmts.dialect, items, now)
	if err != nil {
		return nil, err
	}
	// Reservations no longer held are claimed in id order, one lock order
	// for every batch, as settleHeld does for the held ones: two groups
	// claiming the same two in opposite orders would deadlock.
	var late []int
	for i, it := range items {
		if it.ReservationID != "" && !settled[i] && it.Exclusive {
			late = append(late, i)
		}
	}
	slices.SortStableFunc(late, func(a, b int) int { return strings.Compare(items[a].ReservationID, items[b].ReservationID) })
	var conflicted map[int]bool
	for _, i := range late {
		ok, err := claimLate(ctx, tx, items[i].ReservationID, items[i].Log.EventID)
		if err != nil {
			return nil, err
		}
		if !ok {
			if conflicted == nil {
				conflicted = map[int]bool{}
			}
			conflicted[i] = true
		}
	}
	for i, it := range items {
		if !conflicted[i] {
			logs = append(logs, it.Log)
		}
	}
	// An id given twice in one transaction (a client's resend, changed, in
	// another batch of the same group commit) is written as its first item
	// has it, the one the results and summaries below count: so the rest
	// are left out here, and no sort decides between them.
	logs = firstOfEachEvent(logs)
	// Event ids are inserted in one global order, so that concurrent
	// batches sharing ids (a client's retries) wait for each other on
	// PostgreSQL instead of deadlocking. insertLogs answers by id, so the
	// order changes nothing else; SQLite's one writer needs no order (and
	// moving the logs cost its commits about a twentieth of their time).
	if stmts.dialect == Postgres {
		slices.SortFunc(logs, func(a, b billing.UsageLog) int { return strings.Compare(a.EventID, b.EventID) })
	}
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
		periods[logPeriodKey(l)] = billing.Period{Key: l.BillingPeriod, Start: l.PeriodStart, End: it.PeriodEnd}
	}
	if len(dups) > 0 {
		first, err := eventResults(ctx, tx, stmts.dialect, dups, items)
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
	after, err := addLogsToSummaries(ctx, tx, stmts, fresh, periods, now)
	if err != nil {
		return nil, err
	}
	keys := make([]periodKey, 0, len(periods))
	for k := range periods {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, periodKey.compare)
	for _, k := range keys {
		plan, ok := ac.Plans[k.user]
		if !ok || periods[k].Start.Before(ac.Anchors[k.user]) {
			continue
		}
		var u billing.PeriodUsage
		if a := after[k]; a != nil {
			u = *a
		} else if u, err = usageAfter(ctx, tx, stmts, ac, k, periods[k], fresh); err != nil {
			return nil, err
		}
		for _, a := range billing.LimitAlerts(plan, ac.Providers, u) {
			if err := insertAlert(ctx, tx, stmts, a, now); err != nil {
				return nil, err
			}
		}
	}
	// The extra alerts (unpriced models) in one order too: a group's are in
	// the order its events arrived, and two groups inserting the same two
	// unique keys in opposite orders would deadlock.
	extra := slices.Clone(ac.Extra)
	slices.SortStableFunc(extra, func(a, b billing.Alert) int { return strings.Compare(a.DedupeKey(), b.DedupeKey()) })
	for _, a := range extra {
		if err := insertAlert(ctx, tx, stmts, a, now); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// firstOfEachEvent returns logs without the logs whose event id an
// earlier one has, in place.
func firstOfEachEvent(logs []billing.UsageLog) []billing.UsageLog {
	seen := make(map[string]bool, len(logs))
	return slices.DeleteFunc(logs, func(l billing.UsageLog) bool {
		if seen[l.EventID] {
			return true
		}
		seen[l.EventID] = true
		return false
	})
}

// usageAfter is a user's usage of a period including this transaction's
// fresh logs: what the caller knows from before plus those logs, or the
// summaries (which the transaction has updated already).
func usageAfter(ctx context.Context, tx *sql.Tx, stmts *stmtCache, ac AlertContext, k periodKey, p billing.Period, fresh []billing.UsageLog) (billing.PeriodUsage, error) {
	if ac.Before != nil {
		if u, ok := ac.Before(k.user, p); ok {
			for _, l := range fresh {
				if logPeriodKey(l) != k {
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
		WHERE user_id = $1 AND billing_period = $2 AND period_start = $3`

const periodProvidersSQL = `SELECT billing_period, provider, calls, errors, tokens_input,
		tokens_output, cost, response_time_sum FROM usage_summary_providers
		WHERE user_id = $1 AND billing_period = $2 AND period_start = $3`

// periodUsage reads one user's counters for one period.
func periodUsage(ctx context.Context, q querier, userID string, p billing.Period) (billing.PeriodUsage, error) {
	u := billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}
	rows, err := q.QueryContext(ctx, periodTotalsSQL, userID, p.Key, ts(p.Start))
	if err != nil {
		return u, fmt.Errorf("read usage summary: %w", err)
	}
	if err := scanTotals(rows, func(string) *billing.PeriodUsage { return &u }); err != nil {
		return u, err
	}
	prow, err := q.QueryContext(ctx, periodProvidersSQL, userID, p.Key, ts(p.Start))
	if err != nil {
		return u, fmt.Errorf("read provider summaries: %w", err)
	}
	return u, scanProviders(prow, func(string) *billing.PeriodUsage { return &u })
}

const insertAlertSQL = `INSERT INTO usage_alerts (user_id, alert_type, limit_key, threshold_percentage,
		provider, title, message, severity, billing_period, period_start, dedupe_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (dedupe_key) DO NOTHING`

// periodStart is an alert's period_start: NULL for an alert about no
// period.
func periodStart(a billing.Alert) any {
	if a.PeriodStart.IsZero() {
		return nil
	}
	return ts(a.PeriodStart)
}

func insertAlert(ctx context.Context, tx *sql.Tx, stmts *stmtCache, a billing.Alert, now time.Time) error {
	var provider any
	if a.Provider != "" {
		provider = a.Provider
	}
	res, err := stmts.exec(ctx, tx, insertAlertSQL,
		a.UserID, a.Type, a.LimitKey, a.ThresholdPercentage, provider, a.Title, a.Message, a.Severity,
		a.BillingPeriod, periodStart(a), a.DedupeKey(), ts(now))
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
// what held reservations hold (PostgreSQL; on SQLite the meter admits in
// its own memory). One statement, alwrity_reserve (migrations 00007, 00010,
// 00012): under a per-(user, period) advisory lock it reads the settled
// usage and the held units in one snapshot and inserts the reservation
// only if they leave room, committing durably (a hold lost in a database
// crash would free units its call is using). N concurrent
// reservations against K remaining units, from any number of processes,
// admit exactly K; a settle never waits for a reservation or the other way
// round. Errors: limit_exceeded (with the limit that refused), conflict for
// a reused id.
func (db *DB) Reserve(ctx context.Context, r billing.Reservation, lim billing.Limits, now time.Time) error {
	if db.dialect != Postgres {
		return errors.New("store.Reserve is PostgreSQL admission; on SQLite the meter admits in memory")
	}
	var admitted bool
	var c Counters
	err := db.write.QueryRowContext(ctx, `SELECT admitted, used_calls, held_calls, used_cost, held_cost,
		used_provider_calls, held_provider_calls, used_provider_tokens, held_provider_tokens
		FROM alwrity_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		r.ID, r.UserID, r.Period.Key, ts(r.Period.Start), r.Provider, r.Model, r.Calls, r.Tokens, int64(r.Cost), ts(r.ExpiresAt), ts(now),
		nullInt64(lim.TotalCalls), nullInt64(lim.Cost), nullInt64(lim.ProviderCalls), nullInt64(lim.ProviderTokens)).
		Scan(&admitted, &c.Total.Calls, &c.HeldTotal.Calls, &c.Total.Cost, &c.HeldTotal.Cost,
			&c.Provider.Calls, &c.HeldProvider.Calls, &c.Provider.TokensInput, &c.HeldProvider.TokensInput)
	if err != nil {
		return fmt.Errorf("reserve: %w", conflict(err, "reservation %s already exists", r.ID))
	}
	if admitted {
		return nil
	}
	if l := c.Exceeded(r, lim); l != nil {
		return &billing.Error{Code: billing.CodeLimitExceeded, Message: l.RefusalMessage(), Limit: l}
	}
	return fmt.Errorf("reserve: alwrity_reserve refused %s but its counters leave room", r.ID)
}

// holdsOnly lets a PostgreSQL transaction that changes only holds (a
// release, an expiry; never usage) commit without waiting for its WAL
// flush. A crash of the database server can lose the last moment's
// changes of holds, never usage: a lost release leaves a hold until it
// expires, the same trade as SQLite's reservation journal.
func (db *DB) holdsOnly(ctx context.Context, tx *sql.Tx) error {
	if db.dialect != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
		return fmt.Errorf("reservation transaction: %w", err)
	}
	return nil
}

// Counters are a user's settled usage and what held reservations hold in
// one period, in total and for one provider: what admission compares with
// the limits. A provider's tokens are in TokensInput + TokensOutput (held
// tokens in TokensInput: a hold does not know the split).
type Counters struct {
	Total, HeldTotal, Provider, HeldProvider billing.Counters
}

// Exceeded returns the first limit that has no room left for r, in the
// order total calls, the provider's calls, the provider's tokens, monthly
// cost; nil when every limit has room.
func (c Counters) Exceeded(r billing.Reservation, lim billing.Limits) *billing.LimitInfo {
	checks := []struct {
		limit *int64
		info  billing.LimitInfo
	}{
		{lim.TotalCalls, billing.LimitInfo{Key: "total_calls", Used: c.Total.Calls, Reserved: c.HeldTotal.Calls, Requested: r.Calls}},
		{lim.ProviderCalls, billing.LimitInfo{Key: r.Provider + "_calls", Provider: r.Provider, Used: c.Provider.Calls,
			Reserved: c.HeldProvider.Calls, Requested: r.Calls}},
		{lim.ProviderTokens, billing.LimitInfo{Key: r.Provider + "_tokens", Provider: r.Provider, Used: c.Provider.Tokens(),
			Reserved: c.HeldProvider.Tokens(), Requested: r.Tokens}},
		{lim.Cost, billing.LimitInfo{Key: "monthly_cost", Used: int64(c.Total.Cost), Reserved: int64(c.HeldTotal.Cost),
			Requested: int64(r.Cost), Money: true}},
	}
	for _, k := range checks {
		if k.limit != nil && k.info.Used+k.info.Reserved+k.info.Requested > *k.limit {
			info := k.info
			info.Limit, info.Period = *k.limit, r.Period.Key
			return &info
		}
	}
	return nil
}

// countersSQL reads Counters in one statement, so one snapshot: a settle
// (usage added, its hold gone, in one transaction) is seen whole or not at
// all. alwrity_reserve (migrations 00007, 00010) reads the same.
const countersSQL = `SELECT COALESCE(s.total_calls, 0), COALESCE(s.total_cost, 0),
	COALESCE(p.calls, 0), COALESCE(p.tokens_input, 0), COALESCE(p.tokens_output, 0), COALESCE(p.cost, 0),
	h.calls, h.cost, h.provider_calls, h.provider_tokens, h.provider_cost
	FROM (SELECT COALESCE(SUM(calls), 0) AS calls, COALESCE(SUM(cost), 0) AS cost,
			COALESCE(SUM(CASE WHEN provider = $3 THEN calls END), 0) AS provider_calls,
			COALESCE(SUM(CASE WHEN provider = $3 THEN tokens END), 0) AS provider_tokens,
			COALESCE(SUM(CASE WHEN provider = $3 THEN cost END), 0) AS provider_cost
		FROM reservations WHERE user_id = $1 AND billing_period = $2 AND period_start = $4 AND status = 'held') AS h
	LEFT JOIN usage_summaries s ON s.user_id = $1 AND s.billing_period = $2 AND s.period_start = $4
	LEFT JOIN usage_summary_providers p ON p.user_id = $1 AND p.billing_period = $2 AND p.period_start = $4
		AND p.provider = $3`

// Counters returns a user's settled and held units in a period, in total
// and for one provider, for preflight checks.
func (db *DB) Counters(ctx context.Context, userID string, p billing.Period, provider string) (Counters, error) {
	var c Counters
	err := db.readRow(ctx, countersSQL, userID, p.Key, provider, ts(p.Start)).Scan(
		&c.Total.Calls, &c.Total.Cost,
		&c.Provider.Calls, &c.Provider.TokensInput, &c.Provider.TokensOutput, &c.Provider.Cost,
		&c.HeldTotal.Calls, &c.HeldTotal.Cost, &c.HeldProvider.Calls, &c.HeldProvider.TokensInput, &c.HeldProvider.Cost)
	if err != nil {
		return c, fmt.Errorf("read counters: %w", err)
	}
	return c, nil
}

const reservationColumns = `id, user_id, billing_period, period_start, provider, model, calls, tokens, cost, status, event_id,
	expires_at, created_at`

func scanReservation(r rowScanner) (billing.Reservation, error) {
	var v billing.Reservation
	var eventID sql.NullString
	var start *time.Time
	err := r.Scan(&v.ID, &v.UserID, &v.Period.Key, scanNullTime{&start}, &v.Provider, &v.Model, &v.Calls, &v.Tokens, &v.Cost, &v.Status,
		&eventID, scanTime{&v.ExpiresAt}, scanTime{&v.CreatedAt})
	v.EventID = eventID.String
	if start != nil {
		v.Period.Start = *start
	}
	return v, err
}

// GetReservation returns a reservation. Errors: not_found.
func (db *DB) GetReservation(ctx context.Context, id string) (billing.Reservation, error) {
	r, err := scanReservation(db.readRow(ctx, `SELECT `+reservationColumns+` FROM reservations WHERE id = $1`, id))
	if err != nil {
		return r, notFound(err, "reservation %s not found", id)
	}
	return r, nil
}

// finishRow moves a held reservation to status and returns it; it reports
// false when the reservation is not held (any more). Its units stop
// counting against the limits in the same commit.
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

// settleHeld moves the held reservations that items settle to settled,
// each with its item's event, and reports which items did so. An id that
// several items name is settled by the first of them only; the others (and
// the items of reservations no longer held) are for claimLate. An event
// already in the ledger settles nothing: it is a resend, and naming a
// reservation still held it would release that hold with no usage added
// (the call it held would then be refused as settled by another event). On
// PostgreSQL it is one statement for the whole batch, not a round trip per
// settle.
func settleHeld(ctx context.Context, tx *sql.Tx, d Dialect, items []IngestItem, now time.Time) (map[int]bool, error) {
	first := map[string]int{}
	var ids []string
	for i, it := range items {
		if it.ReservationID == "" {
			continue
		}
		if _, seen := first[it.ReservationID]; !seen {
			first[it.ReservationID] = i
			ids = append(ids, it.ReservationID)
		}
	}
	// One lock order for every batch, as for the ledger's event ids.
	slices.Sort(ids)
	events := make([]string, len(ids))
	for k, id := range ids {
		events[k] = items[first[id]].Log.EventID
	}
	settled := make(map[int]bool, len(ids))
	if len(ids) == 0 {
		return settled, nil
	}
	if d != Postgres {
		for k, id := range ids {
			var recorded bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM api_usage_logs WHERE event_id = $1)`, events[k]).Scan(&recorded); err != nil {
				return nil, fmt.Errorf("settle reservation %s: %w", id, err)
			}
			if recorded {
				continue
			}
			_, held, err := finishRow(ctx, tx, id, billing.ReservationSettled, events[k], now)
			if err != nil {
				return nil, err
			}
			if held {
				settled[first[id]] = true
			}
		}
		return settled, nil
	}
	rows, err := tx.QueryContext(ctx, `UPDATE reservations AS r SET status = 'settled', event_id = v.event_id, finished_at = $3
		FROM unnest($1::text[], $2::text[]) AS v(id, event_id)
		WHERE r.id = v.id AND r.status = 'held'
		  AND NOT EXISTS (SELECT 1 FROM api_usage_logs l WHERE l.event_id = v.event_id) RETURNING r.id`, ids, events, ts(now))
	if err != nil {
		return nil, fmt.Errorf("settle reservations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("settle reservations: %w", err)
		}
		settled[first[id]] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("settle reservations: %w", err)
	}
	return settled, nil
}

// claimLate lets eventID settle a reservation that is no longer held
// (expired or released before its call ended; the call is still
// recorded) unless another event settled it. It reports false on such a
// conflict, and for a reservation still held, which settleHeld left to
// its own call because eventID is already recorded.
func claimLate(ctx context.Context, tx *sql.Tx, id, eventID string) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE reservations SET event_id = $2
		WHERE id = $1 AND status <> 'held' AND (event_id IS NULL OR event_id = $2)`, id, eventID)
	if err != nil {
		return false, fmt.Errorf("settle reservation %s: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
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
		_, held, err := finishRow(ctx, tx, id, billing.ReservationSettled, item.Log.EventID, now)
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
		if r, held, err = finishRow(ctx, tx, id, billing.ReservationReleased, "", now); err != nil || held {
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
			_, held, err := finishRow(ctx, tx, id, billing.ReservationExpired, "", now)
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

// UserKnown reports whether a user has a key or a subscription.
func (db *DB) UserKnown(ctx context.Context, userID string) (bool, error) {
	var ok bool
	err := db.readRow(ctx, `SELECT EXISTS (SELECT 1 FROM api_keys WHERE user_id = $1)
		OR EXISTS (SELECT 1 FROM user_subscriptions WHERE user_id = $1)`, userID).Scan(&ok)
	return ok, err
}
