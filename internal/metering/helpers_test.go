package metering_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestMain fails the package when a test leaves goroutines behind (a
// reservation round that never joins, a pool that is never closed).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// baseTime is the injected "now" of most tests: mid-month, so the last 30
// days span two calendar months, and long after the default prices took
// effect.
var baseTime = time.Date(2025, time.March, 15, 12, 0, 0, 0, time.UTC)

// clock is an injected, settable clock; tests never read the wall clock to
// decide anything.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fixture is one migrated, seeded database with a meter over it.
type fixture struct {
	t   *testing.T
	ctx context.Context
	db  *store.DB
	clk *clock
	m   *metering.Meter
}

func newFixture(t *testing.T, b storetest.Backend, now time.Time) *fixture {
	t.Helper()
	return newFixtureURL(t, b.URL(t), now)
}

// newFixtureURL is newFixture on the database at url.
func newFixtureURL(t *testing.T, url string, now time.Time) *fixture {
	t.Helper()
	db := storetest.OpenURL(t, url)
	clk := &clock{t: now}
	return &fixture{t: t, ctx: context.Background(), db: db, clk: clk, m: metering.New(db, clk.Now, nil)}
}

// keyUser makes userID known with an API key; with no subscription the user
// is on the Free plan, on calendar months.
func (f *fixture) keyUser(userID string) {
	f.t.Helper()
	_, prefix, hash := auth.NewKey()
	if _, err := f.db.CreateKey(f.ctx, billing.APIKey{Prefix: prefix, UserID: userID, Role: billing.RoleUser,
		CreatedAt: f.clk.Now()}, hash); err != nil {
		f.t.Fatalf("create key for %s: %v", userID, err)
	}
}

// planUser creates plan (its name must be unique) and subscribes userID to
// it, anchored at the start of the clock's calendar month so that the
// user's periods are calendar months.
func (f *fixture) planUser(userID string, plan billing.Plan) billing.Plan {
	f.t.Helper()
	plan.Tier, plan.IsActive = "pro", true
	id, err := f.db.CreatePlan(f.ctx, plan, f.clk.Now())
	if err != nil {
		f.t.Fatalf("create plan %q: %v", plan.Name, err)
	}
	plan.ID = id
	f.subscribe(userID, id, billing.CalendarMonths().At(f.clk.Now()).Start)
	return plan
}

// subscribe puts userID on plan planID with periods anchored at anchor.
func (f *fixture) subscribe(userID string, planID int64, anchor time.Time) {
	f.t.Helper()
	p := billing.Schedule{Anchor: anchor, Location: time.UTC}.At(f.clk.Now())
	if _, err := f.db.CreateSubscription(f.ctx, billing.Subscription{UserID: userID, PlanID: planID,
		BillingCycle: "monthly", Status: billing.StatusActive, AutoRenew: true, Anchor: anchor,
		CurrentPeriodStart: p.Start, CurrentPeriodEnd: p.End}, f.clk.Now()); err != nil {
		f.t.Fatalf("subscribe %s to plan %d: %v", userID, planID, err)
	}
}

// planID returns the id of the seeded plan named name.
func (f *fixture) planID(name string) int64 {
	f.t.Helper()
	plans, err := f.db.ListPlans(f.ctx, false)
	if err != nil {
		f.t.Fatalf("list plans: %v", err)
	}
	for _, p := range plans {
		if p.Name == name {
			return p.ID
		}
	}
	f.t.Fatalf("no plan named %q", name)
	return 0
}

// record records events and fails the test on error.
func (f *fixture) record(events ...billing.UsageEvent) []billing.EventResult {
	f.t.Helper()
	res, err := f.m.Record(f.ctx, events)
	if err != nil {
		f.t.Fatalf("record %d events: %v", len(events), err)
	}
	if len(res) != len(events) {
		f.t.Fatalf("record %d events returned %d results", len(events), len(res))
	}
	return res
}

// usage returns the user's summary of period p.
func (f *fixture) usage(userID string, p billing.Period) billing.PeriodUsage {
	f.t.Helper()
	u, err := f.db.UsageForPeriods(f.ctx, userID, []billing.Period{p})
	if err != nil {
		f.t.Fatalf("usage of %s in %s: %v", userID, p.Key, err)
	}
	return u[0]
}

// consistent fails the test unless the ledger equals the summaries and the
// reservations agree with the ledger.
func (f *fixture) consistent() {
	f.t.Helper()
	// On SQLite holds reach the database after a delay: journal them now.
	if err := f.m.Flush(f.ctx); err != nil {
		f.t.Fatalf("flush the reservation journal: %v", err)
	}
	mm, err := f.db.Reconcile(f.ctx)
	if err != nil {
		f.t.Fatalf("reconcile: %v", err)
	}
	for _, m := range mm {
		f.t.Errorf("ledger and summaries differ: %s", m)
	}
	n, err := f.db.HeldReservationsMismatch(f.ctx)
	if err != nil {
		f.t.Fatalf("held reservations check: %v", err)
	}
	if n != 0 {
		f.t.Errorf("HeldReservationsMismatch = %d rows; want 0", n)
	}
}

// alerts returns the alerts of userID ("" for admin alerts) in period
// ("" for every period).
func (f *fixture) alerts(userID, period string) []billing.Alert {
	f.t.Helper()
	as, _, _, err := f.db.ListAlerts(f.ctx, billing.AlertFilter{UserID: userID, BillingPeriod: period, Limit: 1000})
	if err != nil {
		f.t.Fatalf("list alerts of %q: %v", userID, err)
	}
	return as
}

// gpt4Event returns a successful gpt-4 call by userID at ts.
func gpt4Event(id, userID string, ts time.Time, in, out int64) billing.UsageEvent {
	return billing.UsageEvent{EventID: id, UserID: userID, Provider: "openai", Model: "gpt-4",
		Endpoint: "/v1/chat/completions", Method: "POST", StatusCode: 200, ResponseTime: 0.25, Timestamp: ts,
		Quantities: billing.Quantities{Input: in, Output: out}}
}

// billingErr returns err as a *billing.Error, failing the test when it is
// not one with code.
func billingErr(t *testing.T, err error, code billing.Code) *billing.Error {
	t.Helper()
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != code {
		t.Fatalf("error = %v; want a *billing.Error with code %s", err, code)
	}
	return be
}

// usd parses an exact dollar amount.
func usd(s string) money.Amount { return money.MustParse(s) }

// useRapidChecks is storetest.RapidChecks.
var useRapidChecks = storetest.RapidChecks

// rawSQL is RawSQL, for the tests outside the package.
var rawSQL = metering.RawSQL

// counters returns a user's settled and held counters from the database,
// after journaling every hold, and checks that the meter's own view (in
// memory on SQLite) agrees with it.
func (f *fixture) counters(user string, p billing.Period, provider string) (total, held, prov, heldProv billing.Counters, err error) {
	f.t.Helper()
	if err := f.m.Flush(f.ctx); err != nil {
		f.t.Fatalf("flush the reservation journal: %v", err)
	}
	c, err := f.db.Counters(f.ctx, user, p, provider)
	if err != nil {
		return
	}
	total, held, prov, heldProv = c.Total, c.HeldTotal, c.Provider, c.HeldProvider
	pf, perr := f.m.Preflight(f.ctx, user, []metering.PreflightOp{{Provider: provider}})
	if perr != nil {
		f.t.Fatalf("preflight: %v", perr)
	}
	if pf.Period.Key == p.Key && (pf.Usage.Calls != total.Calls || pf.Usage.Cost != total.Cost ||
		pf.Reserved.Calls != held.Calls || pf.Reserved.Cost != held.Cost) {
		f.t.Errorf("the meter counts used %d calls / %s and held %d calls / %s; the database %d / %s and %d / %s",
			pf.Usage.Calls, pf.Usage.Cost.Dollars(), pf.Reserved.Calls, pf.Reserved.Cost.Dollars(),
			total.Calls, total.Cost.Dollars(), held.Calls, held.Cost.Dollars())
	}
	return
}
