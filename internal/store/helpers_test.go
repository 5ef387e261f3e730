package store_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// openBare opens the database at url through the production path without
// migrating or seeding it.
func openBare(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, nil)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openMigrated opens and migrates a new database on b without seeding it.
func openMigrated(t *testing.T, b storetest.Backend) *store.DB {
	t.Helper()
	db := openBare(t, b.URL(t))
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}

// rawSQL opens a plain connection to the database behind a storetest URL,
// for what an operator would do by hand (rename a plan, drop a table) and
// the store has no method for.
func rawSQL(t *testing.T, url string) *sql.DB {
	t.Helper()
	var raw *sql.DB
	var err error
	if path, ok := strings.CutPrefix(url, "sqlite:///"); ok {
		// storetest's SQLite URLs hold an absolute path after "sqlite:///".
		raw, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	} else {
		raw, err = sql.Open("pgx", url)
	}
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	raw.SetMaxOpenConns(1)
	t.Cleanup(func() { raw.Close() })
	return raw
}

// mustExec runs one statement on a raw connection and returns the rows it
// changed.
func mustExec(t *testing.T, raw *sql.DB, q string, args ...any) int64 {
	t.Helper()
	r, err := raw.ExecContext(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		t.Fatalf("%s: rows affected: %v", q, err)
	}
	return n
}

// wantCode fails unless err carries the error code want.
func wantCode(t *testing.T, err error, want billing.Code) {
	t.Helper()
	if got := billing.ErrorCode(err); got != want {
		t.Fatalf("error code = %q (err %v), want %q", got, err, want)
	}
}

// date returns a UTC time.
func date(y int, m time.Month, d, h, min, s, ns int) time.Time {
	return time.Date(y, m, d, h, min, s, ns, time.UTC)
}

// i64 returns a pointer to n, for limits.
func i64(n int64) *int64 { return &n }
