package metering_test

import (
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestRecordSeedArithmetic is the seed's own example, through Record: gpt-4,
// 1,000 input and 500 output tokens, costs 0.06 USD.
func TestRecordSeedArithmetic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "golden-user"
		f.keyUser(user)
		res := f.record(gpt4Event("seed-example", user, baseTime, 1000, 500))
		want := billing.EventResult{EventID: "seed-example", Status: billing.EventRecorded, Cost: usd("0.06"), BillingPeriod: "2025-03"}
		if res[0] != want {
			t.Fatalf("result %+v; want %+v", res[0], want)
		}
		u := f.usage(user, billing.CalendarMonths().At(baseTime))
		if u.Total.Cost != usd("0.06") || u.ByProvider["openai"].Cost != usd("0.06") || u.Total.Calls != 1 ||
			u.Total.TokensInput != 1000 || u.Total.TokensOutput != 500 {
			t.Fatalf("summary %+v, openai %+v; want 1 call, 1000/500 tokens, 0.06 USD", u.Total, u.ByProvider["openai"])
		}
		logs, _, err := f.db.ListLogs(f.ctx, billing.LogFilter{UserID: user, Limit: 10})
		if err != nil || len(logs) != 1 {
			t.Fatalf("logs: %d, %v; want 1", len(logs), err)
		}
		if l := logs[0]; l.CostInput != usd("0.03") || l.CostOutput != usd("0.03") || l.CostTotal != usd("0.06") {
			t.Fatalf("log costs in %s, out %s, total %s; want 0.03, 0.03, 0.06", l.CostInput.Dollars(), l.CostOutput.Dollars(), l.CostTotal.Dollars())
		}
		f.consistent()
	})
}

// TestPriceChangeMidPeriod adds a gpt-4 price version effective on March
// 10: calls before it keep the old price, calls from it on use the new one
// (calls recorded before the change included), and the period's total is
// the exact sum of both.
func TestPriceChangeMidPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, time.Date(2025, time.March, 20, 12, 0, 0, 0, time.UTC))
		const user = "price-change-user"
		f.keyUser(user)
		change := time.Date(2025, time.March, 10, 0, 0, 0, 0, time.UTC)

		// Recorded before the change exists: rated at the old price, and
		// it loads the meter's price cache.
		early := f.record(gpt4Event("early", user, change.Add(-5*24*time.Hour), 1000, 500))
		if early[0].Cost != usd("0.06") {
			t.Fatalf("event before the change: %s; want 0.06", early[0].Cost.Dollars())
		}

		// A cheaper gpt-4 from March 10: 0.00001 in, 0.00003 out.
		if _, err := f.db.CreatePrice(f.ctx, billing.Price{Provider: "openai", ModelName: "gpt-4", IsActive: true,
			Tier: billing.PriceTier{Input: usd("0.00001"), Output: usd("0.00003")}, EffectiveFrom: change}, f.clk.Now()); err != nil {
			t.Fatalf("create price: %v", err)
		}
		const newCost = "0.025" // 1,000 × 0.00001 + 500 × 0.00003
		cases := []struct {
			id   string
			at   time.Time
			cost string
		}{
			{"just-before", change.Add(-time.Microsecond), "0.06"},
			{"at-change", change, newCost},
			{"after", change.Add(5 * 24 * time.Hour), newCost},
			{"long-before", change.Add(-8 * 24 * time.Hour), "0.06"},
		}
		var events []billing.UsageEvent
		for _, c := range cases {
			events = append(events, gpt4Event(c.id, user, c.at, 1000, 500))
		}
		for i, r := range f.record(events...) {
			if r.Cost != usd(cases[i].cost) {
				t.Fatalf("event %s at %s: %s; want %s", cases[i].id, cases[i].at, r.Cost.Dollars(), cases[i].cost)
			}
		}
		// The price change rewrote no history: the early event keeps its
		// price, also when resent.
		if again := f.record(gpt4Event("early", user, change.Add(-5*24*time.Hour), 1000, 500)); again[0].Cost != usd("0.06") ||
			again[0].Status != billing.EventDuplicate {
			t.Fatalf("early event resent after the change: %+v; want its first result", again[0])
		}
		u := f.usage(user, billing.CalendarMonths().At(change))
		// 3 × 0.06 + 2 × 0.025, exactly.
		if want := usd("0.23"); u.Total.Cost != want || u.ByProvider["openai"].Cost != want || u.Total.Calls != 5 {
			t.Fatalf("March: %d calls, %s; want 5 calls, %s", u.Total.Calls, u.Total.Cost.Dollars(), want.Dollars())
		}
		f.consistent()
	})
}

// TestSettleRatesWithPricesChangedSinceTheCache: the meter rates from a
// cached catalog; a price version added behind its back (another replica,
// the CLI, the admin API) after the cache loaded still prices the next settle and batch,
// because the commit finds the catalog changed and the events are rated
// again. A held reservation stays settleable through that retry.
func TestSettleRatesWithPricesChangedSinceTheCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "stale-cache-user"
		f.keyUser(user)
		// Loads the cache at the old price.
		if r := f.record(gpt4Event("warm", user, baseTime.Add(-time.Hour), 1000, 500)); r[0].Cost != usd("0.06") {
			t.Fatalf("warm-up: %s; want 0.06", r[0].Cost.Dollars())
		}
		rsv, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: user, Provider: "openai", Model: "gpt-4", Tokens: 2000})
		if err != nil {
			t.Fatalf("reserve: %v", err)
		}
		// The store, not the meter: the meter hears of it only from the
		// catalog's version.
		if _, err := f.db.CreatePrice(f.ctx, billing.Price{Provider: "openai", ModelName: "gpt-4", IsActive: true,
			Tier: billing.PriceTier{Input: usd("0.00001"), Output: usd("0.00003")}, EffectiveFrom: baseTime.Add(-30 * time.Minute)}, f.clk.Now()); err != nil {
			t.Fatalf("create price: %v", err)
		}
		e := gpt4Event("settled-after-change", user, baseTime, 1000, 500)
		res, err := f.m.Settle(f.ctx, rsv.ID, e)
		if err != nil {
			t.Fatalf("settle: %v", err)
		}
		if res.Cost != usd("0.025") || res.Status != billing.EventRecorded {
			t.Fatalf("settled %+v; want recorded at the new price, 0.025", res)
		}
		if _, held, _, _, err := f.counters(user, billing.CalendarMonths().At(baseTime), "openai"); err != nil || held != (billing.Counters{}) {
			t.Fatalf("held after the settle: %+v, %v; want nothing", held, err)
		}
		if r := f.record(gpt4Event("batch-after-change", user, baseTime, 1000, 500)); r[0].Cost != usd("0.025") {
			t.Fatalf("batch after the change: %s; want 0.025", r[0].Cost.Dollars())
		}
		f.consistent()
	})
}
