package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/testlog"

	"github.com/alwrity/alwrity-billing/internal/reload"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// result is what one run of the binary left behind.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line args with the environment env (and nothing
// else of the process environment).
func runCLI(t *testing.T, ctx context.Context, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr testlog.Buffer
	code := run(ctx, args, &stdout, &stderr, func(name string) string { return env[name] })
	return result{code, stdout.String(), stderr.String()}
}

// isolate moves the test into an empty working directory, so that no .env
// of the source tree (or a developer's) is read, and returns the URL of a
// SQLite database there that does not exist yet.
func isolate(t *testing.T) (dbURL, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	dbPath = filepath.Join(dir, "billing.db")
	return "sqlite:///" + dbPath, dbPath
}

func TestCLIHelp(t *testing.T) {
	isolate(t)
	// A broken environment must not stop --help.
	env := map[string]string{"PORT": "abc", "DATABASE_URL": "mysql://x"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "alwrity-billing keys create --user ID"},
		{[]string{"--help"}, "alwrity-billing keys create --user ID"},
		{[]string{"-h"}, "alwrity-billing keys create --user ID"},
		{[]string{"serve", "--help"}, "Usage: alwrity-billing serve [--dev] [--reload]"},
		{[]string{"serve", "-h"}, "-reload"},
		{[]string{"migrate", "--help"}, "Usage: alwrity-billing migrate"},
		{[]string{"verify", "--help"}, "Usage: alwrity-billing verify"},
		{[]string{"verify", "--help"}, "-url"},
		{[]string{"keys", "--help"}, "alwrity-billing keys revoke PREFIX"},
		{[]string{"keys", "create", "--help"}, "Usage: alwrity-billing keys create --user ID | --admin"},
		{[]string{"keys", "list", "--help"}, "Usage: alwrity-billing keys list"},
		{[]string{"keys", "revoke", "--help"}, "Usage: alwrity-billing keys revoke"},
		{[]string{"version", "--help"}, "Usage: alwrity-billing version"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), env, tt.args...)
			if r.code != 0 {
				t.Errorf("exit %d, want 0\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			if out := r.stdout + r.stderr; !strings.Contains(out, tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, out)
			}
		})
	}
	if _, err := os.Stat("alwrity.db"); err == nil {
		t.Error("a --help run created the default database")
	}
}

func TestCLIUsageErrors(t *testing.T) {
	dbURL, dbPath := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"keys"}, "Usage: alwrity-billing keys"},
		{[]string{"keys", "frobnicate"}, `unknown keys command "frobnicate"`},
		{[]string{"keys", "create"}, "keys create needs --user ID"},
		{[]string{"keys", "create", "--user", "  "}, "keys create needs --user ID"},
		{[]string{"keys", "create", "--user", "u1", "--admin"}, "either --user or --admin"},
		{[]string{"keys", "create", "--user", strings.Repeat("u", 129)}, "at most 128"},
		{[]string{"keys", "revoke"}, "exactly one key prefix"},
		{[]string{"keys", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "--port", "eighty"}, "invalid value"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("a usage error wrote to stdout: %q", r.stdout)
			}
		})
	}
	// A usage error is caught before the database is touched.
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("a usage error created the database")
	}
}

func TestCLIVersion(t *testing.T) {
	isolate(t)
	r := runCLI(t, t.Context(), nil, "version")
	if r.code != 0 || !regexp.MustCompile(`^alwrity-billing \S+\n$`).MatchString(r.stdout) {
		t.Errorf("version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCLIInvalidConfig(t *testing.T) {
	isolate(t)
	env := map[string]string{"PORT": "abc", "DATABASE_URL": "mysql://user:hunter2@x/db", "DEBUG": "maybe"}
	stubReload(t, func(context.Context, reload.Config) error {
		t.Error("serve --reload started the reload loop with an invalid configuration")
		return nil
	})
	for _, args := range [][]string{{"serve"}, {}, {"serve", "--reload"}} {
		t.Run(strings.Join(append([]string{"run"}, args...), " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), env, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
			}
			for _, want := range []string{"invalid configuration", `PORT must be a number, got "abc"`,
				"DATABASE_URL must start with sqlite:// or postgres://", `DEBUG must be true or false, got "maybe"`} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not list %q:\n%s", want, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Errorf("stderr shows the database password:\n%s", r.stderr)
			}
		})
	}
	// One-shot commands check what they use: the database URL.
	for _, args := range [][]string{{"migrate"}, {"verify"}, {"keys", "list"}} {
		r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": "mysql://x"}, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "DATABASE_URL must start with sqlite:// or postgres://") {
			t.Errorf("%v with a MySQL URL: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

func TestCLIMigrate(t *testing.T) {
	dbURL, _ := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}

	r := runCLI(t, t.Context(), env, "migrate")
	if r.code != 0 {
		t.Fatalf("first migrate: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Billing and subscription tables created successfully") {
		t.Errorf("first migrate did not log the tables' creation:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "default plans and prices seeded") {
		t.Errorf("first migrate did not seed the default plans and prices:\n%s", r.stderr)
	}

	r = runCLI(t, t.Context(), env, "migrate")
	if r.code != 0 {
		t.Fatalf("second migrate: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "up to date") || strings.Contains(r.stderr, "created successfully") || strings.Contains(r.stderr, "seeded") {
		t.Errorf("second migrate should only say the tables are up to date:\n%s", r.stderr)
	}

	// What migrate leaves behind is a complete installation.
	r = runCLI(t, t.Context(), env, "verify")
	if r.code != 0 {
		t.Errorf("verify after migrate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestCLIMigrateFlagOverridesEnv(t *testing.T) {
	dbURL, dbPath := isolate(t)
	other := filepath.Join(t.TempDir(), "other.db")
	r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, "migrate", "--database-url", "sqlite:///"+other)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("--database-url was not used: %v", err)
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("DATABASE_URL was used although --database-url overrides it")
	}
}

func TestCLIDotEnv(t *testing.T) {
	_, dbPath := isolate(t)
	if err := os.WriteFile(".env", []byte("DATABASE_URL=sqlite:///"+dbPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, t.Context(), nil, "migrate")
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(dbPath); err != nil {
		t.Errorf("DATABASE_URL from .env was not used: %v", err)
	}

	// The environment wins over .env.
	envDB := filepath.Join(t.TempDir(), "env.db")
	r = runCLI(t, t.Context(), map[string]string{"DATABASE_URL": "sqlite:///" + envDB}, "migrate")
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(envDB); err != nil {
		t.Errorf("the environment's DATABASE_URL did not win over .env: %v", err)
	}
}

var keyLine = regexp.MustCompile(`^alw_[a-z2-7]{40}\n$`)

func TestCLIKeys(t *testing.T) {
	dbURL, _ := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	ctx := t.Context()

	r := runCLI(t, ctx, env, "keys", "create", "--user", "u1", "--name", "laptop")
	if r.code != 0 {
		t.Fatalf("keys create: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if !keyLine.MatchString(r.stdout) {
		t.Fatalf("keys create printed %q on stdout, want exactly one line with the key", r.stdout)
	}
	key := strings.TrimSpace(r.stdout)
	prefix := key[:12]
	if strings.Contains(r.stderr, key) {
		t.Errorf("keys create wrote the key to stderr too:\n%s", r.stderr)
	}

	admin := runCLI(t, ctx, env, "keys", "create", "--admin")
	if admin.code != 0 || !keyLine.MatchString(admin.stdout) {
		t.Fatalf("keys create --admin: exit %d, stdout %q, stderr %q", admin.code, admin.stdout, admin.stderr)
	}
	adminKey := strings.TrimSpace(admin.stdout)

	list := runCLI(t, ctx, env, "keys", "list")
	if list.code != 0 {
		t.Fatalf("keys list: exit %d\nstderr: %s", list.code, list.stderr)
	}
	if !regexp.MustCompile(`(?m)^` + prefix + `\s+user\s+u1\s+laptop\s.*\bactive$`).MatchString(list.stdout) {
		t.Errorf("keys list does not show %s as an active key of u1:\n%s", prefix, list.stdout)
	}
	if !regexp.MustCompile(`(?m)^` + adminKey[:12] + `\s+admin\s`).MatchString(list.stdout) {
		t.Errorf("keys list does not show the admin key:\n%s", list.stdout)
	}
	for _, secret := range []string{key, adminKey, key[12:], adminKey[12:]} {
		if strings.Contains(list.stdout+list.stderr, secret) {
			t.Errorf("keys list shows a secret:\n%s", list.stdout)
		}
	}

	mine := runCLI(t, ctx, env, "keys", "list", "--user", "u1")
	if !strings.Contains(mine.stdout, prefix) || strings.Contains(mine.stdout, adminKey[:12]) {
		t.Errorf("keys list --user u1 should show only u1's key:\n%s", mine.stdout)
	}

	r = runCLI(t, ctx, env, "keys", "revoke", prefix)
	if r.code != 0 {
		t.Fatalf("keys revoke: exit %d\nstderr: %s", r.code, r.stderr)
	}
	list = runCLI(t, ctx, env, "keys", "list")
	if !regexp.MustCompile(`(?m)^` + prefix + `\s.*\brevoked \S+$`).MatchString(list.stdout) {
		t.Errorf("keys list does not show %s as revoked:\n%s", prefix, list.stdout)
	}
	if !regexp.MustCompile(`(?m)^` + adminKey[:12] + `\s.*\bactive$`).MatchString(list.stdout) {
		t.Errorf("revoking one key touched another:\n%s", list.stdout)
	}

	// The whole key works in place of its prefix.
	r = runCLI(t, ctx, env, "keys", "revoke", adminKey)
	if r.code != 0 {
		t.Fatalf("keys revoke with the whole key: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if list = runCLI(t, ctx, env, "keys", "list"); strings.Contains(list.stdout, "active") {
		t.Errorf("a key is still active:\n%s", list.stdout)
	}

	r = runCLI(t, ctx, env, "keys", "revoke", "alw_zzzzzzzz")
	if r.code != 1 || !strings.Contains(r.stderr, "alw_zzzzzzzz") {
		t.Errorf("revoking an unknown key: exit %d, stderr %q; want 1 naming the prefix", r.code, r.stderr)
	}
}

func TestCLIKeysPostgres(t *testing.T) {
	isolate(t)
	env := map[string]string{"DATABASE_URL": storetest.PostgresURL(t)}
	r := runCLI(t, t.Context(), env, "keys", "create", "--user", "u1")
	if r.code != 0 || !keyLine.MatchString(r.stdout) {
		t.Fatalf("keys create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	prefix := r.stdout[:12]
	if r := runCLI(t, t.Context(), env, "keys", "revoke", prefix); r.code != 0 {
		t.Fatalf("keys revoke: exit %d\n%s", r.code, r.stderr)
	}
	list := runCLI(t, t.Context(), env, "keys", "list", "--user", "u1")
	if !regexp.MustCompile(`(?m)^` + prefix + `\s.*\brevoked \S+$`).MatchString(list.stdout) {
		t.Errorf("keys list does not show %s as revoked:\n%s", prefix, list.stdout)
	}
}
