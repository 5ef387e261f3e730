package billing_test

import (
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

func TestDefaultPlans(t *testing.T) {
	usd := money.MustParse
	want := []struct {
		name, tier      string
		monthly, yearly money.Amount
		calls           *int64
	}{
		{"Free", "free", usd("0"), usd("0"), billing.Ptr[int64](1_000)},
		{"Starter", "basic", usd("29"), usd("290"), billing.Ptr[int64](10_000)},
		{"Professional", "pro", usd("99"), usd("990"), billing.Ptr[int64](100_000)},
		{"Enterprise", "enterprise", usd("299"), usd("2990"), nil},
	}
	plans := billing.DefaultPlans()
	if len(plans) != len(want) {
		t.Fatalf("DefaultPlans has %d plans; want %d", len(plans), len(want))
	}
	for i, w := range want {
		p := plans[i]
		if p.Name != w.name || p.Tier != w.tier {
			t.Errorf("plan %d = %s (%s); want %s (%s)", i, p.Name, p.Tier, w.name, w.tier)
		}
		if p.PriceMonthly != w.monthly || p.PriceYearly != w.yearly {
			t.Errorf("%s costs %s/%s; want %s/%s", p.Name, p.PriceMonthly, p.PriceYearly, w.monthly, w.yearly)
		}
		if limitStr(p.TotalCallsLimit) != limitStr(w.calls) {
			t.Errorf("%s allows %s calls; want %s", p.Name, limitStr(p.TotalCallsLimit), limitStr(w.calls))
		}
		if !p.IsActive {
			t.Errorf("%s is not active", p.Name)
		}
		if p.IsFree() != (w.name == "Free") {
			t.Errorf("%s IsFree = %v", p.Name, p.IsFree())
		}
		if p.Description == "" || len(p.Features) == 0 {
			t.Errorf("%s has no description or features", p.Name)
		}
		// The seed's plans limit calls only; a zero limit here would forbid
		// a provider outright (invariant 8).
		if p.MonthlyCostLimit != nil || len(p.ProviderLimits) != 0 {
			t.Errorf("%s has cost or provider limits: %v %v", p.Name, p.MonthlyCostLimit, p.ProviderLimits)
		}
	}
	// The yearly price is ten months' worth, as the seed lists it.
	for _, p := range plans {
		if ten, err := p.PriceMonthly.MulInt(10); err != nil || ten != p.PriceYearly {
			t.Errorf("%s: yearly %s is not 10 × monthly %s", p.Name, p.PriceYearly, p.PriceMonthly)
		}
	}
}

func findPrice(t *testing.T, provider, model string) billing.Price {
	t.Helper()
	for _, p := range billing.DefaultPrices() {
		if p.Provider == provider && p.ModelName == model {
			return p
		}
	}
	t.Fatalf("no default price for %s/%s", provider, model)
	return billing.Price{}
}

func TestDefaultPricesExact(t *testing.T) {
	usd := money.MustParse
	tokens := []struct {
		provider, model string
		in, out         string
	}{
		{"openai", "gpt-4", "0.00003", "0.00006"},
		{"openai", "gpt-3.5-turbo", "0.0000015", "0.000002"},
		{"gemini", "gemini-pro", "0.0000005", "0.0000015"},
		{"anthropic", "claude-3", "0.000008", "0.000024"},
		{"mistral", "mistral-7b", "0.0000002", "0.0000006"},
		{"openai", "gpt-4o", "0.0000025", "0.00001"},
		{"gemini", "gemini-2.5-pro", "0.00000125", "0.00001"},
	}
	for _, tt := range tokens {
		p := findPrice(t, tt.provider, tt.model)
		if p.Tier.Input != usd(tt.in) || p.Tier.Output != usd(tt.out) {
			t.Errorf("%s/%s = %s in, %s out; want %s, %s", tt.provider, tt.model, p.Tier.Input, p.Tier.Output, tt.in, tt.out)
		}
		if p.PerRequest != 0 || p.PerSearch != 0 || p.PerImage != 0 || p.PerPage != 0 {
			t.Errorf("%s/%s has per-unit fees: %+v", tt.provider, tt.model, p)
		}
	}
	// The seed's prices are exact in pico-dollars: 0.0000015 USD is 1,500,000.
	if got := findPrice(t, "openai", "gpt-3.5-turbo").Tier.Input; got != 1_500_000 {
		t.Errorf("gpt-3.5-turbo input = %d pico-dollars; want 1500000", int64(got))
	}

	gpt4o := findPrice(t, "openai", "gpt-4o")
	if gpt4o.Tier.CachedInput == nil || *gpt4o.Tier.CachedInput != usd("0.00000125") {
		t.Errorf("gpt-4o cached input = %v; want 0.00000125", gpt4o.Tier.CachedInput)
	}

	pro := findPrice(t, "gemini", "gemini-2.5-pro")
	if pro.LongContextThreshold == nil || *pro.LongContextThreshold != 200_000 {
		t.Errorf("gemini-2.5-pro long-context threshold = %s; want 200000", limitStr(pro.LongContextThreshold))
	}
	if pro.LongContext == nil || pro.LongContext.Input != usd("0.0000025") || pro.LongContext.Output != usd("0.000015") {
		t.Errorf("gemini-2.5-pro long-context tier = %+v; want 0.0000025 in, 0.000015 out", pro.LongContext)
	}

	fees := []struct {
		provider, model string
		field           func(billing.Price) money.Amount
		fieldName       string
		want            string
	}{
		{"tavily", "tavily-search", func(p billing.Price) money.Amount { return p.PerRequest }, "PerRequest", "0.001"},
		{"firecrawl", "firecrawl-extract", func(p billing.Price) money.Amount { return p.PerPage }, "PerPage", "0.002"},
		{"stability", "stable-diffusion", func(p billing.Price) money.Amount { return p.PerImage }, "PerImage", "0.04"},
	}
	for _, tt := range fees {
		p := findPrice(t, tt.provider, tt.model)
		if got := tt.field(p); got != usd(tt.want) {
			t.Errorf("%s/%s %s = %s; want %s", tt.provider, tt.model, tt.fieldName, got, tt.want)
		}
		if p.Tier.Input != 0 || p.Tier.Output != 0 {
			t.Errorf("%s/%s has token prices: %+v", tt.provider, tt.model, p.Tier)
		}
	}
}

func TestDefaultPricesConsistent(t *testing.T) {
	providers := map[string]billing.Provider{}
	for _, p := range billing.DefaultProviders() {
		if _, dup := providers[p.Name]; dup {
			t.Errorf("provider %s listed twice", p.Name)
		}
		providers[p.Name] = p
	}
	seen := map[[2]string]bool{}
	for _, p := range billing.DefaultPrices() {
		key := [2]string{p.Provider, p.ModelName}
		if seen[key] {
			t.Errorf("two default prices for %s/%s", p.Provider, p.ModelName)
		}
		seen[key] = true
		if _, ok := providers[p.Provider]; !ok {
			t.Errorf("price %s/%s names unknown provider %q", p.Provider, p.ModelName, p.Provider)
		}
		if !p.IsActive || !p.EffectiveFrom.Equal(billing.DefaultPricesEffective) || p.EffectiveTo != nil {
			t.Errorf("price %s/%s: active=%v from %s to %v; want active from DefaultPricesEffective, open-ended",
				p.Provider, p.ModelName, p.IsActive, p.EffectiveFrom, p.EffectiveTo)
		}
		// A price must charge for something, and nothing may be negative.
		all := []money.Amount{p.Tier.Input, p.Tier.Output, p.PerRequest, p.PerSearch, p.PerImage, p.PerPage}
		charged := false
		for _, a := range all {
			if a < 0 {
				t.Errorf("price %s/%s has a negative amount %s", p.Provider, p.ModelName, a)
			}
			charged = charged || a > 0
		}
		if !charged {
			t.Errorf("price %s/%s charges nothing", p.Provider, p.ModelName)
		}
		if (p.LongContext == nil) != (p.LongContextThreshold == nil) {
			t.Errorf("price %s/%s has a long-context threshold without prices or the reverse", p.Provider, p.ModelName)
		}
	}
}

// TestSeedArithmetic is the seed's worked example: GPT-4 with 1,000 input
// and 500 output tokens costs exactly 0.06 USD.
func TestSeedArithmetic(t *testing.T) {
	p := findPrice(t, "openai", "gpt-4")
	in, err := p.Tier.Input.MulInt(1000)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Tier.Output.MulInt(500)
	if err != nil {
		t.Fatal(err)
	}
	total, err := in.Add(out)
	if err != nil {
		t.Fatal(err)
	}
	if in != money.MustParse("0.03") || out != money.MustParse("0.03") || total != money.MustParse("0.06") {
		t.Errorf("gpt-4 1000 in + 500 out = %s + %s = %s; want 0.03 + 0.03 = 0.06", in, out, total)
	}
	if total.String() != "0.06" {
		t.Errorf("total prints as %q; want 0.06", total.String())
	}
}

func TestPriceTierEffective(t *testing.T) {
	usd := money.MustParse
	pa := func(s string) *money.Amount { return billing.Ptr(usd(s)) }
	tests := []struct {
		name string
		tier billing.PriceTier
		want [6]string // input, output, cached, write 5m, write 1h, reasoning
	}{
		{
			name: "every bucket falls back",
			tier: billing.PriceTier{Input: usd("0.000003"), Output: usd("0.000015")},
			want: [6]string{"0.000003", "0.000015", "0.000003", "0.000003", "0.000003", "0.000015"},
		},
		{
			name: "every bucket set",
			tier: billing.PriceTier{Input: usd("0.000003"), Output: usd("0.000015"), CachedInput: pa("0.0000003"),
				CacheWrite5m: pa("0.00000375"), CacheWrite1h: pa("0.000006"), Reasoning: pa("0.00002")},
			want: [6]string{"0.000003", "0.000015", "0.0000003", "0.00000375", "0.000006", "0.00002"},
		},
		{
			// An explicit zero is a price (free cache reads), not a missing one.
			name: "explicit zero is kept",
			tier: billing.PriceTier{Input: usd("0.000001"), Output: usd("0.000002"), CachedInput: pa("0"), Reasoning: pa("0")},
			want: [6]string{"0.000001", "0.000002", "0", "0.000001", "0.000001", "0"},
		},
		{
			name: "zero tier",
			want: [6]string{"0", "0", "0", "0", "0", "0"},
		},
	}
	for _, tt := range tests {
		e := tt.tier.Effective()
		if e.CachedInput == nil || e.CacheWrite5m == nil || e.CacheWrite1h == nil || e.Reasoning == nil {
			t.Fatalf("%s: Effective left a bucket nil: %+v", tt.name, e)
		}
		got := [6]money.Amount{e.Input, e.Output, *e.CachedInput, *e.CacheWrite5m, *e.CacheWrite1h, *e.Reasoning}
		for i, w := range tt.want {
			if got[i] != usd(w) {
				t.Errorf("%s: bucket %d = %s; want %s", tt.name, i, got[i], w)
			}
		}
		again := e.Effective()
		if *again.CachedInput != *e.CachedInput || *again.Reasoning != *e.Reasoning {
			t.Errorf("%s: Effective is not idempotent", tt.name)
		}
	}
	// Filling buckets must not write into the tier it was called on.
	tier := billing.PriceTier{Input: usd("1"), Output: usd("2")}
	_ = tier.Effective()
	if tier.CachedInput != nil || tier.Reasoning != nil {
		t.Errorf("Effective modified its receiver: %+v", tier)
	}
}
