package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestIngestRefusesAnotherUsersEventID: the ledger's unique index is on
// event_id alone, so user B may send an id that user A's event holds.
// B's event is neither recorded nor answered with A's result (its cost,
// period and unpriced flag are A's): the transaction is refused with
// *store.EventIDsTaken, a conflict naming the id only, and stores nothing,
// B's other events included; A's row and A's resends are unchanged. Two
// users' events with one id in one transaction (a group commit) are
// refused alike.
func TestIngestRefusesAnotherUsersEventID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := billing.CalendarMonths().At(now)
		// item is user's event id, of cost pico-dollars for as many tokens.
		item := func(user, id string, cost int64, ts time.Time) store.IngestItem {
			l := storetest.Log(user, id, ts)
			l.TokensInput, l.CostInput, l.CostTotal = cost, money.Amount(cost), money.Amount(cost)
			return store.IngestItem{Log: l, PeriodEnd: billing.CalendarMonths().At(ts).End}
		}
		ingest := func(items ...store.IngestItem) ([]billing.EventResult, error) {
			return db.Ingest(ctx, items, store.AlertContext{}, now)
		}
		// A's event, in the previous month, priced 10 and flagged unpriced:
		// nothing of it may reach B.
		aItem := item("user-a", "shared-id", 10, now.AddDate(0, -1, 0))
		aItem.Log.Unpriced = true
		if _, err := ingest(aItem); err != nil {
			t.Fatal(err)
		}
		refused := func(t *testing.T, res []billing.EventResult, err error, id string) {
			t.Helper()
			var taken *store.EventIDsTaken
			if !errors.As(err, &taken) || !slices.Equal(taken.IDs, []string{id}) {
				t.Fatalf("Ingest = %+v, %v; want *store.EventIDsTaken naming %q", res, err, id)
			}
			if billing.ErrorCode(err) != billing.CodeConflict {
				t.Errorf("code %q; want conflict", billing.ErrorCode(err))
			}
			msg := billing.ErrorMessage(err)
			if !strings.Contains(msg, id) || strings.Contains(msg, "user-a") || strings.Contains(msg, aItem.Log.BillingPeriod) {
				t.Errorf("message %q: want the id named and nothing of user-a's event", msg)
			}
		}

		t.Run("another transaction", func(t *testing.T) {
			res, err := ingest(item("user-b", "b-own", 7, now), item("user-b", "shared-id", 1000, now))
			refused(t, res, err, "shared-id")
		})
		t.Run("one transaction", func(t *testing.T) {
			res, err := ingest(item("user-a", "same-tx", 5, now), item("user-b", "b-other", 7, now), item("user-b", "same-tx", 1000, now))
			refused(t, res, err, "same-tx")
			res, err = ingest(item("user-b", "same-tx", 1000, now), item("user-a", "same-tx", 5, now))
			refused(t, res, err, "same-tx")
		})
		t.Run("A's resend", func(t *testing.T) {
			res, err := ingest(item("user-a", "shared-id", 999, now))
			if err != nil {
				t.Fatal(err)
			}
			want := billing.EventResult{EventID: "shared-id", Status: billing.EventDuplicate, Cost: 10,
				BillingPeriod: aItem.Log.BillingPeriod, Unpriced: true}
			if res[0] != want {
				t.Errorf("A's resend = %+v; want %+v", res[0], want)
			}
		})

		logs, n, err := db.ListLogs(ctx, billing.LogFilter{UserID: "user-a", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || logs[0].EventID != "shared-id" || logs[0].CostTotal != 10 || logs[0].TokensInput != 10 {
			t.Errorf("user-a's ledger = %d rows %+v; want its one first event", n, logs)
		}
		if _, n, err := db.ListLogs(ctx, billing.LogFilter{UserID: "user-b", Limit: 10}); err != nil || n != 0 {
			t.Errorf("user-b's ledger holds %d rows (%v); want none", n, err)
		}
		u, err := db.UsageForPeriods(ctx, "user-b", []billing.Period{p, {Key: billing.AllTime}})
		if err != nil {
			t.Fatal(err)
		}
		for _, pu := range u {
			if pu.Total.Calls != 0 || pu.Total.Cost != 0 {
				t.Errorf("user-b's usage in %s = %+v; want none", pu.Period.Key, pu.Total)
			}
		}
		if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
			t.Errorf("Reconcile = %+v, %v; want the summaries to equal the ledger", m, err)
		}
	})
}

// TestRecordedEventsReadsOnlyTheAskingUsersEvents: a resend is answered
// from the ledger only with its own user's event.
func TestRecordedEventsReadsOnlyTheAskingUsersEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		l := storetest.Log("user-a", "a-1", now)
		l.CostInput, l.CostTotal = 42, 42
		storetest.Record(t, db, l, storetest.Log("user-a", "a-2", now))
		got, err := db.RecordedEvents(ctx, map[string]string{"a-1": "user-a", "a-2": "user-b", "missing": "user-a"})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]billing.EventResult{"a-1": {EventID: "a-1", Status: billing.EventDuplicate, Cost: 42, BillingPeriod: l.BillingPeriod}}
		if len(got) != len(want) || got["a-1"] != want["a-1"] {
			t.Errorf("RecordedEvents = %+v; want %+v", got, want)
		}
	})
}
