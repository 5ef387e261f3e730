package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// BenchmarkAdmission measures one admission cycle (reserve, then settle
// with the real usage) from 64 concurrent callers, in-process, and reports
// its latency percentiles. Every cycle commits two transactions.
func BenchmarkAdmission(b *testing.B) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			db := storetest.Open(b, be)
			ctx := context.Background()
			const callers = 64
			users := make([]string, 8)
			for i := range users {
				users[i] = fmt.Sprintf("adm-u%d", i)
				_, prefix, hash := auth.NewKey()
				if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: users[i], Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
					b.Fatal(err)
				}
			}
			// Enterprise-like room: the limits are checked, never reached.
			m := metering.New(db, time.Now, nil)
			lat := make([][]time.Duration, callers)
			var wg sync.WaitGroup
			work := make(chan int, b.N)
			for i := range b.N {
				work <- i
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range work {
						t0 := time.Now()
						user := users[i%len(users)]
						r, err := m.Reserve(ctx, billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4o-mini", Tokens: 2000})
						if err != nil {
							b.Error(err)
							return
						}
						_, err = m.Settle(ctx, r.ID, billing.UsageEvent{Quantities: billing.Quantities{Input: 1200, Output: 300}, StatusCode: 200, Timestamp: time.Now()})
						if err != nil {
							b.Error(err)
							return
						}
						lat[c] = append(lat[c], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) == 0 {
				return
			}
			pct := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(all))/time.Since(start).Seconds(), "cycles/s")
		})
	}
}
