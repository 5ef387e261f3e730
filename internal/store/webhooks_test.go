package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/internal/webhook"
	"github.com/alwrity/alwrity-billing/webhooks"
)

var hookNow = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func addEndpoint(t *testing.T, db *store.DB, events ...string) webhook.Endpoint {
	t.Helper()
	e, err := db.CreateWebhookEndpoint(context.Background(), webhook.Endpoint{URL: "https://example.com/hook", Events: events,
		Secret: webhook.NewSecret()}, hookNow)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// deliveriesOf returns every delivery to endpoint id, newest first.
func deliveriesOf(t *testing.T, db *store.DB, id int64) []webhook.Delivery {
	t.Helper()
	ds, total, err := db.ListWebhookDeliveries(context.Background(), webhook.DeliveryFilter{EndpointID: id, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if total != int64(len(ds)) {
		t.Fatalf("total %d for %d deliveries", total, len(ds))
	}
	return ds
}

func types(ds []webhook.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.EventType)
	}
	slices.Sort(out)
	return out
}

// TestEnqueueEventOutbox checks that an event is written only with the
// transaction that makes it, to the active endpoints subscribed to it.
func TestEnqueueEventOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		subs := addEndpoint(t, db, webhooks.EventSubscriptionChanged)
		invoices := addEndpoint(t, db, webhooks.EventInvoiceIssued)
		gone := addEndpoint(t, db, webhooks.EventSubscriptionChanged)
		if _, err := db.DeactivateWebhookEndpoint(ctx, gone.ID, hookNow); err != nil {
			t.Fatal(err)
		}

		// A rolled-back transaction leaves no event behind.
		raw := rawSQL(t, url)
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.EnqueueEvent(ctx, tx, webhooks.EventSubscriptionChanged, map[string]any{"n": 1}, hookNow); err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback()
		if ds := deliveriesOf(t, db, subs.ID); len(ds) != 0 {
			t.Fatalf("a rolled-back event was queued: %+v", ds)
		}

		tx, err = raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.EnqueueEvent(ctx, tx, webhooks.EventSubscriptionChanged, map[string]any{"n": 2}, hookNow); err != nil {
			t.Fatal(err)
		}
		if err := store.EnqueueEvent(ctx, tx, "no.such.type", nil, hookNow); err == nil {
			t.Fatal("an unknown event type was accepted")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		ds := deliveriesOf(t, db, subs.ID)
		if len(ds) != 1 || ds[0].EventType != webhooks.EventSubscriptionChanged || ds[0].Status != webhook.StatusPending ||
			ds[0].Attempts != 0 || !ds[0].NextAttemptAt.Equal(hookNow) {
			t.Fatalf("deliveries = %+v", ds)
		}
		if ds := deliveriesOf(t, db, invoices.ID); len(ds) != 0 {
			t.Fatalf("an endpoint got an event it does not subscribe to: %+v", ds)
		}
		if ds := deliveriesOf(t, db, gone.ID); len(ds) != 0 {
			t.Fatalf("a deactivated endpoint got an event: %+v", ds)
		}
		if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{"invoice_number": "INV-1"}, hookNow); err != nil {
			t.Fatal(err)
		}
		if ds := deliveriesOf(t, db, invoices.ID); len(ds) != 1 {
			t.Fatalf("invoice deliveries = %+v", ds)
		}
	})
}

// TestAlertEvents checks that each new alert is announced once, in the
// ingest transaction, and that reaching a limit is announced as well.
func TestAlertEvents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		alerts := addEndpoint(t, db, webhooks.EventAlertCreated)
		limits := addEndpoint(t, db, webhooks.EventUsageLimitReached)
		plan := billing.Plan{ID: 1, Name: "Tiny", TotalCallsLimit: billing.Ptr(int64(2))}
		ac := store.AlertContext{Plans: map[string]billing.Plan{"u1": plan}, Providers: billing.DefaultProviders()}
		ingest := func(ids ...string) {
			t.Helper()
			var items []store.IngestItem
			for _, id := range ids {
				l := storetest.Log("u1", id, hookNow)
				items = append(items, store.IngestItem{Log: l, PeriodEnd: billing.CalendarMonths().At(hookNow).End})
			}
			if _, err := db.Ingest(ctx, items, ac, hookNow); err != nil {
				t.Fatal(err)
			}
		}
		ingest("e1", "e2") // 100 % of 2 calls: the 80 % and 100 % alerts
		ingest("e3")       // over the limit: no new alert
		ingest("e1")       // a duplicate: nothing
		got := deliveriesOf(t, db, alerts.ID)
		if want := []string{webhooks.EventAlertCreated, webhooks.EventAlertCreated}; !slices.Equal(types(got), want) {
			t.Fatalf("alert endpoint: %v, want %v", types(got), want)
		}
		lim := deliveriesOf(t, db, limits.ID)
		if want := []string{webhooks.EventUsageLimitReached}; !slices.Equal(types(lim), want) {
			t.Fatalf("limit endpoint: %v, want %v", types(lim), want)
		}
		jobs, err := db.ClaimWebhookDeliveries(ctx, hookNow, hookNow.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		stored, _, _, err := db.ListAlerts(ctx, billing.AlertFilter{UserID: "u1", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[int64]string{}
		for _, a := range stored {
			ids[a.ID] = a.Type
		}
		for _, j := range jobs {
			var a webhooks.Alert
			if err := json.Unmarshal(j.Data, &a); err != nil {
				t.Fatal(err)
			}
			if a.UserID != "u1" || ids[a.AlertID] != a.Type || a.BillingPeriod != "2026-11" || a.Title == "" {
				t.Errorf("%s data %s does not describe a stored alert (%v)", j.EventType, j.Data, ids)
			}
			if j.EventType == webhooks.EventUsageLimitReached && a.Type != billing.AlertLimitReached {
				t.Errorf("usage.limit_reached for a %s alert", a.Type)
			}
		}
	})
}

// TestClaimLease checks the lease: a claimed delivery is not claimed
// again until its lease runs out, and only the lease holder's outcome
// changes it.
func TestClaimLease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ep := addEndpoint(t, db, webhooks.EventInvoiceIssued)
		if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{"x": 1}, hookNow); err != nil {
			t.Fatal(err)
		}
		if jobs, err := db.ClaimWebhookDeliveries(ctx, hookNow.Add(-time.Second), hookNow.Add(time.Minute), 10); err != nil || len(jobs) != 0 {
			t.Fatalf("claimed before due: %v, %v", jobs, err)
		}
		first, err := db.ClaimWebhookDeliveries(ctx, hookNow, hookNow.Add(time.Minute), 10)
		if err != nil || len(first) != 1 {
			t.Fatalf("claim = %v, %v", first, err)
		}
		j := first[0]
		if j.Attempt != 1 || j.EndpointID != ep.ID || j.URL != ep.URL || !slices.Equal(j.Secrets, []string{ep.Secret}) ||
			string(j.Data) != `{"x":1}` || !j.EventCreatedAt.Equal(hookNow) {
			t.Fatalf("job = %+v", j)
		}
		if again, err := db.ClaimWebhookDeliveries(ctx, hookNow.Add(59*time.Second), hookNow.Add(2*time.Minute), 10); err != nil || len(again) != 0 {
			t.Fatalf("claimed under a lease: %v, %v", again, err)
		}
		// The lease ran out (its worker died): another claim takes it.
		second, err := db.ClaimWebhookDeliveries(ctx, hookNow.Add(time.Minute), hookNow.Add(2*time.Minute), 10)
		if err != nil || len(second) != 1 || second[0].Attempt != 2 || second[0].Token == j.Token {
			t.Fatalf("claim after the lease = %+v, %v", second, err)
		}
		// The first worker's late outcome is recorded, but changes nothing.
		late := webhook.Result{DeliveryID: j.DeliveryID, Token: j.Token, Delivered: true,
			Attempt: webhook.Attempt{Number: 1, AttemptedAt: hookNow, StatusCode: 200}}
		if err := db.FinishWebhookAttempt(ctx, late); !errors.Is(err, webhook.ErrLeaseLost) {
			t.Fatalf("late outcome = %v, want ErrLeaseLost", err)
		}
		next := hookNow.Add(5 * time.Minute)
		r := webhook.Result{DeliveryID: j.DeliveryID, Token: second[0].Token, NextAttemptAt: &next,
			Attempt: webhook.Attempt{Number: 2, AttemptedAt: hookNow.Add(time.Minute), StatusCode: 503, Error: "endpoint answered 503",
				Duration: 1500 * time.Millisecond}}
		if err := db.FinishWebhookAttempt(ctx, r); err != nil {
			t.Fatal(err)
		}
		// The same attempt recorded twice is refused.
		if err := db.FinishWebhookAttempt(ctx, r); !errors.Is(err, webhook.ErrLeaseLost) {
			t.Fatalf("second record of one attempt = %v", err)
		}
		ds := deliveriesOf(t, db, ep.ID)
		d := ds[0]
		if d.Status != webhook.StatusPending || d.Attempts != 2 || !d.NextAttemptAt.Equal(next) || d.LastStatus == nil ||
			*d.LastStatus != 503 || d.LastError != "endpoint answered 503" || len(d.AttemptLog) != 2 {
			t.Fatalf("delivery = %+v", d)
		}
		if a := d.AttemptLog[1]; a.Number != 2 || a.StatusCode != 503 || a.Duration != 1500*time.Millisecond || !a.AttemptedAt.Equal(hookNow.Add(time.Minute)) {
			t.Fatalf("attempt = %+v", a)
		}
		third, err := db.ClaimWebhookDeliveries(ctx, next, next.Add(time.Minute), 10)
		if err != nil || len(third) != 1 || third[0].Attempt != 3 {
			t.Fatalf("claim when due again = %+v, %v", third, err)
		}
		if err := db.FinishWebhookAttempt(ctx, webhook.Result{DeliveryID: j.DeliveryID, Token: third[0].Token, Delivered: true,
			Attempt: webhook.Attempt{Number: 3, AttemptedAt: next, StatusCode: 204}}); err != nil {
			t.Fatal(err)
		}
		d = deliveriesOf(t, db, ep.ID)[0]
		if d.Status != webhook.StatusDelivered || d.DeliveredAt == nil || !d.DeliveredAt.Equal(next) || d.LastError != "" {
			t.Fatalf("delivered = %+v", d)
		}
		if jobs, err := db.ClaimWebhookDeliveries(ctx, next.Add(time.Hour), next.Add(2*time.Hour), 10); err != nil || len(jobs) != 0 {
			t.Fatalf("a delivered delivery was claimed: %v, %v", jobs, err)
		}
	})
}

// TestConcurrentClaimsAreDisjoint races many claims (on PostgreSQL from
// several connections, as several processes would) and checks that every
// due delivery is claimed exactly once.
func TestConcurrentClaimsAreDisjoint(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		other := storetest.OpenURL(t, url) // a second process's store
		addEndpoint(t, db, webhooks.EventInvoiceIssued)
		addEndpoint(t, db, webhooks.EventInvoiceIssued)
		const events = 40
		for i := range events {
			if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{"i": i}, hookNow); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		claimed := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for w := range 8 {
			s := db
			if w%2 == 1 {
				s = other
			}
			wg.Go(func() {
				for {
					jobs, err := s.ClaimWebhookDeliveries(ctx, hookNow, hookNow.Add(time.Minute), 3)
					if err != nil {
						errs <- err
						return
					}
					if len(jobs) == 0 {
						return
					}
					if len(jobs) > 3 {
						errs <- fmt.Errorf("a claim of at most 3 took %d", len(jobs))
						return
					}
					mu.Lock()
					for _, j := range jobs {
						claimed[j.DeliveryID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(claimed) != 2*events {
			t.Fatalf("%d deliveries claimed, want %d", len(claimed), 2*events)
		}
		for id, n := range claimed {
			if n != 1 {
				t.Errorf("delivery %d claimed %d times", id, n)
			}
		}
	})
}

func TestWebhookEndpointAdmin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ep := addEndpoint(t, db, webhooks.EventAlertCreated, webhooks.EventInvoiceIssued)
		list, err := db.ListWebhookEndpoints(ctx)
		if err != nil || len(list) != 1 {
			t.Fatalf("list = %v, %v", list, err)
		}
		if got := list[0]; got.Secret != "" || got.URL != ep.URL || !got.Active || !slices.Equal(got.Events, ep.Events) ||
			!got.CreatedAt.Equal(hookNow) {
			t.Fatalf("listed %+v (a secret must never be listed)", got)
		}
		if _, err := db.GetWebhookEndpoint(ctx, 999); billing.ErrorCode(err) != billing.CodeNotFound {
			t.Fatalf("get unknown = %v", err)
		}

		// Rotation: the old secret signs beside the new one for the grace.
		rot, err := db.RotateWebhookSecret(ctx, ep.ID, "whsec_new", time.Hour, hookNow)
		if err != nil || rot.Secret != "whsec_new" || rot.SecretRotatedAt == nil {
			t.Fatalf("rotate = %+v, %v", rot, err)
		}
		id, err := db.SendWebhookPing(ctx, ep.ID, hookNow)
		if err != nil || id == "" {
			t.Fatalf("ping = %q, %v", id, err)
		}
		jobs, err := db.ClaimWebhookDeliveries(ctx, hookNow, hookNow.Add(time.Minute), 10)
		if err != nil || len(jobs) != 1 || jobs[0].EventType != webhooks.EventPing || jobs[0].EventID != id ||
			!slices.Equal(jobs[0].Secrets, []string{"whsec_new", ep.Secret}) {
			t.Fatalf("ping job = %+v, %v", jobs, err)
		}
		if err := db.FinishWebhookAttempt(ctx, webhook.Result{DeliveryID: jobs[0].DeliveryID, Token: jobs[0].Token, Delivered: true,
			Attempt: webhook.Attempt{Number: 1, AttemptedAt: hookNow, StatusCode: 200}}); err != nil {
			t.Fatal(err)
		}
		if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, nil, hookNow.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		jobs, err = db.ClaimWebhookDeliveries(ctx, hookNow.Add(time.Hour), hookNow.Add(2*time.Hour), 10)
		if err != nil || len(jobs) != 1 || !slices.Equal(jobs[0].Secrets, []string{"whsec_new"}) {
			t.Fatalf("after the grace the old secret still signs: %+v, %v", jobs, err)
		}

		// Deactivation fails what is pending and stops new events.
		if err := db.EnqueueWebhookEvent(ctx, webhooks.EventAlertCreated, nil, hookNow); err != nil {
			t.Fatal(err)
		}
		off, err := db.DeactivateWebhookEndpoint(ctx, ep.ID, hookNow)
		if err != nil || off.Active || off.DeactivatedAt == nil {
			t.Fatalf("deactivate = %+v, %v", off, err)
		}
		if _, err := db.DeactivateWebhookEndpoint(ctx, ep.ID, hookNow.Add(time.Hour)); err != nil {
			t.Fatalf("deactivate twice = %v", err)
		}
		for _, d := range deliveriesOf(t, db, ep.ID) {
			if d.EventType != webhooks.EventPing && (d.Status != webhook.StatusFailed || d.LastError != "endpoint deactivated") {
				t.Errorf("pending delivery of a deactivated endpoint: %+v", d)
			}
		}
		if _, err := db.SendWebhookPing(ctx, ep.ID, hookNow); billing.ErrorCode(err) != billing.CodeConflict {
			t.Fatalf("ping a deactivated endpoint = %v", err)
		}
		if _, err := db.RotateWebhookSecret(ctx, ep.ID, "whsec_x", 0, hookNow); billing.ErrorCode(err) != billing.CodeConflict {
			t.Fatalf("rotate a deactivated endpoint = %v", err)
		}
		if _, _, err := db.ListWebhookDeliveries(ctx, webhook.DeliveryFilter{EndpointID: 999, Limit: 10}); billing.ErrorCode(err) != billing.CodeNotFound {
			t.Fatalf("deliveries of an unknown endpoint = %v", err)
		}
		// Paging and the status filter.
		page, total, err := db.ListWebhookDeliveries(ctx, webhook.DeliveryFilter{EndpointID: ep.ID, Limit: 1, Offset: 1})
		if err != nil || total != 3 || len(page) != 1 || page[0].EventType != webhooks.EventInvoiceIssued {
			t.Fatalf("page = %d of %d, %v", len(page), total, err)
		}
		failed, total, err := db.ListWebhookDeliveries(ctx, webhook.DeliveryFilter{EndpointID: ep.ID, Status: webhook.StatusFailed, Limit: 10})
		if err != nil || total != 2 || len(failed) != 2 {
			t.Fatalf("failed = %v of %d, %v", failed, total, err)
		}
		if _, total, err := db.ListWebhookDeliveries(ctx, webhook.DeliveryFilter{EndpointID: ep.ID, Status: webhook.StatusPending, Limit: 10}); err != nil || total != 0 {
			t.Fatalf("pending after deactivation = %d, %v", total, err)
		}
	})
}

// TestPruneWebhooks checks that pruning removes only ended deliveries
// older than the cut, with their attempts and orphaned events.
func TestPruneWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ep := addEndpoint(t, db, webhooks.EventInvoiceIssued)
		for i := range 2 {
			if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{"i": i}, hookNow); err != nil {
				t.Fatal(err)
			}
		}
		jobs, err := db.ClaimWebhookDeliveries(ctx, hookNow, hookNow.Add(time.Minute), 1)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("claim = %v, %v", jobs, err)
		}
		if err := db.FinishWebhookAttempt(ctx, webhook.Result{DeliveryID: jobs[0].DeliveryID, Token: jobs[0].Token, Delivered: true,
			Attempt: webhook.Attempt{Number: 1, AttemptedAt: hookNow, StatusCode: 200}}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.PruneWebhooks(ctx, hookNow); err != nil || n != 0 {
			t.Fatalf("pruned %d, %v at the creation time", n, err)
		}
		if n, err := db.PruneWebhooks(ctx, hookNow.Add(31*24*time.Hour)); err != nil || n != 1 {
			t.Fatalf("pruned %d, %v; want the delivered one", n, err)
		}
		ds := deliveriesOf(t, db, ep.ID)
		if len(ds) != 1 || ds[0].Status != webhook.StatusPending {
			t.Fatalf("left %+v; want the pending one", ds)
		}
	})
}
