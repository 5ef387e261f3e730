package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// purgeFixture writes reservations into db: held ones journaled at their
// creation, then finished at their finish times.
type purgeFixture struct {
	t  *testing.T
	db *store.DB
}

// held journals a held reservation made at created.
func (f purgeFixture) held(id string, created time.Time) {
	f.t.Helper()
	r := billing.Reservation{ID: id, UserID: "u1", Period: billing.CalendarMonths().At(created), Provider: "openai",
		Model: "gpt-4", Calls: 1, Tokens: 100, Cost: 7, Status: billing.ReservationHeld,
		ExpiresAt: created.Add(5 * time.Minute), CreatedAt: created}
	if _, err := f.db.IngestJournal(context.Background(), []billing.Reservation{r}, nil, store.AlertContext{}, created); err != nil {
		f.t.Fatalf("journal %s: %v", id, err)
	}
}

// finished makes a reservation at created and finishes it at done with
// status (settled by event "ev-"+id).
func (f purgeFixture) finished(id, status string, created, done time.Time) {
	f.t.Helper()
	f.held(id, created)
	ctx := context.Background()
	if status == billing.ReservationSettled {
		p := billing.CalendarMonths().At(done)
		item := store.IngestItem{Log: storetest.Log("u1", "ev-"+id, done), PeriodEnd: p.End}
		if _, err := f.db.Settle(ctx, id, item, store.AlertContext{}, done); err != nil {
			f.t.Fatalf("settle %s: %v", id, err)
		}
		return
	}
	if n, err := f.db.FinishReservations(ctx, []string{id}, status, done); err != nil || n != 1 {
		f.t.Fatalf("finish %s as %s = %d, %v", id, status, n, err)
	}
}

// remaining returns the ids still in the reservations table, sorted.
func remaining(t *testing.T, db *store.DB, ids []string) []string {
	t.Helper()
	var out []string
	for _, id := range ids {
		_, err := db.GetReservation(context.Background(), id)
		switch billing.ErrorCode(err) {
		case "":
			out = append(out, id)
		case billing.CodeNotFound:
		default:
			t.Fatalf("get %s: %v", id, err)
		}
	}
	slices.Sort(out)
	return out
}

// checkLedger fails unless the reconcile and verify passes find nothing
// wrong.
func checkLedger(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if n, err := db.HeldReservationsMismatch(ctx); err != nil || n != 0 {
		t.Errorf("HeldReservationsMismatch = %d, %v; want 0", n, err)
	}
	if ms, err := db.Reconcile(ctx); err != nil || len(ms) != 0 {
		t.Errorf("Reconcile = %v, %v; want no mismatch", ms, err)
	}
}

// TestPurgeReservations: the finished reservations (settled, released,
// expired) that finished before the cutoff go, whatever their ids look
// like; held ones never go however old, nor those that finished after the
// cutoff; limit bounds each call, across batches; the ledger still
// reconciles afterwards.
func TestPurgeReservations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		defer store.SetPurgeBatchRows(2)()
		f := purgeFixture{t, db}
		now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
		cutoff := now.Add(-store.ReservationRetention)

		var gone, kept []string
		old := func(id, status string, created, done time.Time) {
			f.finished(id, status, created, done)
			gone = append(gone, id)
		}
		for i := range 5 {
			c := cutoff.Add(-10*24*time.Hour + time.Duration(i)*time.Minute)
			old(storetest.ReservationID(c, uint64(i)), billing.ReservationSettled, c, c.Add(time.Second))
		}
		c := cutoff.Add(-5 * 24 * time.Hour)
		old(storetest.ReservationID(c, 1), billing.ReservationReleased, c, c.Add(time.Second))
		c = cutoff.Add(-2 * 24 * time.Hour)
		old(storetest.ReservationID(c, 2), billing.ReservationExpired, c, c.Add(5*time.Minute))
		// Finished a moment before the cutoff: goes.
		c = cutoff.Add(-time.Hour)
		old(storetest.ReservationID(c, 3), billing.ReservationSettled, c, cutoff.Add(-time.Microsecond))
		// Ids that do not sort by time: hand-made below "rsv_" and above
		// any time-ordered id, and a random one of the kind minted before
		// ids were time-ordered.
		c = cutoff.Add(-3 * 24 * time.Hour)
		old("r-legacy-1", billing.ReservationSettled, c, c.Add(time.Second))
		old("zz-legacy-1", billing.ReservationReleased, c, c.Add(time.Second))
		old("rsv_f3a9c0de55aa77119b2e4d6f80c1a3b5", billing.ReservationSettled, c, c.Add(time.Second))

		keep := func(id, status string, created, done time.Time) {
			if status == billing.ReservationHeld {
				f.held(id, created)
			} else {
				f.finished(id, status, created, done)
			}
			kept = append(kept, id)
		}
		// Held for 90 days (its sweep never came): never purged.
		c = cutoff.Add(-90 * 24 * time.Hour)
		keep(storetest.ReservationID(c, 4), billing.ReservationHeld, c, time.Time{})
		keep("r-held-legacy", billing.ReservationHeld, c, time.Time{})
		keep("zz-held-legacy", billing.ReservationHeld, c, time.Time{})
		// Made before the cutoff, finished at it or after: kept.
		c = cutoff.Add(-time.Hour)
		keep(storetest.ReservationID(c, 5), billing.ReservationSettled, c, cutoff)
		keep(storetest.ReservationID(c, 6), billing.ReservationExpired, c, cutoff.Add(time.Hour))
		// Recent.
		c = now.Add(-24 * time.Hour)
		keep(storetest.ReservationID(c, 7), billing.ReservationSettled, c, c.Add(time.Second))
		keep(storetest.ReservationID(c, 8), billing.ReservationReleased, c, c.Add(time.Second))
		keep("zz-recent", billing.ReservationSettled, c, c.Add(time.Second))
		keep(storetest.ReservationID(now.Add(-time.Minute), 9), billing.ReservationHeld, now.Add(-time.Minute), time.Time{})
		// Made among the oldest but finished after the cutoff, with ids
		// that sort between deleted ones: (c10, 2) < late < (c10+1m, 3) <
		// lateExpired < (c10+2m, 4), in gaps inside the key ranges the
		// batches delete whatever batch boundaries fall between them. The
		// delete's own re-check of finished_at is all that keeps them.
		c10 := cutoff.Add(-10*24*time.Hour + 2*time.Minute)
		late := storetest.ReservationID(c10, 20)
		f.held(late, c10)
		lateDone := cutoff.Add(time.Hour)
		lateItem := store.IngestItem{Log: storetest.Log("u1", "ev-late", lateDone), PeriodEnd: billing.CalendarMonths().At(lateDone).End}
		lateItem.Log.CostTotal = 4242
		lateFirst, err := db.Settle(ctx, late, lateItem, store.AlertContext{}, lateDone)
		if err != nil || lateFirst.Status != billing.EventRecorded {
			t.Fatalf("settle %s = %+v, %v", late, lateFirst, err)
		}
		kept = append(kept, late)
		keep(storetest.ReservationID(c10.Add(time.Minute), 21), billing.ReservationExpired, c10.Add(time.Minute), cutoff.Add(time.Minute))
		if !(storetest.ReservationID(c10, 2) < late && late < storetest.ReservationID(c10.Add(time.Minute), 3)) {
			t.Fatalf("%s does not sort between two purged ids", late)
		}
		all := append(slices.Clone(gone), kept...)
		slices.Sort(kept)

		if _, err := db.PurgeReservations(ctx, now, store.ReservationRetention-time.Hour, 100); billing.ErrorCode(err) != billing.CodeInvalid {
			t.Fatalf("purge with a retention under %s: %v; want invalid", store.ReservationRetention, err)
		}
		if got := remaining(t, db, all); len(got) != len(all) {
			t.Fatalf("a refused purge deleted %d rows", len(all)-len(got))
		}
		// Limit 3 in batches of 2: exactly 3 go, then the rest.
		n, err := db.PurgeReservations(ctx, now, store.ReservationRetention, 3)
		if err != nil || n != 3 {
			t.Fatalf("purge (limit 3) = %d, %v; want 3", n, err)
		}
		if got := remaining(t, db, all); len(got) != len(all)-3 {
			t.Fatalf("%d reservations left after purging 3 of %d; want %d", len(got), len(all), len(all)-3)
		}
		n, err = db.PurgeReservations(ctx, now, store.ReservationRetention, 100)
		if err != nil || n != len(gone)-3 {
			t.Fatalf("second purge = %d, %v; want %d", n, err, len(gone)-3)
		}
		if got := remaining(t, db, all); !slices.Equal(got, kept) {
			t.Errorf("left after purging:\n%v\nwant:\n%v", got, kept)
		}
		if n, err := db.PurgeReservations(ctx, now, store.ReservationRetention, 100); err != nil || n != 0 {
			t.Errorf("purge with nothing left = %d, %v; want 0", n, err)
		}
		// A longer retention keeps more: nothing recent goes a day later
		// with 60 days.
		if n, err := db.PurgeReservations(ctx, now.Add(24*time.Hour), 60*24*time.Hour, 100); err != nil || n != 0 {
			t.Errorf("purge with 60 days' retention = %d, %v; want 0", n, err)
		}
		// A settle resent for the late one still answers its first result.
		again, err := db.Settle(ctx, late, lateItem, store.AlertContext{}, now)
		if err != nil || again.Status != billing.EventDuplicate || again.Cost != lateFirst.Cost ||
			again.BillingPeriod != lateFirst.BillingPeriod {
			t.Errorf("settle of %s resent after the purges = %+v, %v; want the first result %+v as a duplicate", late, again, err, lateFirst)
		}
		checkLedger(t, db)
		// Held ones stay held and counting.
		c2, err := db.Counters(ctx, "u1", billing.CalendarMonths().At(now), "openai")
		if err != nil || c2.HeldTotal.Calls != 1 {
			t.Errorf("held calls of the current period = %d, %v; want 1", c2.HeldTotal.Calls, err)
		}
	})
}

// TestPurgeKeepsResentSettlesAnswered: within the retention a settle
// resent for a finished reservation returns its first result, however
// often the purge runs; the ledger keeps the event whatever the purge does.
func TestPurgeKeepsResentSettlesAnswered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		f := purgeFixture{t, db}
		made := time.Date(2026, 9, 1, 10, 0, 0, 0, time.UTC)
		settled := made.Add(2 * time.Second)
		id := storetest.ReservationID(made, 42)
		f.held(id, made)
		p := billing.CalendarMonths().At(settled)
		item := store.IngestItem{Log: storetest.Log("u1", "ev-resent", settled), PeriodEnd: p.End}
		item.Log.CostTotal = 12345
		first, err := db.Settle(ctx, id, item, store.AlertContext{}, settled)
		if err != nil || first.Status != billing.EventRecorded {
			t.Fatalf("settle = %+v, %v", first, err)
		}
		// Also a released one, released again later.
		rel := storetest.ReservationID(made, 43)
		f.held(rel, made)
		if _, err := db.Release(ctx, rel, settled); err != nil {
			t.Fatal(err)
		}
		for _, at := range []time.Time{settled.Add(24 * time.Hour), settled.Add(store.ReservationRetention - time.Hour),
			settled.Add(store.ReservationRetention)} {
			if n, err := db.PurgeReservations(ctx, at, store.ReservationRetention, 1000); err != nil || n != 0 {
				t.Fatalf("purge at %s = %d, %v; want 0 within the retention", at, n, err)
			}
			again, err := db.Settle(ctx, id, item, store.AlertContext{}, at)
			if err != nil {
				t.Fatalf("settle resent at %s: %v", at, err)
			}
			if again.Status != billing.EventDuplicate || again.Cost != first.Cost || again.BillingPeriod != first.BillingPeriod {
				t.Fatalf("settle resent at %s = %+v; want the first result %+v as a duplicate", at, again, first)
			}
			r, err := db.Release(ctx, rel, at)
			if err != nil || r.Status != billing.ReservationReleased {
				t.Fatalf("release resent at %s = %+v, %v; want the released reservation", at, r, err)
			}
			checkLedger(t, db)
		}
		// Past the retention both go; the ledger keeps the event.
		after := settled.Add(store.ReservationRetention + time.Hour)
		if n, err := db.PurgeReservations(ctx, after, store.ReservationRetention, 1000); err != nil || n != 2 {
			t.Fatalf("purge past the retention = %d, %v; want 2", n, err)
		}
		if _, err := db.GetReservation(ctx, id); billing.ErrorCode(err) != billing.CodeNotFound {
			t.Fatalf("reservation after the purge: %v; want not_found", err)
		}
		checkLedger(t, db)
		u, err := db.PeriodCounters(ctx, "u1", p)
		if err != nil || u.Total.Calls != 1 || int64(u.Total.Cost) != 12345 {
			t.Errorf("usage after the purge = %+v, %v; want the one settled call", u.Total, err)
		}
	})
}

// TestPurgeReservationsManyBatches: a purge larger than one batch deletes
// every purgeable row in several transactions and stops at its limit.
func TestPurgeReservationsManyBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		defer store.SetPurgeBatchRows(7)()
		now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
		start := now.Add(-store.ReservationRetention - 48*time.Hour)
		var held []billing.Reservation
		var ids []string
		for i := range 60 {
			c := start.Add(time.Duration(i) * time.Minute)
			id := storetest.ReservationID(c, uint64(i))
			ids = append(ids, id)
			held = append(held, billing.Reservation{ID: id, UserID: "u1", Period: billing.CalendarMonths().At(c), Provider: "openai",
				Calls: 1, Status: billing.ReservationHeld, ExpiresAt: c.Add(time.Minute), CreatedAt: c})
		}
		if _, err := db.IngestJournal(ctx, held, nil, store.AlertContext{}, start); err != nil {
			t.Fatal(err)
		}
		// Every third stays held; the others expire.
		var expire []string
		for i, id := range ids {
			if i%3 != 0 {
				expire = append(expire, id)
			}
		}
		if n, err := db.FinishReservations(ctx, expire, billing.ReservationExpired, start.Add(2*time.Hour)); err != nil || n != 40 {
			t.Fatalf("expire = %d, %v", n, err)
		}
		if n, err := db.PurgeReservations(ctx, now, store.ReservationRetention, 25); err != nil || n != 25 {
			t.Fatalf("purge (limit 25) = %d, %v; want 25", n, err)
		}
		if n, err := db.PurgeReservations(ctx, now, store.ReservationRetention, 25); err != nil || n != 15 {
			t.Fatalf("second purge (limit 25) = %d, %v; want the 15 left", n, err)
		}
		if got := remaining(t, db, ids); len(got) != 20 {
			t.Fatalf("%d left; want the 20 held", len(got))
		}
		for _, id := range remaining(t, db, ids) {
			if r, _ := db.GetReservation(ctx, id); r.Status != billing.ReservationHeld {
				t.Errorf("%s left with status %s; want held", id, r.Status)
			}
		}
		checkLedger(t, db)
	})
}

// TestPurgeNeverDeletesHeld: a held reservation is never purged, even one
// whose row wrongly carries an old finish time (which verify reports).
func TestPurgeNeverDeletesHeld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		f := purgeFixture{t, db}
		now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
		made := now.Add(-100 * 24 * time.Hour)
		ids := []string{storetest.ReservationID(made, 1), "r-held", "zz-held"}
		for _, id := range ids {
			f.held(id, made)
		}
		mustExec(t, rawSQL(t, url), `UPDATE reservations SET finished_at = $1`, made.Add(time.Minute).UTC().Format("2006-01-02T15:04:05.000000Z"))
		if n, err := db.PurgeReservations(ctx, now, store.ReservationRetention, 100); err != nil || n != 0 {
			t.Fatalf("purge = %d, %v; want 0", n, err)
		}
		slices.Sort(ids)
		if got := remaining(t, db, ids); !slices.Equal(got, ids) {
			t.Fatalf("left %v; want every held one %v", got, ids)
		}
	})
}
