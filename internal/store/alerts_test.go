package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var alertNow = date(2026, time.February, 14, 9, 30, 0, 250_000_000)

func baseAlert() billing.Alert {
	return billing.Alert{UserID: "u1", Type: billing.AlertUsageWarning, LimitKey: "total_calls", ThresholdPercentage: 80,
		Title: "80% of calls used", Message: "You have used 800 of 1,000 calls.", Severity: "warning", BillingPeriod: "2026-02"}
}

func TestCreateAlertDedupes(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*billing.Alert)
		created bool
	}{
		{"same identity", func(*billing.Alert) {}, false},
		{"same identity, other text", func(a *billing.Alert) {
			a.Title, a.Message, a.Severity, a.Provider = "other", "other message", "error", "openai"
		}, false},
		{"other period", func(a *billing.Alert) { a.BillingPeriod = "2026-03" }, true},
		{"other threshold", func(a *billing.Alert) { a.ThresholdPercentage = 100 }, true},
		{"other limit", func(a *billing.Alert) { a.LimitKey = "openai_calls"; a.Provider = "openai" }, true},
		{"other type", func(a *billing.Alert) { a.Type = billing.AlertLimitReached }, true},
		{"other user", func(a *billing.Alert) { a.UserID = "u2" }, true},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		firstID, created, err := db.CreateAlert(ctx, baseAlert(), alertNow)
		if err != nil || !created || firstID == 0 {
			t.Fatalf("first alert: %d, %v, %v", firstID, created, err)
		}
		ids := map[int64]bool{firstID: true}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				a := baseAlert()
				tt.edit(&a)
				for attempt := range 2 {
					id, created, err := db.CreateAlert(ctx, a, alertNow.Add(time.Minute))
					if err != nil {
						t.Fatal(err)
					}
					// A repeat of anything is never new.
					if want := tt.created && attempt == 0; created != want {
						t.Fatalf("attempt %d: created = %v, want %v", attempt, created, want)
					}
					if created {
						if id == 0 || ids[id] {
							t.Fatalf("new alert got id %d", id)
						}
						ids[id] = true
					}
				}
			})
		}
		// The first alert kept its own text.
		got, err := db.GetAlert(ctx, firstID)
		if err != nil {
			t.Fatal(err)
		}
		want := baseAlert()
		want.ID, want.CreatedAt = firstID, alertNow
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GetAlert:\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestListAlerts(t *testing.T) {
	type fixture struct {
		user, period string
		read         bool
	}
	// Created one minute apart in this order; titles name them.
	fixtures := []fixture{
		{"u1", "2026-01", true},  // a0
		{"u1", "2026-01", false}, // a1
		{"u2", "2026-02", false}, // a2
		{"u1", "2026-02", false}, // a3
		{"u1", "2026-02", true},  // a4
		{"u1", "2026-02", false}, // a5
		{"u2", "2026-02", true},  // a6
		{"u1", "2026-03", false}, // a7
	}
	tests := []struct {
		name          string
		f             billing.AlertFilter
		want          []string
		total, unread int64
	}{
		{"all of a user", billing.AlertFilter{UserID: "u1", Limit: 50}, []string{"a7", "a5", "a4", "a3", "a1", "a0"}, 6, 4},
		{"unread only", billing.AlertFilter{UserID: "u1", UnreadOnly: true, Limit: 50}, []string{"a7", "a5", "a3", "a1"}, 4, 4},
		{"period", billing.AlertFilter{UserID: "u1", BillingPeriod: "2026-02", Limit: 50}, []string{"a5", "a4", "a3"}, 3, 2},
		{"period unread", billing.AlertFilter{UserID: "u1", BillingPeriod: "2026-02", UnreadOnly: true, Limit: 50}, []string{"a5", "a3"}, 2, 2},
		{"all read in period", billing.AlertFilter{UserID: "u1", BillingPeriod: "2026-01", UnreadOnly: true, Limit: 50}, []string{"a1"}, 1, 1},
		{"limit counts everything", billing.AlertFilter{UserID: "u1", Limit: 2}, []string{"a7", "a5"}, 6, 4},
		{"limit unread", billing.AlertFilter{UserID: "u1", UnreadOnly: true, Limit: 1}, []string{"a7"}, 4, 4},
		{"other user", billing.AlertFilter{UserID: "u2", Limit: 50}, []string{"a6", "a2"}, 2, 1},
		{"period without alerts", billing.AlertFilter{UserID: "u1", BillingPeriod: "2025-12", Limit: 50}, []string{}, 0, 0},
		{"unknown user", billing.AlertFilter{UserID: "nobody", Limit: 50}, []string{}, 0, 0},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		for i, f := range fixtures {
			a := baseAlert()
			a.UserID, a.BillingPeriod, a.Title = f.user, f.period, fmt.Sprintf("a%d", i)
			a.ThresholdPercentage = i // distinct identities
			id, created, err := db.CreateAlert(ctx, a, alertNow.Add(time.Duration(i)*time.Minute))
			if err != nil || !created {
				t.Fatalf("create %s: %v %v", a.Title, created, err)
			}
			if f.read {
				if err := db.MarkAlertRead(ctx, id, alertNow.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				alerts, total, unread, err := db.ListAlerts(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				if alerts == nil {
					t.Fatal("nil slice, want empty")
				}
				titles := []string{}
				for _, a := range alerts {
					titles = append(titles, a.Title)
					if a.UserID != tt.f.UserID || (tt.f.UnreadOnly && a.IsRead) || a.IsRead != (a.ReadAt != nil) {
						t.Errorf("alert %+v does not match %+v", a, tt.f)
					}
				}
				if !slices.Equal(titles, tt.want) || total != tt.total || unread != tt.unread {
					t.Fatalf("ListAlerts(%+v) = %v, total %d, unread %d; want %v, %d, %d",
						tt.f, titles, total, unread, tt.want, tt.total, tt.unread)
				}
			})
		}
	})
}

func TestMarkAlertRead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		a := baseAlert()
		a.Provider = "openai"
		id, _, err := db.CreateAlert(ctx, a, alertNow)
		if err != nil {
			t.Fatal(err)
		}
		other, _, err := db.CreateAlert(ctx, billing.Alert{UserID: "u1", Type: billing.AlertLimitReached, Title: "t",
			Message: "m", Severity: "error", BillingPeriod: "2026-02"}, alertNow)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.GetAlert(ctx, id)
		if err != nil || got.IsRead || got.ReadAt != nil || got.Provider != "openai" || got.IsSent || got.SentAt != nil {
			t.Fatalf("new alert %+v, %v", got, err)
		}

		firstRead := alertNow.Add(90 * time.Minute)
		for _, at := range []time.Time{firstRead, firstRead.Add(time.Hour), firstRead.Add(-time.Hour)} {
			if err := db.MarkAlertRead(ctx, id, at); err != nil {
				t.Fatal(err)
			}
			got, err := db.GetAlert(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !got.IsRead || got.ReadAt == nil || !got.ReadAt.Equal(firstRead) {
				t.Fatalf("after marking read at %s: read %v at %v, want %s", at, got.IsRead, got.ReadAt, firstRead)
			}
		}
		// Only that alert was marked.
		if o, err := db.GetAlert(ctx, other); err != nil || o.IsRead || o.ReadAt != nil {
			t.Fatalf("other alert %+v, %v", o, err)
		}
		if _, _, unread, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: "u1", Limit: 10}); err != nil || unread != 1 {
			t.Fatalf("unread = %d, %v", unread, err)
		}

		for _, missing := range []int64{0, -1, other + 1000} {
			wantCode(t, db.MarkAlertRead(ctx, missing, alertNow), billing.CodeNotFound)
			_, err := db.GetAlert(ctx, missing)
			wantCode(t, err, billing.CodeNotFound)
		}
	})
}

// TestCreateAlertConcurrent checks that an alert raised by many requests at
// once is stored once: the dedupe is a unique key, not a check-then-insert.
func TestCreateAlertConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		const n = 12
		type result struct {
			created bool
			err     error
		}
		results := make(chan result, n)
		for range n {
			go func() {
				_, created, err := db.CreateAlert(ctx, baseAlert(), alertNow)
				results <- result{created, err}
			}()
		}
		var created int
		for range n {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.created {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d of %d concurrent creates reported a new alert, want 1", created, n)
		}
		if _, total, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: "u1", Limit: 50}); err != nil || total != 1 {
			t.Fatalf("%d alerts stored, %v", total, err)
		}
	})
}
