package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestTimesRoundTrip checks that every kind of stored time comes back as the
// same instant at microsecond precision, in UTC, on both engines.
func TestTimesRoundTrip(t *testing.T) {
	ist := time.FixedZone("IST", 5*3600+1800)
	pst := time.FixedZone("PST", -8*3600)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600)
	}
	times := []time.Time{
		date(2026, time.March, 1, 0, 0, 0, 0),
		date(2026, time.March, 1, 12, 34, 56, 123_456_000),
		date(2026, time.March, 1, 12, 34, 56, 123_456_789), // nanoseconds are dropped
		date(2026, time.March, 1, 23, 59, 59, 999_999_999),
		date(2024, time.February, 29, 6, 0, 0, 1_000),
		date(1970, time.January, 1, 0, 0, 0, 0),
		date(2099, time.December, 31, 23, 59, 59, 999_999_000),
		time.Date(2026, time.March, 1, 3, 0, 0, 500_000, ist), // the previous UTC day
		time.Date(2026, time.December, 31, 20, 0, 0, 7_000, pst),
		time.Date(2026, time.November, 1, 1, 30, 0, 0, ny), // a repeated local hour
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		check := func(what string, got *time.Time, in time.Time) {
			t.Helper()
			want := in.Truncate(time.Microsecond)
			switch {
			case got == nil:
				t.Errorf("%s of %s: nil", what, in)
			case !got.Equal(want) || got.Location() != time.UTC || got.Nanosecond()%1000 != 0:
				t.Errorf("%s of %s: got %s, want %s in UTC", what, in, got, want.UTC())
			}
		}
		for i, tm := range times {
			prefix := fmt.Sprintf("ak_time%d", i)
			createKey(t, db, billing.APIKey{Prefix: prefix, UserID: "u1", Role: billing.RoleUser, CreatedAt: tm}, "h")
			k, _, err := db.KeyByPrefix(ctx, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.TouchKey(ctx, k.ID, tm); err != nil {
				t.Fatal(err)
			}
			if err := db.RevokeKey(ctx, prefix, tm); err != nil {
				t.Fatal(err)
			}
			k, _, err = db.KeyByPrefix(ctx, prefix)
			if err != nil {
				t.Fatal(err)
			}
			check("key created_at", &k.CreatedAt, tm)
			check("key last_used_at", k.LastUsedAt, tm)
			check("key revoked_at", k.RevokedAt, tm)

			a := baseAlert()
			a.ThresholdPercentage = i
			id, _, err := db.CreateAlert(ctx, a, tm)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.MarkAlertRead(ctx, id, tm); err != nil {
				t.Fatal(err)
			}
			al, err := db.GetAlert(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			check("alert created_at", &al.CreatedAt, tm)
			check("alert read_at", al.ReadAt, tm)

			l := storetest.Log(fmt.Sprintf("time-user-%d", i), fmt.Sprintf("time-%d", i), tm)
			record(t, db, l)
			logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: l.UserID, Limit: 1})
			if err != nil || len(logs) != 1 {
				t.Fatalf("logs %+v, %v", logs, err)
			}
			check("log timestamp", &logs[0].Timestamp, tm)
			check("log period_start", &logs[0].PeriodStart, l.PeriodStart)
		}
	})
}
