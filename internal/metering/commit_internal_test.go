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
		queued := func(n int) {
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
