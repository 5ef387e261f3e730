package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestIngestSettlesHeldReservations: one batch settles many held
// reservations (one statement on PostgreSQL). Each settled reservation
// names its event and stops counting as held; a reservation named by two
// events of the batch is settled by the first, and the second, exclusive,
// is a conflict that stores nothing; a reservation that is not held any
// more is claimed late by its event.
func TestIngestSettlesHeldReservations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := billing.CalendarMonths().At(now)
		var held []billing.Reservation
		for i := range 5 {
			held = append(held, billing.Reservation{ID: fmt.Sprintf("rsv-%d", i), UserID: "u1", Period: p, Provider: "openai",
				Model: "gpt-4", Calls: 1, Tokens: 100, Cost: 7, Status: billing.ReservationHeld,
				ExpiresAt: now.Add(time.Minute), CreatedAt: now})
		}
		if _, err := db.IngestJournal(ctx, held, nil, store.AlertContext{}, now); err != nil {
			t.Fatal(err)
		}
		if n, err := db.FinishReservations(ctx, []string{"rsv-4"}, billing.ReservationExpired, now); err != nil || n != 1 {
			t.Fatalf("expire rsv-4 = %d, %v", n, err)
		}
		item := func(rsv, event string) store.IngestItem {
			return store.IngestItem{Log: storetest.Log("u1", event, now), PeriodEnd: p.End, ReservationID: rsv, Exclusive: true}
		}
		items := []store.IngestItem{
			item("rsv-2", "e2"), item("rsv-0", "e0"), item("rsv-2", "e2-again"), item("rsv-1", "e1"), item("rsv-4", "e4-late"),
		}
		res, err := db.Ingest(ctx, items, store.AlertContext{}, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{billing.EventRecorded, billing.EventRecorded, billing.EventConflict, billing.EventRecorded, billing.EventRecorded}
		for i, r := range res {
			if r.Status != want[i] {
				t.Errorf("item %d (%s): status %q, want %q", i, items[i].Log.EventID, r.Status, want[i])
			}
		}
		for id, wantStatus := range map[string]string{"rsv-0": "settled", "rsv-1": "settled", "rsv-2": "settled", "rsv-3": "held", "rsv-4": "expired"} {
			r, err := db.GetReservation(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != wantStatus {
				t.Errorf("%s: status %q, want %q", id, r.Status, wantStatus)
			}
		}
		for id, event := range map[string]string{"rsv-0": "e0", "rsv-1": "e1", "rsv-2": "e2", "rsv-4": "e4-late"} {
			if r, _ := db.GetReservation(ctx, id); r.EventID != event {
				t.Errorf("%s settled by %q, want %q", id, r.EventID, event)
			}
		}
		c, err := db.Counters(ctx, "u1", p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		if c.Total.Calls != 4 || c.HeldTotal.Calls != 1 || c.HeldProvider.TokensInput != 100 || c.HeldTotal.Cost != 7 {
			t.Errorf("counters %+v: want 4 calls used and rsv-3 alone held", c)
		}
		if n, err := db.HeldReservationsMismatch(ctx); err != nil || n != 0 {
			t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
		}
	})
}

// TestReserveDoesNotWaitForSettles: on PostgreSQL a reservation reads the
// summaries without locking them, so a settle's transaction that holds the
// user's summary rows (until its WAL flush) does not hold up admission,
// and admission still counts what is held and used.
func TestReserveDoesNotWaitForSettles(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	db := storetest.OpenURL(t, url)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := billing.CalendarMonths().At(now)
	storetest.Record(t, db, storetest.Log("u1", "e-before", now))

	settle, err := rawSQL(t, url).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer settle.Rollback()
	mustExecTx(t, settle, `UPDATE usage_summaries SET total_calls = total_calls WHERE user_id = 'u1'`)
	mustExecTx(t, settle, `UPDATE usage_summary_providers SET calls = calls WHERE user_id = 'u1'`)

	// A deadline only so that a regression fails instead of hanging.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	lim := billing.Limits{TotalCalls: billing.Ptr(int64(3))}
	for i := range 3 {
		r := billing.Reservation{ID: fmt.Sprintf("rsv-%d", i), UserID: "u1", Period: p, Provider: "openai", Calls: 1,
			ExpiresAt: now.Add(time.Minute), CreatedAt: now}
		err := db.Reserve(rctx, r, lim, now)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("reservation %d while a settle holds the summaries: %v", i, err)
		case i == 2 && billing.ErrorCode(err) != billing.CodeLimitExceeded:
			t.Fatalf("third reservation (1 used + 2 held of 3): %v, want limit_exceeded", err)
		}
	}
}

func mustExecTx(t *testing.T, tx *sql.Tx, q string) {
	t.Helper()
	if _, err := tx.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestIngestCountsTheFirstCopyOfAnEventGivenTwice: one transaction (a
// group commit of several batches) holds an event id twice with different
// contents — a client's resend, changed, while the first was queued. The
// ledger and the summaries both take the first copy, which is answered
// "recorded"; the second is a duplicate answered with the first's result.
// The copies are placed among other events in every layout of fifteen
// with the first copy at the front or next to it: in some of them
// (0 and 1, for one) an unstable sort by id swaps the two.
func TestIngestCountsTheFirstCopyOfAnEventGivenTwice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := billing.CalendarMonths().At(now)
		const n = 15
		for first := range 2 {
			for second := first + 1; second < n; second++ {
				user := fmt.Sprintf("u-%d-%d", first, second)
				items := make([]store.IngestItem, n)
				for i := range items {
					l := storetest.Log(user, fmt.Sprintf("%s-id-%03d", user, i*37%n), now)
					switch i {
					case first:
						l.EventID, l.TokensInput, l.CostInput, l.CostTotal = user+"-resent", 1, 10, 10
					case second:
						l.EventID, l.TokensInput, l.CostInput, l.CostTotal = user+"-resent", 1000, 1000, 1000
					}
					items[i] = store.IngestItem{Log: l, PeriodEnd: p.End}
				}
				res, err := db.Ingest(ctx, items, store.AlertContext{}, now)
				if err != nil {
					t.Fatal(err)
				}
				if r := res[first]; r.Status != billing.EventRecorded || r.Cost != 10 {
					t.Errorf("%s: first copy %+v; want recorded at 10", user, r)
				}
				if r := res[second]; r.Status != billing.EventDuplicate || r.Cost != 10 {
					t.Errorf("%s: second copy %+v; want a duplicate answered with the first's cost, 10", user, r)
				}
				logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: user, Limit: 2 * n})
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range logs {
					if l.EventID == user+"-resent" && l.TokensInput != 1 {
						t.Errorf("%s: the ledger holds the second copy (%d tokens in)", user, l.TokensInput)
					}
				}
				if len(logs) != n-1 {
					t.Errorf("%s: the ledger holds %d rows; want %d", user, len(logs), n-1)
				}
			}
		}
		if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
			t.Errorf("Reconcile = %+v, %v; want the summaries to equal the ledger", m, err)
		}
	})
}

// TestLateClaimsAndUnpricedAlertsTakeLocksInOneOrder: two batches that
// claim the same expired reservations, and raise the same unpriced-model
// alerts, in opposite orders commit one after the other. Claimed in item
// order, each could lock one row the other waits for, and PostgreSQL
// aborted one of them as a deadlock.
func TestLateClaimsAndUnpricedAlertsTakeLocksInOneOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
		p := billing.CalendarMonths().At(now)
		const rounds = 40
		for round := range rounds {
			ids := []string{fmt.Sprintf("rsv-%d-a", round), fmt.Sprintf("rsv-%d-b", round)}
			var rs []billing.Reservation
			for _, id := range ids {
				rs = append(rs, billing.Reservation{ID: id, UserID: "u1", Period: p, Provider: "openai", Model: "gpt-4",
					Calls: 1, Tokens: 10, Cost: 7, Status: billing.ReservationHeld, ExpiresAt: now.Add(time.Minute), CreatedAt: now})
			}
			if _, err := db.IngestJournal(ctx, rs, nil, store.AlertContext{}, now); err != nil {
				t.Fatal(err)
			}
			if n, err := db.FinishReservations(ctx, ids, billing.ReservationExpired, now); err != nil || n != 2 {
				t.Fatalf("expire %v = %d, %v", ids, n, err)
			}
			unpriced := []billing.Alert{
				billing.UnpricedAlert("openai", fmt.Sprintf("new-model-%d-a", round)),
				billing.UnpricedAlert("openai", fmt.Sprintf("new-model-%d-b", round)),
			}
			batch := func(who string, order []int) func() error {
				return func() error {
					var items []store.IngestItem
					var ac store.AlertContext
					for _, k := range order {
						items = append(items, store.IngestItem{Log: storetest.Log("u1", fmt.Sprintf("e-%d-%s-%d", round, who, k), now),
							PeriodEnd: p.End, ReservationID: ids[k], Exclusive: true})
						ac.Extra = append(ac.Extra, unpriced[k])
					}
					// Half the rounds raise the alerts from events that
					// settle nothing, each batch its own user's, so that
					// no reservation or summary row orders them.
					if round%2 == 1 {
						for i := range items {
							items[i].Log = storetest.Log("u-"+who, items[i].Log.EventID, now)
							items[i].ReservationID, items[i].Exclusive = "", false
						}
					}
					_, err := db.Ingest(ctx, items, ac, now)
					return err
				}
			}
			var g errgroup.Group
			g.Go(batch("x", []int{0, 1}))
			g.Go(batch("y", []int{1, 0}))
			if err := g.Wait(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if n, err := db.HeldReservationsMismatch(ctx); err != nil || n != 0 {
			t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
		}
	})
}
