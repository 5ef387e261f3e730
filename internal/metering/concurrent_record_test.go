package metering_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestConcurrentOverlappingBatches has several clients send overlapping
// batches of the same events (retries), for the same users, in different
// orders, at once. Every batch must succeed (no deadlock between
// transactions that take the same rows in different orders), and every
// event must count once.
func TestConcurrentOverlappingBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		users := []string{"overlap-a", "overlap-b", "overlap-c"}
		for _, u := range users {
			f.keyUser(u)
		}
		// A pool of events; each client sends random subsets of it in random
		// order, so clients insert the same ids and update the same summary
		// rows in different orders.
		pool := make([]billing.UsageEvent, 60)
		for i := range pool {
			e := gpt4Event(fmt.Sprintf("overlap-%d", i), users[i%len(users)], baseTime.Add(-time.Duration(i)*time.Hour), 100, 50)
			if i%4 == 0 {
				e.Provider, e.Model = "anthropic", "claude-3"
			}
			pool[i] = e
		}
		const clients, batches = 8, 6
		var wg sync.WaitGroup
		errs := make(chan error, clients*batches)
		start := make(chan struct{})
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				<-start
				for range batches {
					perm := rng.Perm(len(pool))[:20]
					events := make([]billing.UsageEvent, len(perm))
					for i, j := range perm {
						events[i] = pool[j]
					}
					if _, err := f.m.Record(f.ctx, events); err != nil {
						errs <- err
					}
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent batch failed: %v", err)
		}
		// Record the whole pool once more; afterwards each event counts once.
		f.record(pool...)
		for _, u := range users {
			var want int64
			for _, e := range pool {
				if e.UserID == u {
					want++
				}
			}
			if got := f.usage(u, billing.Period{Key: billing.AllTime}).Total.Calls; got != want {
				t.Errorf("%s: %d calls; want %d", u, got, want)
			}
		}
		f.consistent()
	})
}
