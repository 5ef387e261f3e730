package store_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func TestOpenSQLite(t *testing.T) {
	ctx := context.Background()
	abs := t.TempDir()
	tests := []struct {
		name string
		url  string
		file string // where the database file must appear, relative to the working directory
	}{
		{"relative", "sqlite:///./billing.db", "billing.db"},
		{"relative in new directories", "sqlite:///./data/sub/billing.db", filepath.Join("data", "sub", "billing.db")},
		{"relative without dot", "sqlite:///plain.db", "plain.db"},
		{"absolute", "sqlite:///" + filepath.Join(abs, "abs.db"), filepath.Join(abs, "abs.db")},
		{"absolute in new directory", "sqlite:///" + filepath.Join(abs, "new", "abs.db"), filepath.Join(abs, "new", "abs.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			db, err := store.Open(ctx, tt.url, nil)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer db.Close()
			if db.Dialect() != store.SQLite || db.Source() != tt.url {
				t.Fatalf("dialect %q source %q", db.Dialect(), db.Source())
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if _, err := os.Stat(tt.file); err != nil {
				t.Fatalf("database file: %v", err)
			}
		})
	}
}

func TestOpenPostgres(t *testing.T) {
	url := storetest.PostgresURL(t)
	db := openBare(t, url)
	if db.Dialect() != store.Postgres {
		t.Fatalf("dialect %q", db.Dialect())
	}
	if db.Source() != url {
		t.Fatalf("source %q, want %q (no password to hide)", db.Source(), url)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	const secret = "s3cr3t"
	tests := []struct{ name, url string }{
		{"unknown scheme", "mysql://u:" + secret + "@localhost/db"},
		{"no scheme", "alwrity.db"},
		{"sqlite without a file", "sqlite:///"},
		{"invalid postgres URL", "postgres://u:" + secret + "/x@localhost/db"},
		// Nothing listens on port 1, so connecting fails at once.
		{"unreachable postgres", "postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := store.Open(context.Background(), tt.url, nil)
			if err == nil {
				db.Close()
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error reveals the password: %v", err)
			}
		})
	}
}
