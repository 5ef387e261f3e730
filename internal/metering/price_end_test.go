package metering_test

import (
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestEndedPriceRatesNothingFromItsEnd: a price version's end is
// exclusive. With no version of the model after it, an event at exactly
// its EffectiveTo falls back as if the model had never been priced: to the
// provider's default price when it has one, else it is recorded unpriced
// (flagged, at no cost). An event one microsecond earlier, the ledger's
// resolution, is still rated with the ended version.
func TestEndedPriceRatesNothingFromItsEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "ended-price-user"
		f.keyUser(user)
		end := baseTime.Add(-time.Hour)
		ended := func(provider, model string) billing.Price {
			return billing.Price{Provider: provider, ModelName: model, IsActive: true,
				Tier:          billing.PriceTier{Input: usd("0.00001"), Output: usd("0.00001")},
				EffectiveFrom: end.Add(-24 * time.Hour), EffectiveTo: &end}
		}
		// openai has no default price; mistral is given one that never ends.
		for _, p := range []billing.Price{
			ended("openai", "sunset-model"),
			ended("mistral", "sunset-model"),
			{Provider: "mistral", ModelName: billing.DefaultModel, IsActive: true,
				Tier:          billing.PriceTier{Input: usd("0.000001"), Output: usd("0.000001")},
				EffectiveFrom: billing.DefaultPricesEffective},
		} {
			if _, err := f.db.CreatePrice(f.ctx, p, f.clk.Now()); err != nil {
				t.Fatalf("create price %s/%s: %v", p.Provider, p.ModelName, err)
			}
		}
		const endedCost, defaultCost = "0.015", "0.0015" // 1,500 tokens at 0.00001 and at 0.000001
		cases := []struct {
			id, provider string
			at           time.Time
			cost         string
			unpriced     bool
		}{
			{"openai-before-end", "openai", end.Add(-time.Microsecond), endedCost, false},
			{"openai-at-end", "openai", end, "0", true},
			{"openai-after-end", "openai", end.Add(time.Minute), "0", true},
			{"mistral-before-end", "mistral", end.Add(-time.Microsecond), endedCost, false},
			{"mistral-at-end", "mistral", end, defaultCost, false},
			{"mistral-after-end", "mistral", end.Add(time.Minute), defaultCost, false},
		}
		var events []billing.UsageEvent
		for _, c := range cases {
			e := gpt4Event(c.id, user, c.at, 1000, 500)
			e.Provider, e.Model = c.provider, "sunset-model"
			events = append(events, e)
		}
		for i, r := range f.record(events...) {
			c := cases[i]
			if r.Status != billing.EventRecorded || r.Cost != usd(c.cost) || r.Unpriced != c.unpriced {
				t.Errorf("event %s at %s: %+v; want recorded at %s, unpriced %v",
					c.id, c.at.Format(time.RFC3339Nano), r, c.cost, c.unpriced)
			}
		}
		// The ledger holds what the results said.
		logs, _, err := f.db.ListLogs(f.ctx, billing.LogFilter{UserID: user, Limit: 100})
		if err != nil || len(logs) != len(cases) {
			t.Fatalf("logs: %d, %v; want %d", len(logs), err, len(cases))
		}
		for _, l := range logs {
			for _, c := range cases {
				if l.EventID == c.id && (l.CostTotal != usd(c.cost) || l.Unpriced != c.unpriced) {
					t.Errorf("log %s: cost %s, unpriced %v; want %s, %v", l.EventID, l.CostTotal, l.Unpriced, c.cost, c.unpriced)
				}
			}
		}
		f.consistent()
	})
}
