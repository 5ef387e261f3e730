package metering_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestRecordAnswersResendsThatNoLongerValidate: an event accepted with a
// timestamp 34 days old is resent 2 days later, when validation alone
// would refuse it (more than 35 days old). The resend returns its first
// result and changes nothing, and the new event beside it is recorded; so
// does a resend after the user's last key was deleted, by a new meter (a
// restart). A batch in which a refused event is not a resend is refused
// whole, every problem named, as before.
func TestRecordAnswersResendsThatNoLongerValidate(t *testing.T) {
	const user = "resend-user"
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		f.keyUser(user)
		old := gpt4Event("old-1", user, baseTime.Add(-34*24*time.Hour), 1000, 500)
		first := f.record(old)[0]
		if first.Status != billing.EventRecorded || first.Cost != usd("0.06") {
			t.Fatalf("first recording = %+v; want recorded at 0.06", first)
		}
		oldPeriod := billing.CalendarMonths().At(old.Timestamp)
		f.clk.Advance(2 * 24 * time.Hour)
		now := f.clk.Now()
		nowPeriod := billing.CalendarMonths().At(now)
		if oldPeriod.Key == nowPeriod.Key {
			t.Fatalf("the test needs the old event in another period than now")
		}
		oldBefore, nowBefore, logsBefore := f.usage(user, oldPeriod), f.usage(user, nowPeriod), countLogs(f)

		// A bad batch: the old resend and an event that is simply bad.
		bad := gpt4Event("bad-1", user, now.Add(-time.Minute), 1000, 500)
		bad.Quantities.Input = -1
		_, err := f.m.Record(f.ctx, []billing.UsageEvent{old, bad})
		be := billingErr(t, err, billing.CodeInvalid)
		if got, want := fieldLocations(be), []string{"body.events[0].timestamp", "body.events[1].tokens_input"}; !slices.Equal(got, want) {
			t.Fatalf("refusal names %q; want %q", got, want)
		}
		// So is a batch repeating the resend's id with other contents.
		changed := old
		changed.Quantities.Output = 501
		_, err = f.m.Record(f.ctx, []billing.UsageEvent{old, changed})
		be = billingErr(t, err, billing.CodeInvalid)
		if !slices.Contains(fieldLocations(be), "body.events[1].event_id") {
			t.Fatalf("refusal names %q; want body.events[1].event_id among them", fieldLocations(be))
		}
		if n := countLogs(f); n != logsBefore {
			t.Fatalf("%d ledger rows after refused batches; was %d", n, logsBefore)
		}

		// The resend, twice in the batch, and a new event.
		fresh := gpt4Event("new-1", user, now.Add(-time.Minute), 2000, 1000)
		res := f.record(old, fresh, old)
		want := billing.EventResult{EventID: "old-1", Status: billing.EventDuplicate, Cost: first.Cost, BillingPeriod: first.BillingPeriod}
		if res[0] != want || res[2] != want {
			t.Errorf("resends = %+v, %+v; want %+v", res[0], res[2], want)
		}
		if res[1].Status != billing.EventRecorded || res[1].Cost != usd("0.12") || res[1].BillingPeriod != nowPeriod.Key {
			t.Errorf("new event = %+v; want recorded at 0.12 in %s", res[1], nowPeriod.Key)
		}
		if n := countLogs(f); n != logsBefore+1 {
			t.Errorf("%d ledger rows; want %d", n, logsBefore+1)
		}
		if u := f.usage(user, oldPeriod); u.Total != oldBefore.Total {
			t.Errorf("the resend's period changed: %+v; was %+v", u.Total, oldBefore.Total)
		}
		if u := f.usage(user, nowPeriod); u.Total.Calls != nowBefore.Total.Calls+1 || u.Total.Cost != nowBefore.Total.Cost+usd("0.12") {
			t.Errorf("this period = %+v; want one call of 0.12 more than %+v", u.Total, nowBefore.Total)
		}
		f.consistent()

		// The user's last key is deleted and the meter restarts: the
		// resend still answers its first result, and nothing else passes.
		if _, err := rawSQL(t, url).ExecContext(f.ctx, `DELETE FROM api_keys WHERE user_id = '`+user+`'`); err != nil {
			t.Fatal(err)
		}
		f.m = metering.New(f.db, f.clk.Now, nil)
		if res := f.record(fresh, old); res[0].Status != billing.EventDuplicate || res[0].Cost != usd("0.12") || res[1] != want {
			t.Errorf("resends after the key was deleted = %+v; want duplicates of the first results", res)
		}
		_, err = f.m.Record(f.ctx, []billing.UsageEvent{old, gpt4Event("new-2", user, now.Add(-time.Minute), 1, 1)})
		be = billingErr(t, err, billing.CodeInvalid)
		if got, want := fieldLocations(be), []string{"body.events[0].timestamp", "body.events[0].user_id", "body.events[1].user_id"}; !slices.Equal(got, want) {
			t.Errorf("refusal names %q; want %q", got, want)
		}
		if n := countLogs(f); n != logsBefore+1 {
			t.Errorf("%d ledger rows; want %d", n, logsBefore+1)
		}
		f.consistent()
	})
}

// TestRecordRefusesAnotherUsersEventID: user B sends an event id that
// user A's event holds. B's batch is refused whole, naming the event's
// event_id and nothing of A's event (its cost, period or unpriced flag);
// A's row is unchanged and B's usage not recorded. A resend that
// validation refuses is not answered from another user's event either.
func TestRecordRefusesAnotherUsersEventID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.keyUser("user-a")
		f.keyUser("user-b")
		aEvent := gpt4Event("shared-id", "user-a", baseTime.Add(-2*24*time.Hour), 1234, 567)
		aFirst := f.record(aEvent)[0]
		period := billing.CalendarMonths().At(baseTime)
		logsBefore := countLogs(f)

		refused := func(t *testing.T, events []billing.UsageEvent, want ...string) {
			t.Helper()
			res, err := f.m.Record(f.ctx, events)
			if err == nil {
				t.Fatalf("Record accepted user-b's batch: %+v", res)
			}
			be := billingErr(t, err, billing.CodeInvalid)
			if got := fieldLocations(be); !slices.Equal(got, want) {
				t.Fatalf("refusal names %q; want %q (message %q)", got, want, be.Message)
			}
			for _, leak := range []string{aFirst.Cost.String(), aFirst.BillingPeriod, "user-a"} {
				if strings.Contains(be.Message, leak) || strings.Contains(fmt.Sprint(be.Fields), leak) {
					t.Errorf("the refusal discloses %q of user-a's event: %q %v", leak, be.Message, be.Fields)
				}
			}
		}
		bEvent := gpt4Event("shared-id", "user-b", baseTime.Add(-time.Minute), 10, 5)
		refused(t, []billing.UsageEvent{gpt4Event("b-own", "user-b", baseTime.Add(-time.Minute), 10, 5), bEvent},
			"body.events[1].event_id")
		// One that validation refuses: not answered with user-a's result.
		bOld := bEvent
		bOld.Timestamp = baseTime.Add(-40 * 24 * time.Hour)
		refused(t, []billing.UsageEvent{bOld}, "body.events[0].timestamp")

		if n := countLogs(f); n != logsBefore {
			t.Errorf("%d ledger rows; want %d", n, logsBefore)
		}
		if u := f.usage("user-b", period); u.Total.Calls != 0 {
			t.Errorf("user-b's usage = %+v; want none", u.Total)
		}
		if res := f.record(aEvent); res[0] != (billing.EventResult{EventID: "shared-id", Status: billing.EventDuplicate,
			Cost: aFirst.Cost, BillingPeriod: aFirst.BillingPeriod}) {
			t.Errorf("user-a's resend = %+v; want its first result %+v", res[0], aFirst)
		}
		f.consistent()
	})
}

// TestRecordConcurrentUsersOfOneEventID: two users send the same event
// ids at the same moment, so that their batches may share a group commit.
// Each id is recorded for one of them; the other is refused and never
// answered with the first's result.
func TestRecordConcurrentUsersOfOneEventID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		users := []string{"race-a", "race-b"}
		for _, u := range users {
			f.keyUser(u)
		}
		const rounds = 30
		var wg sync.WaitGroup
		recorded := make([][2]bool, rounds)
		for r := range rounds {
			for k, u := range users {
				wg.Go(func() {
					id := fmt.Sprintf("race-%d", r)
					res, err := f.m.Record(f.ctx, []billing.UsageEvent{
						gpt4Event(id+"-"+u, u, baseTime.Add(-time.Minute), 10, 5),
						gpt4Event(id, u, baseTime.Add(-time.Minute), int64(100*(k+1)), 5)})
					switch {
					case err == nil && res[1].Status == billing.EventRecorded:
						recorded[r][k] = true
					case err == nil:
						t.Errorf("%s's %s = %+v; want recorded or refused", u, id, res[1])
					case billing.ErrorCode(err) != billing.CodeInvalid:
						t.Errorf("%s's %s: %v; want invalid", u, id, err)
					}
				})
			}
		}
		wg.Wait()
		var calls int64
		for r, rec := range recorded {
			if rec[0] == rec[1] {
				t.Errorf("race-%d recorded for %v of the two users; want exactly one", r, rec)
			}
		}
		for _, u := range users {
			calls += f.usage(u, billing.CalendarMonths().At(baseTime)).Total.Calls
		}
		if calls != 2*rounds {
			t.Errorf("%d calls recorded; want %d (each id once, with its batch's other event)", calls, 2*rounds)
		}
		f.consistent()
	})
}

// TestResendNamingAnotherReservationKeepsItsHold: an event already
// recorded, sent again to settle a different reservation that is still
// held, is refused as a conflict and leaves that hold alone. It used to
// release the hold without adding usage, and the hold's own call was then
// refused at its settle as "settled by another event": a call lost.
func TestResendNamingAnotherReservationKeepsItsHold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "resend-user"
		f.keyUser(user)
		period := billing.CalendarMonths().At(baseTime)
		reserve := func() billing.Reservation {
			t.Helper()
			r, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4", Tokens: 1500})
			if err != nil {
				t.Fatalf("reserve: %v", err)
			}
			return r
		}
		settle := func(r billing.Reservation, eventID string) (billing.EventResult, error) {
			return f.m.Settle(f.ctx, r.ID, gpt4Event(eventID, user, baseTime, 1000, 500))
		}
		held := func() int64 {
			t.Helper()
			_, h, _, _, err := f.counters(user, period, "openai")
			if err != nil {
				t.Fatal(err)
			}
			return h.Calls
		}
		r1 := reserve()
		first, err := settle(r1, "evt-1")
		if err != nil || first.Status != billing.EventRecorded {
			t.Fatalf("settle r1 = %+v, %v", first, err)
		}
		r2 := reserve()
		_, err = settle(r2, "evt-1")
		billingErr(t, err, billing.CodeConflict)
		if n := held(); n != 1 {
			t.Fatalf("%d calls held after the refused resend; want r2's 1", n)
		}
		// The same through a batch: a resend there answers its first
		// result and changes nothing, r2's hold included.
		res := f.record(func() billing.UsageEvent {
			e := gpt4Event("evt-1", user, baseTime, 1000, 500)
			e.ReservationID = r2.ID
			return e
		}())
		if res[0].Status != billing.EventDuplicate || res[0].Cost != first.Cost {
			t.Fatalf("batch resend naming r2 = %+v; want the duplicate of %+v", res[0], first)
		}
		if n := held(); n != 1 {
			t.Fatalf("%d calls held after the refused batch; want r2's 1", n)
		}
		// r2's own call settles, and r1's true resend answers its first result.
		if got, err := settle(r2, "evt-2"); err != nil || got.Status != billing.EventRecorded {
			t.Fatalf("settle r2 with its own event = %+v, %v", got, err)
		}
		again, err := settle(r1, "evt-1")
		if err != nil || again.Status != billing.EventDuplicate || again.Cost != first.Cost {
			t.Fatalf("resend of r1's settle = %+v, %v; want the duplicate of %+v", again, err, first)
		}
		if u := f.usage(user, period); u.Total.Calls != 2 {
			t.Fatalf("usage %+v; want 2 calls", u.Total)
		}
		if n := held(); n != 0 {
			t.Fatalf("%d calls held at the end", n)
		}
		f.consistent()
	})
}
