// Package store keeps alwrity-billing's data in SQLite (the embedded
// default) or PostgreSQL through one set of SQL statements. Dialect
// differences live in this file and in the per-dialect migrations.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite" // registers the "sqlite" driver; its Error type tells constraint failures apart
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations
var migrations embed.FS

// Dialect names the database engine behind a DB.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Tables lists every table the service needs; verify and readiness checks
// look for each.
var Tables = []string{
	"subscription_plans", "user_subscriptions", "api_usage_logs", "usage_summaries",
	"api_provider_pricing", "usage_alerts", "billing_history",
	"api_providers", "plan_provider_limits", "model_aliases", "usage_summary_providers",
	"api_keys", "seeded_defaults", "reservations", "catalog_state", "invoice_items", "subscription_history",
	"webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_attempts",
}

// DB is the store. On SQLite it keeps one writer connection (SQLite allows
// one writer at a time, and queueing in Go is cheaper than busy retries) and
// a separate pool for reads; on PostgreSQL both are the same pool.
type DB struct {
	dialect Dialect
	write   *sql.DB
	read    *sql.DB
	logger  *slog.Logger
	source  string // the URL with any password removed, for messages
	stmts   stmtCache
	// reads are hot read statements prepared on the read pool (SQLite).
	readMu sync.Mutex
	reads  map[string]*sql.Stmt
	closed bool   // Close has run: no statement is kept any more
	path   string // the SQLite file
	// allLogs caches the count of every user's ledger rows.
	allLogs atomic.Pointer[allLogsCount]

	// InvoiceReview, when positive, keeps invoices written by a period
	// close as drafts for that long (IssueDrafts issues them); zero
	// issues them at once.
	InvoiceReview time.Duration

	// accounts counts this process's writes to subscriptions and plans, so
	// that caches of a user's plan know at once when to read it again.
	accounts atomic.Int64

	// checkpoints copies SQLite's log back in the background.
	checkpoints *checkpointer
}

// AccountsVersion changes whenever this process writes a subscription or a
// plan. Caches of users' plans compare it to know when to read again
// (writes by other processes are seen when such a cache expires).
func (db *DB) AccountsVersion() int64 { return db.accounts.Load() }

// accountsChanged marks a write to subscriptions or plans.
func (db *DB) accountsChanged() { db.accounts.Add(1) }

// Open connects to the database named by rawURL: "sqlite:///./alwrity.db",
// "sqlite:////abs/path.db" or "postgres://…". It does not migrate.
func Open(ctx context.Context, rawURL string, logger *slog.Logger) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dialect, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db := &DB{dialect: dialect, logger: logger, source: redact(rawURL)}
	if dialect == SQLite {
		db.path = dsn
	}
	db.stmts.init(dialect)
	switch dialect {
	case SQLite:
		if dir := filepath.Dir(dsn); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// WAL lets readers run beside the writer; NORMAL sync in WAL mode
		// loses nothing on a process crash (kill -9), only on power loss.
		params := "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=temp_store(MEMORY)"
		// The writer never checkpoints itself: see checkpoint.go.
		writer := fmt.Sprintf("&_txlock=immediate&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(%d)", walSizeLimit)
		if db.write, err = sql.Open("sqlite", "file:"+dsn+params+writer); err != nil {
			return nil, err
		}
		db.write.SetMaxOpenConns(1)
		db.stmts.db = db.write
		if db.read, err = sql.Open("sqlite", "file:"+dsn+params); err != nil {
			db.write.Close()
			return nil, err
		}
		db.read.SetMaxOpenConns(8)
		// Keep them open: opening a SQLite connection reads the schema.
		db.read.SetMaxIdleConns(8)
	case Postgres:
		if db.write, err = sql.Open("pgx", dsn); err != nil {
			return nil, err
		}
		// Several replicas share one server's max_connections (100 by
		// default): keep a few idle connections, not the whole pool.
		db.write.SetMaxOpenConns(32)
		db.write.SetMaxIdleConns(8)
		db.write.SetConnMaxIdleTime(time.Minute)
		db.read = db.write
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if dialect == SQLite {
		db.startCheckpointer(checkpointEvery, walRestartFrames)
	}
	return db, nil
}

// parseURL splits a DATABASE_URL into a dialect and a driver DSN.
func parseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		// sqlite:///./x.db → ./x.db ; sqlite:////tmp/x.db → /tmp/x.db
		path := strings.TrimPrefix(raw, "sqlite://")
		path = strings.TrimPrefix(path, "/")
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if path == "" {
			return "", "", fmt.Errorf("DATABASE_URL %q names no SQLite file", raw)
		}
		return SQLite, path, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			// url.Parse's error quotes the whole URL, and its reason can
			// quote part of a password (a "/" in one ends the host, so the
			// rest reads as a port), so neither goes into the message.
			return "", "", fmt.Errorf("DATABASE_URL %q is not a valid URL (percent-encode special characters in the user name and password)", redact(raw))
		}
		return Postgres, raw, nil
	}
	return "", "", fmt.Errorf("DATABASE_URL must start with sqlite:// or postgres://, got %q", redact(raw))
}

// redact removes a password from a database URL: the one in the user info
// and a libpq-style "password" query parameter, which pgx also accepts. A URL
// that does not parse is redacted as text, since it is the one most likely to
// end up in an error message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactText(raw)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

var queryPassword = regexp.MustCompile(`(?i)([?&]password=)[^&#]*`)

// redactText hides passwords in a URL that url.Parse rejects. It errs on the
// side of hiding too much: everything between the first ":" after the
// scheme and the last "@" goes.
func redactText(raw string) string {
	out := queryPassword.ReplaceAllString(raw, "${1}xxxxx")
	scheme, rest, ok := strings.Cut(out, "://")
	if !ok {
		return out
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return out
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return out
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// Dialect returns the engine behind the store.
func (db *DB) Dialect() Dialect { return db.dialect }

// Source returns the database URL without its password.
func (db *DB) Source() string { return db.source }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.write.PingContext(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	return nil
}

// Close closes every connection.
func (db *DB) Close() error {
	db.stopCheckpointer()
	db.stmts.close()
	db.readMu.Lock()
	for _, st := range db.reads {
		st.Close()
	}
	db.reads, db.closed = nil, true
	db.readMu.Unlock()
	var errs []error
	if db.read != nil && db.read != db.write {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

func (db *DB) goose() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.dialect))
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if db.dialect == Postgres {
		dialect = goose.DialectPostgres
		// Several replicas may start at once; an advisory lock makes the
		// others wait for the first to finish migrating. They retry every
		// second (goose's default is every 5 s, which adds seconds to every
		// start of a replica that loses the race) for up to 5 minutes.
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider(dialect, db.write, sub, opts...)
}

// MigrateResult says what Migrate did.
type MigrateResult struct {
	Applied []string // file names of the migrations applied now
	Version int64    // the schema version afterwards
	Created bool     // whether the tables did not exist before
}

// Migrate applies every pending migration. It refuses a database whose
// schema is newer than the newest migration this binary embeds: an older
// binary would read and write tables it does not know.
func (db *DB) Migrate(ctx context.Context) (MigrateResult, error) {
	p, err := db.goose()
	if err != nil {
		return MigrateResult{}, fmt.Errorf("prepare migrations: %w", err)
	}
	before, err := p.GetDBVersion(ctx)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("read schema version: %w", err)
	}
	var latest int64
	if sources := p.ListSources(); len(sources) > 0 {
		latest = sources[len(sources)-1].Version
	}
	if before > latest {
		return MigrateResult{}, fmt.Errorf("database schema version %d is newer than this binary's newest migration %d: run a newer alwrity-billing",
			before, latest)
	}
	if db.dialect == SQLite && before < latest {
		// A migration that builds an index or rebuilds a table sorts every
		// row: in temporary files, not in memory as the writer's other
		// work does (temp_store(MEMORY) in Open), so that memory does not
		// grow with the ledger (ten million rows: 2.3 GB against 38 MB
		// resident, docs/BENCHMARKS.md).
		if _, err := db.write.ExecContext(ctx, "PRAGMA temp_store = FILE"); err != nil {
			return MigrateResult{}, fmt.Errorf("prepare migrations: %w", err)
		}
		defer func() { _, _ = db.write.ExecContext(context.WithoutCancel(ctx), "PRAGMA temp_store = MEMORY") }()
	}
	results, err := p.Up(ctx)
	if err != nil {
		return MigrateResult{}, fmt.Errorf("apply migrations: %w", err)
	}
	res := MigrateResult{Created: before == 0 && len(results) > 0}
	for _, r := range results {
		res.Applied = append(res.Applied, filepath.Base(r.Source.Path))
	}
	res.Version, err = p.GetDBVersion(ctx)
	return res, err
}

// SchemaVersion returns the applied and the latest known schema versions.
// It changes nothing: on a database that was never migrated it reports
// version 0 rather than let goose create its version table, because verify
// promises to only look.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := db.goose()
	if err != nil {
		return 0, 0, err
	}
	have, err := db.tables(ctx)
	if err != nil {
		return 0, 0, err
	}
	if !have[goose.DefaultTablename] {
		sources := p.ListSources()
		if len(sources) > 0 {
			latest = sources[len(sources)-1].Version
		}
		return 0, latest, nil
	}
	return p.GetVersions(ctx)
}

// tables returns the names of the tables that exist.
func (db *DB) tables(ctx context.Context) (map[string]bool, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.dialect == Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.readRows(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		have[n] = true
	}
	return have, rows.Err()
}

// MissingTables returns the tables from Tables that do not exist.
func (db *DB) MissingTables(ctx context.Context) ([]string, error) {
	have, err := db.tables(ctx)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range Tables {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// inTx runs fn in one write transaction, committing only if fn succeeds.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.committed()
	return nil
}

// isUniqueViolation reports whether err is a unique (or primary key)
// constraint violation, in either dialect.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		return liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || liteErr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// conflict turns a unique-constraint violation into a coded conflict error
// with a readable message, and leaves any other error as it is.
func conflict(err error, format string, args ...any) error {
	if isUniqueViolation(err) {
		return billing.Errorf(billing.CodeConflict, format, args...)
	}
	return err
}

// readRow runs a hot single-row read; on SQLite through a statement
// prepared once on the read pool (modernc parses every statement text it
// is given; pgx caches prepared statements itself).
func (db *DB) readRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := db.readStmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.read.QueryRowContext(ctx, q, args...)
}

// readRows runs a hot read of several rows, prepared as readRow's are.
func (db *DB) readRows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := db.readStmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.read.QueryContext(ctx, q, args...)
}

// maxReadStmts bounds the read statements kept prepared. The texts come
// from a fixed set of queries, some with a variable number of bound
// values (a usage read of n periods), so the set is small but not fixed.
const maxReadStmts = 256

// readStmt returns q prepared on the SQLite read pool, preparing it the
// first time; nil on PostgreSQL, when it cannot be prepared or when
// maxReadStmts are kept already (the caller then runs the text).
func (db *DB) readStmt(ctx context.Context, q string) *sql.Stmt {
	if db.dialect != SQLite {
		return nil
	}
	db.readMu.Lock()
	st, full := db.reads[q], len(db.reads) >= maxReadStmts
	db.readMu.Unlock()
	if st != nil || full {
		return st
	}
	// Prepared outside the lock: preparing waits for a free connection,
	// and other reads must not wait behind it.
	st, err := db.read.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	db.readMu.Lock()
	defer db.readMu.Unlock()
	if kept := db.reads[q]; kept != nil || db.closed {
		st.Close() // prepared meanwhile by another read, or the store closed
		return kept
	}
	if db.reads == nil {
		db.reads = map[string]*sql.Stmt{}
	}
	db.reads[q] = st
	return st
}
