package webhook_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/internal/webhook"
	"github.com/alwrity/alwrity-billing/webhooks"
)

var start = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// clock is the injected clock the worker, the store and the receiver share.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// receiver is a webhook endpoint that verifies every delivery with the
// public webhooks package and keeps each event once by id, as the
// documentation tells receivers to.
type receiver struct {
	secret string
	clock  *clock
	// unavailable makes it answer 503.
	unavailable atomic.Bool
	// loseAcks is how many more stored events it answers with 500 anyway
	// (the acknowledgement lost on the way), so they are sent again.
	loseAcks atomic.Int32
	// hold delays each answer, so overlapping requests would meet.
	hold time.Duration

	mu        sync.Mutex
	events    map[string]webhooks.Event // de-duplicated by id
	received  map[string]int            // every verified request, by event id
	inFlight  map[string]int
	overlaps  []string
	badHeader []string
}

func newReceiver(secret string, c *clock) *receiver {
	return &receiver{secret: secret, clock: c, events: map[string]webhooks.Event{}, received: map[string]int{}, inFlight: map[string]int{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.unavailable.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	ev, err := webhooks.ReadEvent(r, rc.secret, webhooks.DefaultTolerance, rc.clock.Now())
	rc.mu.Lock()
	if err != nil || r.Header.Get(webhooks.EventIDHeader) != ev.ID || r.Header.Get(webhooks.EventTypeHeader) != ev.Type {
		rc.badHeader = append(rc.badHeader, fmt.Sprintf("%v (%s)", err, r.Header.Get(webhooks.SignatureHeader)))
		rc.mu.Unlock()
		http.Error(w, "bad signature", http.StatusBadRequest)
		return
	}
	if rc.inFlight[ev.ID] > 0 {
		rc.overlaps = append(rc.overlaps, ev.ID)
	}
	rc.inFlight[ev.ID]++
	rc.received[ev.ID]++
	if _, seen := rc.events[ev.ID]; !seen {
		rc.events[ev.ID] = ev
	}
	rc.mu.Unlock()
	if rc.hold > 0 {
		time.Sleep(rc.hold)
	}
	rc.mu.Lock()
	rc.inFlight[ev.ID]--
	rc.mu.Unlock()
	if rc.loseAcks.Add(-1) >= 0 {
		http.Error(w, "stored, but the answer is lost", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// server serves a receiver on one address that can stop listening (so
// connections are refused) and listen again.
type server struct {
	t    *testing.T
	addr string
	h    http.Handler
	srv  *http.Server
}

func serve(t *testing.T, h http.Handler) *server {
	s := &server{t: t, addr: "127.0.0.1:0", h: h}
	s.up()
	t.Cleanup(s.down)
	return s
}

func (s *server) up() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen on %s again: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.h}
	go s.srv.Serve(ln)
}

func (s *server) down() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *server) url() string { return "http://" + s.addr + "/hooks" }

func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// drain runs the worker until nothing is due at the clock's time.
func drain(t *testing.T, w *webhook.Worker) {
	t.Helper()
	for {
		n, err := w.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func endpoint(t *testing.T, db *store.DB, url string, now time.Time) webhook.Endpoint {
	t.Helper()
	ep, err := db.CreateWebhookEndpoint(context.Background(), webhook.Endpoint{URL: url, Events: webhooks.EventTypes(),
		Secret: webhook.NewSecret()}, now)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func deliveries(t *testing.T, db *store.DB, endpointID int64) []webhook.Delivery {
	t.Helper()
	ds, _, err := db.ListWebhookDeliveries(context.Background(), webhook.DeliveryFilter{EndpointID: endpointID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestReceiverDownThenUp: the receiver is down for an hour (answering 503
// for half of it and refusing connections for the rest) while events keep
// coming; when it is up again every event is delivered, every signature
// verifies, and after de-duplication by event id each event is there
// once, though lost acknowledgements made some arrive twice.
func TestReceiverDownThenUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clk := newClock(start)
		db := storetest.Open(t, b)
		rc := newReceiver("", clk)
		srv := serve(t, rc)
		ep := endpoint(t, db, srv.url(), clk.Now())
		rc.secret = ep.Secret
		w := webhook.New(webhook.Config{Store: db, Client: client(t), Now: clk.Now, Timeout: 5 * time.Second, Batch: 4})

		// Events from the store's own paths: a user reaching a plan's
		// limit raises two alerts (80 % and 100 %), which are three events.
		plan := billing.Plan{ID: 1, Name: "Tiny", TotalCallsLimit: billing.Ptr(int64(2))}
		ac := store.AlertContext{Plans: map[string]billing.Plan{"u1": plan}, Providers: billing.DefaultProviders()}
		ingest := func(ids ...string) {
			t.Helper()
			var items []store.IngestItem
			for _, id := range ids {
				l := storetest.Log("u1", id, clk.Now())
				items = append(items, store.IngestItem{Log: l, PeriodEnd: billing.CalendarMonths().At(clk.Now()).End})
			}
			if _, err := db.Ingest(ctx, items, ac, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		event := func(typ string, n int) {
			t.Helper()
			if err := db.EnqueueWebhookEvent(ctx, typ, map[string]any{"n": n}, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}

		rc.unavailable.Store(true)
		ingest("call-1", "call-2")
		event(webhooks.EventSubscriptionChanged, 1)
		event(webhooks.EventInvoiceIssued, 2)
		step := 20 * time.Second
		run := func(until time.Duration, each func()) {
			for clk.Now().Before(start.Add(until)) {
				drain(t, w)
				if each != nil {
					each()
				}
				clk.Add(step)
			}
		}
		run(20*time.Minute, nil)
		event(webhooks.EventSubscriptionChanged, 3) // created while it is down
		run(30*time.Minute, nil)
		srv.down() // now connections are refused
		rc.unavailable.Store(false)
		event(webhooks.EventInvoiceIssued, 4)
		run(60*time.Minute, nil)

		rc.mu.Lock()
		if len(rc.received) != 0 {
			t.Fatalf("the receiver was down but got %v", rc.received)
		}
		rc.mu.Unlock()
		ds := deliveries(t, db, ep.ID)
		if len(ds) != 7 {
			t.Fatalf("%d deliveries queued, want 7: %+v", len(ds), ds)
		}
		for _, d := range ds {
			if d.Status != webhook.StatusPending || d.Attempts < 3 || d.DeliveredAt != nil {
				t.Fatalf("after an hour down: %+v", d)
			}
		}

		// Up again, losing the first two acknowledgements.
		srv.up()
		rc.loseAcks.Store(2)
		event(webhooks.EventAlertCreated, 5) // not an alert, but any data goes
		all := func() bool {
			for _, d := range deliveries(t, db, ep.ID) {
				if d.Status != webhook.StatusDelivered {
					return false
				}
			}
			return true
		}
		for !all() {
			if clk.Now().After(start.Add(6 * time.Hour)) {
				t.Fatalf("not delivered 5 hours after the receiver came back: %+v", deliveries(t, db, ep.ID))
			}
			drain(t, w)
			clk.Add(step)
		}

		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.badHeader) > 0 {
			t.Fatalf("deliveries that did not verify: %v", rc.badHeader)
		}
		ds = deliveries(t, db, ep.ID)
		var want []string
		extra := 0
		for _, d := range ds {
			want = append(want, d.EventID)
			ev, ok := rc.events[d.EventID]
			if !ok {
				t.Errorf("event %s (%s) marked delivered but never received", d.EventID, d.EventType)
				continue
			}
			if ev.Type != d.EventType || !ev.CreatedAt.Equal(d.EventCreatedAt) {
				t.Errorf("received %+v for delivery %+v", ev, d)
			}
			extra += rc.received[d.EventID] - 1
		}
		got := make([]string, 0, len(rc.events))
		for id := range rc.events {
			got = append(got, id)
		}
		slices.Sort(want)
		slices.Sort(got)
		if len(want) != 8 || !slices.Equal(got, want) {
			t.Fatalf("received (de-duplicated) %v, want every event once: %v", got, want)
		}
		if extra != 2 {
			t.Errorf("%d repeated receipts; the two lost acknowledgements should have made two (%v)", extra, rc.received)
		}
		// Every attempt is listed, numbered from 1, and tells what happened.
		var refused, unavailable int
		for _, d := range ds {
			if len(d.AttemptLog) != d.Attempts {
				t.Errorf("%s: %d attempts counted, %d listed", d.EventID, d.Attempts, len(d.AttemptLog))
			}
			for i, a := range d.AttemptLog {
				if a.Number != i+1 {
					t.Errorf("%s: attempt %d listed as %d", d.EventID, i+1, a.Number)
				}
				switch {
				case a.StatusCode == http.StatusServiceUnavailable:
					unavailable++
				case a.StatusCode == 0 && strings.Contains(a.Error, "refused"):
					refused++
				}
			}
			last := d.AttemptLog[len(d.AttemptLog)-1]
			if last.StatusCode != http.StatusNoContent || last.Error != "" || d.DeliveredAt == nil || !d.DeliveredAt.Equal(last.AttemptedAt) {
				t.Errorf("%s: last attempt %+v, delivery %+v", d.EventID, last, d)
			}
			for _, a := range d.AttemptLog[:len(d.AttemptLog)-1] {
				if a.Error == "" {
					t.Errorf("%s: a failed attempt without a reason: %+v", d.EventID, a)
				}
			}
		}
		if refused == 0 || unavailable == 0 {
			t.Errorf("attempts: %d refused, %d answered 503; want some of each", refused, unavailable)
		}
	})
}

// TestTwoWorkersNeverOverlap runs two workers, each with its own
// connection to the database as two processes would have, against one
// outbox: no delivery is sent by both at once, and each is delivered once.
func TestTwoWorkersNeverOverlap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clk := newClock(start)
		url := b.URL(t)
		db1 := storetest.OpenURL(t, url)
		db2 := storetest.OpenURL(t, url)
		rc := newReceiver("", clk)
		rc.hold = 2 * time.Millisecond
		srv := serve(t, rc)
		ep := endpoint(t, db1, srv.url(), clk.Now())
		rc.secret = ep.Secret
		const events = 60
		for i := range events {
			if err := db1.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{"i": i}, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		var claimed [2]atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for i, db := range []*store.DB{db1, db2} {
			w := webhook.New(webhook.Config{Store: db, Client: client(t), Now: clk.Now, Batch: 3, Parallel: 3})
			wg.Go(func() {
				for {
					n, err := w.RunOnce(ctx)
					if err != nil {
						errs <- err
						return
					}
					if n == 0 {
						return
					}
					claimed[i].Add(int64(n))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if len(rc.overlaps) > 0 || len(rc.badHeader) > 0 {
			t.Fatalf("overlapping deliveries %v; bad signatures %v", rc.overlaps, rc.badHeader)
		}
		if len(rc.events) != events {
			t.Fatalf("%d events received, want %d", len(rc.events), events)
		}
		for id, n := range rc.received {
			if n != 1 {
				t.Errorf("event %s sent %d times", id, n)
			}
		}
		if total := claimed[0].Load() + claimed[1].Load(); total != events {
			t.Errorf("%d + %d claims for %d deliveries", claimed[0].Load(), claimed[1].Load(), events)
		}
		for _, d := range deliveries(t, db1, ep.ID) {
			if d.Status != webhook.StatusDelivered || d.Attempts != 1 || len(d.AttemptLog) != 1 {
				t.Errorf("delivery %+v", d)
			}
		}
	})
}

// TestGivesUpAfterADay: an endpoint that never answers 2xx gets attempts
// for a day after the event, then the delivery fails.
func TestGivesUpAfterADay(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		clk := newClock(start)
		db := storetest.Open(t, b)
		rc := newReceiver("", clk)
		rc.unavailable.Store(true)
		srv := serve(t, rc)
		ep := endpoint(t, db, srv.url(), clk.Now())
		if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{}, clk.Now()); err != nil {
			t.Fatal(err)
		}
		w := webhook.New(webhook.Config{Store: db, Client: client(t), Now: clk.Now})
		for clk.Now().Before(start.Add(25 * time.Hour)) {
			drain(t, w)
			clk.Add(5 * time.Minute)
		}
		d := deliveries(t, db, ep.ID)[0]
		if d.Status != webhook.StatusFailed || d.Attempts < 20 || d.LastStatus == nil || *d.LastStatus != 503 {
			t.Fatalf("after 25 hours: %+v", d)
		}
		last := d.AttemptLog[len(d.AttemptLog)-1].AttemptedAt
		if last.Before(start.Add(23*time.Hour)) || last.After(start.Add(24*time.Hour+5*time.Minute)) {
			t.Fatalf("last attempt %s after the event; want about a day", last.Sub(start))
		}
	})
}

// TestTimeoutAndRedirect: an endpoint that does not answer in time, or
// answers with a redirect, has not received the event.
func TestTimeoutAndRedirect(t *testing.T) {
	b := storetest.Backends()[0]
	ctx := context.Background()
	clk := newClock(start)
	db := storetest.Open(t, b)
	release := make(chan struct{})
	slow := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })
	redirect := serve(t, http.RedirectHandler("https://example.com/", http.StatusFound))
	eps := []webhook.Endpoint{endpoint(t, db, slow.url(), clk.Now()), endpoint(t, db, redirect.url(), clk.Now())}
	if err := db.EnqueueWebhookEvent(ctx, webhooks.EventInvoiceIssued, map[string]any{}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	w := webhook.New(webhook.Config{Store: db, Client: nil, Now: clk.Now, Timeout: 50 * time.Millisecond})
	drain(t, w)
	for i, want := range []string{"no response within the timeout", "endpoint answered 302 Found"} {
		d := deliveries(t, db, eps[i].ID)[0]
		if d.Status != webhook.StatusPending || d.LastError != want || !d.NextAttemptAt.After(clk.Now()) {
			t.Errorf("endpoint %d: %+v, want error %q and a retry", i, d, want)
		}
	}
}

// TestRunNudgeAndStop: a running worker delivers when nudged, and stops
// when its context ends.
func TestRunNudgeAndStop(t *testing.T) {
	b := storetest.Backends()[0]
	clk := newClock(start)
	db := storetest.Open(t, b)
	rc := newReceiver("", clk)
	srv := serve(t, rc)
	ep := endpoint(t, db, srv.url(), clk.Now())
	rc.secret = ep.Secret
	// A long interval: only the nudge can make it look in this test.
	w := webhook.New(webhook.Config{Store: db, Client: client(t), Now: clk.Now, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	if err := db.EnqueueWebhookEvent(context.Background(), webhooks.EventSubscriptionChanged, map[string]any{}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	w.Nudge()
	// Wait until the worker has recorded the delivery, not only until the
	// receiver has it: cancelling between the two interrupts the attempt.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := deliveries(t, db, ep.ID)
		if len(ds) == 1 && ds[0].Status == webhook.StatusDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered 20 s after the nudge: %+v", ds)
		}
		select {
		case <-done:
			t.Fatal("Run returned before its context ended")
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	<-done
	rc.mu.Lock()
	n := len(rc.events)
	rc.mu.Unlock()
	if n != 1 {
		t.Fatalf("the receiver got %d events; want 1", n)
	}
}
