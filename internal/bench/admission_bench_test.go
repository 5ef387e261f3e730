package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// BenchmarkAdmission measures one admission cycle (reserve, then settle
// with the real usage) from 64 concurrent callers, in-process, and reports
// its latency percentiles: of the whole cycle, of the reservation (what a
// call waits for before it may go to the provider) and of the settle
// (which answers after the usage is committed).
//
// call=0 is a closed loop: each caller settles the moment its reservation
// returns and reserves again the moment the settle returns, so the 64
// callers saturate the meter and the cycle's latency is 64 / throughput
// (Little's law). call=5ms puts a provider call of 5 ms between the two
// on average (real LLM calls take far longer), so the 64 callers load the
// meter as 64 concurrent calls do; the cycle's latency excludes the call.
func BenchmarkAdmission(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, call := range []time.Duration{0, 5 * time.Millisecond, 50 * time.Millisecond} {
			b.Run(fmt.Sprintf("%s/call=%v", be.Name, call), func(b *testing.B) {
				benchmarkAdmission(b, be, call)
			})
		}
	}
}

func benchmarkAdmission(b *testing.B, be storetest.Backend, call time.Duration) {
	db := storetest.Open(b, be)
	ctx := context.Background()
	const callers = 64
	// Room enough that the limits are checked, never reached.
	plan := billing.Plan{Name: "bench-roomy", Tier: "enterprise", IsActive: true,
		TotalCallsLimit: billing.Ptr[int64](1 << 40), MonthlyCostLimit: billing.Ptr(money.MustParse("1000000"))}
	planID, err := db.CreatePlan(ctx, plan, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	users := make([]string, 8)
	for i := range users {
		users[i] = fmt.Sprintf("adm-u%d", i)
		p := billing.CalendarMonths().At(time.Now())
		if _, err := db.CreateSubscription(ctx, billing.Subscription{UserID: users[i], PlanID: planID, BillingCycle: "monthly",
			Status: billing.StatusActive, AutoRenew: true, Anchor: p.Start, CurrentPeriodStart: p.Start, CurrentPeriodEnd: p.End}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	m := metering.New(db, time.Now, nil)
	if d, err := time.ParseDuration(os.Getenv("ALWRITY_BENCH_COMMIT_LINGER")); err == nil {
		m.CommitLinger = d
	}
	// Steady state: one cycle per user first loads what the meter caches
	// (the user, the plan, the period's counters), which the 64 callers'
	// first cycles would otherwise all wait for — 2 % of the cycles of a
	// short run, enough to be its p99.
	for _, u := range users {
		r, err := m.Reserve(ctx, billing.ReserveRequest{UserID: u, Provider: "openai", Model: "gpt-4o-mini", Tokens: 2000})
		if err == nil {
			_, err = m.Settle(ctx, r.ID, billing.UsageEvent{Quantities: billing.Quantities{Input: 1}, StatusCode: 200, Timestamp: time.Now()})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	lat := make([][]time.Duration, callers)
	resLat := make([][]time.Duration, callers)
	setLat := make([][]time.Duration, callers)
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
				t1 := time.Now()
				if call > 0 {
					// Calls take from half to one and a half times call, so
					// the callers do not stay in step (64 callers started
					// together and sleeping alike would settle in waves of
					// 64, which real calls of varying lengths do not).
					time.Sleep(call/2 + rand.N(call))
				}
				t1s := time.Now()
				_, err = m.Settle(ctx, r.ID, billing.UsageEvent{Quantities: billing.Quantities{Input: 1200, Output: 300}, StatusCode: 200, Timestamp: time.Now()})
				if err != nil {
					b.Error(err)
					return
				}
				t2 := time.Now()
				lat[c] = append(lat[c], t1.Sub(t0)+t2.Sub(t1s))
				resLat[c] = append(resLat[c], t1.Sub(t0))
				setLat[c] = append(setLat[c], t2.Sub(t1s))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return
	}
	pct := func(ds []time.Duration, p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	reserves, settles := slices.Concat(resLat...), slices.Concat(setLat...)
	for _, ds := range [][]time.Duration{all, reserves, settles} {
		slices.Sort(ds)
	}
	b.ReportMetric(pct(all, 0.50), "p50-ms")
	b.ReportMetric(pct(all, 0.99), "p99-ms")
	b.ReportMetric(pct(reserves, 0.50), "reserve-p50-ms")
	b.ReportMetric(pct(reserves, 0.99), "reserve-p99-ms")
	b.ReportMetric(pct(settles, 0.50), "settle-p50-ms")
	b.ReportMetric(pct(settles, 0.99), "settle-p99-ms")
	b.ReportMetric(float64(len(all))/time.Since(start).Seconds(), "cycles/s")
}
