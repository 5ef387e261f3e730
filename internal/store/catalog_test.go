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

var catalogNow = date(2026, time.April, 2, 10, 30, 0, 123_456_000)

func planNames(plans []billing.Plan) []string {
	var names []string
	for _, p := range plans {
		names = append(names, p.Name)
	}
	return names
}

func TestListPlans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		extra := []billing.Plan{
			{Name: "Legacy", Tier: "basic", PriceMonthly: 5 * money.Dollar, PriceYearly: 50 * money.Dollar, IsActive: false},
			{Name: "Hobby", Tier: "basic", PriceMonthly: 9 * money.Dollar, PriceYearly: 90 * money.Dollar, IsActive: true},
			// Same monthly price as Starter: ties go by id, so it comes after.
			{Name: "Starter Plus", Tier: "basic", PriceMonthly: 29 * money.Dollar, PriceYearly: 300 * money.Dollar, IsActive: true},
			// One pico-dollar more than Professional.
			{Name: "Pro Retired", Tier: "pro", PriceMonthly: 99*money.Dollar + money.Pico, IsActive: false},
		}
		for _, p := range extra {
			if _, err := db.CreatePlan(ctx, p, catalogNow); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			activeOnly bool
			want       []string
		}{
			{false, []string{"Free", "Legacy", "Hobby", "Starter", "Starter Plus", "Professional", "Pro Retired", "Enterprise"}},
			{true, []string{"Free", "Hobby", "Starter", "Starter Plus", "Professional", "Enterprise"}},
		}
		for _, tt := range tests {
			plans, err := db.ListPlans(ctx, tt.activeOnly)
			if err != nil {
				t.Fatal(err)
			}
			if got := planNames(plans); !slices.Equal(got, tt.want) {
				t.Errorf("ListPlans(activeOnly=%v) = %v, want %v", tt.activeOnly, got, tt.want)
			}
			for _, p := range plans {
				if tt.activeOnly && !p.IsActive {
					t.Errorf("inactive plan %q listed", p.Name)
				}
			}
		}
	})
}

func TestGetPlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		plans, err := db.ListPlans(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range plans {
			got, err := db.GetPlan(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("GetPlan(%d) = %+v, want %+v", want.ID, got, want)
			}
		}
		for _, id := range []int64{0, -1, 999_999} {
			_, err := db.GetPlan(ctx, id)
			wantCode(t, err, billing.CodeNotFound)
		}
	})
}

func TestDefaultPlan(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		raw := rawSQL(t, url)
		// A second free plan, created later and not of tier "free".
		if _, err := db.CreatePlan(ctx, billing.Plan{Name: "Community", Tier: "community", IsActive: true}, catalogNow); err != nil {
			t.Fatal(err)
		}
		// A plan free monthly but not yearly is not free.
		if _, err := db.CreatePlan(ctx, billing.Plan{Name: "Trial", Tier: "free", PriceYearly: money.Dollar, IsActive: true}, catalogNow); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			edit string
			want string // "" for not_found
		}{
			{"", "Free"},
			{`UPDATE subscription_plans SET is_active = FALSE WHERE name = 'Free'`, "Community"},
			{`UPDATE subscription_plans SET is_active = FALSE WHERE name = 'Community'`, ""},
			{`UPDATE subscription_plans SET is_active = TRUE WHERE name = 'Free'`, "Free"},
		}
		for _, s := range steps {
			if s.edit != "" {
				mustExec(t, raw, s.edit)
			}
			p, err := db.DefaultPlan(ctx)
			if s.want == "" {
				wantCode(t, err, billing.CodeNotFound)
				continue
			}
			if err != nil || p.Name != s.want || !p.IsFree() {
				t.Fatalf("after %q: DefaultPlan = %q, %v; want %q", s.edit, p.Name, err, s.want)
			}
		}
	})
}

func TestCreatePlanRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		plan billing.Plan
	}{
		{"no limits", billing.Plan{Name: "Open", Tier: "enterprise", PriceMonthly: 1, PriceYearly: 12, IsActive: true}},
		{"calls disabled", billing.Plan{Name: "Closed", Tier: "free", TotalCallsLimit: i64(0), IsActive: true}},
		{"every limit", billing.Plan{
			Name: "Custom", Tier: "pro", PriceMonthly: money.MustParse("49.99"), PriceYearly: money.MustParse("499.000000000001"),
			Description: "Ünïcode — and 'quotes'", Features: []string{"a", "b, with comma", `"quoted"`}, IsActive: true,
			TotalCallsLimit: i64(25_000), MonthlyCostLimit: billing.Ptr(money.MustParse("12.345678901234")),
			ProviderLimits: map[string]billing.ProviderLimit{
				"openai":    {Calls: nil, Tokens: i64(0)},
				"gemini":    {Calls: i64(0), Tokens: nil},
				"anthropic": {Calls: i64(500), Tokens: i64(1_000_000)},
				"mistral":   {Calls: nil, Tokens: nil},
				"tavily":    {Calls: i64(1 << 40)},
			},
		}},
		{"cost limit zero", billing.Plan{Name: "No spend", Tier: "free", MonthlyCostLimit: billing.Ptr(money.Amount(0)),
			ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: i64(0), Tokens: i64(0)}}}},
		{"cost limit one pico", billing.Plan{Name: "Tiny", Tier: "free", MonthlyCostLimit: billing.Ptr(money.Pico), IsActive: true}},
		{"inactive", billing.Plan{Name: "Gone", Tier: "basic", TotalCallsLimit: i64(10), IsActive: false}},
		{"soft limits with overage", billing.Plan{Name: "Metered", Tier: "pro", TotalCallsLimit: i64(100), IsActive: true,
			SoftLimits: true, OveragePerCall: billing.Ptr(money.MustParse("0.002")), OveragePer1KTokens: billing.Ptr(money.MustParse("0.0005"))}},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id, err := db.CreatePlan(ctx, tt.plan, catalogNow)
				if err != nil {
					t.Fatal(err)
				}
				got, err := db.GetPlan(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.plan
				want.ID = id
				want.CreatedAt, want.UpdatedAt = catalogNow, catalogNow
				want.Version = max(want.Version, 1) // a new plan is version 1
				if want.Features == nil {
					want.Features = []string{}
				}
				if want.ProviderLimits == nil {
					want.ProviderLimits = map[string]billing.ProviderLimit{}
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
				}
				// nil (unlimited) and 0 (disabled) stay distinct.
				for n, l := range tt.plan.ProviderLimits {
					g := got.ProviderLimits[n]
					if (l.Calls == nil) != (g.Calls == nil) || (l.Tokens == nil) != (g.Tokens == nil) {
						t.Fatalf("%s limit %+v read back as %+v", n, l, g)
					}
				}
			})
		}
	})
}

func TestCreatePlanErrors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		_, err := db.CreatePlan(ctx, billing.Plan{Name: "Free", Tier: "free", IsActive: true}, catalogNow)
		wantCode(t, err, billing.CodeConflict)

		// A limit for an unknown provider fails, and the plan row inserted
		// before it is rolled back with it.
		_, err = db.CreatePlan(ctx, billing.Plan{Name: "Broken", Tier: "pro", IsActive: true,
			ProviderLimits: map[string]billing.ProviderLimit{"anthropic": {Calls: i64(1)}, "no-such-provider": {Calls: i64(1)}}}, catalogNow)
		if err == nil {
			t.Fatal("plan with an unknown provider's limit was created")
		}
		plans, err := db.ListPlans(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := planNames(plans); !slices.Equal(got, []string{"Free", "Starter", "Professional", "Enterprise"}) {
			t.Fatalf("plans after failed creates = %v", got)
		}
		// The name of the failed plan is free again.
		if _, err := db.CreatePlan(ctx, billing.Plan{Name: "Broken", Tier: "pro", IsActive: true}, catalogNow); err != nil {
			t.Fatal(err)
		}
	})
}

// priceAt lists the prices of one provider at t, by model name.
func pricesAt(t *testing.T, db *store.DB, provider string, at time.Time) map[string]billing.Price {
	t.Helper()
	prices, err := db.ListPrices(context.Background(), provider, at)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]billing.Price{}
	for _, p := range prices {
		if _, dup := out[p.Provider+"/"+p.ModelName]; dup {
			t.Fatalf("two versions of %s/%s listed at %s", p.Provider, p.ModelName, at)
		}
		out[p.Provider+"/"+p.ModelName] = p
	}
	return out
}

func TestListPricesVersions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		create := func(p billing.Price) {
			t.Helper()
			if _, err := db.CreatePrice(ctx, p, catalogNow); err != nil {
				t.Fatal(err)
			}
		}
		tok := func(model string, in, out money.Amount, from time.Time, to *time.Time) billing.Price {
			return billing.Price{Provider: "openai", ModelName: model, IsActive: true,
				Tier: billing.PriceTier{Input: in, Output: out}, EffectiveFrom: from, EffectiveTo: to}
		}
		june := date(2026, time.June, 1, 0, 0, 0, 0)
		create(tok("gpt-4", 25_000_000, 50_000_000, june, nil))
		// A third version written before the second is read in time order.
		create(tok("gpt-4", 20_000_000, 40_000_000, date(2027, time.January, 1, 0, 0, 0, 0), nil))
		// A model priced only for the first half of 2025.
		create(tok("gpt-legacy", 1, 2, date(2025, time.January, 1, 0, 0, 0, 0), billing.Ptr(date(2025, time.June, 1, 0, 0, 0, 0))))
		// A version switched off by an admin is never in effect.
		off := tok("gpt-4o", 1, 1, date(2026, time.March, 1, 0, 0, 0, 0), nil)
		off.IsActive = false
		create(off)

		tests := []struct {
			at        time.Time
			gpt4In    money.Amount // 0: gpt-4 not listed
			legacy    bool
			gpt4oIn   money.Amount
			wantCount int // openai models listed
		}{
			{date(2023, time.December, 31, 23, 59, 59, 999_999_000), 0, false, 0, 0},
			{billing.DefaultPricesEffective, 30_000_000, false, 2_500_000, 4},
			{date(2025, time.January, 1, 0, 0, 0, 0), 30_000_000, true, 2_500_000, 5},
			{date(2025, time.May, 31, 23, 59, 59, 999_999_000), 30_000_000, true, 2_500_000, 5},
			{date(2025, time.June, 1, 0, 0, 0, 0), 30_000_000, false, 2_500_000, 4},
			{date(2026, time.May, 31, 0, 0, 0, 0), 30_000_000, false, 2_500_000, 4},
			{date(2026, time.May, 31, 23, 59, 59, 999_999_000), 30_000_000, false, 2_500_000, 4},
			{june, 25_000_000, false, 2_500_000, 4},
			{june.Add(time.Microsecond), 25_000_000, false, 2_500_000, 4},
			// The same instant written in another zone.
			{june.In(time.FixedZone("PDT", -7*3600)), 25_000_000, false, 2_500_000, 4},
			{june.Add(-time.Microsecond).In(time.FixedZone("CEST", 2*3600)), 30_000_000, false, 2_500_000, 4},
			{date(2026, time.December, 31, 23, 0, 0, 0), 25_000_000, false, 2_500_000, 4},
			{date(2027, time.January, 1, 0, 0, 0, 0), 20_000_000, false, 2_500_000, 4},
		}
		for _, tt := range tests {
			got := pricesAt(t, db, "openai", tt.at)
			if len(got) != tt.wantCount {
				t.Errorf("at %s: %d openai prices, want %d", tt.at, len(got), tt.wantCount)
			}
			if p, ok := got["openai/gpt-4"]; p.Tier.Input != tt.gpt4In || ok != (tt.gpt4In != 0) {
				t.Errorf("at %s: gpt-4 input = %d (listed %v), want %d", tt.at, p.Tier.Input, ok, tt.gpt4In)
			}
			if _, ok := got["openai/gpt-legacy"]; ok != tt.legacy {
				t.Errorf("at %s: gpt-legacy listed = %v, want %v", tt.at, ok, tt.legacy)
			}
			if p := got["openai/gpt-4o"]; p.Tier.Input != tt.gpt4oIn {
				t.Errorf("at %s: gpt-4o input = %d, want %d", tt.at, p.Tier.Input, tt.gpt4oIn)
			}
		}

		// A new version never rewrites the old one: both stay stored.
		_, err := db.CreatePrice(ctx, tok("gpt-4", 1, 1, june, nil), catalogNow)
		wantCode(t, err, billing.CodeConflict)
		_, err = db.CreatePrice(ctx, tok("gpt-4", 1, 1, june.In(time.FixedZone("X", 3600)), nil), catalogNow)
		wantCode(t, err, billing.CodeConflict)
	})
}

func TestListPricesProviderFilter(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		at := date(2026, time.May, 1, 0, 0, 0, 0)
		tests := []struct {
			provider string
			want     []string
		}{
			{"anthropic", []string{"claude-3", "claude-3.5-sonnet"}},
			{"openai", []string{"gpt-3.5-turbo", "gpt-4", "gpt-4o", "gpt-4o-mini"}},
			{"gemini", []string{"gemini-1.5-flash", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-pro"}},
			{"tavily", []string{"tavily-search"}},
			{"no-such-provider", nil},
			{"OpenAI", nil},
		}
		for _, tt := range tests {
			prices, err := db.ListPrices(ctx, tt.provider, at)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range prices {
				if p.Provider != tt.provider {
					t.Errorf("filter %q listed %s", tt.provider, p.Provider)
				}
				got = append(got, p.ModelName)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ListPrices(%q) = %v, want %v", tt.provider, got, tt.want)
			}
		}
		all, err := db.ListPrices(ctx, "", at)
		if err != nil || len(all) != 17 {
			t.Fatalf("ListPrices(\"\") = %d prices, %v", len(all), err)
		}
		if !slices.IsSortedFunc(all, func(a, b billing.Price) int {
			if a.Provider != b.Provider {
				return cmpStr(a.Provider, b.Provider)
			}
			return cmpStr(a.ModelName, b.ModelName)
		}) {
			t.Fatal("prices not ordered by provider and model")
		}
	})
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestCreatePriceRoundTrip(t *testing.T) {
	from := date(2026, time.February, 3, 4, 5, 6, 789_012_000)
	to := from.AddDate(1, 0, 0)
	p := pico
	tests := []struct {
		name  string
		price billing.Price
	}{
		{"tokens only", billing.Price{Provider: "openai", ModelName: "m-tokens", Description: "plain",
			Tier: billing.PriceTier{Input: 1, Output: 2}}},
		{"every optional bucket", billing.Price{Provider: "anthropic", ModelName: "m-buckets",
			Tier: billing.PriceTier{Input: 3_000_000, Output: 15_000_000, CachedInput: p(300_000),
				CacheWrite5m: p(3_750_000), CacheWrite1h: p(6_000_000), Reasoning: p(20_000_000)}}},
		{"optional buckets at zero", billing.Price{Provider: "openai", ModelName: "m-zero",
			Tier: billing.PriceTier{Input: 5, Output: 6, CachedInput: p(0), CacheWrite5m: p(0), CacheWrite1h: p(0), Reasoning: p(0)}}},
		{"long context without buckets", billing.Price{Provider: "gemini", ModelName: "m-lc",
			Tier:                 billing.PriceTier{Input: 1_250_000, Output: 10_000_000},
			LongContextThreshold: i64(200_000), LongContext: &billing.PriceTier{Input: 2_500_000, Output: 15_000_000}}},
		{"long context with buckets", billing.Price{Provider: "gemini", ModelName: "m-lc-buckets",
			Tier:                 billing.PriceTier{Input: 1, Output: 2, CachedInput: p(3)},
			LongContextThreshold: i64(128_000), LongContext: &billing.PriceTier{Input: 4, Output: 5,
				CachedInput: p(6), CacheWrite5m: p(7), CacheWrite1h: p(8), Reasoning: p(9)}}},
		{"fees", billing.Price{Provider: "tavily", ModelName: "m-fees", PerRequest: money.MustParse("0.001"),
			PerSearch: money.MustParse("0.005"), PerImage: money.MustParse("0.04"), PerPage: money.MustParse("0.002")}},
		{"ends", billing.Price{Provider: "openai", ModelName: "m-ends", Tier: billing.PriceTier{Input: 7, Output: 8},
			EffectiveTo: &to}},
		{"large prices", billing.Price{Provider: "stability", ModelName: "m-large",
			Tier: billing.PriceTier{Input: money.Amount(1) << 60, Output: money.Amount(1)<<62 + 1}, PerImage: 1 << 61}},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want := tt.price
				want.IsActive, want.EffectiveFrom = true, from
				id, err := db.CreatePrice(ctx, want, catalogNow)
				if err != nil {
					t.Fatal(err)
				}
				want.ID = id
				got, ok := pricesAt(t, db, want.Provider, from)[want.Provider+"/"+want.ModelName]
				if !ok {
					t.Fatal("not listed at its effective time")
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
				}
				if (got.Tier.CachedInput == nil) != (want.Tier.CachedInput == nil) ||
					(got.Tier.Reasoning == nil) != (want.Tier.Reasoning == nil) {
					t.Fatal("nil and set optional buckets were confused")
				}
			})
		}
	})
}
