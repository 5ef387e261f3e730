package metering_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// What a storm does with each call it admitted.
const (
	keep    = iota // keep it in flight
	settle         // record that it used what it reserved
	release        // give it back unused
)

// storm races calls of user, each admitted in process (as the gateway
// admits them: req's user and InProcess are set) by one of meters in turn,
// and does what with each admitted call: keep, settle or release, or any
// of them at random when what is -1 (settle three times in four). It
// returns the calls admitted and how many were settled.
func storm(t *testing.T, meters []*metering.Meter, user string, calls int, req billing.ReserveRequest, what int) (admitted []billing.Reservation, settled int) {
	t.Helper()
	req.UserID, req.InProcess = user, true
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range calls {
		m := meters[i%len(meters)]
		wg.Go(func() {
			r, err := m.Reserve(t.Context(), req)
			if err != nil {
				if billing.ErrorCode(err) != billing.CodeLimitExceeded {
					t.Errorf("reserve: %v", err)
				}
				return
			}
			do := what
			if do < 0 {
				do = []int{settle, settle, settle, release}[rand.IntN(4)]
			}
			switch do {
			case release:
				if _, err := m.Release(t.Context(), r.ID); err != nil {
					t.Errorf("release: %v", err)
				}
			case settle:
				if _, err := m.Settle(t.Context(), r.ID, billing.UsageEvent{EventID: "ev-" + r.ID, StatusCode: 200,
					Quantities: billing.Quantities{Input: req.Tokens - 5, Output: 5}, Timestamp: r.CreatedAt}); err != nil {
					t.Errorf("settle: %v", err)
					return
				}
			}
			mu.Lock()
			defer mu.Unlock()
			admitted = append(admitted, r)
			if do == settle {
				settled++
			}
		})
	}
	wg.Wait()
	return admitted, settled
}

// TestLeasedAdmissionIsExact (PostgreSQL): calls admitted in process come
// from leases while the user is far from their limit and are reserved one
// by one near it. One process admits exactly the limit's room, several
// never more than it; every settled call is in the ledger once, and once
// the meters close nothing stays held.
func TestLeasedAdmissionIsExact(t *testing.T) {
	url := storetest.PostgresURL(t)
	f := newFixtureURL(t, url, baseTime)
	const limit = 300
	f.planUser("lease-one", billing.Plan{Name: "lease-one", TotalCallsLimit: billing.Ptr[int64](limit)})
	f.planUser("lease-many", billing.Plan{Name: "lease-many", TotalCallsLimit: billing.Ptr[int64](limit)})
	f.planUser("lease-tokens", billing.Plan{Name: "lease-tokens",
		ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](100 * 1000)}}})
	f.planUser("lease-flow", billing.Plan{Name: "lease-flow", TotalCallsLimit: billing.Ptr[int64](3 * limit)})
	p := billing.CalendarMonths().At(baseTime)
	req := billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Tokens: 1000}

	one := []*metering.Meter{f.m}

	// One process, every call settled at once: leases serve the calls far
	// from the limit (a recorded call's units never serve another), exact
	// reservations the last ones, and exactly the limit is recorded.
	if flow, _ := storm(t, one, "lease-flow", 6*limit, req, settle); len(flow) != 3*limit {
		t.Errorf("one process settling every call admitted %d; want exactly the limit, %d", len(flow), 3*limit)
	}
	granted := f.m.LeasesGranted()
	if granted == 0 {
		t.Error("no lease was taken for calls far from the limit")
	}

	// One process, every call kept in flight: exactly the limit is
	// admitted, from leases and then one by one.
	held, _ := storm(t, one, "lease-one", 2*limit, req, keep)
	if len(held) != limit {
		t.Errorf("one process holding every call admitted %d; want exactly the limit, %d", len(held), limit)
	}
	if f.m.LeasesGranted() == granted {
		t.Error("no lease was taken for calls kept in flight")
	}
	for _, r := range held {
		if _, err := f.m.Release(f.ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}

	// One process: released calls give their units back, so the storms
	// end with exactly the limit settled.
	settledOne := 0
	for round := 0; settledOne < limit && round < 20; round++ {
		_, s := storm(t, one, "lease-one", 2*limit, req, -1)
		settledOne += s
	}
	if settledOne != limit {
		t.Errorf("one process settled %d calls; want exactly the limit, %d", settledOne, limit)
	}
	tokensSettled := 0
	for round := 0; round < 20; round++ {
		a, s := storm(t, one, "lease-tokens", 300, req, -1)
		tokensSettled += s
		if len(a) == 0 {
			break
		}
	}
	if tokensSettled != 100 {
		t.Errorf("one process settled %d calls of 1,000 tokens against 100,000; want 100", tokensSettled)
	}

	// Three processes: never more than the limit.
	meters := []*metering.Meter{f.m, metering.New(storetest.OpenURL(t, url), f.clk.Now, nil),
		metering.New(storetest.OpenURL(t, url), f.clk.Now, nil)}
	settledMany := 0
	for range 3 {
		_, s := storm(t, meters, "lease-many", limit, req, -1)
		settledMany += s
	}
	if settledMany > limit || settledMany < limit/2 {
		t.Errorf("three processes settled %d calls; want at most the limit, %d (and most of it)", settledMany, limit)
	}
	// Another process's lease refuses a call only until it gives its units
	// back (a moment after its last use): then the rest of the limit is
	// admitted, to the last call.
	time.Sleep(time.Second)
	for round := 0; round < 20; round++ {
		a, s := storm(t, meters, "lease-many", limit, req, settle)
		settledMany += s
		if len(a) == 0 {
			break
		}
	}
	if settledMany != limit {
		t.Errorf("three processes settled %d calls in the end; want exactly the limit, %d", settledMany, limit)
	}
	for _, m := range meters {
		if err := m.Close(f.ctx); err != nil {
			t.Fatal(err)
		}
	}

	var leases int64
	for _, m := range meters {
		leases += m.LeasesGranted()
	}
	for _, user := range []string{"lease-flow", "lease-one", "lease-many", "lease-tokens"} {
		total, held, _, _, err := f.counters(user, p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		want := int64(map[string]int{"lease-flow": 3 * limit, "lease-one": settledOne, "lease-many": settledMany, "lease-tokens": tokensSettled}[user])
		if total.Calls != want || held != (billing.Counters{}) {
			t.Errorf("%s: %d calls used, %+v held after the meters closed; want %d and nothing", user, total.Calls, held, want)
		}
	}
	if leases == 0 {
		t.Error("no lease was taken: the test did not exercise leases")
	}
	f.consistent()
}

// TestLeaseFollowsAPlanChange (PostgreSQL): a lease taken under one plan's
// limits serves no call once the user's limits change; the new limit
// admits exactly its room at once.
func TestLeaseFollowsAPlanChange(t *testing.T) {
	f := newFixtureURL(t, storetest.PostgresURL(t), baseTime)
	plan := f.planUser("lease-change", billing.Plan{Name: "lease-change", TotalCallsLimit: billing.Ptr[int64](1000)})
	t.Cleanup(func() { _ = f.m.Close(f.ctx) })
	req := billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Tokens: 100}
	reserve := func(n int) int {
		admitted, _ := storm(t, []*metering.Meter{f.m}, "lease-change", n, req, settle)
		return len(admitted)
	}
	if got := reserve(20); got != 20 || f.m.LeasesGranted() == 0 {
		t.Fatalf("admitted %d of 20 with %d leases; want all, from a lease", got, f.m.LeasesGranted())
	}
	plan.TotalCallsLimit = billing.Ptr[int64](25)
	if _, err := f.db.EditPlan(f.ctx, plan.ID, plan, true, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if got := reserve(40); got != 5 {
		t.Errorf("after the limit fell to 25 with 20 used, %d of 40 admitted; want 5", got)
	}
}

// TestOwnLeaseOfAnotherProviderRefusesNothing (PostgreSQL): the total-calls
// limit is the user's, a lease is a provider's. A call on one provider
// that the database refuses because of units this process's lease on
// another provider holds for no call gets them back and is admitted.
func TestOwnLeaseOfAnotherProviderRefusesNothing(t *testing.T) {
	f := newFixtureURL(t, storetest.PostgresURL(t), baseTime)
	t.Cleanup(func() { _ = f.m.Close(f.ctx) })
	const limit = 200
	f.planUser("lease-two", billing.Plan{Name: "lease-two", TotalCallsLimit: billing.Ptr[int64](limit)})
	r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "lease-two", Provider: "openai", Model: "gpt-4", Tokens: 100, InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "lease-two", Provider: "openai", Model: "gpt-4", Tokens: 100, InProcess: true}); err != nil {
		t.Fatal(err)
	}
	if f.m.LeasesGranted() == 0 {
		t.Fatal("no lease was taken")
	}
	if _, err := f.m.Release(f.ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	// All but one call of the limit are used elsewhere; the openai lease
	// still holds units for no call (it is not idle yet).
	events := make([]billing.UsageEvent, limit-2)
	for i := range events {
		events[i] = gpt4Event(fmt.Sprintf("elsewhere-%d", i), "lease-two", baseTime, 10, 5)
	}
	f.record(events...)
	if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "lease-two", Provider: "gemini", Model: "gemini-2.5-flash",
		Tokens: 100, InProcess: true}); err != nil {
		t.Errorf("the last call of the limit, on another provider: %v; want it admitted", err)
	}
	if _, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: "lease-two", Provider: "gemini", Model: "gemini-2.5-flash",
		Tokens: 100, InProcess: true}); billing.ErrorCode(err) != billing.CodeLimitExceeded {
		t.Errorf("a call past the limit: %v; want limit_exceeded", err)
	}
}

// TestLeasedSettleRetriedAfterItsCommitSpendsTheCall (PostgreSQL): a
// leased call's settle whose caller gave up before its group committed
// (the commit lands all the same) is retried and answered "duplicate".
// The call is in the ledger, so its units are spent: handed back to the
// lease, they admitted one call more than the limit.
func TestLeasedSettleRetriedAfterItsCommitSpendsTheCall(t *testing.T) {
	f := newFixtureURL(t, storetest.PostgresURL(t), baseTime)
	// Long enough for the settle below to time out first, short enough
	// that the lease is not idle (250 ms) and given back before the calls
	// after it.
	f.m.UnhurriedDelay = 80 * time.Millisecond
	const user, limit = "lease-retry", 128 // a lease of 128/16 = 8 calls
	f.planUser(user, billing.Plan{Name: user, TotalCallsLimit: billing.Ptr[int64](limit)})
	req := billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4", Tokens: 100, InProcess: true}
	a, err := f.m.Reserve(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if f.m.LeasesGranted() == 0 {
		t.Fatal("the first call took no lease: the test needs one")
	}
	// Used elsewhere: 120 calls, so the lease's 8 are the limit's last.
	var events []billing.UsageEvent
	for i := range limit - 8 {
		events = append(events, gpt4Event(fmt.Sprintf("elsewhere-%d", i), user, baseTime.Add(-time.Minute), 10, 1))
	}
	f.record(events...)

	ev := billing.UsageEvent{EventID: "retried", StatusCode: 200, Quantities: billing.Quantities{Input: 50, Output: 5}, Timestamp: baseTime}
	ctx, cancel := context.WithTimeout(metering.Unhurried(f.ctx), 20*time.Millisecond)
	_, err = f.m.Settle(ctx, a.ID, ev)
	cancel()
	if err == nil {
		t.Fatal("the settle did not time out before its group committed: the test needs it to")
	}
	time.Sleep(f.m.UnhurriedDelay) // the group commits all the same
	// Answered "duplicate" (on a slow machine the retry may commit first
	// and the landed one be the duplicate: the limit must hold either way).
	if res, err := f.m.Settle(f.ctx, a.ID, ev); err != nil {
		t.Fatalf("retried settle = %+v, %v", res, err)
	}
	for i := range 20 {
		r, err := f.m.Reserve(f.ctx, req)
		if err != nil {
			continue
		}
		if _, err := f.m.Settle(f.ctx, r.ID, billing.UsageEvent{EventID: fmt.Sprintf("after-%d", i), StatusCode: 200,
			Quantities: billing.Quantities{Input: 50, Output: 5}, Timestamp: baseTime}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.m.Close(f.ctx); err != nil {
		t.Fatal(err)
	}
	total, held, _, _, err := f.counters(user, billing.CalendarMonths().At(baseTime), "openai")
	if err != nil {
		t.Fatal(err)
	}
	if total.Calls != limit || held != (billing.Counters{}) {
		t.Errorf("%d calls used, %+v held; want exactly the limit, %d, and nothing held", total.Calls, held, limit)
	}
	f.consistent()
}
