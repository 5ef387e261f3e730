package metering_test

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// modelSpec is a model the property test calls, with the seed price it must
// be billed at, named independently of the meter's resolution rules ("" for
// a model no price matches).
type modelSpec struct {
	provider, model, priced string
}

var propertyModels = []modelSpec{
	{"openai", "gpt-4", "gpt-4"},
	{"openai", "gpt-4o", "gpt-4o"},
	{"openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"}, // longest prefix, not gpt-4 or gpt-4o
	{"openai", "o-mystery-1", ""},                       // unpriced: openai has no default row
	{"gemini", "gemini-2.5-pro", "gemini-2.5-pro"},      // long-context rule above 200k input
	{"gemini", "gemini-2.5-flash", "gemini-2.5-flash"},
	{"anthropic", "claude-3.5-sonnet", "claude-3.5-sonnet"}, // separate cache read and write prices
	{"anthropic", "claude-3-opus", "claude-3"},
	{"tavily", "tavily-search", "tavily-search"}, // per-request fee
}

// seedPrice returns the default price of provider/model, straight from the
// seed's list.
func seedPrice(t *rapid.T, provider, model string) billing.Price {
	for _, p := range billing.DefaultPrices() {
		if p.Provider == provider && p.ModelName == model {
			return p
		}
	}
	t.Fatalf("no seed price for %s/%s", provider, model)
	return billing.Price{}
}

// expected is what the ledger must say about one event.
type expected struct {
	ev       billing.UsageEvent
	cost     money.Amount
	unpriced bool
	period   billing.Period
}

// tally is one user's expected counters in one period, total or per
// provider.
type tally struct {
	calls, errors, in, out int64
	cost                   money.Amount
}

func (c *tally) add(t *rapid.T, e expected) {
	c.calls++
	if e.ev.StatusCode >= 400 {
		c.errors++
	}
	c.in += e.ev.Quantities.Input
	c.out += e.ev.Quantities.Output
	var err error
	if c.cost, err = c.cost.Add(e.cost); err != nil {
		t.Fatal(err)
	}
}

func (c tally) check(t *rapid.T, what string, got billing.Counters) {
	if got.Calls != c.calls || got.Errors != c.errors || got.TokensInput != c.in || got.TokensOutput != c.out || got.Cost != c.cost {
		t.Fatalf("%s: summary has %d calls, %d errors, %d/%d tokens, cost %s; the events add up to %d calls, %d errors, %d/%d tokens, cost %s",
			what, got.Calls, got.Errors, got.TokensInput, got.TokensOutput, got.Cost.Dollars(),
			c.calls, c.errors, c.in, c.out, c.cost.Dollars())
	}
}

// TestRecordMatchesIndependentRating records random event streams in random
// batches, resending whole and partial batches and repeating events inside
// batches, and checks that every summary equals the sum of each distinct
// event's cost rated independently, that every resent event counts once,
// and that the ledger reconciles.
func TestRecordMatchesIndependentRating(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		if b.Name == "postgres" {
			useRapidChecks(t, 25)
		} else {
			useRapidChecks(t, 50)
		}
		f := newFixture(t, b, baseTime)
		pro := f.planID("Professional")
		run := 0
		sawUnpriced := false
		rapid.Check(t, func(rt *rapid.T) {
			run++ // every run (shrinking included) gets its own users and ids
			users := []string{fmt.Sprintf("prop%d-free-a", run), fmt.Sprintf("prop%d-free-b", run), fmt.Sprintf("prop%d-pro", run)}
			schedules := map[string]billing.Schedule{users[0]: billing.CalendarMonths(), users[1]: billing.CalendarMonths()}
			f.keyUser(users[0])
			f.keyUser(users[1])
			// The third user's periods start on an anchor day drawn from
			// January (the 29th–31st clamp at month ends).
			anchor := time.Date(2025, time.January, rapid.IntRange(1, 31).Draw(rt, "anchor_day"),
				rapid.IntRange(0, 23).Draw(rt, "anchor_hour"), 0, 0, 0, time.UTC)
			f.subscribe(users[2], pro, anchor)
			schedules[users[2]] = billing.Schedule{Anchor: anchor, Location: time.UTC}

			n := rapid.IntRange(1, 40).Draw(rt, "events")
			stream := make([]expected, n)
			for i := range stream {
				stream[i] = genEvent(rt, fmt.Sprintf("prop%d-ev%d", run, i), users, schedules)
			}
			byID := map[string]expected{}
			for _, e := range stream {
				byID[e.ev.EventID] = e
			}

			// Split the stream into batches.
			var batches [][]billing.UsageEvent
			for rest := stream; len(rest) > 0; {
				k := rapid.IntRange(1, min(len(rest), 12)).Draw(rt, "batch_size")
				var bt []billing.UsageEvent
				for _, e := range rest[:k] {
					bt = append(bt, e.ev)
				}
				batches = append(batches, bt)
				rest = rest[k:]
			}

			recorded := map[string]bool{}
			var sent []billing.UsageEvent
			submit := func(events []billing.UsageEvent) {
				res, err := f.m.Record(f.ctx, events)
				if err != nil || len(res) != len(events) {
					rt.Fatalf("record %d events: %d results, %v", len(events), len(res), err)
				}
				inBatch := map[string]bool{}
				for i, e := range events {
					want := byID[e.EventID]
					status := billing.EventRecorded
					if recorded[e.EventID] || inBatch[e.EventID] {
						status = billing.EventDuplicate
					}
					inBatch[e.EventID] = true
					r := res[i]
					if r.EventID != e.EventID || r.Status != status || r.Cost != want.cost || r.Unpriced != want.unpriced ||
						r.BillingPeriod != want.period.Key {
						rt.Fatalf("result %d of a batch of %d = %+v; want %s %s, cost %s, unpriced %v, period %s", i, len(events), r,
							e.EventID, status, want.cost.Dollars(), want.unpriced, want.period.Key)
					}
				}
				for _, e := range events {
					recorded[e.EventID] = true
					sawUnpriced = sawUnpriced || byID[e.EventID].unpriced
				}
				sent = append(sent, events...)
			}
			for bi, bt := range batches {
				events := append([]billing.UsageEvent(nil), bt...)
				// Some new batches carry events already sent (a client
				// retrying what it was not sure of).
				if len(sent) > 0 && rapid.Bool().Draw(rt, "mix_resent") {
					events = append(events, sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "resent_event")])
				}
				// Some batches repeat one of their events exactly.
				if rapid.Bool().Draw(rt, "repeat_inside") {
					e := events[rapid.IntRange(0, len(events)-1).Draw(rt, "repeated")]
					at := rapid.IntRange(0, len(events)).Draw(rt, "repeat_at")
					events = append(events[:at], append([]billing.UsageEvent{e}, events[at:]...)...)
				}
				submit(events)
				// Some batches are resent, whole or in part, in any order.
				if rapid.Bool().Draw(rt, "resend") {
					old := batches[rapid.IntRange(0, bi).Draw(rt, "resent_batch")]
					var again []billing.UsageEvent
					for _, i := range rapid.Permutation(indices(len(old))).Draw(rt, "resend_order") {
						if rapid.IntRange(0, 3).Draw(rt, "keep") > 0 {
							again = append(again, old[i])
						}
					}
					if len(again) == 0 {
						again = old
					}
					submit(again)
				}
			}

			// Expected counters per user and period, from the distinct
			// events alone.
			type key struct{ user, period, provider string }
			want := map[key]*tally{}
			periods := map[string]map[string]billing.Period{}
			for _, e := range stream {
				u, p := e.ev.UserID, e.period
				for _, k := range []key{{u, p.Key, ""}, {u, p.Key, e.ev.Provider}, {u, billing.AllTime, ""}, {u, billing.AllTime, e.ev.Provider}} {
					if want[k] == nil {
						want[k] = &tally{}
					}
					want[k].add(rt, e)
				}
				if periods[u] == nil {
					periods[u] = map[string]billing.Period{}
				}
				periods[u][p.Key] = p
			}
			for _, u := range users {
				ps := []billing.Period{{Key: billing.AllTime}}
				for _, p := range periods[u] {
					ps = append(ps, p)
				}
				got, err := f.db.UsageForPeriods(f.ctx, u, ps)
				if err != nil {
					rt.Fatalf("usage of %s: %v", u, err)
				}
				for _, g := range got {
					w := want[key{u, g.Period.Key, ""}]
					if w == nil {
						w = &tally{}
					}
					w.check(rt, u+" "+g.Period.Key, g.Total)
					for _, m := range propertyModels {
						w := want[key{u, g.Period.Key, m.provider}]
						if w == nil {
							w = &tally{}
						}
						w.check(rt, u+" "+g.Period.Key+" "+m.provider, g.ByProvider[m.provider])
					}
				}
			}
			mm, err := f.db.Reconcile(f.ctx)
			if err != nil || len(mm) != 0 {
				rt.Fatalf("reconcile = %v, %v; want no mismatches", mm, err)
			}

			// Unpriced calls raise one admin alert per model, ever.
			unpriced := 0
			for _, a := range f.alerts("", "") {
				if a.Type == billing.AlertUnpricedModel {
					unpriced++
					if a.LimitKey != "model:openai/o-mystery-1" {
						rt.Fatalf("unpriced-model alert for %q; only openai/o-mystery-1 is unpriced", a.LimitKey)
					}
				}
			}
			if want := map[bool]int{false: 0, true: 1}[sawUnpriced]; unpriced != want {
				rt.Fatalf("%d unpriced-model alerts; want %d", unpriced, want)
			}
		})
	})
}

// genEvent draws one valid event: a known user, a model from
// propertyModels, token buckets that fit in their totals and a timestamp in
// the last 30 days; it rates the event with billing.Rate on the seed price.
func genEvent(t *rapid.T, id string, users []string, schedules map[string]billing.Schedule) expected {
	m := rapid.SampledFrom(propertyModels).Draw(t, "model")
	user := rapid.SampledFrom(users).Draw(t, "user")
	var q billing.Quantities
	if m.provider == "tavily" {
		q.Requests = rapid.Int64Range(1, 3).Draw(t, "requests")
		q.Searches = rapid.Int64Range(0, 3).Draw(t, "searches")
	} else {
		// Inputs up to 300k so the 200k long-context rule is crossed.
		q.Input = rapid.OneOf(rapid.Int64Range(0, 5_000), rapid.Int64Range(0, 300_000)).Draw(t, "input")
		q.CachedInput = rapid.Int64Range(0, q.Input).Draw(t, "cached")
		q.CacheWrite5m = rapid.Int64Range(0, q.Input-q.CachedInput).Draw(t, "write_5m")
		q.CacheWrite1h = rapid.Int64Range(0, q.Input-q.CachedInput-q.CacheWrite5m).Draw(t, "write_1h")
		q.Output = rapid.Int64Range(0, 20_000).Draw(t, "output")
		q.Reasoning = rapid.Int64Range(0, q.Output).Draw(t, "reasoning")
		q.Requests = rapid.Int64Range(0, 1).Draw(t, "requests")
	}
	ts := baseTime.Add(-time.Duration(rapid.Int64Range(0, 30*24*3600).Draw(t, "age_seconds")) * time.Second)
	ev := billing.UsageEvent{EventID: id, UserID: user, Provider: m.provider, Model: m.model, Endpoint: "/v1/x",
		Method: "POST", StatusCode: rapid.SampledFrom([]int{200, 200, 200, 429, 500}).Draw(t, "status"),
		ResponseTime: rapid.SampledFrom([]float64{0.1, 0.25, 1.5}).Draw(t, "response_time"), Timestamp: ts, Quantities: q}
	e := expected{ev: ev, unpriced: m.priced == "", period: schedules[user].At(ts)}
	if m.priced != "" {
		c, err := billing.Rate(seedPrice(t, m.provider, m.priced), q)
		if err != nil {
			t.Fatalf("rate %+v: %v", q, err)
		}
		e.cost = c.Total
	}
	return e
}

func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
