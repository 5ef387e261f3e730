package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// reserveItem is a one-call reservation of user in period p on provider,
// with limits lim.
func reserveItem(id, user string, p billing.Period, provider string, tokens int64, cost money.Amount, lim billing.Limits, now time.Time) store.ReserveItem {
	return store.ReserveItem{
		Reservation: billing.Reservation{ID: id, UserID: user, Period: p, Provider: provider, Model: "m", Calls: 1,
			Tokens: tokens, Cost: cost, Status: billing.ReservationHeld, ExpiresAt: now.Add(time.Hour), CreatedAt: now},
		Limits: lim, Now: now,
	}
}

// limitOf returns the LimitInfo of a limit_exceeded refusal, or nil for
// nil; it fails the test on any other error.
func limitOf(t *testing.T, what string, err error) *billing.LimitInfo {
	t.Helper()
	if err == nil {
		return nil
	}
	var be *billing.Error
	if !errors.As(err, &be) || be.Code != billing.CodeLimitExceeded || be.Limit == nil {
		t.Fatalf("%s: %v; want nil or limit_exceeded with the limit", what, err)
	}
	return be.Limit
}

// TestReserveBatchDecidesInArrivalOrder sends one group mixing users,
// periods, providers and kinds of limit, with admissions and refusals of
// the same user interleaved: each is decided as if alone in arrival order,
// counting the committed holds and usage and the holds admitted before it
// in the group (never the refused), and each refusal names its limit with
// the counters at its turn.
func TestReserveBatchDecidesInArrivalOrder(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, storetest.Backend{Name: "postgres", URL: storetest.PostgresURL})
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p, next := billing.CalendarMonths().At(now), billing.CalendarMonths().At(now.AddDate(0, 1, 0))
	used := storetest.Log("u1", "e-before", now)
	used.TokensInput, used.TokensOutput, used.CostTotal = 100, 50, usd("0.01")
	storetest.Record(t, db, used)
	// A hold committed before the group counts too.
	if err := db.Reserve(ctx, reserveItem("rsv-before", "u3", p, "openai", 0, usd("0.05"), billing.Limits{}, now).Reservation,
		billing.Limits{}, now); err != nil {
		t.Fatal(err)
	}

	calls3 := billing.Limits{TotalCalls: billing.Ptr[int64](3)}
	calls1 := billing.Limits{TotalCalls: billing.Ptr[int64](1)}
	tokens1000 := billing.Limits{ProviderTokens: billing.Ptr[int64](1000)}
	cost1 := billing.Limits{Cost: billing.Ptr(int64(usd("1")))}
	openai2 := billing.Limits{ProviderCalls: billing.Ptr[int64](2)}
	pico := func(s string) int64 { return int64(usd(s)) }
	cases := []struct {
		item store.ReserveItem
		want *billing.LimitInfo // nil: admitted
	}{
		{reserveItem("r00", "u1", p, "openai", 0, 0, calls3, now), nil},
		{reserveItem("r01", "u2", p, "openai", 600, 0, tokens1000, now), nil},
		{reserveItem("r02", "u1", p, "gemini", 0, 0, calls3, now), nil},
		{reserveItem("r03", "u2", p, "openai", 600, 0, tokens1000, now),
			&billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Used: 0, Reserved: 600, Requested: 600, Limit: 1000, Period: p.Key}},
		{reserveItem("r04", "u1", p, "openai", 0, 0, calls3, now),
			&billing.LimitInfo{Key: "total_calls", Used: 1, Reserved: 2, Requested: 1, Limit: 3, Period: p.Key}},
		{reserveItem("r05", "u2", p, "gemini", 600, 0, tokens1000, now), nil}, // another provider's tokens
		{reserveItem("r06", "u2", p, "openai", 400, 0, tokens1000, now), nil}, // the refused 600 took nothing
		{reserveItem("r07", "u1", next, "openai", 0, 0, calls1, now), nil},    // another period
		{reserveItem("r08", "u1", next, "openai", 0, 0, calls1, now),
			&billing.LimitInfo{Key: "total_calls", Used: 0, Reserved: 1, Requested: 1, Limit: 1, Period: next.Key}},
		{reserveItem("r09", "u3", p, "openai", 0, usd("0.6"), cost1, now), nil},
		{reserveItem("r10", "u3", p, "openai", 0, usd("0.6"), cost1, now),
			&billing.LimitInfo{Key: "monthly_cost", Used: 0, Reserved: pico("0.65"), Requested: pico("0.6"), Limit: pico("1"), Money: true, Period: p.Key}},
		{reserveItem("r11", "u3", p, "openai", 0, usd("0.3"), cost1, now), nil},
		{reserveItem("r12", "u3", p, "openai", 0, usd("0.2"), cost1, now),
			&billing.LimitInfo{Key: "monthly_cost", Used: 0, Reserved: pico("0.95"), Requested: pico("0.2"), Limit: pico("1"), Money: true, Period: p.Key}},
		{reserveItem("r13", "u1", p, "openai", 0, 0, openai2, now),
			&billing.LimitInfo{Key: "openai_calls", Provider: "openai", Used: 1, Reserved: 1, Requested: 1, Limit: 2, Period: p.Key}},
		{reserveItem("r14", "u4", p, "openai", 5000, usd("3"), billing.Limits{}, now), nil},
	}
	items := make([]store.ReserveItem, len(cases))
	for i, c := range cases {
		items[i] = c.item
	}
	answers, err := db.ReserveBatch(ctx, items)
	if err != nil {
		t.Fatalf("ReserveBatch: %v", err)
	}
	if len(answers) != len(cases) {
		t.Fatalf("%d answers for %d requests", len(answers), len(cases))
	}
	for i, c := range cases {
		id := c.item.Reservation.ID
		got := limitOf(t, id, answers[i])
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: refused by %+v; want %+v", id, got, c.want)
		}
		r, err := db.GetReservation(ctx, id)
		switch {
		case c.want == nil && (err != nil || r.Status != billing.ReservationHeld || r.UserID != c.item.Reservation.UserID ||
			r.Period.Key != c.item.Reservation.Period.Key || r.Tokens != c.item.Reservation.Tokens || r.Cost != c.item.Reservation.Cost):
			t.Errorf("%s was admitted but reads back as %+v, %v", id, r, err)
		case c.want != nil && billing.ErrorCode(err) != billing.CodeNotFound:
			t.Errorf("%s was refused but reads back as %+v, %v; want not_found", id, r, err)
		}
	}
	// What the database holds is exactly what was admitted.
	for _, w := range []struct {
		user               string
		period             billing.Period
		provider           string
		held, heldProvider billing.Counters
	}{
		{"u1", p, "openai", billing.Counters{Calls: 2}, billing.Counters{Calls: 1}},
		{"u1", next, "openai", billing.Counters{Calls: 1}, billing.Counters{Calls: 1}},
		{"u2", p, "openai", billing.Counters{Calls: 3}, billing.Counters{Calls: 2, TokensInput: 1000}},
		{"u3", p, "openai", billing.Counters{Calls: 3, Cost: usd("0.95")}, billing.Counters{Calls: 3, Cost: usd("0.95")}},
	} {
		c, err := db.Counters(ctx, w.user, w.period, w.provider)
		if err != nil {
			t.Fatal(err)
		}
		if c.HeldTotal != w.held || c.HeldProvider != w.heldProvider {
			t.Errorf("%s %s held %+v, %s %+v; want %+v, %+v", w.user, w.period.Key, c.HeldTotal, w.provider, c.HeldProvider, w.held, w.heldProvider)
		}
	}
}

// TestReserveBatchMatchesOneAtATime replays random groups on one database
// and the same reservations one at a time (alwrity_reserve) on another:
// every answer, refusals' counters included, must be the same.
func TestReserveBatchMatchesOneAtATime(t *testing.T) {
	ctx := context.Background()
	pgBackend := storetest.Backend{Name: "postgres", URL: storetest.PostgresURL}
	grouped, single := storetest.Open(t, pgBackend), storetest.Open(t, pgBackend)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	periods := []billing.Period{billing.CalendarMonths().At(now), billing.CalendarMonths().At(now.AddDate(0, 1, 0))}
	for _, db := range []*store.DB{grouped, single} {
		storetest.Record(t, db, storetest.Log("u0", "e-u0", now), storetest.Log("u1", "e-u1", now))
	}
	rng := rand.New(rand.NewPCG(8, 256))
	maybe := func(v int64) *int64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &v
	}
	seq := 0
	for round := range 6 {
		items := make([]store.ReserveItem, 1+rng.IntN(256))
		for i := range items {
			seq++
			items[i] = reserveItem(fmt.Sprintf("r%04d", seq), fmt.Sprintf("u%d", rng.IntN(4)), periods[rng.IntN(2)],
				[]string{"openai", "gemini"}[rng.IntN(2)], rng.Int64N(400), money.Amount(rng.Int64N(1e11)),
				billing.Limits{TotalCalls: maybe(30), Cost: maybe(1e12), ProviderCalls: maybe(20), ProviderTokens: maybe(4000)}, now)
		}
		answers, err := grouped.ReserveBatch(ctx, items)
		if err != nil {
			t.Fatalf("round %d: ReserveBatch of %d: %v", round, len(items), err)
		}
		refused := 0
		for i, it := range items {
			want := limitOf(t, "one at a time", single.Reserve(ctx, it.Reservation, it.Limits, it.Now))
			got := limitOf(t, "grouped", answers[i])
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, request %d (%+v): grouped refused by %+v; one at a time by %+v", round, i, it, got, want)
			}
			if got != nil {
				refused++
			}
		}
		t.Logf("round %d: %d requests, %d refused", round, len(items), refused)
	}
}

// TestReserveBatchFailsWhole: a group with a reused id (twice in the
// group, or already held) or a row the database cannot store fails as a
// whole and holds nothing, so its caller can retry each reservation alone.
func TestReserveBatchFailsWhole(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, storetest.Backend{Name: "postgres", URL: storetest.PostgresURL})
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := billing.CalendarMonths().At(now)
	item := func(id string) store.ReserveItem {
		return reserveItem(id, "u1", p, "openai", 10, 1, billing.Limits{TotalCalls: billing.Ptr[int64](100)}, now)
	}
	if err := db.Reserve(ctx, item("held").Reservation, item("held").Limits, now); err != nil {
		t.Fatal(err)
	}
	for name, group := range map[string][]store.ReserveItem{
		"id twice in the group": {item("a"), item("dup"), item("b"), item("dup")},
		"id already held":       {item("a"), item("held"), item("b")},
		"NUL in an id":          {item("a"), item("bad\x00id"), item("b")},
	} {
		answers, err := db.ReserveBatch(ctx, group)
		if err == nil {
			t.Errorf("%s: answers %v; want the group to fail", name, answers)
		}
		for _, id := range []string{"a", "b", "dup"} {
			if r, err := db.GetReservation(ctx, id); billing.ErrorCode(err) != billing.CodeNotFound {
				t.Errorf("%s: %s reads back as %+v, %v; want not_found", name, id, r, err)
			}
		}
	}
	c, err := db.Counters(ctx, "u1", p, "openai")
	if err != nil {
		t.Fatal(err)
	}
	if c.HeldTotal.Calls != 1 {
		t.Errorf("held calls after the failed groups: %d; want 1 (the one held before)", c.HeldTotal.Calls)
	}
}

// TestReserveBatchesOfSeveralProcesses sends concurrent groups from three
// store handles on one database (as three server processes would), each
// group naming the same users in a different order: they take their
// (user, period) locks in one order, so none deadlocks, and exactly each
// user's limit is admitted.
func TestReserveBatchesOfSeveralProcesses(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	dbs := []*store.DB{storetest.OpenURL(t, url), storetest.OpenURL(t, url), storetest.OpenURL(t, url)}
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	p := billing.CalendarMonths().At(now)
	const users, limit, senders, groups, size = 6, 50, 4, 10, 24
	lim := billing.Limits{TotalCalls: billing.Ptr[int64](limit)}
	var (
		mu       sync.Mutex
		admitted = map[string]int{}
		wg       sync.WaitGroup
	)
	for d, db := range dbs {
		for s := range senders {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(d), uint64(s)))
				for g := range groups {
					items := make([]store.ReserveItem, size)
					for i := range items {
						items[i] = reserveItem(fmt.Sprintf("r-%d-%d-%d-%d", d, s, g, i), fmt.Sprintf("u%d", rng.IntN(users)),
							p, "openai", 0, 0, lim, now)
					}
					answers, err := db.ReserveBatch(ctx, items)
					if err != nil {
						t.Errorf("group %d of sender %d/%d: %v", g, d, s, err)
						return
					}
					mu.Lock()
					for i, err := range answers {
						if limitOf(t, items[i].Reservation.ID, err) == nil {
							admitted[items[i].Reservation.UserID]++
						}
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for u := range users {
		user := fmt.Sprintf("u%d", u)
		c, err := dbs[0].Counters(ctx, user, p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		if admitted[user] != limit || c.HeldTotal.Calls != limit {
			t.Errorf("%s: %d admitted, %d held; want exactly %d", user, admitted[user], c.HeldTotal.Calls, limit)
		}
	}
}

// TestAdmissionsCommitDurably (PostgreSQL): the transaction of an
// admission, alone or batched, commits with synchronous_commit on, so a
// database crash cannot lose a hold (or a lease) whose call was admitted.
// The functions set it off inside; their SET clause (migration 00012)
// restores it when they return.
func TestAdmissionsCommitDurably(t *testing.T) {
	url := storetest.PostgresURL(t)
	db := openBare(t, url)
	if _, err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw := rawSQL(t, url)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, call := range []struct {
		name, sql string
		args      []any
	}{
		{"alwrity_reserve", `SELECT admitted FROM alwrity_reserve($1, 'u1', '2026-03', $2, 'openai', 'm', 1, 10, 7, $3, $2,
			NULL, NULL, NULL, NULL)`, []any{"rsv-durable-1", now, now.Add(time.Hour)}},
		{"alwrity_reserve_batch", `SELECT bool_and(admitted) FROM alwrity_reserve_batch(ARRAY[$1], ARRAY['u1'], ARRAY['2026-03'],
			ARRAY[$2::timestamptz], ARRAY['openai'], ARRAY['m'], ARRAY[1::bigint], ARRAY[10::bigint], ARRAY[7::bigint],
			ARRAY[$3::timestamptz], ARRAY[$2::timestamptz], ARRAY[NULL::bigint], ARRAY[NULL::bigint], ARRAY[NULL::bigint],
			ARRAY[NULL::bigint])`, []any{"rsv-durable-2", now, now.Add(time.Hour)}},
	} {
		tx, err := raw.Begin()
		if err != nil {
			t.Fatal(err)
		}
		var admitted bool
		var setting string
		if err := tx.QueryRow(call.sql, call.args...).Scan(&admitted); err != nil {
			t.Fatalf("%s: %v", call.name, err)
		}
		if err := tx.QueryRow(`SHOW synchronous_commit`).Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if !admitted || setting != "on" {
			t.Errorf("%s: admitted %v, then synchronous_commit = %q in its transaction; want on", call.name, admitted, setting)
		}
	}
}
