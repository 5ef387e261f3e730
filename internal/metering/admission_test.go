package metering_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// contenders is how many goroutines race for the last units of a limit.
const contenders = 200

// reserveRace starts n reservations at once and returns the admitted ones
// and the errors of the refused ones.
func reserveRace(f *fixture, n int, req billing.ReserveRequest) ([]billing.Reservation, []error) {
	var (
		mu       sync.Mutex
		admitted []billing.Reservation
		refused  []error
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			r, err := f.m.Reserve(f.ctx, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				refused = append(refused, err)
				return
			}
			admitted = append(admitted, r)
		})
	}
	close(start)
	wg.Wait()
	return admitted, refused
}

// checkRace fails the test unless exactly want of the race were admitted
// and every refusal names the limit.
func checkRace(t *testing.T, round string, admitted []billing.Reservation, refused []error, want int, limit billing.LimitInfo) {
	t.Helper()
	if len(admitted) != want || len(admitted)+len(refused) != contenders {
		t.Fatalf("%s: %d of %d reservations admitted, %d refused; want exactly %d admitted",
			round, len(admitted), contenders, len(refused), want)
	}
	for _, err := range refused {
		be := billingErr(t, err, billing.CodeLimitExceeded)
		if be.Limit == nil {
			t.Fatalf("%s: refusal %q carries no LimitInfo", round, be.Message)
		}
		got := *be.Limit
		if got.Key != limit.Key || got.Limit != limit.Limit || got.Provider != limit.Provider || got.Money != limit.Money {
			t.Fatalf("%s: refusal names limit %+v; want key %q, limit %d, provider %q, money %v",
				round, got, limit.Key, limit.Limit, limit.Provider, limit.Money)
		}
	}
}

// checkNothingHeld fails the test unless no units of user are reserved.
func checkNothingHeld(f *fixture, user, provider string) {
	f.t.Helper()
	p := billing.CalendarMonths().At(f.clk.Now())
	_, rt, _, rp, err := f.counters(user, p, provider)
	if err != nil {
		f.t.Fatalf("counters: %v", err)
	}
	if rt != (billing.Counters{}) || rp != (billing.Counters{}) {
		f.t.Fatalf("reserved counters after settling and releasing everything: total %+v, %s %+v; want zeros", rt, provider, rp)
	}
	f.consistent()
}

// TestReserveAdmitsExactlyTheRemainingUnits races 200 reservations against
// every kind of limit with room for 10, settles half with smaller real
// usage, releases the rest, and races again for the freed room.
func TestReserveAdmitsExactlyTheRemainingUnits(t *testing.T) {
	type limitCase struct {
		name  string
		setup func(f *fixture, user string)
		req   billing.ReserveRequest // UserID filled in per case
		limit billing.LimitInfo      // the refusing limit (Key, Limit, Provider, Money)
		// Real usage of each settled reservation, and how many the second
		// race admits once five settled with it and five were released.
		settle billing.Quantities
		again  int
	}
	cases := []limitCase{
		{
			name: "total calls",
			setup: func(f *fixture, user string) {
				f.planUser(user, billing.Plan{Name: "calls-10", TotalCallsLimit: billing.Ptr[int64](10)})
			},
			req:    billing.ReserveRequest{Provider: "openai", Model: "gpt-4"},
			limit:  billing.LimitInfo{Key: "total_calls", Limit: 10},
			settle: billing.Quantities{Input: 100, Output: 50},
			again:  5, // 5 settled calls of 10
		},
		{
			name: "total calls after recorded usage",
			setup: func(f *fixture, user string) {
				f.keyUser(user) // Free: 1,000 calls a month
				events := make([]billing.UsageEvent, 990)
				for i := range events {
					events[i] = gpt4Event(fmt.Sprintf("%s-pre-%d", user, i), user, f.clk.Now().Add(-time.Duration(i)*time.Second), 10, 5)
				}
				f.recordInBatches(events)
			},
			req:    billing.ReserveRequest{Provider: "gemini", Model: "gemini-2.5-flash"},
			limit:  billing.LimitInfo{Key: "total_calls", Limit: 1000},
			settle: billing.Quantities{Input: 100, Output: 50},
			again:  5, // 995 of 1,000
		},
		{
			name: "provider calls",
			setup: func(f *fixture, user string) {
				f.planUser(user, billing.Plan{Name: "openai-calls-10",
					ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: billing.Ptr[int64](10)}}})
			},
			req:    billing.ReserveRequest{Provider: "openai", Model: "gpt-4"},
			limit:  billing.LimitInfo{Key: "openai_calls", Provider: "openai", Limit: 10},
			settle: billing.Quantities{Input: 100, Output: 50},
			again:  5,
		},
		{
			name: "provider tokens",
			setup: func(f *fixture, user string) {
				f.planUser(user, billing.Plan{Name: "openai-tokens-3000", TotalCallsLimit: billing.Ptr[int64](1000),
					ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](3000)}}})
			},
			req:    billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Tokens: 300},
			limit:  billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Limit: 3000},
			settle: billing.Quantities{Input: 100, Output: 50},
			again:  7, // 5 × 150 tokens used: 2,250 left, 7 × 300
		},
		{
			name: "monthly cost",
			setup: func(f *fixture, user string) {
				f.planUser(user, billing.Plan{Name: "cost-1usd", TotalCallsLimit: billing.Ptr[int64](1000),
					MonthlyCostLimit: billing.Ptr(usd("1"))})
			},
			req:    billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Cost: usd("0.1")},
			limit:  billing.LimitInfo{Key: "monthly_cost", Limit: int64(usd("1")), Money: true},
			settle: billing.Quantities{Input: 100, Output: 50}, // 0.006 USD on gpt-4
			again:  9,                                          // 0.03 used: 0.97 left, 9 × 0.1
		},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f.t = t
				user := fmt.Sprintf("race-user-%d", i)
				c.setup(f, user)
				req := c.req
				req.UserID = user
				period := billing.CalendarMonths().At(f.clk.Now())
				before := f.usage(user, period).Total

				admitted, refused := reserveRace(f, contenders, req)
				checkRace(t, "first race", admitted, refused, 10, c.limit)
				_, held, _, heldProv, err := f.counters(user, period, req.Provider)
				if err != nil {
					t.Fatal(err)
				}
				if held.Calls != 10 || heldProv.Calls != 10 {
					t.Fatalf("reserved calls after the race: total %d, %s %d; want 10 and 10", held.Calls, req.Provider, heldProv.Calls)
				}
				f.consistent()

				// Settle half with smaller real usage (twice: the second is
				// a no-op), release the rest.
				wantCost := money.Amount(0)
				for j, r := range admitted {
					if j >= 5 {
						if _, err := f.m.Release(f.ctx, r.ID); err != nil {
							t.Fatalf("release %s: %v", r.ID, err)
						}
						continue
					}
					ev := billing.UsageEvent{UserID: user, Provider: req.Provider, Model: req.Model, StatusCode: 200,
						ResponseTime: 0.3, Timestamp: f.clk.Now(), Quantities: c.settle}
					res, err := f.m.Settle(f.ctx, r.ID, ev)
					if err != nil {
						t.Fatalf("settle %s: %v", r.ID, err)
					}
					if res.Status != billing.EventRecorded {
						t.Fatalf("settle %s: status %q; want %q", r.ID, res.Status, billing.EventRecorded)
					}
					again, err := f.m.Settle(f.ctx, r.ID, ev)
					if err != nil || again.Status != billing.EventDuplicate || again.Cost != res.Cost {
						t.Fatalf("settle %s again = %+v, %v; want the first result as a duplicate", r.ID, again, err)
					}
					if wantCost, err = wantCost.Add(res.Cost); err != nil {
						t.Fatal(err)
					}
				}
				checkNothingHeld(f, user, req.Provider)
				after := f.usage(user, period).Total
				if after.Calls != before.Calls+5 {
					t.Fatalf("calls after settling 5: %d; want %d", after.Calls, before.Calls+5)
				}
				if got := after.Cost - before.Cost; got != wantCost {
					t.Fatalf("cost added by settling: %s; want %s", got.Dollars(), wantCost.Dollars())
				}

				// The freed room admits again, exactly.
				admitted, refused = reserveRace(f, contenders, req)
				checkRace(t, "second race", admitted, refused, c.again, c.limit)
				f.consistent()
				for _, r := range admitted {
					if _, err := f.m.Release(f.ctx, r.ID); err != nil {
						t.Fatalf("release %s: %v", r.ID, err)
					}
				}
				checkNothingHeld(f, user, req.Provider)
			})
		}
	})
}

// TestSweepReleasesExpiredReservations holds reservations with a one-minute
// TTL, moves the injected clock past it and sweeps.
func TestSweepReleasesExpiredReservations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "sweep-user"
		f.planUser(user, billing.Plan{Name: "calls-4", TotalCallsLimit: billing.Ptr[int64](4)})
		period := billing.CalendarMonths().At(f.clk.Now())
		req := billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4", TTL: time.Minute}

		var short []billing.Reservation
		for range 3 {
			r, err := f.m.Reserve(f.ctx, req)
			if err != nil {
				t.Fatalf("reserve: %v", err)
			}
			if want := baseTime.Add(time.Minute); !r.ExpiresAt.Equal(want) {
				t.Fatalf("reservation expires at %s; want %s", r.ExpiresAt, want)
			}
			short = append(short, r)
		}
		longReq := req
		longReq.TTL = 10 * time.Minute
		long, err := f.m.Reserve(f.ctx, longReq)
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		_, err = f.m.Reserve(f.ctx, req)
		if be := billingErr(t, err, billing.CodeLimitExceeded); be.Limit == nil || be.Limit.Key != "total_calls" {
			t.Fatalf("fifth reservation refused by %+v; want total_calls", be.Limit)
		}

		// Nothing has expired yet.
		if n, err := f.m.Sweep(f.ctx); err != nil || n != 0 {
			t.Fatalf("sweep before expiry = %d, %v; want 0", n, err)
		}
		f.clk.Advance(2 * time.Minute)
		if n, err := f.m.Sweep(f.ctx); err != nil || n != 3 {
			t.Fatalf("sweep after 2 minutes = %d, %v; want 3", n, err)
		}
		if n, err := f.m.Sweep(f.ctx); err != nil || n != 0 {
			t.Fatalf("second sweep = %d, %v; want 0", n, err)
		}
		for _, r := range short {
			got, err := f.m.GetReservation(f.ctx, r.ID)
			if err != nil || got.Status != billing.ReservationExpired {
				t.Fatalf("reservation %s after sweep: %+v, %v; want expired", r.ID, got, err)
			}
		}
		if got, err := f.m.GetReservation(f.ctx, long.ID); err != nil || got.Status != billing.ReservationHeld {
			t.Fatalf("10-minute reservation after sweep: %+v, %v; want held", got, err)
		}
		_, held, _, _, err := f.counters(user, period, "openai")
		if err != nil || held.Calls != 1 {
			t.Fatalf("reserved calls after sweep = %d, %v; want 1", held.Calls, err)
		}
		f.consistent()

		// The released room admits again: 3 more, then the limit.
		var again []billing.Reservation
		for range 3 {
			r, err := f.m.Reserve(f.ctx, req)
			if err != nil {
				t.Fatalf("reserve after sweep: %v", err)
			}
			again = append(again, r)
		}
		if _, err := f.m.Reserve(f.ctx, req); billing.ErrorCode(err) != billing.CodeLimitExceeded {
			t.Fatalf("reserve beyond the limit after sweep: %v; want limit_exceeded", err)
		}

		// A call whose reservation expired still happened: settling it
		// records the usage, once.
		ev := gpt4Event("late-call", user, f.clk.Now(), 1000, 500)
		res, err := f.m.Settle(f.ctx, short[0].ID, ev)
		if err != nil {
			t.Fatalf("settle expired reservation: %v", err)
		}
		if res.Status != billing.EventRecorded || res.Cost != usd("0.06") {
			t.Fatalf("settle expired reservation = %+v; want recorded at 0.06", res)
		}
		res2, err := f.m.Settle(f.ctx, short[0].ID, ev)
		if err != nil || res2.Status != billing.EventDuplicate || res2.Cost != res.Cost {
			t.Fatalf("settle expired reservation again = %+v, %v; want the first result as a duplicate", res2, err)
		}
		other := gpt4Event("another-call", user, f.clk.Now(), 1000, 500)
		if _, err := f.m.Settle(f.ctx, short[0].ID, other); billing.ErrorCode(err) != billing.CodeConflict {
			t.Fatalf("settle expired reservation with a different event: %v; want conflict", err)
		}
		if got, err := f.m.GetReservation(f.ctx, short[0].ID); err != nil || got.Status != billing.ReservationExpired || got.EventID != "late-call" {
			t.Fatalf("expired reservation after its settle: %+v, %v; want expired with event late-call", got, err)
		}
		u := f.usage(user, period).Total
		if u.Calls != 1 || u.Cost != usd("0.06") {
			t.Fatalf("usage after settling an expired reservation: %d calls, %s; want 1 call, 0.06", u.Calls, u.Cost.Dollars())
		}
		// Releasing or sweeping it changes nothing.
		if _, err := f.m.Release(f.ctx, short[1].ID); err != nil {
			t.Fatalf("release expired reservation: %v", err)
		}
		f.consistent()

		// Release what is still held; the counters return to zero.
		for _, r := range append(again, long) {
			if _, err := f.m.Release(f.ctx, r.ID); err != nil {
				t.Fatalf("release %s: %v", r.ID, err)
			}
		}
		checkNothingHeld(f, user, "openai")
	})
}

// TestRefusalNamesTheLimitThatRefused checks that a refusal by a provider
// limit is not blamed on the period's total, even when the call's own
// (rolled back) hold would have filled the total too.
func TestRefusalNamesTheLimitThatRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "refusal-user"
		f.planUser(user, billing.Plan{Name: "calls-10-openai-5", TotalCallsLimit: billing.Ptr[int64](10),
			ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: billing.Ptr[int64](5)}}})
		reserve := func(provider string) error {
			_, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: user, Provider: provider, Model: "m"})
			return err
		}
		for range 4 {
			if err := reserve("gemini"); err != nil {
				t.Fatalf("reserve gemini: %v", err)
			}
		}
		for range 5 {
			if err := reserve("openai"); err != nil {
				t.Fatalf("reserve openai: %v", err)
			}
		}
		// 9 of 10 calls and 5 of 5 openai calls are held: openai refuses.
		be := billingErr(t, reserve("openai"), billing.CodeLimitExceeded)
		want := billing.LimitInfo{Key: "openai_calls", Provider: "openai", Used: 0, Reserved: 5, Requested: 1, Limit: 5,
			Period: billing.CalendarMonths().At(baseTime).Key}
		if be.Limit == nil || *be.Limit != want {
			t.Fatalf("refusal limit = %+v; want %+v", be.Limit, want)
		}
		// The tenth call may still go to another provider, then the total
		// refuses.
		if err := reserve("anthropic"); err != nil {
			t.Fatalf("reserve the tenth call: %v", err)
		}
		be = billingErr(t, reserve("anthropic"), billing.CodeLimitExceeded)
		want = billing.LimitInfo{Key: "total_calls", Reserved: 10, Requested: 1, Limit: 10, Period: want.Period}
		if be.Limit == nil || *be.Limit != want {
			t.Fatalf("refusal limit = %+v; want %+v", be.Limit, want)
		}
		f.consistent()
	})
}

// TestReserveRefusesUnknownUser: a reservation for a user the service does
// not know could never be settled (Record refuses unknown users), so it
// would hold units until it expired; it is refused up front.
func TestReserveRefusesUnknownUser(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		_, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "ghost", Provider: "openai", Model: "gpt-4"})
		be := billingErr(t, err, billing.CodeInvalid)
		if len(be.Fields) != 1 || be.Fields[0].Location != "body.user_id" {
			t.Fatalf("refusal fields %+v; want body.user_id", be.Fields)
		}
		f.keyUser("ghost")
		if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "ghost", Provider: "openai", Model: "gpt-4"}); err != nil {
			t.Fatalf("reserve for a known user: %v", err)
		}
		f.consistent()
	})
}

// TestHeldReservationsCheckSeesBrokenRows: a held reservation that names a
// settling event contradicts the ledger, and the consistency check says so.
func TestHeldReservationsCheckSeesBrokenRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		f.keyUser("drift-user")
		if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "drift-user", Provider: "openai", Model: "gpt-4", Tokens: 300}); err != nil {
			t.Fatal(err)
		}
		f.consistent()
		raw := rawSQL(t, url)
		if _, err := raw.ExecContext(f.ctx, `UPDATE reservations SET event_id = 'evt-never-recorded'
			WHERE user_id = 'drift-user'`); err != nil {
			t.Fatal(err)
		}
		if n, err := f.db.HeldReservationsMismatch(f.ctx); err != nil || n != 1 {
			t.Fatalf("HeldReservationsMismatch after naming an unrecorded event = %d, %v; want 1", n, err)
		}
	})
}

// TestReserveRefusesALimitExactlyReached: a user whose monthly cost or
// provider tokens are used up to the limit exactly is refused the next
// call even when the request names no tokens and no cost (the middleware
// and /reserve clients that do not estimate): a call always uses
// something. Both databases name the same limit when several are reached.
func TestReserveRefusesALimitExactlyReached(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		period := billing.CalendarMonths().At(baseTime).Key
		cases := []struct {
			user string
			plan billing.Plan
			want billing.LimitInfo
		}{
			{"cost-reached", billing.Plan{Name: "cost-0.06", MonthlyCostLimit: billing.Ptr(usd("0.06"))},
				billing.LimitInfo{Key: "monthly_cost", Used: int64(usd("0.06")), Requested: int64(metering.MinHeldCost),
					Limit: int64(usd("0.06")), Money: true}},
			{"tokens-reached", billing.Plan{Name: "openai-1500-tokens",
				ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](1500)}}},
				billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Used: 1500, Requested: metering.MinHeldTokens, Limit: 1500}},
			// Both reached: the provider's tokens come before the cost.
			{"both-reached", billing.Plan{Name: "both", MonthlyCostLimit: billing.Ptr(usd("0.06")),
				ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](1500)}}},
				billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Used: 1500, Requested: metering.MinHeldTokens, Limit: 1500}},
		}
		for _, c := range cases {
			f.planUser(c.user, c.plan)
			// gpt-4, 1,000 in + 500 out: 0.06 USD and 1,500 tokens.
			f.record(gpt4Event("evt-"+c.user, c.user, baseTime.Add(-time.Minute), 1000, 500))
			_, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: c.user, Provider: "openai", Model: "gpt-4"})
			be := billingErr(t, err, billing.CodeLimitExceeded)
			want := c.want
			want.Period = period
			if be.Limit == nil || *be.Limit != want {
				t.Fatalf("%s: refusal limit = %+v; want %+v", c.user, be.Limit, want)
			}
			pf, err := f.m.Preflight(f.ctx, c.user, []metering.PreflightOp{{Provider: "openai", Model: "gpt-4"}})
			if err != nil {
				t.Fatalf("%s: preflight: %v", c.user, err)
			}
			if pf.CanProceed || pf.Checks[0].Binding == nil || pf.Checks[0].Binding.Key != c.want.Key {
				t.Fatalf("%s: preflight can proceed %v, binding %+v; want refused by %s", c.user, pf.CanProceed, pf.Checks[0].Binding, c.want.Key)
			}
			// Another provider is not limited by openai's tokens.
			if c.plan.MonthlyCostLimit == nil {
				if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: c.user, Provider: "gemini", Model: "m"}); err != nil {
					t.Fatalf("%s: reserve gemini: %v", c.user, err)
				}
			}
		}
		f.consistent()
	})
}

// TestReserveRefusesUnstorableText: a model or user id the databases
// cannot store (a NUL, bytes that are not UTF-8) is a 4xx naming the
// field, not a database error (which the gateway would read as an outage).
func TestReserveRefusesUnstorableText(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.keyUser("u1")
		for field, req := range map[string]billing.ReserveRequest{
			"body.model":   {UserID: "u1", Provider: "openai", Model: "gpt-4\x00"},
			"body.user_id": {UserID: "u1\xff", Provider: "openai", Model: "gpt-4"},
		} {
			_, err := f.m.Reserve(f.ctx, req)
			be := billingErr(t, err, billing.CodeInvalid)
			if len(be.Fields) != 1 || be.Fields[0].Location != field {
				t.Errorf("%s: refusal fields %+v", field, be.Fields)
			}
		}
		f.consistent()
	})
}
