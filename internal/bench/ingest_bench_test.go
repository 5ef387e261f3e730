package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

const adminKey = "bench-admin-key-0123456789"

// startServer runs the whole service on url and returns its base URL.
func startServer(b *testing.B, url string) (string, *app.App) {
	b.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.Host, cfg.Port, cfg.AdminKey = url, "127.0.0.1", 0, adminKey
	a := app.New(cfg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		b.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; a.Close() })
	return a.BaseURL(), a
}

var runID atomic.Int64

// BenchmarkIngestHTTP posts batches of 100 events from 16 concurrent
// clients; events/s is the figure that matters.
func BenchmarkIngestHTTP(b *testing.B) {
	for _, be := range storetest.Backends() {
		pars := []int{1}
		if be.Name == "postgres" {
			// Concurrent group commits; 64 ≈ one transaction per request.
			pars = []int{1, 4, 64}
		}
		for _, par := range pars {
			name := be.Name
			if len(pars) > 1 {
				name = fmt.Sprintf("%s/commits=%d", be.Name, par)
			}
			b.Run(name, func(b *testing.B) { benchIngest(b, be, par) })
		}
	}
}

func benchIngest(b *testing.B, be storetest.Backend, par int) {
	base, a := startServer(b, be.URL(b))
	a.Meter.CommitParallelism = par
	users := []string{"bench-u1", "bench-u2", "bench-u3", "bench-u4"}
	for _, u := range users {
		createUser(b, a, u)
	}
	const batch, clients = 100, 16
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	run := runID.Add(1)
	// The bodies are written before the clock starts: a client runs on
	// another machine, and writing 100 events with fmt cost this one about
	// a twentieth of its CPU.
	bodies := make([][]byte, b.N)
	for n := range bodies {
		bodies[n] = eventsBody(run, int64(n), batch, users[n%len(users)])
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, base+"/api/subscription/usage", bytes.NewReader(bodies[n-1]))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+adminKey)
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d batches failed", failed.Load())
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "events/s")
}

func eventsBody(run, n int64, size int, user string) []byte {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range size {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"event_id":"r%d-b%d-e%d","user_id":%q,"provider":"openai","model":"gpt-4o","tokens_input":1200,"tokens_cached_input":200,"tokens_output":300,"status_code":200,"response_time":0.8,"timestamp":%q}`,
			run, n, i, user, ts)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

func createUser(b *testing.B, a *app.App, user string) {
	b.Helper()
	_, prefix, hash := auth.NewKey()
	k := billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser, CreatedAt: time.Now()}
	if _, err := a.DB.CreateKey(context.Background(), k, hash); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRawInsert is the ceiling: multi-row INSERTs of the rows ingestion
// writes (the columns the ledger binds for an IngestHTTP event, with its
// values), 1,000 rows a transaction, into the same table with the same
// indexes, nothing else.
func BenchmarkRawInsert(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			url := be.URL(b)
			storetest.OpenURL(b, url) // migrated
			run := runID.Add(1)
			// The row an ingested gpt-4o event of the IngestHTTP benchmark
			// becomes.
			const at = "2026-11-20T10:00:00.000000Z"
			if be.Name == "sqlite" {
				// SQLite's ledger binds only the columns a plain log sets
				// (internal/store's logColumnsPlain); the others keep their
				// defaults.
				// Its times are Unix microseconds (migration 00014).
				at, start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMicro(), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
				rawInserts(b, rawDB(b, url), false, `api_usage_logs (`+plainColumnList+`)`, plainColumns,
					func(args []any, n, i int) []any {
						return append(args, fmt.Sprintf("raw%d-%d-%d", run, n, i), "u1", "openai", "", "", "gpt-4o",
							1200, 300, 1500, 200, int64(2_750_000_000), int64(3_000_000_000), int64(5_750_000_000),
							0.8, 200, at, "2026-11", start, at)
					})
				return
			}
			rawInserts(b, rawDB(b, url), true, `api_usage_logs (`+ledgerColumnList+`)`, ledgerColumns,
				func(args []any, n, i int) []any {
					return append(args, fmt.Sprintf("raw%d-%d-%d", run, n, i), "u1", "openai", "", "", "gpt-4o",
						1200, 300, 1500, 200, 0, 0, 0, 0, 0, 0, 0,
						int64(2_750_000_000), int64(3_000_000_000), int64(5_750_000_000),
						0.8, 200, nil, 0, false, false, nil, at, "2026-11", "2026-11-01T00:00:00.000000Z", at)
				})
		})
	}
}

// BenchmarkRawInsertReference repeats, in the same run, the measurement
// behind the issue's facts about this machine kind ("a raw batched INSERT,
// 1,000 rows a transaction, about 400,000 rows/s on SQLite and
// 140,000–280,000 on PostgreSQL, with and without an index"): a narrow
// table, with and without a unique index. The machine's speed varies from
// day to day; this says how today's compares with the day of those facts.
func BenchmarkRawInsertReference(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, index := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/index=%t", be.Name, index), func(b *testing.B) {
				url := be.URL(b)
				storetest.OpenURL(b, url)
				db := rawDB(b, url)
				ddl := []string{`CREATE TABLE raw_reference (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
					event_id TEXT NOT NULL, user_id TEXT NOT NULL, tokens BIGINT NOT NULL, cost BIGINT NOT NULL, at TEXT NOT NULL)`}
				if be.Name == "sqlite" {
					ddl[0] = `CREATE TABLE raw_reference (id INTEGER PRIMARY KEY, event_id TEXT NOT NULL, user_id TEXT NOT NULL,
						tokens INTEGER NOT NULL, cost INTEGER NOT NULL, at TEXT NOT NULL)`
				}
				if index {
					ddl = append(ddl, `CREATE UNIQUE INDEX raw_reference_event ON raw_reference (event_id)`)
				}
				for _, q := range ddl {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
				run := runID.Add(1)
				rawInserts(b, db, be.Name == "postgres", `raw_reference (event_id, user_id, tokens, cost, at)`, 5,
					func(args []any, n, i int) []any {
						return append(args, fmt.Sprintf("ref%d-%d-%d", run, n, i), "u1", 1500, int64(5_750_000_000), "2026-11-20T10:00:00.000000Z")
					})
			})
		}
	}
}

// rawInserts inserts b.N transactions of 1,000 rows into target, 100 rows
// a multi-row INSERT, and reports rows/s. row appends the cols values of
// row i of transaction n.
func rawInserts(b *testing.B, db *sql.DB, postgres bool, target string, cols int, row func(args []any, n, i int) []any) {
	const rows, per = 1000, 100
	q := multiRowInsert(target, per, cols, postgres)
	args := make([]any, 0, per*cols)
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		for chunk := 0; chunk < rows; chunk += per {
			args = args[:0]
			for i := range per {
				args = row(args, n, chunk+i)
			}
			if _, err := tx.Exec(q, args...); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rows)/time.Since(start).Seconds(), "rows/s")
}

// multiRowInsert is an INSERT into target of n rows of cols bind values.
func multiRowInsert(target string, n, cols int, postgres bool) string {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO ` + target + ` VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := range cols {
			if c > 0 {
				sb.WriteByte(',')
			}
			if postgres {
				sb.WriteString("$" + strconv.Itoa(i*cols+c+1))
			} else {
				// modernc.org/sqlite resolves "$N" by name: "?" is its fast path.
				sb.WriteByte('?')
			}
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// ledgerColumnList is every column the ledger writes for an event
// (internal/store's logColumnsInsert; PostgreSQL binds them all), so that
// the raw ceiling inserts the same rows ingestion does.
const ledgerColumnList = `event_id, user_id, provider, endpoint, method, model_used,
	tokens_input, tokens_output, tokens_total, tokens_cached_input, tokens_cache_write_5m, tokens_cache_write_1h,
	tokens_reasoning, request_count, search_count, image_count, page_count, cost_input, cost_output, cost_total,
	response_time, status_code, error_message, retry_count, unpriced, partial, metadata, "timestamp",
	billing_period, period_start, created_at`

const ledgerColumns = 31

// plainColumnList is what SQLite's ledger binds for a plain event
// (internal/store's logColumnsPlain).
const plainColumnList = `event_id, user_id, provider, endpoint, method, model_used,
	tokens_input, tokens_output, tokens_total, tokens_cached_input, cost_input, cost_output, cost_total,
	response_time, status_code, "timestamp", billing_period, period_start, created_at`

const plainColumns = 19

func rawDB(b *testing.B, url string) *sql.DB {
	b.Helper()
	var db *sql.DB
	var err error
	if path, ok := strings.CutPrefix(url, "sqlite:///"); ok {
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_txlock=immediate")
		db.SetMaxOpenConns(1)
	} else {
		db, err = sql.Open("pgx", url)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
