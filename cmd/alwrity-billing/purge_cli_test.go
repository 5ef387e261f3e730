package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestCLIPurgeReservations: billing purge-reservations deletes the
// finished reservations older than the retention (35 days, or
// --older-than, or ALWRITY_RESERVATION_RETENTION) and refuses a shorter
// one.
func TestCLIPurgeReservations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		isolate(t)
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		ctx := context.Background()
		day := 24 * time.Hour
		now := time.Now()
		ids := map[time.Duration]string{}
		for i, age := range []time.Duration{100 * day, 50 * day, 40 * day, 30 * day} {
			ids[age] = storetest.ReleasedReservation(t, db, "cli-user", now.Add(-age), uint64(i))
		}
		exists := func(age time.Duration) bool {
			_, err := db.GetReservation(ctx, ids[age])
			if err != nil && billing.ErrorCode(err) != billing.CodeNotFound {
				t.Fatal(err)
			}
			return err == nil
		}
		env := map[string]string{"DATABASE_URL": url}

		r := runCLI(t, ctx, env, "billing", "purge-reservations", "--older-than", "240h")
		if r.code != 2 || !strings.Contains(r.stderr, "--older-than must be at least 840h") {
			t.Fatalf("--older-than 240h: exit %d, stderr %s; want a usage error", r.code, r.stderr)
		}
		r = runCLI(t, ctx, env, "billing", "purge-reservations", "--older-than", "1800h") // 75 days
		if r.code != 0 || !strings.Contains(r.stdout, "purged 1 reservations") {
			t.Fatalf("--older-than 1800h: exit %d, stdout %s, stderr %s; want 1 purged", r.code, r.stdout, r.stderr)
		}
		if exists(100*day) || !exists(50*day) {
			t.Fatalf("after --older-than 75 days: 100 days old exists %v, 50 days old %v", exists(100*day), exists(50*day))
		}
		env["ALWRITY_RESERVATION_RETENTION"] = "1080h" // 45 days
		if r = runCLI(t, ctx, env, "billing", "purge-reservations"); r.code != 0 || !strings.Contains(r.stdout, "purged 1 reservations") {
			t.Fatalf("with ALWRITY_RESERVATION_RETENTION=1080h: exit %d, stdout %s, stderr %s; want 1 purged", r.code, r.stdout, r.stderr)
		}
		delete(env, "ALWRITY_RESERVATION_RETENTION")
		if r = runCLI(t, ctx, env, "billing", "purge-reservations"); r.code != 0 || !strings.Contains(r.stdout, "purged 1 reservations") {
			t.Fatalf("default: exit %d, stdout %s, stderr %s; want 1 purged", r.code, r.stdout, r.stderr)
		}
		if exists(40*day) || !exists(30*day) {
			t.Fatalf("after the default purge: 40 days old exists %v, 30 days old %v; want only the 30 days old", exists(40*day), exists(30*day))
		}
		if n, err := db.HeldReservationsMismatch(ctx); err != nil || n != 0 {
			t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
		}
	})
}

func TestCLIPurgeReservationsHelp(t *testing.T) {
	isolate(t)
	env := map[string]string{"DATABASE_URL": "mysql://x"}
	for args, want := range map[string]string{
		"help":                                "billing purge-reservations",
		"billing -h":                          "billing purge-reservations [--older-than DURATION]",
		"billing purge-reservations --help":   "-older-than DURATION",
		"billing purge-reservations extra -h": "Held reservations are never deleted",
	} {
		r := runCLI(t, t.Context(), env, strings.Fields(args)...)
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("%s: exit %d, output does not contain %q:\n%s%s", args, r.code, want, r.stdout, r.stderr)
		}
	}
}
