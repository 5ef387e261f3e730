package store_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// seedNow is when the tests seed; it only lands in created_at columns.
var seedNow = date(2026, time.March, 1, 9, 0, 0, 0)

func seedDefaults(t *testing.T, db *store.DB) store.SeedResult {
	t.Helper()
	res, err := db.Seed(context.Background(), billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), seedNow)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	return res
}

// wantPlan is a seeded plan written out by hand, in dollars converted to
// pico-dollars by the reader, so the test does not trust DefaultPlans.
type wantPlan struct {
	name, tier      string
	monthly, yearly money.Amount
	calls           *int64
}

var wantPlans = []wantPlan{
	{"Free", "free", 0, 0, i64(1_000)},
	{"Starter", "basic", 29_000_000_000_000, 290_000_000_000_000, i64(10_000)},
	{"Professional", "pro", 99_000_000_000_000, 990_000_000_000_000, i64(100_000)},
	{"Enterprise", "enterprise", 299_000_000_000_000, 2_990_000_000_000_000, nil},
}

// wantPrice is a seeded price in pico-dollars per token (or per unit).
type wantPrice struct {
	provider, model             string
	in, out                     money.Amount
	cached, write5m, write1h    *money.Amount
	perRequest, perPage, perImg money.Amount
	lcThreshold                 *int64
	lcIn, lcOut                 money.Amount
}

func pico(n int64) *money.Amount { a := money.Amount(n); return &a }

var wantPrices = []wantPrice{
	{provider: "anthropic", model: "claude-3", in: 8_000_000, out: 24_000_000},
	{provider: "anthropic", model: "claude-3.5-sonnet", in: 3_000_000, out: 15_000_000,
		cached: pico(300_000), write5m: pico(3_750_000), write1h: pico(6_000_000)},
	{provider: "firecrawl", model: "firecrawl-extract", perPage: 2_000_000_000},
	{provider: "gemini", model: "gemini-1.5-flash", in: 75_000, out: 300_000},
	{provider: "gemini", model: "gemini-2.5-flash", in: 300_000, out: 2_500_000},
	{provider: "gemini", model: "gemini-2.5-flash-lite", in: 100_000, out: 400_000},
	{provider: "gemini", model: "gemini-2.5-pro", in: 1_250_000, out: 10_000_000,
		lcThreshold: i64(200_000), lcIn: 2_500_000, lcOut: 15_000_000},
	{provider: "gemini", model: "gemini-pro", in: 500_000, out: 1_500_000},
	{provider: "metaphor", model: "metaphor-search", perRequest: 3_000_000_000},
	{provider: "mistral", model: "mistral-7b", in: 200_000, out: 600_000},
	{provider: "openai", model: "gpt-3.5-turbo", in: 1_500_000, out: 2_000_000},
	{provider: "openai", model: "gpt-4", in: 30_000_000, out: 60_000_000},
	{provider: "openai", model: "gpt-4o", in: 2_500_000, out: 10_000_000, cached: pico(1_250_000)},
	{provider: "openai", model: "gpt-4o-mini", in: 150_000, out: 600_000, cached: pico(75_000)},
	{provider: "serper", model: "serper-search", perRequest: 1_000_000_000},
	{provider: "stability", model: "stable-diffusion", perImg: 40_000_000_000},
	{provider: "tavily", model: "tavily-search", perRequest: 1_000_000_000},
}

func (w wantPrice) check(t *testing.T, p billing.Price) {
	t.Helper()
	eq := func(a, b *money.Amount) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	if p.Provider != w.provider || p.ModelName != w.model || p.Tier.Input != w.in || p.Tier.Output != w.out ||
		!eq(p.Tier.CachedInput, w.cached) || !eq(p.Tier.CacheWrite5m, w.write5m) || !eq(p.Tier.CacheWrite1h, w.write1h) ||
		p.Tier.Reasoning != nil || p.PerRequest != w.perRequest || p.PerPage != w.perPage || p.PerImage != w.perImg ||
		p.PerSearch != 0 || !p.IsActive || !p.EffectiveFrom.Equal(billing.DefaultPricesEffective) || p.EffectiveTo != nil {
		t.Errorf("price %s/%s = %+v, want %+v", w.provider, w.model, p, w)
	}
	switch {
	case w.lcThreshold == nil && (p.LongContextThreshold != nil || p.LongContext != nil):
		t.Errorf("price %s/%s has a long-context tier", w.provider, w.model)
	case w.lcThreshold != nil && (p.LongContextThreshold == nil || *p.LongContextThreshold != *w.lcThreshold ||
		p.LongContext == nil || p.LongContext.Input != w.lcIn || p.LongContext.Output != w.lcOut):
		t.Errorf("price %s/%s long context = %v %+v, want %d %d/%d", w.provider, w.model,
			p.LongContextThreshold, p.LongContext, *w.lcThreshold, w.lcIn, w.lcOut)
	}
}

func TestSeed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := openMigrated(t, b)
		if got, want := seedDefaults(t, db), (store.SeedResult{Providers: 9, Plans: 4, Prices: 17}); got != want {
			t.Fatalf("first seed = %+v, want %+v", got, want)
		}
		if got := seedDefaults(t, db); got != (store.SeedResult{}) {
			t.Fatalf("second seed = %+v, want nothing added", got)
		}

		providers, err := db.ListProviders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(providers, billing.DefaultProviders()) {
			t.Fatalf("providers = %+v", providers)
		}

		plans, err := db.ListPlans(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(plans) != len(wantPlans) {
			t.Fatalf("%d plans, want %d", len(plans), len(wantPlans))
		}
		for i, w := range wantPlans {
			p := plans[i]
			if p.Name != w.name || p.Tier != w.tier || p.PriceMonthly != w.monthly || p.PriceYearly != w.yearly ||
				!reflect.DeepEqual(p.TotalCallsLimit, w.calls) || p.MonthlyCostLimit != nil || !p.IsActive ||
				len(p.ProviderLimits) != 0 || len(p.Features) == 0 || p.Description == "" || !p.CreatedAt.Equal(seedNow) {
				t.Errorf("plan %d = %+v, want %+v", i, p, w)
			}
		}

		prices, err := db.ListPrices(ctx, "", billing.DefaultPricesEffective)
		if err != nil {
			t.Fatal(err)
		}
		if len(prices) != len(wantPrices) {
			t.Fatalf("%d prices, want %d", len(prices), len(wantPrices))
		}
		for i, w := range wantPrices {
			w.check(t, prices[i])
		}
		// Nothing is in effect before the defaults start.
		if before, err := db.ListPrices(ctx, "", billing.DefaultPricesEffective.Add(-time.Microsecond)); err != nil || len(before) != 0 {
			t.Fatalf("prices before the defaults: %d, %v", len(before), err)
		}

		if missing, err := db.MissingDefaults(ctx, billing.DefaultPlans(), billing.DefaultPrices()); err != nil || len(missing) != 0 {
			t.Fatalf("MissingDefaults = %v, %v", missing, err)
		}
	})
}

// TestSeedKeepsAdminEdits checks that a restart (a re-seed) never undoes what
// an admin changed by hand, and that MissingDefaults reports what is gone.
func TestSeedKeepsAdminEdits(t *testing.T) {
	tests := []struct {
		name        string
		edit        []string // raw SQL an admin runs
		wantPlans   []string
		wantMissing []string
		check       func(t *testing.T, db *store.DB)
	}{
		{
			name:        "renamed plan is not recreated",
			edit:        []string{`UPDATE subscription_plans SET name = 'Free tier' WHERE name = 'Free'`},
			wantPlans:   []string{"Free tier", "Starter", "Professional", "Enterprise"},
			wantMissing: []string{"plan Free"},
		},
		{
			name:        "deleted plan is not recreated",
			edit:        []string{`DELETE FROM subscription_plans WHERE name = 'Starter'`},
			wantPlans:   []string{"Free", "Professional", "Enterprise"},
			wantMissing: []string{"plan Starter"},
		},
		{
			name:      "edited price is not overwritten",
			edit:      []string{`UPDATE api_provider_pricing SET cost_per_input_token = 31000000, cost_per_output_token = 62000000 WHERE provider = 'openai' AND model_name = 'gpt-4'`},
			wantPlans: []string{"Free", "Starter", "Professional", "Enterprise"},
			check: func(t *testing.T, db *store.DB) {
				prices, err := db.ListPrices(context.Background(), "openai", date(2026, time.May, 1, 0, 0, 0, 0))
				if err != nil {
					t.Fatal(err)
				}
				var n int
				for _, p := range prices {
					if p.ModelName == "gpt-4" {
						n++
						if p.Tier.Input != 31_000_000 || p.Tier.Output != 62_000_000 {
							t.Fatalf("gpt-4 = %d/%d, want the admin's 31000000/62000000", p.Tier.Input, p.Tier.Output)
						}
					}
				}
				if n != 1 {
					t.Fatalf("%d gpt-4 prices, want 1", n)
				}
			},
		},
		{
			name:        "deleted price is not recreated",
			edit:        []string{`DELETE FROM api_provider_pricing WHERE provider = 'mistral' AND model_name = 'mistral-7b'`},
			wantPlans:   []string{"Free", "Starter", "Professional", "Enterprise"},
			wantMissing: []string{"price mistral/mistral-7b"},
		},
		{
			name: "several edits",
			edit: []string{
				`UPDATE subscription_plans SET name = 'Free tier', total_calls_limit = 500 WHERE name = 'Free'`,
				`DELETE FROM subscription_plans WHERE name = 'Enterprise'`,
				`DELETE FROM api_provider_pricing WHERE model_name IN ('gpt-4', 'tavily-search')`,
			},
			wantPlans:   []string{"Free tier", "Starter", "Professional"},
			wantMissing: []string{"plan Free", "plan Enterprise", "price openai/gpt-4", "price tavily/tavily-search"},
			check: func(t *testing.T, db *store.DB) {
				p, err := db.DefaultPlan(context.Background())
				if err != nil || p.Name != "Free tier" || p.TotalCallsLimit == nil || *p.TotalCallsLimit != 500 {
					t.Fatalf("default plan = %+v, %v", p, err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, b storetest.Backend) {
				ctx := context.Background()
				url := b.URL(t)
				db := storetest.OpenURL(t, url)
				raw := rawSQL(t, url)
				for _, q := range tt.edit {
					if mustExec(t, raw, q) == 0 {
						t.Fatalf("%s changed nothing", q)
					}
				}
				for range 2 {
					if got := seedDefaults(t, db); got != (store.SeedResult{}) {
						t.Fatalf("re-seed = %+v, want nothing added", got)
					}
				}
				plans, err := db.ListPlans(ctx, false)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, p := range plans {
					names = append(names, p.Name)
				}
				if !slices.Equal(names, tt.wantPlans) {
					t.Fatalf("plans = %v, want %v", names, tt.wantPlans)
				}
				missing, err := db.MissingDefaults(ctx, billing.DefaultPlans(), billing.DefaultPrices())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(missing, tt.wantMissing) {
					t.Fatalf("MissingDefaults = %v, want %v", missing, tt.wantMissing)
				}
				if tt.check != nil {
					tt.check(t, db)
				}
			})
		})
	}
}

// TestSeedAddsNewDefaults checks that a default added in a later release is
// seeded into a database seeded before, without touching the old ones.
func TestSeedAddsNewDefaults(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		plans := append(billing.DefaultPlans(), billing.Plan{Name: "Team", Tier: "pro", PriceMonthly: 49 * money.Dollar,
			PriceYearly: 490 * money.Dollar, IsActive: true, TotalCallsLimit: i64(50_000)})
		prices := append(billing.DefaultPrices(), billing.Price{Provider: "openai", ModelName: "gpt-5", IsActive: true,
			Tier: billing.PriceTier{Input: 1_250_000, Output: 10_000_000}, EffectiveFrom: billing.DefaultPricesEffective})
		got, err := db.Seed(ctx, billing.DefaultProviders(), plans, prices, seedNow)
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.SeedResult{Plans: 1, Prices: 1}); got != want {
			t.Fatalf("seed = %+v, want %+v", got, want)
		}
		all, err := db.ListPlans(ctx, false)
		if err != nil || len(all) != 5 || all[2].Name != "Team" {
			t.Fatalf("plans = %+v, %v", all, err)
		}
		openai, err := db.ListPrices(ctx, "openai", seedNow)
		if err != nil || len(openai) != 5 {
			t.Fatalf("openai prices = %+v, %v", openai, err)
		}
	})
}

// TestSeedConcurrent checks that replicas starting at once (separate
// handles on one database) seed every default exactly once between them.
func TestSeedConcurrent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		first := openBare(t, url)
		if _, err := first.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		const replicas = 4
		dbs := []*store.DB{first}
		for range replicas - 1 {
			dbs = append(dbs, openBare(t, url))
		}
		type result struct {
			res store.SeedResult
			err error
		}
		results := make(chan result, replicas)
		for _, db := range dbs {
			go func() {
				res, err := db.Seed(ctx, billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), seedNow)
				results <- result{res, err}
			}()
		}
		var sum store.SeedResult
		for range replicas {
			r := <-results
			if r.err != nil {
				t.Fatal(r.err)
			}
			sum.Providers += r.res.Providers
			sum.Plans += r.res.Plans
			sum.Prices += r.res.Prices
		}
		if want := (store.SeedResult{Providers: 9, Plans: 4, Prices: 17}); sum != want {
			t.Fatalf("replicas seeded %+v between them, want %+v", sum, want)
		}
		plans, err := first.ListPlans(ctx, false)
		if err != nil || len(plans) != 4 {
			t.Fatalf("%d plans, %v", len(plans), err)
		}
	})
}
