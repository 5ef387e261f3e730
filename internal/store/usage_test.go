package store_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var usageNow = date(2026, time.May, 20, 8, 0, 0, 0)

// record writes one batch and fails the test on error.
func record(t *testing.T, db *store.DB, logs ...billing.UsageLog) {
	t.Helper()
	if err := db.RecordUsage(context.Background(), logs, periodEnds(logs), usageNow); err != nil {
		t.Fatalf("record usage: %v", err)
	}
}

func periodEnds(logs []billing.UsageLog) map[string]time.Time {
	ends := map[string]time.Time{}
	for _, l := range logs {
		ends[l.BillingPeriod] = billing.CalendarMonths().At(l.PeriodStart).End
	}
	return ends
}

// randomLogs returns n logs spread over users, providers and months, some
// failed, with costs up to a few dollars each, and response times that are
// multiples of 1/8 s so their float sums are exact in any order.
func randomLogs(rng *rand.Rand, n int) []billing.UsageLog {
	users := []string{"u1", "u2", "u3", "user with spaces"}
	providers := []string{"openai", "gemini", "anthropic", "mistral", "tavily"}
	statuses := []int{200, 200, 200, 201, 400, 401, 429, 500, 503}
	months := []time.Time{
		date(2025, time.December, 1, 0, 0, 0, 0), date(2026, time.January, 1, 0, 0, 0, 0),
		date(2026, time.February, 1, 0, 0, 0, 0), date(2026, time.April, 1, 0, 0, 0, 0),
	}
	logs := make([]billing.UsageLog, n)
	for i := range logs {
		m := months[rng.IntN(len(months))]
		end := m.AddDate(0, 1, 0)
		ts := m.Add(time.Duration(rng.Int64N(int64(end.Sub(m))))).Truncate(time.Microsecond)
		l := storetest.Log(users[rng.IntN(len(users))], fmt.Sprintf("evt-%04d", i), ts)
		l.Provider = providers[rng.IntN(len(providers))]
		l.StatusCode = statuses[rng.IntN(len(statuses))]
		l.TokensInput, l.TokensOutput = rng.Int64N(200_000), rng.Int64N(50_000)
		l.CostInput = money.Amount(rng.Int64N(3 * int64(money.Dollar)))
		l.CostOutput = money.Amount(rng.Int64N(int64(money.Dollar)))
		l.CostTotal = l.CostInput + l.CostOutput
		if rng.IntN(10) == 0 {
			// A few calls cost an odd number of pico-dollars, below any
			// float64's resolution at these magnitudes.
			l.CostTotal += 1
		}
		l.ResponseTime = float64(rng.IntN(80)) / 8
		logs[i] = l
	}
	return logs
}

func add(c *billing.Counters, l billing.UsageLog) {
	c.Calls++
	if l.StatusCode >= 400 {
		c.Errors++
	}
	c.TokensInput += l.TokensInput
	c.TokensOutput += l.TokensOutput
	c.Cost += l.CostTotal
	c.ResponseTimeSum += l.ResponseTime
}

func TestRecordUsageMatchesLedger(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		rng := rand.New(rand.NewPCG(2026, 5))
		logs := randomLogs(rng, 400)
		for rest := logs; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(40))
			record(t, db, rest[:n]...)
			rest = rest[n:]
		}

		type key struct{ user, period string }
		total := map[key]*billing.PeriodUsage{}
		get := func(k key) *billing.PeriodUsage {
			if total[k] == nil {
				total[k] = &billing.PeriodUsage{ByProvider: map[string]billing.Counters{}}
			}
			return total[k]
		}
		for _, l := range logs {
			for _, k := range []key{{l.UserID, l.BillingPeriod}, {l.UserID, billing.AllTime}} {
				u := get(k)
				add(&u.Total, l)
				c := u.ByProvider[l.Provider]
				add(&c, l)
				u.ByProvider[l.Provider] = c
			}
		}

		cal := billing.CalendarMonths()
		var periods []billing.Period
		for _, m := range []string{"2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04"} {
			p, err := cal.ByKey(m)
			if err != nil {
				t.Fatal(err)
			}
			periods = append(periods, p)
		}
		periods = append(periods, billing.Period{Key: billing.AllTime})
		// The same periods in another order come back in that order.
		reversed := slices.Clone(periods)
		slices.Reverse(reversed)

		for _, user := range []string{"u1", "u2", "u3", "user with spaces", "nobody"} {
			for _, ps := range [][]billing.Period{periods, reversed} {
				got, err := db.UsageForPeriods(ctx, user, ps)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(ps) {
					t.Fatalf("%d results for %d periods", len(got), len(ps))
				}
				for i, u := range got {
					want := total[key{user, ps[i].Key}]
					if want == nil {
						want = &billing.PeriodUsage{ByProvider: map[string]billing.Counters{}}
					}
					if u.UserID != user || !reflect.DeepEqual(u.Period, ps[i]) {
						t.Errorf("%s %s: echoed %q %+v", user, ps[i].Key, u.UserID, u.Period)
					}
					if u.Total != want.Total {
						t.Errorf("%s %s: total\n got %+v\nwant %+v", user, ps[i].Key, u.Total, want.Total)
					}
					if !reflect.DeepEqual(u.ByProvider, want.ByProvider) {
						t.Errorf("%s %s: by provider\n got %+v\nwant %+v", user, ps[i].Key, u.ByProvider, want.ByProvider)
					}
					if u.LastUpdated.IsZero() != (want.Total.Calls == 0) {
						t.Errorf("%s %s: last updated %v with %d calls", user, ps[i].Key, u.LastUpdated, want.Total.Calls)
					}
					if !u.LastUpdated.IsZero() && !u.LastUpdated.Equal(usageNow) {
						t.Errorf("%s %s: last updated %v, want %v", user, ps[i].Key, u.LastUpdated, usageNow)
					}
				}
			}
			// The ledger agrees with the summaries call for call.
			_, n, err := db.ListLogs(ctx, billing.LogFilter{UserID: user, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if want := total[key{user, billing.AllTime}]; (want == nil && n != 0) || (want != nil && n != want.Total.Calls) {
				t.Errorf("%s: %d logs", user, n)
			}
		}
	})
}

// TestRecordUsageExactCost checks that summed costs stay exact integers on
// both engines far beyond float64's 2^53 (SQLite sums decimal text in
// floating point, which is why money is stored as integers).
func TestRecordUsageExactCost(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ts := date(2026, time.March, 3, 0, 0, 0, 0)
		var logs []billing.UsageLog
		var want money.Amount
		for i, c := range []money.Amount{1<<53 + 1, 1, 1, 3, 999_999_999_999_999} {
			l := storetest.Log("u1", fmt.Sprintf("exact-%d", i), ts.Add(time.Duration(i)*time.Second))
			l.CostTotal = c
			want += c
			logs = append(logs, l)
		}
		record(t, db, logs...)
		got, err := db.UsageForPeriods(ctx, "u1", []billing.Period{billing.CalendarMonths().At(ts), {Key: billing.AllTime}})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range got {
			if u.Total.Cost != want || u.ByProvider["openai"].Cost != want {
				t.Fatalf("%s: cost %d / %d, want %d", u.Period.Key, u.Total.Cost, u.ByProvider["openai"].Cost, want)
			}
		}
	})
}

func TestRecordUsageDuplicateStoresNothing(t *testing.T) {
	ts := date(2026, time.February, 10, 12, 0, 0, 0)
	mk := func(user, id string, offset time.Duration, cost money.Amount) billing.UsageLog {
		l := storetest.Log(user, id, ts.Add(offset))
		l.TokensInput, l.TokensOutput, l.CostTotal = 100, 50, cost
		return l
	}
	stored := []billing.UsageLog{mk("u1", "a1", 0, 10), mk("u1", "a2", time.Minute, 20), mk("u2", "a3", 2*time.Minute, 30)}
	tests := []struct {
		name  string
		batch []billing.UsageLog
	}{
		{"stored event last", []billing.UsageLog{mk("u1", "n1", time.Hour, 5), mk("u2", "n2", time.Hour, 6), mk("u1", "a1", time.Hour, 7)}},
		{"stored event first", []billing.UsageLog{mk("u1", "a2", time.Hour, 5), mk("u1", "n1", time.Hour, 6)}},
		{"stored event of another user", []billing.UsageLog{mk("u3", "n1", time.Hour, 5), mk("u3", "a3", time.Hour, 6)}},
		{"repeat within the batch", []billing.UsageLog{mk("u1", "n1", time.Hour, 5), mk("u1", "n2", time.Hour, 6), mk("u1", "n1", time.Hour, 5)}},
		{"only a repeat", []billing.UsageLog{mk("u1", "a1", 0, 10)}},
		{"new period then repeat", []billing.UsageLog{mk("u1", "n1", 60*24*time.Hour, 5), mk("u1", "a3", 0, 6)}},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		record(t, db, stored...)
		periods := []billing.Period{billing.CalendarMonths().At(ts), billing.CalendarMonths().At(ts.AddDate(0, 2, 0)), {Key: billing.AllTime}}
		snapshot := func() map[string]any {
			out := map[string]any{}
			for _, u := range []string{"u1", "u2", "u3"} {
				usage, err := db.UsageForPeriods(ctx, u, periods)
				if err != nil {
					t.Fatal(err)
				}
				out[u] = usage
			}
			logs, n, err := db.ListLogs(ctx, billing.LogFilter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			out["logs"], out["count"] = logs, n
			return out
		}
		before := snapshot()
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := db.RecordUsage(ctx, tt.batch, periodEnds(tt.batch), usageNow.Add(time.Hour))
				wantCode(t, err, billing.CodeConflict)
				if after := snapshot(); !reflect.DeepEqual(after, before) {
					t.Fatalf("a failed batch left traces:\nbefore %+v\nafter  %+v", before, after)
				}
			})
		}
		// The event ids of failed batches were not used up.
		record(t, db, mk("u1", "n1", time.Hour, 5), mk("u1", "n2", time.Hour, 6))
		got, err := db.UsageForPeriods(ctx, "u1", periods[:1])
		if err != nil || got[0].Total.Calls != 4 || got[0].Total.Cost != 41 {
			t.Fatalf("after a good batch: %+v, %v", got, err)
		}
	})
}

func TestUsageLogRoundTrip(t *testing.T) {
	ts := date(2026, time.January, 31, 23, 59, 59, 999_999_999).In(time.FixedZone("IST", 5*3600+1800))
	p := billing.CalendarMonths().At(ts)
	full := billing.UsageLog{
		EventID: "full", UserID: "u1", Provider: "anthropic", ModelUsed: "claude-3.5-sonnet", Endpoint: "/v1/messages",
		Method: "POST", TokensInput: 1_200, TokensOutput: 345, TokensCachedInput: 1_000, TokensCacheWrite5m: 100,
		TokensCacheWrite1h: 50, TokensReasoning: 120, RequestCount: 1, SearchCount: 2, ImageCount: 3, PageCount: 4,
		CostInput: 3_600_000, CostOutput: 5_175_000, CostTotal: 8_775_001, ResponseTime: 1.25, StatusCode: 529,
		ErrorMessage: "overloaded — 'retry'", RetryCount: 3, Unpriced: true, Partial: true, Metadata: `{"a":[1,2],"b":"ü"}`,
		Timestamp: ts, BillingPeriod: p.Key, PeriodStart: p.Start,
	}
	bare := storetest.Log("u1", "bare", ts)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		record(t, db, full, bare)
		logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: "u1", Limit: 10})
		if err != nil || len(logs) != 2 {
			t.Fatalf("logs %+v, %v", logs, err)
		}
		byID := map[string]billing.UsageLog{}
		for _, l := range logs {
			if l.ID == 0 {
				t.Fatal("log without an id")
			}
			l.ID = 0
			byID[l.EventID] = l
		}
		for _, want := range []billing.UsageLog{full, bare} {
			want.Timestamp = want.Timestamp.Truncate(time.Microsecond).UTC()
			if got := byID[want.EventID]; !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
			}
		}
		if byID["full"].BillingPeriod != "2026-01" {
			t.Errorf("period %q: the log's own period is kept", byID["full"].BillingPeriod)
		}
	})
}

func TestListLogs(t *testing.T) {
	t0 := date(2026, time.March, 31, 22, 0, 0, 0)
	type fixture struct {
		id, user, provider string
		status             int
		at                 time.Duration // after t0
	}
	fixtures := []fixture{
		{"e01", "u1", "openai", 200, 0},
		{"e02", "u1", "gemini", 200, time.Minute},
		{"e03", "u2", "openai", 500, 2 * time.Minute},
		{"e04", "u1", "openai", 429, 3 * time.Minute},
		{"e05", "u1", "anthropic", 200, 3 * time.Hour}, // April
		{"e06", "u2", "gemini", 200, 4 * time.Hour},    // April
		{"e07", "u1", "openai", 200, 5 * time.Hour},    // April
		{"e08", "u1", "openai", 500, 5 * time.Hour},    // April, same instant as e07, inserted later
		{"e09", "u1", "gemini", 400, -24 * time.Hour},
		{"e10", "u1", "openai", 200, 31 * 24 * time.Hour}, // May
	}
	var logs []billing.UsageLog
	for i, f := range fixtures {
		ts := t0.Add(f.at)
		if i%2 == 1 {
			// Times given in other zones order by instant all the same.
			ts = ts.In(time.FixedZone("X", -(i+1)*3600))
		}
		l := storetest.Log(f.user, f.id, ts)
		l.Provider, l.StatusCode = f.provider, f.status
		logs = append(logs, l)
	}
	tests := []struct {
		name  string
		f     billing.LogFilter
		want  []string
		total int64
	}{
		{"everything", billing.LogFilter{Limit: 100}, []string{"e10", "e08", "e07", "e06", "e05", "e04", "e03", "e02", "e01", "e09"}, 10},
		{"user", billing.LogFilter{UserID: "u1", Limit: 100}, []string{"e10", "e08", "e07", "e05", "e04", "e02", "e01", "e09"}, 8},
		{"other user", billing.LogFilter{UserID: "u2", Limit: 100}, []string{"e06", "e03"}, 2},
		{"unknown user", billing.LogFilter{UserID: "nobody", Limit: 100}, []string{}, 0},
		{"provider", billing.LogFilter{UserID: "u1", Provider: "openai", Limit: 100}, []string{"e10", "e08", "e07", "e04", "e01"}, 5},
		{"provider of every user", billing.LogFilter{Provider: "gemini", Limit: 100}, []string{"e06", "e02", "e09"}, 3},
		{"status", billing.LogFilter{StatusCode: 500, Limit: 100}, []string{"e08", "e03"}, 2},
		{"status and user", billing.LogFilter{UserID: "u1", StatusCode: 200, Limit: 100}, []string{"e10", "e07", "e05", "e02", "e01"}, 5},
		{"period", billing.LogFilter{BillingPeriod: "2026-03", Limit: 100}, []string{"e04", "e03", "e02", "e01", "e09"}, 5},
		{"period user provider status", billing.LogFilter{UserID: "u1", Provider: "openai", StatusCode: 200, BillingPeriod: "2026-04", Limit: 100}, []string{"e07"}, 1},
		{"empty period", billing.LogFilter{BillingPeriod: "2026-02", Limit: 100}, []string{}, 0},
		{"page 1", billing.LogFilter{UserID: "u1", Limit: 3}, []string{"e10", "e08", "e07"}, 8},
		{"page 2", billing.LogFilter{UserID: "u1", Limit: 3, Offset: 3}, []string{"e05", "e04", "e02"}, 8},
		{"page 3", billing.LogFilter{UserID: "u1", Limit: 3, Offset: 6}, []string{"e01", "e09"}, 8},
		{"past the end", billing.LogFilter{UserID: "u1", Limit: 3, Offset: 8}, []string{}, 8},
		{"filtered page", billing.LogFilter{Provider: "openai", Limit: 2, Offset: 1}, []string{"e08", "e07"}, 6},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		// Several batches, in an order that is not time order.
		record(t, db, logs[5:]...)
		record(t, db, logs[:5]...)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, total, err := db.ListLogs(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				if got == nil {
					t.Fatal("nil slice, want empty")
				}
				ids := []string{}
				for _, l := range got {
					ids = append(ids, l.EventID)
				}
				if !slices.Equal(ids, tt.want) || total != tt.total {
					t.Fatalf("ListLogs(%+v) = %v (total %d), want %v (total %d)", tt.f, ids, total, tt.want, tt.total)
				}
			})
		}
	})
}

func TestProviderHealth(t *testing.T) {
	t0 := date(2026, time.May, 1, 12, 0, 0, 0)
	type call struct {
		provider string
		status   int
		rt       float64
		at       time.Duration
	}
	calls := []call{
		{"openai", 200, 0.5, -3 * time.Hour},
		{"gemini", 500, 1.5, -2 * time.Hour},
		{"openai", 429, 0.25, -time.Hour},
		{"anthropic", 200, 2, 0},
		{"anthropic", 399, 3, time.Microsecond},
		{"anthropic", 200, 1, time.Minute},
	}
	var logs []billing.UsageLog
	for i, c := range calls {
		l := storetest.Log(fmt.Sprintf("u%d", i%2), fmt.Sprintf("ph-%d", i), t0.Add(c.at))
		l.Provider, l.StatusCode, l.ResponseTime = c.provider, c.status, c.rt
		logs = append(logs, l)
	}
	type ph = billing.ProviderHealth
	tests := []struct {
		name  string
		since time.Time
		want  map[string]ph
	}{
		{"all", t0.Add(-24 * time.Hour), map[string]ph{
			"openai":    {Requests: 2, Errors: 1, P50Ms: 250, P95Ms: 500},
			"gemini":    {Requests: 1, Errors: 1, P50Ms: 1500, P95Ms: 1500},
			"anthropic": {Requests: 3, Errors: 0, P50Ms: 2000, P95Ms: 3000},
		}},
		{"since is inclusive", t0.Add(-2 * time.Hour), map[string]ph{
			"openai":    {Requests: 1, Errors: 1, P50Ms: 250, P95Ms: 250},
			"gemini":    {Requests: 1, Errors: 1, P50Ms: 1500, P95Ms: 1500},
			"anthropic": {Requests: 3, Errors: 0, P50Ms: 2000, P95Ms: 3000},
		}},
		{"just after", t0.Add(-2*time.Hour + time.Microsecond), map[string]ph{
			"openai":    {Requests: 1, Errors: 1, P50Ms: 250, P95Ms: 250},
			"anthropic": {Requests: 3, Errors: 0, P50Ms: 2000, P95Ms: 3000},
		}},
		{"since in another zone", t0.Add(time.Microsecond).In(time.FixedZone("Y", 9*3600)), map[string]ph{
			"anthropic": {Requests: 2, Errors: 0, P50Ms: 1000, P95Ms: 3000},
		}},
		{"nothing since", t0.Add(time.Hour), map[string]ph{}},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		record(t, db, logs...)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := db.ProviderHealth(ctx, tt.since)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ProviderHealth = %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}

// TestProviderHealthMatchesCalls compares the database's aggregation of
// random windows with one computed here from the calls themselves.
func TestProviderHealthMatchesCalls(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	logs := randomLogs(rng, 700)
	// Latencies with many ties and a long tail.
	for i := range logs {
		logs[i].ResponseTime = float64(rng.IntN(40)*rng.IntN(40)) / 16
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		record(t, db, logs...)
		sinces := []time.Time{date(2000, time.January, 1, 0, 0, 0, 0), date(2030, time.January, 1, 0, 0, 0, 0)}
		for range 12 {
			sinces = append(sinces, logs[rng.IntN(len(logs))].Timestamp) // inclusive bounds on real calls
		}
		for _, since := range sinces {
			got, err := db.ProviderHealth(ctx, since)
			if err != nil {
				t.Fatal(err)
			}
			if want := healthOf(logs, since); !reflect.DeepEqual(got, want) {
				t.Fatalf("ProviderHealth(%s) =\n%+v, want\n%+v", since, got, want)
			}
		}
	})
}

// healthOf is ProviderHealth computed from the calls: sort each provider's
// latencies and take the nearest ranks ceil(p·n).
func healthOf(logs []billing.UsageLog, since time.Time) map[string]billing.ProviderHealth {
	rts := map[string][]float64{}
	out := map[string]billing.ProviderHealth{}
	for _, l := range logs {
		if l.Timestamp.Before(since) {
			continue
		}
		h := out[l.Provider]
		h.Requests++
		if billing.ProviderFault(l.StatusCode) {
			h.Errors++
		}
		out[l.Provider] = h
		rts[l.Provider] = append(rts[l.Provider], l.ResponseTime*1000)
	}
	for p, ms := range rts {
		slices.Sort(ms)
		rank := func(q float64) float64 { return ms[int(math.Ceil(q*float64(len(ms))))-1] }
		h := out[p]
		h.P50Ms, h.P95Ms = rank(0.5), rank(0.95)
		out[p] = h
	}
	return out
}

func TestLedgerMark(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		mark := func() int64 {
			t.Helper()
			m, err := db.LedgerMark(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		if m := mark(); m != 0 {
			t.Fatalf("mark of an empty ledger = %d, want 0", m)
		}
		record(t, db, storetest.Log("u1", "mark-1", usageNow))
		m1 := mark()
		if m1 == 0 || mark() != m1 {
			t.Fatalf("mark after one log = %d, then %d", m1, mark())
		}
		record(t, db, storetest.Log("u2", "mark-2", usageNow.Add(-time.Hour)))
		if m2 := mark(); m2 <= m1 {
			t.Fatalf("mark after a second (older) log = %d, want more than %d", m2, m1)
		}
	})
}

// TestListLogsPagesAndCounts pages through random logs with every kind of
// filter, by keyset and by offset, and compares the pages and counts with
// what is computed here from the logs themselves.
func TestListLogsPagesAndCounts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	logs := randomLogs(rng, 400)
	// Calls of one instant, so pages must break ties by id.
	for i := 0; i+1 < len(logs); i += 9 {
		logs[i+1].Timestamp = logs[i].Timestamp
		logs[i+1].BillingPeriod, logs[i+1].PeriodStart = logs[i].BillingPeriod, logs[i].PeriodStart
	}
	filters := []billing.LogFilter{
		{}, {UserID: "u1"}, {UserID: "user with spaces", Provider: "gemini"}, {Provider: "openai"},
		{BillingPeriod: "2026-01"}, {UserID: "u2", BillingPeriod: "2026-04", Provider: "tavily"},
		{StatusCode: 200}, {StatusCode: 500}, {StatusCode: 201}, {StatusCode: 404},
		{UserID: "u3", StatusCode: 200}, {UserID: "u3", StatusCode: 429},
		{UserID: "u1", Provider: "openai", BillingPeriod: "2026-02", StatusCode: 200},
		{Provider: "mistral", BillingPeriod: "2025-12", StatusCode: 503},
		{UserID: "nobody"}, {UserID: "nobody", StatusCode: 200},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		// Two batches, the second older than the first.
		record(t, db, logs[200:]...)
		record(t, db, logs[:200]...)
		all, _, err := db.ListLogs(ctx, billing.LogFilter{Limit: 10_000})
		if err != nil || len(all) != len(logs) {
			t.Fatalf("all logs: %d, %v", len(all), err)
		}
		ids := map[string]int64{}
		for _, l := range all {
			ids[l.EventID] = l.ID
		}
		for _, f := range filters {
			want := wantLogs(logs, ids, f)
			for _, size := range []int{4, 50} {
				checkLogPages(t, db, f, size, want)
			}
		}
	})
}

// TestRecordUsageConcurrent checks that concurrent writers to one user's
// period lose no update: the summary still equals the sum of the logs.
func TestRecordUsageConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ts := date(2026, time.April, 10, 0, 0, 0, 0)
		const writers, batches = 8, 15
		errs := make(chan error, writers)
		for w := range writers {
			go func() {
				for i := range batches {
					var logs []billing.UsageLog
					for j := range 2 {
						l := storetest.Log("u1", fmt.Sprintf("c-%d-%d-%d", w, i, j), ts.Add(time.Duration(w*100+i)*time.Second))
						l.Provider = []string{"openai", "gemini"}[j]
						l.TokensInput, l.CostTotal = int64(w+1), money.Amount(1_000_000_007*(w+1))
						logs = append(logs, l)
					}
					if err := db.RecordUsage(ctx, logs, periodEnds(logs), usageNow); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range writers {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		var want billing.Counters
		for w := range writers {
			want.Calls += 2 * batches
			want.TokensInput += int64(2 * batches * (w + 1))
			want.Cost += money.Amount(2 * batches * 1_000_000_007 * (w + 1))
		}
		want.ResponseTimeSum = float64(want.Calls) * 0.5
		got, err := db.UsageForPeriods(ctx, "u1", []billing.Period{billing.CalendarMonths().At(ts)})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Total != want {
			t.Fatalf("total %+v, want %+v", got[0].Total, want)
		}
		if o, g := got[0].ByProvider["openai"], got[0].ByProvider["gemini"]; o.Calls+g.Calls != want.Calls || o.Cost+g.Cost != want.Cost {
			t.Fatalf("providers %+v %+v", o, g)
		}
	})
}

// TestAllUsersLogCountFollowsTheLedger: the count of an admin's unfiltered
// log list, reused while the ledger does not change, counts new rows at
// once.
func TestAllUsersLogCountFollowsTheLedger(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		count := func() int64 {
			t.Helper()
			_, total, err := db.ListLogs(ctx, billing.LogFilter{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			return total
		}
		storetest.Record(t, db, storetest.Log("all-a", "all-1", at), storetest.Log("all-b", "all-2", at))
		if n := count(); n != 2 {
			t.Fatalf("count = %d; want 2", n)
		}
		if n := count(); n != 2 {
			t.Fatalf("count again = %d; want 2", n)
		}
		storetest.Record(t, db, storetest.Log("all-c", "all-3", at.Add(time.Minute)))
		if n := count(); n != 3 {
			t.Fatalf("count after a new row = %d; want 3 at once", n)
		}
	})
}
