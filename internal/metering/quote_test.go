package metering_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// quoteCases are calls of several providers that fill every bucket the
// rating knows: cache reads and writes, reasoning, the long-context tier,
// per-unit fees and an unpriced model.
var quoteCases = []struct {
	name            string
	provider, model string
	q               billing.Quantities
	cost            string
}{
	// 176 uncached × 0.0000025 + 1024 cached × 0.00000125 + 300 output × 0.00001.
	{"openai cached and reasoning", "openai", "gpt-4o-2024-08-06",
		billing.Quantities{Input: 1200, CachedInput: 1024, Output: 300, Reasoning: 128}, "0.00472"},
	// 100 × 0.000003 + 1500 × 0.00000375 + 500 × 0.000006 + 3000 × 0.0000003 + 500 × 0.000015.
	{"anthropic cache writes and reads", "anthropic", "claude-3.5-sonnet",
		billing.Quantities{Input: 5100, CachedInput: 3000, CacheWrite5m: 1500, CacheWrite1h: 500, Output: 500, Searches: 1}, "0.017325"},
	// No cached-input price: cached tokens bill as input.
	{"gemini thinking", "gemini", "gemini-2.5-flash",
		billing.Quantities{Input: 5000, CachedInput: 4000, Output: 500, Reasoning: 300}, "0.00275"},
	// Above 200 K prompt tokens the whole request takes the long-context
	// prices: 250000 × 0.0000025 + 1000 × 0.000015.
	{"gemini long context", "gemini", "gemini-2.5-pro",
		billing.Quantities{Input: 250_000, Output: 1000, Reasoning: 400}, "0.64"},
	{"mistral", "mistral", "mistral-7b", billing.Quantities{Input: 1000, Output: 200}, "0.00032"},
	{"per-request fee", "tavily", "tavily-search", billing.Quantities{Requests: 3}, "0.003"},
	{"unpriced model", "openai", "text-embedding-3-small", billing.Quantities{Input: 8}, "0"},
}

func quoteEvent(id, user, provider, model string, q billing.Quantities, ts time.Time) billing.UsageEvent {
	return billing.UsageEvent{EventID: id, UserID: user, Provider: provider, Model: model, Endpoint: "/v1/test",
		Method: "POST", StatusCode: 200, ResponseTime: 0.1, Timestamp: ts, Quantities: q}
}

// TestQuoteIsTheCostRecorded quotes calls of every provider and bucket, and
// then records them: each is recorded with the cost it was quoted, and
// quoting alone records nothing.
func TestQuoteIsTheCostRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "quote-user"
		f.keyUser(user)
		var events []billing.UsageEvent
		var quotes []money.Amount
		for i, c := range quoteCases {
			e := quoteEvent(fmt.Sprintf("quote-%d", i), user, c.provider, c.model, c.q, baseTime.Add(-time.Minute))
			q, err := f.m.Quote(f.ctx, e)
			if err != nil {
				t.Fatalf("%s: quote: %v", c.name, err)
			}
			if q != usd(c.cost) {
				t.Errorf("%s: quoted %s; want %s", c.name, q.Dollars(), c.cost)
			}
			events = append(events, e)
			quotes = append(quotes, q)
		}
		if logs, _, err := f.db.ListLogs(f.ctx, billing.LogFilter{UserID: user, Limit: 10}); err != nil || len(logs) != 0 {
			t.Fatalf("quoting recorded %d rows (%v); want none", len(logs), err)
		}
		res := f.record(events...)
		for i, r := range res {
			if r.Cost != quotes[i] {
				t.Errorf("%s: recorded %s; quoted %s", quoteCases[i].name, r.Cost.Dollars(), quotes[i].Dollars())
			}
		}
		logs, _, err := f.db.ListLogs(f.ctx, billing.LogFilter{UserID: user, Limit: 100})
		if err != nil || len(logs) != len(events) {
			t.Fatalf("ledger: %d rows, %v; want %d", len(logs), err, len(events))
		}
		byID := map[string]money.Amount{}
		for _, l := range logs {
			byID[l.EventID] = l.CostTotal
		}
		for i, e := range events {
			if byID[e.EventID] != quotes[i] {
				t.Errorf("%s: the ledger holds %s; quoted %s", quoteCases[i].name, byID[e.EventID].Dollars(), quotes[i].Dollars())
			}
		}
		f.consistent()
	})
}

// TestQuoteIsTheCostSettled quotes a call and then settles its reservation
// with it, as the LLM gateway does.
func TestQuoteIsTheCostSettled(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		const user = "quote-settle-user"
		f.keyUser(user)
		for i, c := range quoteCases[:5] {
			rsv, err := f.m.Reserve(f.ctx, billing.ReserveRequest{UserID: user, Provider: c.provider, Model: c.model, Tokens: 1000})
			if err != nil {
				t.Fatalf("%s: reserve: %v", c.name, err)
			}
			e := quoteEvent(fmt.Sprintf("quote-settle-%d", i), user, c.provider, c.model, c.q, baseTime)
			q, err := f.m.Quote(f.ctx, e)
			if err != nil {
				t.Fatalf("%s: quote: %v", c.name, err)
			}
			res, err := f.m.Settle(f.ctx, rsv.ID, e)
			if err != nil {
				t.Fatalf("%s: settle: %v", c.name, err)
			}
			if res.Cost != q || q != usd(c.cost) {
				t.Errorf("%s: quoted %s, settled %s; want %s", c.name, q.Dollars(), res.Cost.Dollars(), c.cost)
			}
		}
		f.consistent()
	})
}

// TestQuoteUsesThePriceInEffectAtTheEvent: a price version added later
// does not change the quote of an earlier call, and prices a later one, as
// it does when they are recorded.
func TestQuoteUsesThePriceInEffectAtTheEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, time.Date(2025, time.March, 20, 12, 0, 0, 0, time.UTC))
		const user = "quote-version-user"
		f.keyUser(user)
		change := time.Date(2025, time.March, 10, 0, 0, 0, 0, time.UTC)
		if _, err := f.db.CreatePrice(f.ctx, billing.Price{Provider: "openai", ModelName: "gpt-4", IsActive: true,
			Tier: billing.PriceTier{Input: usd("0.00001"), Output: usd("0.00003")}, EffectiveFrom: change}, f.clk.Now()); err != nil {
			t.Fatalf("create price: %v", err)
		}
		for _, c := range []struct {
			id   string
			ts   time.Time
			cost string
		}{
			{"before-change", change.Add(-time.Hour), "0.06"},
			{"after-change", change.Add(time.Hour), "0.025"},
		} {
			e := gpt4Event(c.id, user, c.ts, 1000, 500)
			q, err := f.m.Quote(f.ctx, e)
			if err != nil {
				t.Fatalf("%s: quote: %v", c.id, err)
			}
			if res := f.record(e); q != usd(c.cost) || res[0].Cost != q {
				t.Errorf("%s: quoted %s, recorded %s; want %s", c.id, q.Dollars(), res[0].Cost.Dollars(), c.cost)
			}
		}
	})
}

// TestQuoteRefusesWhatRecordRefuses: an event the ledger would refuse
// cannot be quoted.
func TestQuoteRefusesWhatRecordRefuses(t *testing.T) {
	f := newFixture(t, storetest.Backends()[0], baseTime)
	for name, e := range map[string]billing.UsageEvent{
		"cached beyond input": quoteEvent("bad-1", "u", "openai", "gpt-4o", billing.Quantities{Input: 10, CachedInput: 20}, baseTime),
		"negative output":     quoteEvent("bad-2", "u", "openai", "gpt-4o", billing.Quantities{Output: -1}, baseTime),
		"no timestamp":        quoteEvent("bad-3", "u", "openai", "gpt-4o", billing.Quantities{Input: 1}, time.Time{}),
		"no user":             quoteEvent("bad-4", "", "openai", "gpt-4o", billing.Quantities{Input: 1}, baseTime),
	} {
		if _, err := f.m.Quote(f.ctx, e); billing.ErrorCode(err) != billing.CodeInvalid {
			t.Errorf("%s: quote error %v; want invalid", name, err)
		}
		if _, err := f.m.Record(f.ctx, []billing.UsageEvent{e}); billing.ErrorCode(err) != billing.CodeInvalid {
			t.Errorf("%s: record error %v; want invalid", name, err)
		}
	}
}
