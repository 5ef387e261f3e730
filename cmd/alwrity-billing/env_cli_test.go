package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/reload"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestCLIFlagsOverrideBadEnv: a flag rescues a bad value of the setting it
// overrides, and commands other than serve stop only for the settings they
// use (the database's), wherever the bad value comes from.
func TestCLIFlagsOverrideBadEnv(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		isolate(t)
		url := b.URL(t)
		dotenv := "PORT=abc\nDEBUG=maybe\nALWRITY_WEBHOOK_TIMEOUT=soon\nDATABASE_URL=mysql://x\n"
		if err := os.WriteFile(".env", []byte(dotenv), 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"HOST": "nowhere.invalid"}
		for _, args := range [][]string{{"migrate"}, {"verify"}, {"keys", "list"}, {"keys", "create", "--user", "u1"},
			{"plans", "list"}, {"billing", "invoices"}, {"pricing", "list"}} {
			r := runCLI(t, t.Context(), env, append(args, "--database-url", url)...)
			if r.code != 0 {
				t.Errorf("%v with a bad PORT, DEBUG and HOST: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
		}
		// Without --database-url the bad DATABASE_URL is reported, alone.
		r := runCLI(t, t.Context(), env, "keys", "list")
		if r.code != 1 || !strings.Contains(r.stderr, "DATABASE_URL must start with") || strings.Contains(r.stderr, "PORT") {
			t.Errorf("keys list with a bad DATABASE_URL: exit %d, stderr %s; want only DATABASE_URL named", r.code, r.stderr)
		}

		s := startServe(t, map[string]string{"ALWRITY_ADMIN_KEY": "admin-key-0123456789abcdef", "ALWRITY_WEBHOOK_TIMEOUT": "1s"},
			"--database-url", url, "--host", "127.0.0.1", "--port", "0", "--debug=false")
		if code := s.stop(); code != 0 {
			t.Fatalf("serve with flags over a bad PORT and DEBUG exited with %d\nstderr: %s", code, s.stderr)
		}
	})
}

// TestCLIDatabaseURLFile: DATABASE_URL can be read from DATABASE_URL_FILE.
func TestCLIDatabaseURLFile(t *testing.T) {
	_, dbPath := isolate(t)
	file := filepath.Join(t.TempDir(), "database-url")
	if err := os.WriteFile(file, []byte("sqlite:///"+dbPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL_FILE": file}, "migrate"); r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("the database named in DATABASE_URL_FILE was not used: %v", err)
	}
}

// TestCLIGroupHelpOnStdout: a command group's --help goes to stdout with
// exit 0, like the binary's own --help.
func TestCLIGroupHelpOnStdout(t *testing.T) {
	isolate(t)
	for _, group := range []string{"keys", "plans", "subscriptions", "billing", "pricing"} {
		for _, h := range []string{"--help", "-h"} {
			r := runCLI(t, t.Context(), map[string]string{"PORT": "abc"}, group, h)
			if r.code != 0 || !strings.Contains(r.stdout, "Usage: alwrity-billing "+group) || r.stderr != "" {
				t.Errorf("%s %s: exit %d, stdout %q, stderr %q; want the usage on stdout", group, h, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// TestCLIKeysFlagsAfterArguments: keys takes flags after its arguments, as
// plans and billing do.
func TestCLIKeysFlagsAfterArguments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		isolate(t)
		url := b.URL(t)
		env := map[string]string{"DATABASE_URL": "mysql://x"}
		r := runCLI(t, t.Context(), env, "keys", "create", "--user", "u1", "--database-url", url)
		if r.code != 0 {
			t.Fatalf("keys create: exit %d\n%s", r.code, r.stderr)
		}
		prefix := r.stdout[:12]
		if r := runCLI(t, t.Context(), env, "keys", "revoke", prefix, "--database-url", url); r.code != 0 {
			t.Fatalf("keys revoke PREFIX --database-url: exit %d\n%s", r.code, r.stderr)
		}
		if r := runCLI(t, t.Context(), env, "keys", "list", "--database-url", url); !strings.Contains(r.stdout, "revoked") {
			t.Errorf("keys list after revoke: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := runCLI(t, t.Context(), env, "keys", "list", "extra", "--database-url", url); r.code != 2 || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
			t.Errorf("keys list extra: exit %d, stderr %s; want a usage error", r.code, r.stderr)
		}
	})
}

// TestCLIVerifyBadURL: a --url that is no http(s) base URL is a usage
// error, checked before anything else.
func TestCLIVerifyBadURL(t *testing.T) {
	dbURL, dbPath := isolate(t)
	for _, u := range []string{"notaurl", "localhost:8000", "ftp://example.com", "http://"} {
		r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "verify", "--url", u)
		if r.code != 2 || !strings.Contains(r.stderr, fmt.Sprintf("--url must be a server's http:// or https:// base URL, such as http://localhost:8000, got %q", u)) || r.stdout != "" {
			t.Errorf("verify --url %s: exit %d, stdout %q, stderr %q; want a usage error", u, r.code, r.stdout, r.stderr)
		}
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("verify with a bad --url touched the database")
	}
}

// TestCLIServeReloadOutsideSourceTree: serve --reload away from the source
// tree stops at once instead of waiting for a build that cannot succeed.
func TestCLIServeReloadOutsideSourceTree(t *testing.T) {
	dbURL, _ := isolate(t)
	stubReload(t, func(context.Context, reload.Config) error {
		t.Error("the reload loop started outside the source tree")
		return nil
	})
	r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "serve", "--reload")
	if r.code != 1 || !strings.Contains(r.stderr, "run it at the root of the alwrity-billing source tree") {
		t.Errorf("serve --reload outside the source tree: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestCLIPurgeReservationsEnvRetention: a retention from the environment
// that is too short, or no duration, is reported under its variable, not
// as a flag that was never given.
func TestCLIPurgeReservationsEnvRetention(t *testing.T) {
	dbURL, dbPath := isolate(t)
	for v, want := range map[string]string{
		"10h":  "ALWRITY_RESERVATION_RETENTION must be at least 840h0m0s (35 days: resent settles must find their reservation), got 10h0m0s",
		"soon": `ALWRITY_RESERVATION_RETENTION must be a duration such as 30s or a number of seconds, got "soon"`,
	} {
		r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL, "ALWRITY_RESERVATION_RETENTION": v}, "billing", "purge-reservations")
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "--older-than must") {
			t.Errorf("ALWRITY_RESERVATION_RETENTION=%s: exit %d, stderr %s; want %q", v, r.code, r.stderr, want)
		}
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("a refused purge opened the database")
	}
}

// TestCLINewerSchema: migrate and serve refuse a database migrated by a
// newer binary, and verify says so instead of advising migrate.
func TestCLINewerSchema(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		isolate(t)
		url := b.URL(t)
		env := map[string]string{"DATABASE_URL": url, "ALWRITY_ADMIN_KEY": "admin-key-0123456789abcdef"}
		if r := runCLI(t, t.Context(), env, "migrate"); r.code != 0 {
			t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
		}
		rawExec(t, url, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (1000, true)")
		const want = "database schema version 1000 is newer than this binary's newest migration"
		// A serve that starts anyway is stopped after a while, and fails.
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		for _, args := range [][]string{{"migrate"}, {"serve", "--host", "127.0.0.1", "--port", "0"}, {"keys", "list"}} {
			if r := runCLI(t, ctx, env, args...); r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("%v on a newer schema: exit %d, stderr %s; want 1 and %q", args, r.code, r.stderr, want)
			}
		}
		r := runCLI(t, t.Context(), env, "verify")
		if r.code != 1 || !strings.Contains(r.stdout, "run a newer alwrity-billing") || strings.Contains(r.stdout, "alwrity-billing migrate") {
			t.Errorf("verify on a newer schema: exit %d\n%s", r.code, r.stdout)
		}
	})
}
