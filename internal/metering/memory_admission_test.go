package metering_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestAdmissionUnderMixedLoad runs reservations, settles, releases,
// abandoned holds and plain recorded events from many goroutines at once,
// with the reservation journal writing holds immediately, soon or late
// (SQLite), and checks that no admission ever passed the limit and that
// the meter's counters, the database's counters and the ledger agree
// exactly afterwards.
func TestAdmissionUnderMixedLoad(t *testing.T) {
	for _, delay := range []time.Duration{0, time.Millisecond, time.Hour} {
		t.Run(fmt.Sprintf("journal-after-%s", delay), func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, b storetest.Backend) {
				f := newFixture(t, b, baseTime)
				f.m.SetJournalDelay(delay)
				const limit, workers, rounds = 40, 24, 12
				limited := []string{"mix-a", "mix-b"}
				for _, u := range limited {
					f.planUser(u, billing.Plan{Name: "mix-" + u, TotalCallsLimit: billing.Ptr[int64](limit)})
				}
				f.planUser("mix-free", billing.Plan{Name: "mix-unlimited"})
				period := billing.CalendarMonths().At(f.clk.Now())

				var settled, held, recorded [3]atomic.Int64 // per user: mix-a, mix-b, mix-free
				users := append(limited, "mix-free")
				var wg sync.WaitGroup
				for w := range workers {
					wg.Go(func() {
						rng := rand.New(rand.NewPCG(uint64(w), 7))
						for i := range rounds {
							u := rng.IntN(len(users))
							req := billing.ReserveRequest{UserID: users[u], Provider: "openai", Model: "gpt-4o-mini", Tokens: 500}
							switch op := rng.IntN(10); {
							case op == 0:
								// A call reported without a reservation.
								_, err := f.m.Record(f.ctx, []billing.UsageEvent{{EventID: fmt.Sprintf("mix-rec-%d-%d", w, i),
									UserID: users[u], Provider: "openai", Model: "gpt-4o-mini", StatusCode: 200,
									Quantities: billing.Quantities{Input: 10, Output: 5}, Timestamp: f.clk.Now()}})
								if err != nil {
									t.Errorf("record: %v", err)
									return
								}
								recorded[u].Add(1)
							default:
								r, err := f.m.Reserve(f.ctx, req)
								if billing.ErrorCode(err) == billing.CodeLimitExceeded {
									continue
								}
								if err != nil {
									t.Errorf("reserve: %v", err)
									return
								}
								switch {
								case op < 6:
									if _, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{StatusCode: 200, Timestamp: f.clk.Now(),
										Quantities: billing.Quantities{Input: int64(100 + rng.IntN(300)), Output: int64(rng.IntN(100))}}); err != nil {
										t.Errorf("settle: %v", err)
										return
									}
									settled[u].Add(1)
								case op < 8:
									if _, err := f.m.Release(f.ctx, r.ID); err != nil {
										t.Errorf("release: %v", err)
										return
									}
								default:
									held[u].Add(1) // abandoned: still held at the end
								}
							}
						}
					})
				}
				wg.Wait()
				if t.Failed() {
					return
				}
				for u, user := range users {
					total, reserved, _, _, err := f.counters(user, period, "openai")
					if err != nil {
						t.Fatal(err)
					}
					wantUsed := settled[u].Load() + recorded[u].Load()
					if total.Calls != wantUsed || reserved.Calls != held[u].Load() {
						t.Errorf("%s: %d calls used and %d held; want %d (%d settled + %d recorded) and %d",
							user, total.Calls, reserved.Calls, wantUsed, settled[u].Load(), recorded[u].Load(), held[u].Load())
					}
					if u < len(limited) && settled[u].Load()+held[u].Load() > limit {
						t.Errorf("%s: %d settled + %d held calls were admitted under a limit of %d",
							user, settled[u].Load(), held[u].Load(), limit)
					}
				}
				f.consistent()
			})
		})
	}
}

// TestHeldReservationsSurviveRestart: holds outlive the meter that made
// them (on SQLite through the journal, which Close writes), count against
// the limit in the next one, and can be settled there.
func TestHeldReservationsSurviveRestart(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		f.m.SetJournalDelay(time.Hour) // only Close writes them
		f.planUser("restart-user", billing.Plan{Name: "five-calls", TotalCallsLimit: billing.Ptr[int64](5)})
		req := billing.ReserveRequest{UserID: "restart-user", Provider: "openai", Model: "gpt-4", Tokens: 100}
		var first []billing.Reservation
		for range 3 {
			r, err := f.m.Reserve(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			first = append(first, r)
		}
		if err := f.m.Close(f.ctx); err != nil {
			t.Fatalf("close: %v", err)
		}

		next := metering.New(f.db, f.clk.Now, nil)
		admitted := 0
		for range 4 {
			if _, err := next.Reserve(f.ctx, req); err == nil {
				admitted++
			} else if billing.ErrorCode(err) != billing.CodeLimitExceeded {
				t.Fatal(err)
			}
		}
		if admitted != 2 {
			t.Fatalf("after a restart with 3 of 5 calls held, %d of 4 reservations were admitted; want 2", admitted)
		}
		got, err := next.GetReservation(f.ctx, first[0].ID)
		if err != nil || got.Status != billing.ReservationHeld {
			t.Fatalf("reservation made before the restart: %+v, %v; want held", got, err)
		}
		res, err := next.Settle(f.ctx, first[0].ID, billing.UsageEvent{StatusCode: 200, Timestamp: f.clk.Now(),
			Quantities: billing.Quantities{Input: 50, Output: 10}})
		if err != nil || res.Status != billing.EventRecorded {
			t.Fatalf("settle after the restart: %+v, %v", res, err)
		}
		if _, err := next.Release(f.ctx, first[1].ID); err != nil {
			t.Fatal(err)
		}
		f.m = next
		total, reserved, _, _, err := f.counters("restart-user", billing.CalendarMonths().At(f.clk.Now()), "openai")
		if err != nil {
			t.Fatal(err)
		}
		if total.Calls != 1 || reserved.Calls != 3 {
			t.Fatalf("after settling one and releasing one: %d used, %d held; want 1 and 3", total.Calls, reserved.Calls)
		}
		f.consistent()
	})
}

// TestLostHoldStillRecordsUsage: on SQLite a hold younger than the journal
// delay dies with a crashed process. Its units are free after the restart,
// and the call's usage, reported later with the lost reservation's id, is
// recorded (nothing to release). On PostgreSQL the hold is durable and the
// same report settles it.
func TestLostHoldStillRecordsUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		f.m.SetJournalDelay(time.Hour)
		f.planUser("lost-user", billing.Plan{Name: "one-call", TotalCallsLimit: billing.Ptr[int64](1)})
		req := billing.ReserveRequest{UserID: "lost-user", Provider: "openai", Model: "gpt-4", Tokens: 100}
		r, err := f.m.Reserve(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// The process dies: no Close, no journal.
		next := metering.New(f.db, f.clk.Now, nil)
		_, err = next.Reserve(f.ctx, req)
		durable := b.Name == "postgres"
		switch {
		case durable && billing.ErrorCode(err) != billing.CodeLimitExceeded:
			t.Fatalf("PostgreSQL: a second reservation against a limit of 1 = %v; want limit_exceeded", err)
		case !durable && err != nil:
			t.Fatalf("SQLite: the lost hold still counts after the restart: %v", err)
		}
		res, err := next.Record(f.ctx, []billing.UsageEvent{{EventID: "lost-call", UserID: "lost-user", Provider: "openai",
			Model: "gpt-4", StatusCode: 200, Quantities: billing.Quantities{Input: 100, Output: 20}, Timestamp: f.clk.Now(),
			ReservationID: r.ID}})
		if err != nil || res[0].Status != billing.EventRecorded {
			t.Fatalf("usage of the lost reservation's call: %+v, %v; want recorded", res, err)
		}
		f.m = next
		p := billing.CalendarMonths().At(f.clk.Now())
		total, _, _, _, err := f.counters("lost-user", p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		wantUsed := int64(1)
		if total.Calls != wantUsed {
			t.Fatalf("%d calls used; want %d", total.Calls, wantUsed)
		}
		f.consistent()
	})
}

// TestSoftLimitPlansAdmitAboveTheLimit: a soft-limit plan admits calls and
// tokens above its limits (they are billed as overage) but keeps its
// monthly cost limit hard.
func TestSoftLimitPlansAdmitAboveTheLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.planUser("soft-user", billing.Plan{Name: "soft", SoftLimits: true, TotalCallsLimit: billing.Ptr[int64](2),
			MonthlyCostLimit: billing.Ptr(usd("1")), OveragePerCall: billing.Ptr(usd("0.01")),
			ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: billing.Ptr[int64](1), Tokens: billing.Ptr[int64](10)}}})
		for i := range 5 {
			if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "soft-user", Provider: "openai", Model: "gpt-4", Tokens: 100, Cost: usd("0.1")}); err != nil {
				t.Fatalf("reservation %d above the soft limits: %v", i+1, err)
			}
		}
		_, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "soft-user", Provider: "openai", Model: "gpt-4", Cost: usd("0.6")})
		if be := billingErr(t, err, billing.CodeLimitExceeded); be.Limit == nil || be.Limit.Key != "monthly_cost" {
			t.Fatalf("a reservation past the cost limit was refused by %+v; want monthly_cost", be.Limit)
		}
	})
}

// TestAlertsFromSettledReservations: alerts raised by settles, whose
// limits the meter checks against its own counters on SQLite, appear at
// exactly 80 % and 100 % like those of recorded batches.
func TestAlertsFromSettledReservations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.planUser("alert-user", billing.Plan{Name: "ten-calls", TotalCallsLimit: billing.Ptr[int64](10)})
		period := billing.CalendarMonths().At(f.clk.Now()).Key
		cycle := func(n int) {
			for range n {
				r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "alert-user", Provider: "openai", Model: "gpt-4", Tokens: 10})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{StatusCode: 200, Timestamp: f.clk.Now(),
					Quantities: billing.Quantities{Input: 5, Output: 5}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		types := func() []string {
			var out []string
			for _, a := range f.alerts("alert-user", period) {
				out = append(out, fmt.Sprintf("%s@%d", a.Type, a.ThresholdPercentage))
			}
			slices.Sort(out)
			return out
		}
		cycle(7)
		if got := types(); len(got) != 0 {
			t.Fatalf("alerts after 7 of 10 calls: %v; want none", got)
		}
		cycle(1)
		if got := types(); !slices.Equal(got, []string{"usage_warning@80"}) {
			t.Fatalf("alerts after 8 of 10 calls: %v; want the 80 %% warning", got)
		}
		cycle(2)
		if got := types(); !slices.Equal(got, []string{"limit_reached@100", "usage_warning@80"}) {
			t.Fatalf("alerts after 10 of 10 calls: %v; want the warning and limit_reached", got)
		}
		f.consistent()
	})
}

// TestRacingSettlesRecordOnce: settles of one held reservation racing
// with different events record exactly one call; the others are refused
// as conflicts, and nothing is left held.
func TestRacingSettlesRecordOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.planUser("race-settle", billing.Plan{Name: "race-settle", TotalCallsLimit: billing.Ptr[int64](1000)})
		for round := range 20 {
			r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "race-settle", Provider: "openai", Model: "gpt-4", Tokens: 10})
			if err != nil {
				t.Fatal(err)
			}
			var recorded, conflicts atomic.Int64
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					_, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{EventID: fmt.Sprintf("race-%d-%d", round, i), StatusCode: 200,
						Timestamp: f.clk.Now(), Quantities: billing.Quantities{Input: 5, Output: 5}})
					switch billing.ErrorCode(err) {
					case "":
						recorded.Add(1)
					case billing.CodeConflict:
						conflicts.Add(1)
					default:
						t.Errorf("settle: %v", err)
					}
				})
			}
			wg.Wait()
			if recorded.Load() != 1 || conflicts.Load() != 3 {
				t.Fatalf("round %d: %d settles recorded, %d refused; want 1 and 3", round, recorded.Load(), conflicts.Load())
			}
		}
		p := billing.CalendarMonths().At(f.clk.Now())
		total, held, _, _, err := f.counters("race-settle", p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		if total.Calls != 20 || held.Calls != 0 {
			t.Fatalf("%d calls used, %d held; want 20 and 0", total.Calls, held.Calls)
		}
		f.consistent()
	})
}

// TestSweepPutsDriftedCountersRight: should the summaries ever change
// behind the meter's back (here an operator's UPDATE), the next sweep
// makes the in-memory admission counters follow the database again.
func TestSweepPutsDriftedCountersRight(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		f.planUser("drift-admit", billing.Plan{Name: "drift-admit", TotalCallsLimit: billing.Ptr[int64](5)})
		req := billing.ReserveRequest{UserID: "drift-admit", Provider: "openai", Model: "gpt-4", Tokens: 10}
		r, err := f.m.Reserve(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{StatusCode: 200, Timestamp: f.clk.Now(),
			Quantities: billing.Quantities{Input: 5, Output: 5}}); err != nil {
			t.Fatal(err)
		}
		raw := rawSQL(t, url)
		if _, err := raw.ExecContext(f.ctx, `UPDATE usage_summaries SET total_calls = 5 WHERE user_id = 'drift-admit'`); err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Sweep(f.ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := f.m.Reserve(f.ctx, req); billing.ErrorCode(err) != billing.CodeLimitExceeded {
			t.Fatalf("reservation after the summaries say 5 of 5 calls are used: %v; want limit_exceeded", err)
		}
	})
}

// TestSettleOfALostReservation: on SQLite a hold younger than the journal
// delay is lost in a crash, and a reservation is purged after its
// retention; the settle of such a reservation still records its call when
// the event names its user and provider (a resend answers the first
// result), and otherwise says what to send instead of a bare not_found.
func TestSettleOfALostReservation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.m.SetJournalDelay(time.Hour)
		f.keyUser("lost-user")
		id := "rsv_lost"
		if b.Name == "sqlite" {
			r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "lost-user", Provider: "openai", Model: "gpt-4", Tokens: 100})
			if err != nil {
				t.Fatal(err)
			}
			id = r.ID
			f.m = metering.New(f.db, f.clk.Now, nil) // the process dies: no Close, no journal
		}
		ev := billing.UsageEvent{EventID: "lost-settle", StatusCode: 200, Model: "gpt-4",
			Quantities: billing.Quantities{Input: 100, Output: 20}, Timestamp: f.clk.Now()}
		_, err := f.m.Settle(f.ctx, id, ev)
		if be := billingErr(t, err, billing.CodeNotFound); !strings.Contains(be.Message, "user_id and provider") {
			t.Errorf("settle without a user = %q; want it to say what to send", be.Message)
		}
		ev.UserID, ev.Provider = "lost-user", "openai"
		for _, want := range []string{billing.EventRecorded, billing.EventDuplicate} {
			res, err := f.m.Settle(f.ctx, id, ev)
			if err != nil || res.Status != want || res.Cost != usd("0.0042") {
				t.Fatalf("settle naming the user = %+v, %v; want %s at 0.0042", res, err, want)
			}
		}
		f.consistent()
	})
}
