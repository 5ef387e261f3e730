package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// tableCount counts the tables in the database (the test's schema on
// PostgreSQL).
func tableCount(t *testing.T, raw *sql.DB, b storetest.Backend) int {
	t.Helper()
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'`
	if b.Name == "postgres" {
		q = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	var n int
	if err := raw.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := openBare(t, url)
		raw := rawSQL(t, url)

		// Before the first migration: everything missing, version 0, and
		// looking changed nothing (verify only looks).
		missing, err := db.MissingTables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(missing, store.Tables) {
			t.Fatalf("missing before migrate = %v, want every table", missing)
		}
		cur, latest, err := db.SchemaVersion(ctx)
		if err != nil || cur != 0 || latest != latestVersion {
			t.Fatalf("SchemaVersion before migrate = %d, %d, %v; want 0, %d", cur, latest, err, latestVersion)
		}
		if n := tableCount(t, raw, b); n != 0 {
			t.Fatalf("reading the schema version created %d tables", n)
		}

		res, err := db.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := store.MigrateResult{Applied: migrationFiles(t, b.Name), Version: latestVersion, Created: true}
		if !reflect.DeepEqual(res, want) {
			t.Fatalf("first migrate = %+v, want %+v", res, want)
		}
		if b.Name == "sqlite" {
			// Migrations sort in files; the writer's own work keeps its
			// temporary storage in memory again afterwards.
			if n, err := db.WriterTempStore(ctx); err != nil || n != 2 {
				t.Errorf("the writer's temp_store after migrating = %d (%v), want 2 (memory)", n, err)
			}
		}

		// A second run, on the same handle and from a second process,
		// applies nothing.
		second := openBare(t, url)
		for i, d := range []*store.DB{db, second} {
			res, err := d.Migrate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created || len(res.Applied) != 0 || res.Version != latestVersion {
				t.Fatalf("migrate run %d = %+v, want nothing applied at version %d", i+2, res, latestVersion)
			}
		}

		cur, latest, err = db.SchemaVersion(ctx)
		if err != nil || cur != latest || cur != latestVersion {
			t.Fatalf("SchemaVersion = %d, %d, %v; want %d, %d", cur, latest, err, latestVersion, latestVersion)
		}
		if missing, err := db.MissingTables(ctx); err != nil || len(missing) != 0 {
			t.Fatalf("missing after migrate = %v, %v", missing, err)
		}

		mustExec(t, raw, `DROP TABLE billing_history`)
		if missing, err := db.MissingTables(ctx); err != nil || !reflect.DeepEqual(missing, []string{"billing_history"}) {
			t.Fatalf("missing after drop = %v, %v; want [billing_history]", missing, err)
		}
		mustExec(t, raw, `DROP TABLE model_aliases`)
		if missing, err := db.MissingTables(ctx); err != nil || !reflect.DeepEqual(missing, []string{"billing_history", "model_aliases"}) {
			t.Fatalf("missing after second drop = %v, %v", missing, err)
		}
	})
}

// TestMigrateRefusesNewerSchema: a database migrated by a newer binary
// (its goose version above the newest embedded migration) is refused,
// not silently run on, and is left as it is.
func TestMigrateRefusesNewerSchema(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		if _, err := openBare(t, url).Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		raw := rawSQL(t, url)
		mustExec(t, raw, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, latestVersion+1)

		_, err := openBare(t, url).Migrate(ctx)
		want := fmt.Sprintf("database schema version %d is newer than this binary's newest migration %d: run a newer alwrity-billing",
			latestVersion+1, latestVersion)
		if err == nil || err.Error() != want {
			t.Fatalf("Migrate on a newer schema = %v, want %q", err, want)
		}
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM goose_db_version WHERE version_id = $1`, latestVersion+1).Scan(&n); err != nil || n != 1 {
			t.Fatalf("newer version rows after the refusal = %d, %v; want 1", n, err)
		}
	})
}

// TestMigrateNamesEveryTable checks that Tables and the migrations agree:
// each table the migrations create is listed, so verify checks it.
func TestMigrateNamesEveryTable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		storetest.OpenURL(t, url)
		raw := rawSQL(t, url)
		q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
		if b.Name == "postgres" {
			q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
		}
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		listed := map[string]bool{"goose_db_version": true}
		for _, n := range store.Tables {
			listed[n] = true
		}
		var got []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			if !listed[n] {
				got = append(got, n)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			t.Fatalf("tables missing from store.Tables: %s", strings.Join(got, ", "))
		}
	})
}

// TestMigrateConcurrentPostgres checks that replicas migrating one
// PostgreSQL database at once all succeed and exactly one creates the
// tables. (SQLite is embedded: one process owns its file.)
func TestMigrateConcurrentPostgres(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	const replicas = 4
	var dbs []*store.DB
	for range replicas {
		dbs = append(dbs, openBare(t, url))
	}
	type result struct {
		res store.MigrateResult
		err error
	}
	results := make(chan result, replicas)
	for _, db := range dbs {
		go func() {
			res, err := db.Migrate(ctx)
			results <- result{res, err}
		}()
	}
	var created, applied int
	for range replicas {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.res.Version != latestVersion {
			t.Fatalf("version %d after migrate", r.res.Version)
		}
		if r.res.Created {
			created++
		}
		applied += len(r.res.Applied)
	}
	if created != 1 || applied != latestVersion {
		t.Fatalf("%d replicas created the tables and %d migrations were applied, want 1 and %d", created, applied, latestVersion)
	}
}

// latestVersion is the number of the newest migration; both dialects have
// the same migrations.
const latestVersion = 14

// migrationFiles lists a dialect's migration files in order, and checks
// that the newest is latestVersion.
func migrationFiles(t *testing.T, dialect string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("migrations", dialect))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != latestVersion {
		t.Fatalf("%s has %d migrations, want %d", dialect, len(names), latestVersion)
	}
	return names
}
