package metering

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestUnhurriedBatchesGather: unhurried batches wait for each other (up to
// UnhurriedDelay, here an hour), and commit together, at once, when a
// caller who waits on the commit arrives or when enough items queued. A
// lost wake-up hangs the test instead of passing.
func TestUnhurriedBatchesGather(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		db := storetest.Open(t, b)
		_, prefix, hash := auth.NewKey()
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: "gather", Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
			t.Fatal(err)
		}
		m := New(db, time.Now, nil)
		m.UnhurriedDelay = time.Hour
		reg := prometheus.NewRegistry()
		if err := m.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		event := func(id string) billing.UsageEvent {
			return billing.UsageEvent{EventID: id, UserID: "gather", Provider: "openai", Model: "gpt-4",
				Quantities: billing.Quantities{Input: 10, Output: 5}, StatusCode: 200, Timestamp: time.Now()}
		}
		queued := func(n int) { waitQueued(ctx, t, m, n) }
		commits := func() (n, events uint64) {
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range families {
				if mf.GetName() == "alwrity_ledger_commit_events" {
					h := mf.GetMetric()[0].GetHistogram()
					return h.GetSampleCount(), uint64(h.GetSampleSum())
				}
			}
			return 0, 0
		}

		// Five unhurried batches wait; a hurried one takes them along.
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				if _, err := m.Record(Unhurried(ctx), []billing.UsageEvent{event(fmt.Sprintf("slow-%d", i))}); err != nil {
					t.Error(err)
				}
			})
		}
		queued(5)
		if n, _ := commits(); n != 0 {
			t.Fatalf("%d commits before the hurried batch; want the unhurried ones waiting", n)
		}
		if _, err := m.Record(ctx, []billing.UsageEvent{event("hurried")}); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if n, events := commits(); n != 1 || events != 6 {
			t.Fatalf("%d commits of %d events; want the 6 batches in 1", n, events)
		}

		// Enough unhurried items commit without anyone hurried.
		for i := range unhurriedItems {
			wg.Go(func() {
				if _, err := m.Record(Unhurried(ctx), []billing.UsageEvent{event(fmt.Sprintf("many-%d", i))}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if _, events := commits(); events != 6+unhurriedItems {
			t.Fatalf("%d events committed; want %d", events, 6+unhurriedItems)
		}
	})
}

// waitQueued waits until n batches wait in m's commit lanes.
func waitQueued(ctx context.Context, t *testing.T, m *Meter, n int) {
	t.Helper()
	for {
		m.committer.mu.Lock()
		q := 0
		for _, l := range m.committer.lanes {
			q += len(l.queue)
		}
		m.committer.mu.Unlock()
		if q >= n {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d batches queued, want %d", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitRatesEveryBatchWithCurrentPrices: a batch rated with the
// cached prices waits for a group; meanwhile the prices change and
// another batch, rated with the new ones, joins it. The group must not
// pass as rated with the newest version: the first batch is rated again
// and both record the price in effect at their time.
func TestGroupCommitRatesEveryBatchWithCurrentPrices(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		db := storetest.Open(t, b)
		const user = "group-prices"
		_, prefix, hash := auth.NewKey()
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
			t.Fatal(err)
		}
		m := New(db, time.Now, nil)
		m.UnhurriedDelay = time.Hour
		at := time.Now().Add(-time.Minute)
		event := func(id string) billing.UsageEvent {
			return billing.UsageEvent{EventID: id, UserID: user, Provider: "openai", Model: "gpt-4",
				Quantities: billing.Quantities{Input: 1000, Output: 500}, StatusCode: 200, Timestamp: at}
		}
		// The seeded price: 0.03 per 1K in, 0.06 per 1K out.
		if r, err := m.Record(ctx, []billing.UsageEvent{event("warm")}); err != nil || r[0].Cost != money.MustParse("0.06") {
			t.Fatalf("warm-up: %+v, %v; want 0.06", r, err)
		}
		type answer struct {
			r   []billing.EventResult
			err error
		}
		early := make(chan answer, 1)
		go func() {
			r, err := m.Record(Unhurried(ctx), []billing.UsageEvent{event("rated-before")})
			early <- answer{r, err}
		}()
		waitQueued(ctx, t, m, 1)
		// Another replica changes the price from before the events' time.
		if _, err := db.CreatePrice(ctx, billing.Price{Provider: "openai", ModelName: "gpt-4", IsActive: true,
			Tier:          billing.PriceTier{Input: money.MustParse("0.00001"), Output: money.MustParse("0.00003")},
			EffectiveFrom: at.Add(-30 * time.Minute)}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := m.prices(ctx); err != nil {
			t.Fatal(err)
		}
		// A caller who waits takes the queued batch along.
		late, err := m.Record(ctx, []billing.UsageEvent{event("rated-after")})
		if err != nil {
			t.Fatal(err)
		}
		// The group fails on the stale version; the early batch, rated again,
		// waits for company (UnhurriedDelay): callers who wait take it along.
		var a answer
		for carriers := 0; a.r == nil && a.err == nil; carriers++ {
			select {
			case a = <-early:
			case <-time.After(20 * time.Millisecond):
				if _, err := m.Record(ctx, []billing.UsageEvent{event(fmt.Sprintf("carrier-%d", carriers))}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if a.err != nil {
			t.Fatal(a.err)
		}
		want := money.MustParse("0.025")
		if a.r[0].Cost != want || late[0].Cost != want {
			t.Errorf("recorded at %s and %s; want both at the price in effect, %s",
				a.r[0].Cost, late[0].Cost, want)
		}
		if err := m.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if ms, err := db.Reconcile(ctx); err != nil || len(ms) != 0 {
			t.Errorf("Reconcile = %+v, %v", ms, err)
		}
	})
}

// TestGroupAlertsMergeEveryBatch: a group's alert context holds every
// batch's plans and schedule anchors (without an anchor, late events of
// the calendar month before a subscription raise alerts against the new
// plan), and the oldest catalog version any batch was rated with.
func TestGroupAlertsMergeEveryBatch(t *testing.T) {
	anchor := time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC)
	job := func(user string, rated int64, anchored bool) *commitJob {
		ac := store.AlertContext{Plans: map[string]billing.Plan{user: {Name: user}}, RatedWith: rated}
		if anchored {
			ac.Anchors = map[string]time.Time{user: anchor}
		}
		return &commitJob{alerts: ac}
	}
	ac := groupAlerts([]*commitJob{job("a", 7, true), job("b", 0, false), job("c", 6, true), job("d", 7, false)})
	if len(ac.Plans) != 4 || !ac.Anchors["a"].Equal(anchor) || !ac.Anchors["c"].Equal(anchor) || len(ac.Anchors) != 2 {
		t.Errorf("merged plans %v and anchors %v; want four plans and the anchors of a and c", ac.Plans, ac.Anchors)
	}
	if ac.RatedWith != 6 {
		t.Errorf("rated with %d; want 6, the oldest version a batch was rated with", ac.RatedWith)
	}
	if ac := groupAlerts([]*commitJob{job("a", 0, false), job("b", 0, false)}); ac.RatedWith != 0 {
		t.Errorf("batches not rated from the cache: rated with %d; want 0 (nothing to check)", ac.RatedWith)
	}
}
