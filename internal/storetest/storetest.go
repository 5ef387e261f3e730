// Package storetest gives tests real databases through the production
// open-and-migrate path: a temporary SQLite file, and a fresh PostgreSQL
// schema on TEST_DATABASE_URL. Set ALWRITY_REQUIRE_POSTGRES=1 (CI does) to
// turn a missing or unreachable PostgreSQL into a failure instead of a skip.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Backend is one database a test can run against.
type Backend struct {
	Name string
	// URL returns a DATABASE_URL naming a new, empty database.
	URL func(t testing.TB) string
}

// Backends returns SQLite and PostgreSQL.
func Backends() []Backend {
	return []Backend{{Name: "sqlite", URL: SQLiteURL}, {Name: "postgres", URL: PostgresURL}}
}

// Each runs fn once per backend as a subtest.
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// SQLiteURL returns the URL of a new SQLite file in the test's temp dir.
func SQLiteURL(t testing.TB) string {
	return "sqlite:///" + filepath.Join(t.TempDir(), "billing.db")
}

// PostgresURL returns the URL of a new schema on TEST_DATABASE_URL, dropped
// when the test ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	required := os.Getenv("ALWRITY_REQUIRE_POSTGRES") == "1"
	if base == "" {
		if required {
			t.Fatal("ALWRITY_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set")
		}
		t.Skip("PostgreSQL tests need TEST_DATABASE_URL (CI sets it and requires them)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if required {
			t.Fatalf("PostgreSQL at TEST_DATABASE_URL is unreachable: %v", err)
		}
		t.Skipf("PostgreSQL at TEST_DATABASE_URL is unreachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Other tests drop their schemas at the same time, and PostgreSQL
		// may pick one of two such drops as a deadlock victim (SQLSTATE
		// 40P01): that drop is tried again.
		for attempt := 1; ; attempt++ {
			_, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE")
			var pgErr *pgconn.PgError
			if err != nil && errors.As(err, &pgErr) && pgErr.Code == "40P01" && attempt < 5 {
				time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			break
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open opens, migrates and seeds a new database on backend b, closed when
// the test ends.
func Open(t testing.TB, b Backend) *store.DB {
	t.Helper()
	return OpenURL(t, b.URL(t))
}

// OpenURL opens, migrates and seeds the database at url.
func OpenURL(t testing.TB, url string) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if _, err := db.Seed(ctx, billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), time.Now()); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return db
}

// Log returns a usage log builder with sensible defaults: one successful
// gpt-4 call at ts rated at the seed's price, in the calendar month of ts.
func Log(userID, eventID string, ts time.Time) billing.UsageLog {
	p := billing.CalendarMonths().At(ts)
	return billing.UsageLog{
		EventID: eventID, UserID: userID, Provider: "openai", ModelUsed: "gpt-4", Endpoint: "/v1/chat/completions",
		Method: "POST", StatusCode: 200, ResponseTime: 0.5, Timestamp: ts, BillingPeriod: p.Key, PeriodStart: p.Start,
	}
}

// Record writes logs through the store, with their periods' ends taken from
// the calendar schedule.
func Record(t testing.TB, db *store.DB, logs ...billing.UsageLog) {
	t.Helper()
	ends := map[string]time.Time{}
	for _, l := range logs {
		ends[l.BillingPeriod] = billing.CalendarMonths().At(l.PeriodStart).End
	}
	if err := db.RecordUsage(context.Background(), logs, ends, time.Now()); err != nil {
		t.Fatalf("record usage: %v", err)
	}
}

// ReservationID returns a reservation id as billing.NewID("rsv_") mints it
// at t, with n in place of its random part.
func ReservationID(t time.Time, n uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], n)
	return "rsv_" + hex.EncodeToString(b[:])
}

// ReleasedReservation journals a held reservation of user for one OpenAI
// call, made at made with the id ReservationID(made, n), releases it a
// second later and returns its id.
func ReleasedReservation(t testing.TB, db *store.DB, user string, made time.Time, n uint64) string {
	t.Helper()
	id := ReservationID(made, n)
	ctx := context.Background()
	r := billing.Reservation{ID: id, UserID: user, Period: billing.CalendarMonths().At(made), Provider: "openai",
		Calls: 1, Status: billing.ReservationHeld, ExpiresAt: made.Add(time.Minute), CreatedAt: made}
	if _, err := db.IngestJournal(ctx, []billing.Reservation{r}, nil, store.AlertContext{}, made); err != nil {
		t.Fatal(err)
	}
	if n, err := db.FinishReservations(ctx, []string{id}, billing.ReservationReleased, made.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("release %s = %d, %v", id, n, err)
	}
	return id
}

// RapidChecks makes the rapid properties of t run n checks instead of
// rapid's default 100, unless the run names a count itself (-rapid.checks
// or RAPID_CHECKS): for properties whose every check writes to a database
// (PostgreSQL's are slower). The flag is set for t's duration only; the
// tests that use it do not run in parallel.
func RapidChecks(t *testing.T, n int) {
	f := flag.Lookup("rapid.checks")
	if f == nil || os.Getenv("RAPID_CHECKS") != "" || f.Value.String() != f.DefValue {
		return
	}
	old := f.Value.String()
	if err := f.Value.Set(strconv.Itoa(n)); err != nil {
		t.Fatalf("set rapid.checks: %v", err)
	}
	t.Cleanup(func() { _ = f.Value.Set(old) })
}
