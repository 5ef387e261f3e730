package metering

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// syncBuffer is a log sink safe for the reserver's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// groupFixture is a meter on a new PostgreSQL database whose users are on
// plans with the given limits (calendar months), and its log.
func groupFixture(t *testing.T, now time.Time, plans map[string]billing.Plan) (*Meter, *store.DB, *syncBuffer) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, storetest.Backend{Name: "postgres", URL: storetest.PostgresURL})
	p := billing.CalendarMonths().At(now)
	for user, plan := range plans {
		plan.Name, plan.Tier, plan.IsActive = "plan-"+user, "pro", true
		id, err := db.CreatePlan(ctx, plan, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.CreateSubscription(ctx, billing.Subscription{UserID: user, PlanID: id, BillingCycle: "monthly",
			Status: billing.StatusActive, AutoRenew: true, Anchor: p.Start, CurrentPeriodStart: p.Start, CurrentPeriodEnd: p.End}, now); err != nil {
			t.Fatal(err)
		}
	}
	log := &syncBuffer{}
	return New(db, func() time.Time { return now }, slog.New(slog.NewTextHandler(log, nil))), db, log
}

// reserveAsOneGroup calls m.Reserve for each request, one after another
// into the queue while no group is being sent, and then lets one group
// take them all: what concurrent callers arriving in this order during
// another group's round trip would see.
func reserveAsOneGroup(t *testing.T, m *Meter, reqs []billing.ReserveRequest) ([]billing.Reservation, []error) {
	t.Helper()
	q := &m.reserver
	q.mu.Lock()
	q.running = true // as if a group were on its way
	q.mu.Unlock()
	queued := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.queue)
	}
	rs, errs := make([]billing.Reservation, len(reqs)), make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { rs[i], errs[i] = m.Reserve(context.Background(), req) })
		for deadline := time.Now().Add(10 * time.Second); queued() != i+1; time.Sleep(50 * time.Microsecond) {
			if time.Now().After(deadline) {
				t.Fatalf("request %d never queued", i)
			}
		}
	}
	go m.reserveLoop(context.Background())
	wg.Wait()
	return rs, errs
}

// TestGroupReservationDecidesInArrivalOrder sends interleaved requests of
// users on different limits through Meter.Reserve as one group: each is
// admitted or refused as it would be alone in that order, counting the
// holds admitted before it in the group and not the refused ones, and each
// refusal carries its own counters.
func TestGroupReservationDecidesInArrivalOrder(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	m, db, log := groupFixture(t, now, map[string]billing.Plan{
		"calls":  {TotalCallsLimit: billing.Ptr[int64](3)},
		"tokens": {ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](1000)}}},
		"cost":   {MonthlyCostLimit: billing.Ptr(money.MustParse("1"))},
	})
	period := billing.CalendarMonths().At(now).Key
	usd := func(s string) money.Amount { return money.MustParse(s) }
	req := func(user string, tokens int64, cost money.Amount) billing.ReserveRequest {
		return billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4", Tokens: tokens, Cost: cost}
	}
	cases := []struct {
		req  billing.ReserveRequest
		want *billing.LimitInfo
	}{
		{req("calls", 0, 1), nil},
		{req("tokens", 600, 1), nil},
		{req("cost", 0, usd("0.6")), nil},
		{req("calls", 0, 1), nil},
		{req("tokens", 600, 1), &billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Reserved: 600, Requested: 600, Limit: 1000, Period: period}},
		{req("cost", 0, usd("0.6")), &billing.LimitInfo{Key: "monthly_cost", Reserved: int64(usd("0.6")), Requested: int64(usd("0.6")),
			Limit: int64(usd("1")), Money: true, Period: period}},
		{req("calls", 0, 1), nil},
		{req("tokens", 400, 1), nil},
		{req("cost", 0, usd("0.3")), nil},
		{req("calls", 0, 1), &billing.LimitInfo{Key: "total_calls", Reserved: 3, Requested: 1, Limit: 3, Period: period}},
		{req("cost", 0, usd("0.2")), &billing.LimitInfo{Key: "monthly_cost", Reserved: int64(usd("0.9")), Requested: int64(usd("0.2")),
			Limit: int64(usd("1")), Money: true, Period: period}},
		{req("tokens", 1, 1), &billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Reserved: 1000, Requested: 1, Limit: 1000, Period: period}},
	}
	reqs := make([]billing.ReserveRequest, len(cases))
	for i, c := range cases {
		reqs[i] = c.req
	}
	rs, errs := reserveAsOneGroup(t, m, reqs)
	for i, c := range cases {
		var got *billing.LimitInfo
		if errs[i] != nil {
			var be *billing.Error
			if !errors.As(errs[i], &be) || be.Code != billing.CodeLimitExceeded || be.Limit == nil {
				t.Fatalf("request %d (%s): %v; want nil or limit_exceeded", i, c.req.UserID, errs[i])
			}
			got = be.Limit
		} else if _, err := db.GetReservation(ctx, rs[i].ID); err != nil {
			t.Errorf("request %d (%s) admitted as %s, which is not stored: %v", i, c.req.UserID, rs[i].ID, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("request %d (%s): refused by %+v; want %+v", i, c.req.UserID, got, c.want)
		}
	}
	if s := log.String(); s != "" {
		t.Errorf("the group was not sent as one: %s", s)
	}
}

// TestGroupReservationFailureIsNotShared: when a group fails as a whole, a
// reused id's or an unstorable row's failure stays theirs (each is retried
// alone), every other reservation of the group is held, and one whose
// caller gave up before the group left is not sent at all.
func TestGroupReservationFailureIsNotShared(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	m, db, log := groupFixture(t, now, map[string]billing.Plan{"u": {TotalCallsLimit: billing.Ptr[int64](100)}})
	p := billing.CalendarMonths().At(now)
	gone, cancel := context.WithCancel(ctx)
	cancel()
	job := func(ctx context.Context, id string) *reserveJob {
		return &reserveJob{ctx: ctx, done: make(chan error, 1), item: store.ReserveItem{
			Reservation: billing.Reservation{ID: id, UserID: "u", Period: p, Provider: "openai", Calls: 1,
				Status: billing.ReservationHeld, ExpiresAt: now.Add(time.Hour), CreatedAt: now},
			Limits: billing.Limits{TotalCalls: billing.Ptr[int64](100)}, Now: now}}
	}
	group := []*reserveJob{job(ctx, "a"), job(ctx, "dup"), job(gone, "gone"), job(ctx, "bad\x00id"), job(ctx, "dup"), job(ctx, "b")}
	m.reserveGroup(ctx, group)
	answers := make([]error, len(group))
	for i, j := range group {
		answers[i] = <-j.done
	}
	for i, id := range []string{"a", "dup", "b"} {
		if err := answers[[]int{0, 1, 5}[i]]; err != nil {
			t.Errorf("%s: %v; want it held despite the others' failures", id, err)
		}
		if _, err := db.GetReservation(ctx, id); err != nil {
			t.Errorf("%s is not stored: %v", id, err)
		}
	}
	if billing.ErrorCode(answers[4]) != billing.CodeConflict {
		t.Errorf("the reused id: %v; want conflict", answers[4])
	}
	if answers[3] == nil {
		t.Error("the unstorable row was admitted")
	}
	if !errors.Is(answers[2], context.Canceled) {
		t.Errorf("the caller that gave up: %v; want context.Canceled", answers[2])
	}
	if _, err := db.GetReservation(ctx, "gone"); billing.ErrorCode(err) != billing.CodeNotFound {
		t.Errorf("the reservation of the caller that gave up: %v; want not_found (never sent)", err)
	}
	c, err := db.Counters(ctx, "u", p, "openai")
	if err != nil {
		t.Fatal(err)
	}
	if c.HeldTotal.Calls != 3 {
		t.Errorf("held calls %d; want 3 (a, dup, b)", c.HeldTotal.Calls)
	}
	if !strings.Contains(log.String(), "group reservation failed") {
		t.Errorf("the group's failure was not logged: %q", log.String())
	}
}

// TestGroupReservationCallerGivesUp: a caller whose context ends while its
// reservation waits for a group returns ctx.Err() at once, and the group,
// which leaves after, does not hold it.
func TestGroupReservationCallerGivesUp(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	m, db, _ := groupFixture(t, now, map[string]billing.Plan{"u": {TotalCallsLimit: billing.Ptr[int64](100)}})
	q := &m.reserver
	q.mu.Lock()
	q.running = true // as if a group were on its way
	q.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := m.Reserve(ctx, billing.ReserveRequest{UserID: "u", Provider: "openai", Model: "gpt-4"})
		done <- err
	}()
	for {
		q.mu.Lock()
		n := len(q.queue)
		q.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(50 * time.Microsecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve after its context ended: %v; want context.Canceled", err)
	}
	m.reserveLoop(context.Background())
	p := billing.CalendarMonths().At(now)
	c, err := db.Counters(context.Background(), "u", p, "openai")
	if err != nil {
		t.Fatal(err)
	}
	if c.HeldTotal.Calls != 0 {
		t.Errorf("held calls %d; want 0", c.HeldTotal.Calls)
	}
}
