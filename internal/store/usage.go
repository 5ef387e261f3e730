package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// RecordUsage appends rated usage logs to the ledger and adds them to the
// period summaries in the same transaction, so Σ logs = summaries at every
// commit. Each log must carry its period (BillingPeriod, PeriodStart) and a
// unique EventID; periodEnd gives each period's end by key. Errors: conflict
// when an event id is already recorded (or repeats in logs), in which case
// nothing of the batch is stored.
func (db *DB) RecordUsage(ctx context.Context, logs []billing.UsageLog, periodEnd map[string]time.Time, now time.Time) error {
	if err := db.prepareLedger(ctx); err != nil {
		return err
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		inserted, err := insertLogs(ctx, tx, &db.stmts, logs, now)
		if err != nil {
			return err
		}
		periods := map[periodKey]billing.Period{}
		for _, l := range logs {
			if !inserted[l.EventID] {
				return billing.Errorf(billing.CodeConflict, "event %q is already recorded", l.EventID)
			}
			delete(inserted, l.EventID)
			periods[logPeriodKey(l)] = billing.Period{Key: l.BillingPeriod, Start: l.PeriodStart, End: periodEnd[l.BillingPeriod]}
		}
		_, err = addLogsToSummaries(ctx, tx, &db.stmts, logs, periods, now)
		return err
	})
}

// UsageForPeriods returns the user's usage in each named period, in the
// order given, with zeros for periods without usage. The key billing.AllTime
// sums every period.
//
// A period sums the summary rows of its name that start at or after its
// start: its own row, and for a month the user spent partly on a
// subscription that has ended since (the schedule is calendar months
// again), the subscription's period of that name too. A subscription's
// first period leaves out the calendar month it began in (which starts
// before it).
//
// It is one statement whatever is asked (usageSQL): the named periods'
// summary rows and per-provider rows, and all time summed by the database.
// It returns a row per period asked and per provider used in it, and sums
// at most one row per period and provider of the user: it grows with the
// user's months, not with their calls.
func (db *DB) UsageForPeriods(ctx context.Context, userID string, periods []billing.Period) ([]billing.PeriodUsage, error) {
	out := make([]billing.PeriodUsage, len(periods))
	slots := map[string][]int{} // period key → its places in out
	args := []any{userID}
	for i, p := range periods {
		out[i] = billing.PeriodUsage{UserID: userID, Period: p, ByProvider: map[string]billing.Counters{}}
		if p.Key != billing.AllTime && slots[p.Key] == nil {
			args = append(args, p.Key)
		}
		slots[p.Key] = append(slots[p.Key], i)
	}
	if len(periods) == 0 {
		return out, nil
	}
	_, allTime := slots[billing.AllTime]
	rows, err := db.readRows(ctx, usageSQL(len(args)-1, allTime), args...)
	if err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key string
		var start *time.Time
		var provider sql.NullString
		var c billing.Counters
		var updated *time.Time
		if err := rows.Scan(&key, scanNullTime{&start}, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput,
			&c.Cost, &c.ResponseTimeSum, scanNullTime{&updated}); err != nil {
			return nil, fmt.Errorf("scan usage summary: %w", err)
		}
		for _, i := range slots[key] {
			if start != nil && start.Before(out[i].Period.Start) {
				continue
			}
			if provider.Valid {
				out[i].ByProvider[provider.String] = out[i].ByProvider[provider.String].Plus(c)
				continue
			}
			out[i].Total = out[i].Total.Plus(c)
			if updated != nil && updated.After(out[i].LastUpdated) {
				out[i].LastUpdated = *updated
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read usage summaries: %w", err)
	}
	return out, nil
}

// usageSQL reads a user's ($1) usage as rows of (period key, period start,
// provider, counters…, last update): a total row has no provider, a
// provider row no last update. First the rows of the periods whose keys
// are $2…, one per period with usage and one per provider of it; then,
// with allTime (and no start), the same
// summed over every period under the key billing.AllTime: one total row
// (zeros without usage) and one per provider. Every part reads its table
// by its (user_id, billing_period…) key. The sums are cast back to the
// columns' type, which SUM widens on PostgreSQL, so the parts unite; a sum
// out of range is an error, as it always was.
func usageSQL(keys int, allTime bool) string {
	var parts []string
	if keys > 0 {
		in := "user_id = $1 AND billing_period IN (" + placeholders(2, keys) + ")"
		parts = append(parts,
			`SELECT billing_period, period_start, NULL, total_calls, total_errors, tokens_input, tokens_output,
				total_cost, response_time_sum, updated_at FROM usage_summaries WHERE `+in,
			`SELECT billing_period, period_start, provider, calls, errors, tokens_input, tokens_output, cost,
				response_time_sum, NULL FROM usage_summary_providers WHERE `+in)
	}
	if allTime {
		parts = append(parts,
			`SELECT '`+billing.AllTime+`', NULL, NULL, CAST(COALESCE(SUM(total_calls), 0) AS BIGINT),
				CAST(COALESCE(SUM(total_errors), 0) AS BIGINT), CAST(COALESCE(SUM(tokens_input), 0) AS BIGINT),
				CAST(COALESCE(SUM(tokens_output), 0) AS BIGINT), CAST(COALESCE(SUM(total_cost), 0) AS BIGINT),
				COALESCE(SUM(response_time_sum), 0), MAX(updated_at)
			FROM usage_summaries WHERE user_id = $1`,
			`SELECT '`+billing.AllTime+`', NULL, provider, CAST(SUM(calls) AS BIGINT), CAST(SUM(errors) AS BIGINT),
				CAST(SUM(tokens_input) AS BIGINT), CAST(SUM(tokens_output) AS BIGINT), CAST(SUM(cost) AS BIGINT),
				SUM(response_time_sum), NULL
			FROM usage_summary_providers WHERE user_id = $1 GROUP BY provider`)
	}
	return strings.Join(parts, "\nUNION ALL\n")
}

func scanTotals(rows *sql.Rows, target func(key string) *billing.PeriodUsage) error {
	defer rows.Close()
	for rows.Next() {
		var key string
		var c billing.Counters
		var updated *time.Time
		if err := rows.Scan(&key, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum, scanNullTime{&updated}); err != nil {
			return fmt.Errorf("scan usage summary: %w", err)
		}
		u := target(key)
		u.Total = c
		if updated != nil {
			u.LastUpdated = *updated
		}
	}
	return rows.Err()
}

func scanProviders(rows *sql.Rows, target func(key string) *billing.PeriodUsage) error {
	defer rows.Close()
	for rows.Next() {
		var key, provider string
		var c billing.Counters
		if err := rows.Scan(&key, &provider, &c.Calls, &c.Errors, &c.TokensInput, &c.TokensOutput, &c.Cost,
			&c.ResponseTimeSum); err != nil {
			return fmt.Errorf("scan provider summary: %w", err)
		}
		target(key).ByProvider[provider] = c
	}
	return rows.Err()
}

// placeholders returns "$from, $from+1, …" for n parameters.
func placeholders(from, n int) string {
	b := make([]byte, 0, 5*n)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(append(b, '$'), int64(from+i), 10)
	}
	return string(b)
}

const logColumns = `id, event_id, user_id, provider, endpoint, method, model_used, tokens_input, tokens_output,
	tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h, tokens_reasoning, request_count, search_count,
	image_count, page_count, cost_input, cost_output, cost_total, response_time, status_code, error_message,
	retry_count, unpriced, partial, metadata, "timestamp", billing_period, period_start`

// ListLogs returns one page of usage logs, newest first, and how many match
// the filter (f.Before, the keyset position, narrows the page, not the
// count).
func (db *DB) ListLogs(ctx context.Context, f billing.LogFilter) ([]billing.UsageLog, int64, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.UserID != "" {
		add("user_id = $%d", f.UserID)
	}
	if f.Provider != "" {
		add("provider = $%d", f.Provider)
	}
	if f.BillingPeriod != "" {
		add("billing_period = $%d", f.BillingPeriod)
	}
	total, err := db.countLogs(ctx, f, where, args)
	if err != nil {
		return nil, 0, err
	}
	if f.UserID != "" && f.BillingPeriod != "" {
		b, err := db.periodLogBounds(ctx, f.UserID, f.BillingPeriod)
		if err != nil {
			return nil, 0, err
		}
		if b.empty {
			return []billing.UsageLog{}, total, nil
		}
		add(`"timestamp" >= $%d`, db.logTime(b.first))
		if b.last != nil {
			add(`"timestamp" <= $%d`, db.logTime(*b.last))
		}
	}
	if f.StatusCode != 0 {
		add("status_code = $%d", f.StatusCode)
		if f.StatusCode != commonStatus {
			// Implied by the equality, and written out so that both
			// planners may read the rows from the partial index of
			// unusual statuses (migration 00006).
			where = append(where, unusualStatus)
		}
	}
	if f.Before != nil {
		// The first term bounds an index range on any index whose columns
		// continue with "timestamp"; the second, a filter, breaks ties of
		// one instant by id, as the ORDER BY does.
		args = append(args, db.logTime(f.Before.Timestamp), f.Before.ID)
		where = append(where, fmt.Sprintf(`"timestamp" <= $%d AND ("timestamp" < $%d OR id < $%d)`,
			len(args)-1, len(args)-1, len(args)))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit, f.Offset)
	rows, err := db.readRows(ctx, `SELECT `+logColumns+` FROM api_usage_logs`+cond+
		fmt.Sprintf(` ORDER BY "timestamp" DESC, id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list usage logs: %w", err)
	}
	defer rows.Close()
	logs := []billing.UsageLog{}
	for rows.Next() {
		var l billing.UsageLog
		var errMsg, meta sql.NullString
		if err := rows.Scan(&l.ID, &l.EventID, &l.UserID, &l.Provider, &l.Endpoint, &l.Method, &l.ModelUsed,
			&l.TokensInput, &l.TokensOutput, &l.TokensCachedInput, &l.TokensCacheWrite5m, &l.TokensCacheWrite1h,
			&l.TokensReasoning, &l.RequestCount, &l.SearchCount, &l.ImageCount, &l.PageCount,
			&l.CostInput, &l.CostOutput, &l.CostTotal, &l.ResponseTime, &l.StatusCode, &errMsg, &l.RetryCount,
			&l.Unpriced, &l.Partial, &meta, scanTime{&l.Timestamp}, &l.BillingPeriod, scanTime{&l.PeriodStart}); err != nil {
			return nil, 0, fmt.Errorf("scan usage log: %w", err)
		}
		l.ErrorMessage, l.Metadata = errMsg.String, meta.String
		logs = append(logs, l)
	}
	return logs, total, rows.Err()
}

// logBounds is the time range that holds a user's logs of one period name.
type logBounds struct {
	empty bool // no summary: the user has no logs of that name
	first time.Time
	last  *time.Time // nil when a summary does not know its latest call
}

// periodLogBounds reads from the summaries of a user's periods named
// period the range their ledger rows lie in: from the earliest period
// start (a call belongs to the period that holds its timestamp) to the
// latest last_event_at (migration 00013). SQLite indexes a user's logs by
// time only, and a page of an old period then reads the index from that
// period's latest call instead of the user's newest.
func (db *DB) periodLogBounds(ctx context.Context, user, period string) (logBounds, error) {
	var first, last *time.Time
	var unknown int64
	if err := db.readRow(ctx, `SELECT MIN(period_start), MAX(last_event_at), COUNT(*) - COUNT(last_event_at)
		FROM usage_summaries WHERE user_id = $1 AND billing_period = $2`, user, period).
		Scan(scanNullTime{&first}, scanNullTime{&last}, &unknown); err != nil {
		return logBounds{}, fmt.Errorf("read the period's log range: %w", err)
	}
	if first == nil {
		return logBounds{empty: true}, nil
	}
	if unknown > 0 {
		last = nil
	}
	return logBounds{first: *first, last: last}, nil
}

// commonStatus is the status code of nearly every call. Migration 00006
// indexes only the ledger rows with another status (failures, and the rare
// other successes), a small fraction of the ledger, so a status filter
// counts and pages through those rows alone.
const commonStatus = 200

// unusualStatus is the WHERE term of that partial index, written exactly as
// in the migration: a planner uses a partial index only for a query whose
// WHERE clause contains (implies) the index's condition, and a bound
// parameter proves nothing.
const unusualStatus = "status_code <> 200"

// countLogs counts the logs that f selects; where and args are the
// conditions on user, provider and period (not status). Counting ledger
// rows costs as much as the ledger is large (a second for all users at ten
// million rows), so the count comes from the period summaries wherever it
// can: they hold exactly one call, and one error per failed call, per log
// row of their user, period and provider, updated in the same transaction
// as the rows (invariant 2, checked by Reconcile), and they share the
// filter's column names. That reads one summary row per period (per
// provider) of the user, or every summary row for an all-users count: a
// number that grows with users and months, not with calls. A status filter
// counts ledger rows only among those with an unusual status, through the
// partial index of migration 00006: status 200 is the summaries' calls less
// the user's unusual rows, any other status the unusual rows with that code.
func (db *DB) countLogs(ctx context.Context, f billing.LogFilter, where []string, args []any) (int64, error) {
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	summarised := `SELECT COALESCE(SUM(total_calls), 0) FROM usage_summaries` + cond
	if f.Provider != "" {
		summarised = `SELECT COALESCE(SUM(calls), 0) FROM usage_summary_providers` + cond
	}
	// The scope's ledger rows with an unusual status.
	unusual := func() string {
		return `SELECT COUNT(*) FROM api_usage_logs WHERE ` + strings.Join(append(slices.Clip(where), unusualStatus), " AND ")
	}
	var total, other int64
	switch {
	case f.StatusCode == 0 && len(where) == 0:
		return db.countAllLogs(ctx, summarised)
	case f.StatusCode == 0:
		if err := db.readRow(ctx, summarised, args...).Scan(&total); err != nil {
			return 0, fmt.Errorf("count usage logs: %w", err)
		}
	case f.StatusCode == commonStatus:
		if err := db.readRow(ctx, summarised, args...).Scan(&total); err != nil {
			return 0, fmt.Errorf("count usage logs: %w", err)
		}
		if err := db.readRow(ctx, unusual(), args...).Scan(&other); err != nil {
			return 0, fmt.Errorf("count usage logs by status: %w", err)
		}
		total -= other
	default:
		q := unusual() + fmt.Sprintf(" AND status_code = $%d", len(args)+1)
		if err := db.readRow(ctx, q, append(slices.Clip(args), f.StatusCode)...).Scan(&total); err != nil {
			return 0, fmt.Errorf("count usage logs by status: %w", err)
		}
	}
	return total, nil
}

// allLogsCount is the number of every user's ledger rows, as summed at a
// ledger mark.
type allLogsCount struct {
	mark, total int64
	at          time.Time // real clock
}

// countAllLogs counts every user's ledger rows (an admin's unfiltered log
// list). The sum runs over every summary row, so it grows with users ×
// periods: a result is reused while the ledger's newest row is the same
// and for at most a second, so it is at most a second old (transactions
// can commit out of id order on PostgreSQL).
func (db *DB) countAllLogs(ctx context.Context, q string) (int64, error) {
	mark, err := db.LedgerMark(ctx)
	if err != nil {
		return 0, err
	}
	if c := db.allLogs.Load(); c != nil && c.mark == mark && time.Since(c.at) < time.Second {
		return c.total, nil
	}
	var total int64
	if err := db.readRow(ctx, q).Scan(&total); err != nil {
		return 0, fmt.Errorf("count usage logs: %w", err)
	}
	db.allLogs.Store(&allLogsCount{mark: mark, total: total, at: time.Now()})
	return total, nil
}

// ProviderHealth returns, per provider with calls since `since`, how many
// calls it served and how many failed by its fault (billing.ProviderFault:
// 5xx, 429, 408, 401, 403; not the callers' own 4xx), and the median and
// 95th-percentile response times (nearest rank: the ceil(p·n)-th
// smallest) in milliseconds, unrounded; ErrorRate is left to the caller. Every call of the window
// counts (no sample), and the window is read through the time index, so the
// cost follows the traffic of the window, not the size of the ledger.
//
// How is a dialect difference, measured on a 20,000-call window (docs/
// BENCHMARKS.md): PostgreSQL aggregates in one statement (percentile_disc is
// nearest rank) in about 16 ms, where reading the calls out took 25 ms. On
// SQLite, which has no percentile function, the same figures by window
// functions (ROW_NUMBER over each provider's latencies) took 67–78 ms, and
// reading the window's provider, status and latency from the covering time
// index (migration 00003) and ranking them here takes about 19 ms.
func (db *DB) ProviderHealth(ctx context.Context, since time.Time) (map[string]billing.ProviderHealth, error) {
	if db.dialect == Postgres {
		return db.providerHealthSQL(ctx, since)
	}
	rows, err := db.readRows(ctx, `SELECT provider, status_code, response_time FROM api_usage_logs
		WHERE "timestamp" >= $1`, db.logTime(since))
	if err != nil {
		return nil, fmt.Errorf("read provider health: %w", err)
	}
	defer rows.Close()
	latencies := map[string][]float64{}
	out := map[string]billing.ProviderHealth{}
	for rows.Next() {
		var provider string
		var status int
		var rt float64
		if err := rows.Scan(&provider, &status, &rt); err != nil {
			return nil, fmt.Errorf("scan provider health: %w", err)
		}
		h := out[provider]
		h.Requests++
		if billing.ProviderFault(status) {
			h.Errors++
		}
		out[provider] = h
		latencies[provider] = append(latencies[provider], rt)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read provider health: %w", err)
	}
	for provider, rts := range latencies {
		slices.Sort(rts)
		n := len(rts)
		h := out[provider]
		// Ranks are 1-based: ceil(n/2) and ceil(0.95 n), in integers.
		h.P50Ms, h.P95Ms = rts[(n+1)/2-1]*1000, rts[(95*n+99)/100-1]*1000
		out[provider] = h
	}
	return out, nil
}

func (db *DB) providerHealthSQL(ctx context.Context, since time.Time) (map[string]billing.ProviderHealth, error) {
	rows, err := db.readRows(ctx, `SELECT provider, COUNT(*),
			COALESCE(SUM(CASE WHEN `+providerFaultSQL+` THEN 1 ELSE 0 END), 0),
			percentile_disc(0.5) WITHIN GROUP (ORDER BY response_time),
			percentile_disc(0.95) WITHIN GROUP (ORDER BY response_time)
		FROM api_usage_logs WHERE "timestamp" >= $1 GROUP BY provider`, db.logTime(since))
	if err != nil {
		return nil, fmt.Errorf("read provider health: %w", err)
	}
	defer rows.Close()
	out := map[string]billing.ProviderHealth{}
	for rows.Next() {
		var provider string
		var h billing.ProviderHealth
		if err := rows.Scan(&provider, &h.Requests, &h.Errors, &h.P50Ms, &h.P95Ms); err != nil {
			return nil, fmt.Errorf("scan provider health: %w", err)
		}
		h.P50Ms *= 1000
		h.P95Ms *= 1000
		out[provider] = h
	}
	return out, rows.Err()
}

// LedgerMark returns the highest usage-log id: it changes whenever the
// ledger grows, so a result derived from the ledger and tagged with it can
// be reused while it is unchanged. (Ids from concurrent PostgreSQL
// transactions may commit out of order, so a reused result can miss a
// commit of the same moment; callers bound the reuse in time as well.)
func (db *DB) LedgerMark(ctx context.Context) (int64, error) {
	var mark int64
	if err := db.readRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM api_usage_logs`).Scan(&mark); err != nil {
		return 0, fmt.Errorf("read ledger mark: %w", err)
	}
	return mark, nil
}

// Compile-time check that money.Amount scans from the driver's integers.
var _ sql.Scanner = (*money.Amount)(nil)

// providerFaultSQL is billing.ProviderFault as a condition on status_code.
const providerFaultSQL = `(status_code >= 500 OR status_code IN (401, 403, 408, 429))`

// ProviderErrors counts a provider's calls, and those that were the
// provider's faults (billing.ProviderFault), since `since`.
func (db *DB) ProviderErrors(ctx context.Context, provider string, since time.Time) (calls, failed int64, err error) {
	err = db.readRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN `+providerFaultSQL+` THEN 1 ELSE 0 END), 0)
		FROM api_usage_logs WHERE provider = $1 AND "timestamp" >= $2`, provider, db.logTime(since)).Scan(&calls, &failed)
	if err != nil {
		err = fmt.Errorf("count %s errors: %w", provider, err)
	}
	return calls, failed, err
}
