package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// The shape of the ledger BenchmarkReadsAt10M reads from.
const (
	readsUsers   = 2000
	readsPeriods = 13
	// readsHeavyShare of all rows belong to one heavy user, so a single
	// user's history is also large (a million rows at 10M): per-user reads
	// must stay flat in the size of that user's history too, not only in
	// the size of the table.
	readsHeavyShare = 0.10
	readsClients    = 8
)

// readsProviders are the seeded providers with one model each.
var readsProviders = [][2]string{
	{"gemini", "gemini-2.5-flash"}, {"openai", "gpt-4o"}, {"anthropic", "claude-sonnet-4"},
	{"mistral", "mistral-large"}, {"tavily", "search"}, {"serper", "search"},
	{"metaphor", "search"}, {"firecrawl", "scrape"}, {"stability", "sd3"},
}

// readsUser names user i; user 0 is the heavy one.
func readsUser(i int) string {
	if i == 0 {
		return "bench-heavy"
	}
	return fmt.Sprintf("bench-u%04d", i)
}

// BenchmarkReadsAt10M measures the read routes (usage, dashboard, trends,
// usage logs, health) over HTTP with an admin key while the ledger holds
// ALWRITY_BENCH_ROWS log rows (default 10,000,000) over 2,000 users, 9
// providers and 13 calendar months, with the summaries built from the same
// rows (Σ logs = summaries). One user holds a tenth of the rows (a heavy
// user, measured on its own), and the last 20,000 rows fall within the
// health window. Each route is a sub-benchmark: b.N requests from 8
// concurrent clients on random users, reported as p50-ms and p99-ms. The
// fill happens once per backend, outside the timing; set ALWRITY_BENCH_KEEP
// to a directory to keep the SQLite file (and the PostgreSQL schema) between
// runs and skip the fill when it is complete.
func BenchmarkReadsAt10M(b *testing.B) {
	rows := int64(10_000_000)
	if s := os.Getenv("ALWRITY_BENCH_ROWS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < readsUsers {
			b.Fatalf("ALWRITY_BENCH_ROWS=%q: want a number ≥ %d", s, readsUsers)
		}
		rows = n
	}
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			url := readsURL(b, be, rows)
			f := newReadsFill(be.Name, rows, time.Now().UTC())
			// Migrated and seeded first: a kept database filled by an
			// older schema takes the newer migrations before the fill's
			// own statements read it in the newest schema's form.
			storetest.OpenURL(b, url)
			db := rawFillDB(b, url)
			if f.done(b, db) {
				b.Logf("%s: reusing %d kept rows; %d calls in the health window", be.Name, rows, f.recent(b, db))
			} else {
				start := time.Now()
				f.fill(b, db)
				b.Logf("%s: filled %d log rows and their summaries in %s", be.Name, rows, time.Since(start).Round(time.Second))
			}
			db.Close()
			start := time.Now()
			base, _ := startServer(b, url)
			b.Logf("%s: server started in %s", be.Name, time.Since(start).Round(time.Millisecond))
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: readsClients}}
			for _, r := range f.routes() {
				b.Run(r.name, func(b *testing.B) { measureRoute(b, client, base, r.path) })
			}
		})
	}
}

// readsURL returns the database to fill: a fresh one, or with
// ALWRITY_BENCH_KEEP a kept one named by backend and row count.
func readsURL(b *testing.B, be storetest.Backend, rows int64) string {
	keep := os.Getenv("ALWRITY_BENCH_KEEP")
	if keep == "" {
		return be.URL(b)
	}
	name := fmt.Sprintf("reads_%d", rows)
	if be.Name == "sqlite" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			b.Fatal(err)
		}
		abs, err := filepath.Abs(filepath.Join(keep, name+".db"))
		if err != nil {
			b.Fatal(err)
		}
		return "sqlite:///" + abs
	}
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		b.Skip("PostgreSQL benchmarks need TEST_DATABASE_URL")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA IF NOT EXISTS bench_" + name); err != nil {
		b.Fatal(err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=bench_" + name
}

// rawFillDB opens the database for the fill, with a large page cache on
// SQLite so the ledger's indexes stay in memory while they grow.
func rawFillDB(b *testing.B, url string) *sql.DB {
	b.Helper()
	if path, ok := strings.CutPrefix(url, "sqlite:///"); ok {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)"+
			"&_pragma=synchronous(NORMAL)&_pragma=cache_size(-2000000)&_txlock=immediate")
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		return db
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// readsFill generates the ledger: rows in time order (as a real ledger
// grows), evenly spread over the 13 calendar months ending with the current
// one, so the current period, the trends window and the health window all
// hold data.
type readsFill struct {
	backend string
	rows    int64
	now     time.Time
	periods []billing.Period // oldest first
	from    time.Time
	// The last `burst` rows are written after the others and stamped within
	// readsBurstSpan before burstEnd, the time they are written, so the
	// health window holds more calls than the route samples (its worst case)
	// when the routes are measured.
	burst    int64
	burstEnd time.Time
}

const readsBurstSpan = 10 * time.Minute

func newReadsFill(backend string, rows int64, now time.Time) *readsFill {
	cur := billing.CalendarMonths().At(now)
	f := &readsFill{backend: backend, rows: rows, now: now}
	for i := readsPeriods - 1; i >= 0; i-- {
		f.periods = append(f.periods, billing.CalendarMonths().Back(cur, i))
	}
	f.from = f.periods[0].Start
	f.burst = min(20_000, rows/10)
	return f
}

// done reports whether the database already holds this fill (a kept one).
func (f *readsFill) done(b *testing.B, db *sql.DB) bool {
	var logs, summed int64
	if err := db.QueryRow(`SELECT COUNT(*) FROM api_usage_logs`).Scan(&logs); err != nil {
		b.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COALESCE(SUM(total_calls), 0) FROM usage_summaries`).Scan(&summed); err != nil {
		b.Fatal(err)
	}
	if logs == f.rows && summed == f.rows {
		return true
	}
	if logs == f.rows {
		// The ledger is whole but its summaries are not (a fill stopped
		// while summarising): derive them again, not the ledger.
		for _, t := range []string{"usage_summary_providers", "usage_summaries"} {
			if _, err := db.Exec(`DELETE FROM ` + t); err != nil {
				b.Fatal(err)
			}
		}
		f.summarise(b, db)
		f.vacuum(b, db, "usage_summaries", "usage_summary_providers")
		return true
	}
	if logs != 0 || summed != 0 {
		b.Fatalf("%s: the kept database holds %d logs and %d summarised calls, want %d or none: remove it", f.backend, logs, summed, f.rows)
	}
	return false
}

// recent counts the calls of the last 15 minutes (the health window): on a
// kept database the burst ages, and health measured over an empty window
// says little.
func (f *readsFill) recent(b *testing.B, db *sql.DB) int64 {
	since := f.logTime(time.Now().Add(-15 * time.Minute))
	q := `SELECT COUNT(*) FROM api_usage_logs WHERE "timestamp" >= $1`
	if f.backend == "sqlite" {
		q = strings.Replace(q, "$1", "?", 1)
	}
	var n int64
	if err := db.QueryRow(q, since).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

const readsLogColumns = `event_id, user_id, provider, model_used, tokens_input, tokens_output, tokens_total,
	cost_input, cost_output, cost_total, response_time, status_code, "timestamp", billing_period, period_start, created_at`

const readsLogParams = 16

// fill writes the log rows with multi-row INSERTs, 500 rows a statement and
// 100,000 a transaction, then derives both summary tables from them with
// INSERT … SELECT … GROUP BY, and checks Σ logs = summaries.
func (f *readsFill) fill(b *testing.B, db *sql.DB) {
	const perStmt, perTx = 500, 100_000
	workers := 1 // SQLite has one writer
	if f.backend == "postgres" {
		workers = 2
	}
	f.insertRows(b, db, 0, f.rows-f.burst, workers, perStmt, perTx)
	// A table that grew by ten million rows would have been vacuumed and
	// analysed by autovacuum by now, except for its newest rows; so vacuum
	// before the burst, and plans, index-only scans and heap visits are
	// those of a settled production table.
	f.vacuum(b, db, "api_usage_logs")
	f.burstEnd = time.Now().UTC()
	f.insertRows(b, db, f.rows-f.burst, f.rows, workers, perStmt, perTx)
	f.summarise(b, db)
	f.vacuum(b, db, "usage_summaries", "usage_summary_providers")
}

// vacuum runs VACUUM ANALYZE on PostgreSQL tables; SQLite is left as the
// service leaves it (no ANALYZE).
func (f *readsFill) vacuum(b *testing.B, db *sql.DB, tables ...string) {
	if f.backend != "postgres" {
		return
	}
	for _, t := range tables {
		if _, err := db.Exec(`VACUUM ANALYZE ` + t); err != nil {
			b.Fatal(err)
		}
	}
}

// insertRows writes rows [from, to) from `workers` concurrent transactions.
func (f *readsFill) insertRows(b *testing.B, db *sql.DB, from, to int64, workers, perStmt int, perTx int64) {
	var next atomic.Int64
	next.Store(from)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	stmt := f.insertSQL(perStmt)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := make([]any, 0, perStmt*readsLogParams)
			for {
				first := next.Add(perTx) - perTx
				if first >= to {
					return
				}
				last := min(first+perTx, to)
				tx, err := db.Begin()
				if err != nil {
					errs <- err
					return
				}
				for k := first; k < last; k += int64(perStmt) {
					n := min(perStmt, int(last-k))
					args = args[:0]
					for i := range n {
						args = f.appendRow(args, k+int64(i))
					}
					q := stmt
					if n < perStmt {
						q = f.insertSQL(n)
					}
					if _, err := tx.Exec(q, args...); err != nil {
						tx.Rollback()
						errs <- fmt.Errorf("worker %d: insert rows %d…: %w", w, k, err)
						return
					}
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func (f *readsFill) insertSQL(n int) string {
	return multiRowInsert(`api_usage_logs (`+readsLogColumns+`)`, n, readsLogParams, f.backend == "postgres")
}

// appendRow appends the bind values of row k. Everything derives from k,
// so a row is the same whichever worker writes it.
func (f *readsFill) appendRow(args []any, k int64) []any {
	r := rand.New(rand.NewPCG(uint64(k), 0x5eed))
	user := 0
	if r.Float64() >= readsHeavyShare {
		user = 1 + r.IntN(readsUsers-1)
	}
	prov := readsProviders[r.IntN(len(readsProviders))]
	var at time.Time
	if main := f.rows - f.burst; k < main {
		at = f.from.Add(time.Duration(float64(f.now.Sub(f.from)) * float64(k) / float64(main)))
	} else {
		at = f.burstEnd.Add(-readsBurstSpan + time.Duration(float64(readsBurstSpan)*float64(k-main)/float64(f.burst)))
	}
	p := billing.CalendarMonths().At(at)
	in, out := int64(100+r.IntN(4000)), int64(50+r.IntN(1500))
	costIn, costOut := in*2_500_000, out*10_000_000 // pico-dollars
	status := 200
	if r.IntN(100) < 3 {
		status = 500
	}
	stamp := f.logTime(at)
	return append(args, fmt.Sprintf("fill-%011d", k), readsUser(user), prov[0], prov[1], in, out, in+out,
		costIn, costOut, costIn+costOut, 0.2+r.Float64()*3, status, stamp, p.Key, f.logTime(p.Start), stamp)
}

// logTime is t as the ledger's time columns hold it: Unix microseconds on
// SQLite (its migration 00014), text that PostgreSQL parses otherwise.
func (f *readsFill) logTime(t time.Time) any {
	if f.backend == "sqlite" {
		return t.UnixMicro()
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// summaryTime is an SQL expression that turns the ledger time column into
// the summaries' form: their SQLite columns keep the text layout.
func (f *readsFill) summaryTime(column string) string {
	if f.backend == "sqlite" {
		return "strftime('%Y-%m-%dT%H:%M:%S', " + column + " / 1000000, 'unixepoch') || printf('.%06dZ', " + column + " % 1000000)"
	}
	return column
}

// summarise builds usage_summaries and usage_summary_providers from the
// ledger, so they equal its sums by construction, and checks the totals.
func (f *readsFill) summarise(b *testing.B, db *sql.DB) {
	var ends strings.Builder
	ends.WriteString("CASE billing_period")
	for _, p := range f.periods {
		fmt.Fprintf(&ends, " WHEN '%s' THEN '%s'", p.Key, p.End.UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	ends.WriteString(" END")
	end := ends.String()
	if f.backend == "postgres" {
		end = "(" + end + ")::timestamptz"
	}
	stmts := []string{
		// A period is (user, name, start): migration 00010.
		`INSERT INTO usage_summaries (user_id, billing_period, period_start, period_end, total_calls, total_errors,
			tokens_input, tokens_output, total_tokens, total_cost, response_time_sum, created_at, updated_at, last_event_at)
		SELECT user_id, billing_period, ` + f.summaryTime("period_start") + `, ` + end + `, COUNT(*),
			SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), SUM(tokens_input), SUM(tokens_output),
			SUM(tokens_input + tokens_output), SUM(cost_total), SUM(response_time), ` + f.summaryTime("MIN(created_at)") + `,
			` + f.summaryTime("MAX(created_at)") + `, ` + f.summaryTime(`MAX("timestamp")`) + `
		FROM api_usage_logs GROUP BY user_id, billing_period, period_start`,
		`INSERT INTO usage_summary_providers (user_id, billing_period, period_start, provider, calls, errors, tokens_input,
			tokens_output, tokens, cost, response_time_sum, updated_at)
		SELECT user_id, billing_period, ` + f.summaryTime("period_start") + `, provider, COUNT(*),
			SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END), SUM(tokens_input), SUM(tokens_output),
			SUM(tokens_input + tokens_output), SUM(cost_total), SUM(response_time), ` + f.summaryTime("MAX(created_at)") + `
		FROM api_usage_logs GROUP BY user_id, billing_period, period_start, provider`,
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("summarise: %v", err)
		}
	}
	var calls, pcalls int64
	if err := db.QueryRow(`SELECT (SELECT SUM(total_calls) FROM usage_summaries),
		(SELECT SUM(calls) FROM usage_summary_providers)`).Scan(&calls, &pcalls); err != nil {
		b.Fatal(err)
	}
	if calls != f.rows || pcalls != f.rows {
		b.Fatalf("summaries count %d and %d calls, want %d", calls, pcalls, f.rows)
	}
}

type readsRoute struct {
	name string
	path func(r *rand.Rand) string
}

// routes are the measured reads; each picks its user (and period) at random.
func (f *readsFill) routes() []readsRoute {
	user := func(r *rand.Rand) string { return readsUser(1 + r.IntN(readsUsers-1)) }
	period := func(r *rand.Rand) string { return f.periods[r.IntN(len(f.periods))].Key }
	const p = "/api/subscription"
	return []readsRoute{
		// Health first, while the burst is inside its 15-minute window.
		{"health", func(*rand.Rand) string { return p + "/health" }},
		{"usage", func(r *rand.Rand) string { return p + "/usage/" + user(r) }},
		{"dashboard", func(r *rand.Rand) string { return p + "/dashboard/" + user(r) }},
		{"trends-12", func(r *rand.Rand) string { return p + "/trends/" + user(r) + "?months=12" }},
		{"logs-user", func(r *rand.Rand) string { return p + "/usage-logs?limit=50&user_id=" + user(r) }},
		// One month of a random user's logs, newest first: mostly a past
		// month, whose rows no recent read has brought into memory.
		{"logs-user-period", func(r *rand.Rand) string {
			return p + "/usage-logs?user_id=" + user(r) + "&billing_period=" + period(r)
		}},
		{"logs-user-provider-period", func(r *rand.Rand) string {
			return p + "/usage-logs?user_id=" + user(r) + "&provider=openai&billing_period=" + period(r)
		}},
		{"logs-heavy-user", func(*rand.Rand) string { return p + "/usage-logs?limit=50&user_id=" + readsUser(0) }},
		{"logs-heavy-user-provider-period", func(r *rand.Rand) string {
			return p + "/usage-logs?user_id=" + readsUser(0) + "&provider=openai&billing_period=" + period(r)
		}},
		{"logs-all-users", func(*rand.Rand) string { return p + "/usage-logs?limit=50" }},
	}
}

// measureRoute sends b.N GETs from readsClients concurrent clients and
// reports latency percentiles.
func measureRoute(b *testing.B, client *http.Client, base string, path func(*rand.Rand) string) {
	lat := make([][]time.Duration, readsClients)
	var next atomic.Int64
	var failed atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range readsClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+path(r), nil)
				req.Header.Set("Authorization", "Bearer "+adminKey)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("%s: status %d", req.URL, resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed, the first: %v", n, firstErr)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
}
