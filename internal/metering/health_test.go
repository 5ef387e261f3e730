package metering_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func TestSystemHealthAlertOncePerProviderAndHour(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		db := storetest.Open(t, b)
		ctx := context.Background()
		now := time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC)
		_, prefix, hash := auth.NewKey()
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: "u1", Role: billing.RoleUser, CreatedAt: now}, hash); err != nil {
			t.Fatal(err)
		}
		m := metering.New(db, func() time.Time { return now }, nil)
		batch := func(n, failed int, tag string) []billing.UsageEvent {
			var evs []billing.UsageEvent
			for i := range n {
				status := 200
				if i < failed {
					status = 503
				}
				evs = append(evs, billing.UsageEvent{EventID: fmt.Sprintf("%s-%d", tag, i), UserID: "u1", Provider: "gemini",
					Model: "gemini-2.5-flash", StatusCode: status, Timestamp: now.Add(-time.Minute)})
			}
			return evs
		}
		count := func() int64 {
			_, total, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: "", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			return total
		}
		// 10 calls, all failing: too few calls for a rate to mean anything.
		if _, err := m.Record(ctx, batch(10, 10, "a")); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d alerts after 10 calls, want 0", n)
		}
		// 30 calls, 10 failed of 40 in the window (25 % ≥ 20 %): one alert.
		if _, err := m.Record(ctx, batch(30, 0, "b")); err != nil {
			t.Fatal(err)
		}
		// A provider is counted at most every 10 s.
		now = now.Add(10 * time.Second)
		if _, err := m.Record(ctx, batch(5, 5, "c")); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d alerts, want 1 system_health alert", n)
		}
		now = now.Add(10 * time.Second)
		if _, err := m.Record(ctx, batch(5, 5, "d")); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d alerts after more failures in the same hour, want 1", n)
		}
	})
}

// TestSystemHealthAlertFromSettles: calls recorded by settling their
// reservations (the gateway's path, and POST …/settle) raise the alert as
// recorded batches do; they used to be left out of the check.
func TestSystemHealthAlertFromSettles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.keyUser("u1")
		// A failing provider is counted at most every 10 s: the calls come
		// a second apart.
		for i := range 30 {
			f.clk.Advance(time.Second)
			r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "u1", Provider: "gemini", Model: "gemini-2.5-flash", Tokens: 10})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{EventID: fmt.Sprintf("s-%d", i), StatusCode: 503,
				Timestamp: baseTime.Add(-time.Minute)}); err != nil {
				t.Fatal(err)
			}
		}
		var health int
		for _, a := range f.alerts("", "") {
			if a.Type == billing.AlertSystemHealth && a.Provider == "gemini" {
				health++
			}
		}
		if health != 1 {
			t.Fatalf("%d system_health alerts for gemini after 30 failed settles; want 1", health)
		}
	})
}

// TestSystemHealthIgnoresCallersMistakes: a user whose requests the
// provider refuses as malformed (400, 404, 413, 422) fails only their own
// calls, and raises no system_health alert however many there are; rate
// limits (429) and refused keys (401) are the provider's health and do.
func TestSystemHealthIgnoresCallersMistakes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		db := storetest.Open(t, b)
		ctx := context.Background()
		now := time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC)
		_, prefix, hash := auth.NewKey()
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: "u1", Role: billing.RoleUser, CreatedAt: now}, hash); err != nil {
			t.Fatal(err)
		}
		m := metering.New(db, func() time.Time { return now }, nil)
		record := func(provider, tag string, statuses ...int) {
			t.Helper()
			var evs []billing.UsageEvent
			for i, s := range statuses {
				evs = append(evs, billing.UsageEvent{EventID: fmt.Sprintf("%s-%d", tag, i), UserID: "u1", Provider: provider,
					Model: "gpt-4o", StatusCode: s, Timestamp: now.Add(-time.Minute)})
			}
			if _, err := m.Record(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
		healthAlerts := func() map[string]bool {
			t.Helper()
			alerts, _, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: "", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]bool{}
			for _, a := range alerts {
				if a.Type == billing.AlertSystemHealth {
					out[a.Provider] = true
				}
			}
			return out
		}
		var mistakes []int
		for range 10 {
			mistakes = append(mistakes, 400, 404, 413, 422)
		}
		record("openai", "bad", mistakes...) // 40 calls, all the caller's fault
		if got := healthAlerts(); len(got) != 0 {
			t.Fatalf("system_health alerts after 40 malformed requests: %v, want none", got)
		}
		calls, failed, err := db.ProviderErrors(ctx, "openai", now.Add(-5*time.Minute))
		if err != nil || calls != 40 || failed != 0 {
			t.Fatalf("openai's recent calls %d, provider faults %d (%v); want 40 and 0", calls, failed, err)
		}
		now = now.Add(10 * time.Second)
		var limited []int
		for i := range 30 {
			limited = append(limited, []int{429, 401, 200}[i%3])
		}
		record("anthropic", "limited", limited...) // 20 of 30 the provider's fault
		if got := healthAlerts(); !got["anthropic"] || got["openai"] {
			t.Errorf("system_health alerts %v, want anthropic's alone", got)
		}
	})
}
