package main

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for raw SQL
	_ "modernc.org/sqlite"             // the "sqlite" driver, for raw SQL

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// startApp starts the whole service on 127.0.0.1:0 against dbURL, the way
// serve does, and stops it when the test ends.
func startApp(t *testing.T, dbURL string) *app.App {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.Host, cfg.Port = dbURL, "127.0.0.1", 0
	cfg.AdminKey = "verify-admin-key-0123456789"
	a := app.New(cfg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		cancel()
		a.Close()
		t.Fatalf("open app: %v", err)
	}
	if err := a.Listen(); err != nil {
		cancel()
		a.Close()
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("app.Run: %v", err)
		}
		a.Close()
	})
	return a
}

// rawExec runs statements on dbURL outside the store, the way an operator
// (or an accident) would.
func rawExec(t *testing.T, dbURL string, stmts ...string) {
	t.Helper()
	driver, dsn := "pgx", dbURL
	if path, ok := strings.CutPrefix(dbURL, "sqlite:///"); ok {
		driver, dsn = "sqlite", "file:"+path
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(t.Context(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// checkLines returns verify's ✓/✗ lines: everything but the summary.
func checkLines(t *testing.T, stdout string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("verify printed too little:\n%s", stdout)
	}
	return lines[:len(lines)-1]
}

// line returns the check line that starts with prefix.
func line(lines []string, prefix string) string {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestVerifyCLIAgainstServer(t *testing.T) {
	isolate(t)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		dbURL := b.URL(t)
		a := startApp(t, dbURL)
		env := map[string]string{"DATABASE_URL": dbURL}

		r := runCLI(t, t.Context(), env, "verify", "--url", a.BaseURL())
		if r.code != 0 {
			t.Errorf("verify against a healthy server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		lines := checkLines(t, r.stdout)
		for _, l := range lines {
			if !strings.HasPrefix(l, "✓ ") {
				t.Errorf("not a passing check: %s", l)
			}
		}
		for _, want := range []string{"✓ database reachable", "✓ migrations at the latest version", "✓ every table present",
			"✓ default plans present", "✓ default prices present", "✓ GET /readyz", "✓ GET /api/subscription/plans",
			"✓ GET /api/openapi.json", "✓ Swagger UI at /api/docs", "✓ ReDoc at /api/redoc", "✓ tracking middleware counts requests"} {
			if line(lines, want) == "" {
				t.Errorf("no %q line:\n%s", want, r.stdout)
			}
		}
		if last := strings.TrimSpace(r.stdout[strings.LastIndex(strings.TrimRight(r.stdout, "\n"), "\n")+1:]); last != "all checks passed" {
			t.Errorf("summary line = %q", last)
		}

		rawExec(t, dbURL, "DROP TABLE usage_alerts")

		r = runCLI(t, t.Context(), env, "verify", "--url", a.BaseURL())
		if r.code != 1 {
			t.Errorf("verify with a dropped table: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
		}
		lines = checkLines(t, r.stdout)
		if l := line(lines, "✗ every table present"); !strings.Contains(l, "usage_alerts") {
			t.Errorf("the table check does not fail naming usage_alerts:\n%s", r.stdout)
		}
		if l := line(lines, "✗ GET /readyz"); !strings.Contains(l, "usage_alerts") {
			t.Errorf("the /readyz check does not fail naming usage_alerts:\n%s", r.stdout)
		}
		if !strings.HasSuffix(r.stdout, "verification FAILED\n") {
			t.Errorf("no failure summary:\n%s", r.stdout)
		}
	})
}

func TestVerifyCLIUnmigrated(t *testing.T) {
	isolate(t)
	fresh := map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string {
			// An empty file is an empty SQLite database.
			path := filepath.Join(t.TempDir(), "empty.db")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return "sqlite:///" + path
		},
		"postgres": func(t *testing.T) string { return storetest.PostgresURL(t) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dbURL := fresh[name](t)
			r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "verify")
			if r.code != 1 {
				t.Errorf("verify on an unmigrated database: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
			}
			lines := checkLines(t, r.stdout)
			if line(lines, "✓ database reachable") == "" {
				t.Errorf("the database was not reached:\n%s", r.stdout)
			}
			if l := line(lines, "✗ migrations at the latest version"); l == "" {
				t.Errorf("the migrations check did not fail:\n%s", r.stdout)
			}
			if l := line(lines, "✗ every table present"); !strings.Contains(l, "subscription_plans") {
				t.Errorf("the table check did not fail naming the missing tables:\n%s", r.stdout)
			}

			// verify only looks: the database is still unmigrated.
			r = runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "verify")
			if r.code != 1 || line(checkLines(t, r.stdout), "✗ every table present") == "" {
				t.Errorf("verify changed the database:\n%s", r.stdout)
			}
		})
	}
}

func TestVerifyCLIMissingSQLiteFile(t *testing.T) {
	_, dbPath := isolate(t)
	r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": "sqlite:///" + dbPath}, "verify")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "✗ database reachable") {
		t.Errorf("verify on a missing SQLite file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("verify created the SQLite database it was asked to check")
	}
}

func TestVerifyCLIWrongBaseURL(t *testing.T) {
	dbURL, _ := isolate(t)
	if r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "migrate"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	// Under a wrong base path every endpoint is a 404.
	a := startApp(t, dbURL)
	base := a.BaseURL()
	r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "verify", "--url", base+"/no-such-prefix")
	if r.code != 1 || line(checkLines(t, r.stdout), "✗ GET /healthz") == "" {
		t.Errorf("verify against a wrong base URL: exit %d\n%s", r.code, r.stdout)
	}
}
