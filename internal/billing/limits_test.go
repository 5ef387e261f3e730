package billing_test

import (
	"math"
	"math/big"
	"reflect"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

func lim(limit *int64, used int64) billing.LimitUsage {
	return billing.LimitUsage{Key: "total_calls", Limit: limit, Used: used}
}

func TestLimitUsagePercentage(t *testing.T) {
	p := billing.Ptr[int64]
	tests := []struct {
		name  string
		limit *int64
		used  int64
		want  float64
	}{
		{"unlimited", nil, 1_000_000, 0},
		{"unlimited unused", nil, 0, 0},
		{"not allowed, unused", p(0), 0, 0},
		{"not allowed, used", p(0), 1, 100},
		{"not allowed, used a lot", p(0), math.MaxInt64, 100},
		{"unused", p(1000), 0, 0},
		{"12 of 1000", p(1000), 12, 1.2},
		{"800 of 1000", p(1000), 800, 80},
		{"1000 of 1000", p(1000), 1000, 100},
		{"over the limit", p(1000), 1500, 150},
		{"one third", p(3), 1, 33.33},
		{"two thirds", p(3), 2, 66.67},
		// 1.005 % and 0.125 % are exact halves: they round up, which a
		// float64 product (1.005 * 100 = 100.49999…) would get wrong.
		{"exact half rounds up", p(20_000), 201, 1.01},
		{"exact half rounds up (small)", p(80_000), 100, 0.13},
		{"just under a hundredth", p(1_000_000), 49, 0},
		{"half a hundredth", p(1_000_000), 50, 0.01},
		{"almost all of a large limit", p(1_000_000), 999_996, 100},
		// Pico-dollar limits: $10 limit, $9.50 used.
		{"money", p(int64(money.MustParse("10"))), int64(money.MustParse("9.5")), 95},
		{"huge used, tiny limit", p(1), math.MaxInt64, 922337203685477580700},
		{"huge both", p(math.MaxInt64), math.MaxInt64, 100},
		{"huge both, one short", p(math.MaxInt64), math.MaxInt64 - 1, 100},
		{"huge limit, half used", p(math.MaxInt64), math.MaxInt64 / 2, 50},
	}
	for _, tt := range tests {
		if got := lim(tt.limit, tt.used).Percentage(); got != tt.want {
			t.Errorf("%s: Percentage() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

// TestPropPercentageRounding compares Percentage with an exact oracle: the
// ratio in rational arithmetic, rounded half away from zero to hundredths.
func TestPropPercentageRounding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.OneOf(rapid.Int64Range(1, 1000), rapid.Int64Range(1, math.MaxInt64),
			rapid.SampledFrom([]int64{1, 3, 7, 1000, 20_000, 80_000, 1_000_000, math.MaxInt64})).Draw(t, "limit")
		used := rapid.OneOf(rapid.Int64Range(0, 2*min(limit, math.MaxInt64/2)), rapid.Int64Range(0, math.MaxInt64)).Draw(t, "used")
		got := lim(&limit, used).Percentage()

		hundredths := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(used), big.NewInt(10_000)), big.NewInt(limit))
		// Round half up: floor(x + 1/2) for x ≥ 0.
		hundredths.Add(hundredths, big.NewRat(1, 2))
		q := new(big.Int).Quo(hundredths.Num(), hundredths.Denom())
		want, _ := new(big.Rat).SetFrac(q, big.NewInt(100)).Float64()
		if got != want {
			t.Fatalf("Percentage(%d of %d) = %v; want %v", used, limit, got, want)
		}
		if used <= limit && got > 100 {
			t.Fatalf("Percentage(%d of %d) = %v > 100", used, limit, got)
		}
	})
}

func TestLimitUsageRemaining(t *testing.T) {
	p := billing.Ptr[int64]
	tests := []struct {
		name  string
		limit *int64
		used  int64
		want  *int64
	}{
		{"unlimited", nil, 5, nil},
		{"not allowed", p(0), 0, p(0)},
		{"not allowed, used", p(0), 3, p(0)},
		{"some left", p(1000), 12, p(988)},
		{"none left", p(1000), 1000, p(0)},
		{"over", p(1000), 1200, p(0)},
		{"huge", p(math.MaxInt64), 1, p(math.MaxInt64 - 1)},
	}
	for _, tt := range tests {
		got := lim(tt.limit, tt.used).Remaining()
		if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
			t.Errorf("%s: Remaining() = %v; want %v", tt.name, limitStr(got), limitStr(tt.want))
		}
	}
}

func limitStr(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}

func TestEvaluateLimits(t *testing.T) {
	p := billing.Ptr[int64]
	plan := billing.Plan{
		Name:             "Custom",
		TotalCallsLimit:  p(1000),
		MonthlyCostLimit: billing.Ptr(money.MustParse("25")),
		ProviderLimits: map[string]billing.ProviderLimit{
			"gemini": {Calls: p(500), Tokens: p(1_000_000)},
			"openai": {Calls: p(0)},
			"tavily": {Calls: p(50), Tokens: p(7)}, // tavily meters no tokens: ignored
		},
	}
	u := billing.PeriodUsage{
		Total: billing.Counters{Calls: 42, TokensInput: 100, TokensOutput: 50, Cost: money.MustParse("1.25")},
		ByProvider: map[string]billing.Counters{
			"gemini": {Calls: 40, TokensInput: 90, TokensOutput: 40},
			"tavily": {Calls: 2},
		},
	}
	got := billing.EvaluateLimits(plan, billing.DefaultProviders(), u)
	want := []billing.LimitUsage{
		{Key: "total_calls", Limit: p(1000), Used: 42},
		{Key: "gemini_calls", Provider: "gemini", Limit: p(500), Used: 40},
		{Key: "openai_calls", Provider: "openai", Limit: p(0)},
		{Key: "anthropic_calls", Provider: "anthropic"},
		{Key: "mistral_calls", Provider: "mistral"},
		{Key: "tavily_calls", Provider: "tavily", Limit: p(50), Used: 2},
		{Key: "serper_calls", Provider: "serper"},
		{Key: "metaphor_calls", Provider: "metaphor"},
		{Key: "firecrawl_calls", Provider: "firecrawl"},
		{Key: "stability_calls", Provider: "stability"},
		{Key: "gemini_tokens", Provider: "gemini", Limit: p(1_000_000), Used: 130},
		{Key: "openai_tokens", Provider: "openai"},
		{Key: "anthropic_tokens", Provider: "anthropic"},
		{Key: "mistral_tokens", Provider: "mistral"},
		{Key: "monthly_cost", Limit: p(int64(money.MustParse("25"))), Used: int64(money.MustParse("1.25")), Money: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EvaluateLimits:\n got %s\nwant %s", fmtLimits(got), fmtLimits(want))
	}

	// The keys are the contract's, whatever the plan: a plan without any
	// limits lists the same keys, all unlimited.
	empty := billing.EvaluateLimits(billing.Plan{}, billing.DefaultProviders(), billing.PeriodUsage{})
	if len(empty) != len(want) {
		t.Fatalf("EvaluateLimits(empty plan) has %d entries; want %d", len(empty), len(want))
	}
	for i, l := range empty {
		if l.Key != want[i].Key || l.Limit != nil || l.Used != 0 || l.Money != (l.Key == "monthly_cost") {
			t.Errorf("EvaluateLimits(empty plan)[%d] = %+v; want key %s, unlimited, unused", i, l, want[i].Key)
		}
	}
}

func fmtLimits(ls []billing.LimitUsage) string {
	s := ""
	for _, l := range ls {
		s += "\n  " + l.Key + " provider=" + l.Provider + " limit=" + limitStr(l.Limit) + " used=" + strconv.FormatInt(l.Used, 10)
		if l.Money {
			s += " money"
		}
	}
	return s
}

func TestEvaluateLimitsDefaultPlans(t *testing.T) {
	want := map[string]*int64{
		"Free": billing.Ptr[int64](1_000), "Starter": billing.Ptr[int64](10_000),
		"Professional": billing.Ptr[int64](100_000), "Enterprise": nil,
	}
	for _, plan := range billing.DefaultPlans() {
		ls := billing.EvaluateLimits(plan, billing.DefaultProviders(), billing.PeriodUsage{})
		if got := ls[0]; got.Key != "total_calls" || !reflect.DeepEqual(got.Limit, want[plan.Name]) {
			t.Errorf("%s: first limit = %s %v; want total_calls %v", plan.Name, got.Key, limitStr(got.Limit), limitStr(want[plan.Name]))
		}
		if st := billing.UsageStatus(ls); st != billing.UsageActive {
			t.Errorf("%s with no use: status %s; want active", plan.Name, st)
		}
	}
}

func TestUsageStatus(t *testing.T) {
	p := billing.Ptr[int64]
	tests := []struct {
		name   string
		limits []billing.LimitUsage
		want   string
	}{
		{"no limits", nil, billing.UsageActive},
		{"all unlimited", []billing.LimitUsage{lim(nil, 1e9), lim(nil, 0)}, billing.UsageActive},
		{"under warning", []billing.LimitUsage{lim(p(1000), 799)}, billing.UsageActive},
		{"exactly 80%", []billing.LimitUsage{lim(p(1000), 800)}, billing.UsageWarning},
		{"between", []billing.LimitUsage{lim(p(1000), 999)}, billing.UsageWarning},
		{"exactly 100%", []billing.LimitUsage{lim(p(1000), 1000)}, billing.UsageLimitReached},
		{"over", []billing.LimitUsage{lim(p(1000), 1001)}, billing.UsageLimitReached},
		// Status is decided on exact counts, not on the rounded percentage:
		// 79.9996 % is not yet a warning, 99.9996 % is not yet the limit
		// (four more calls would still be admitted).
		{"just under 80% of a large limit", []billing.LimitUsage{lim(p(1_000_000), 799_996)}, billing.UsageActive},
		{"just under 100% of a large limit", []billing.LimitUsage{lim(p(1_000_000), 999_996)}, billing.UsageWarning},
		{"huge limit reached", []billing.LimitUsage{lim(p(math.MaxInt64), math.MaxInt64)}, billing.UsageLimitReached},
		{"huge limit one short", []billing.LimitUsage{lim(p(math.MaxInt64), math.MaxInt64-1)}, billing.UsageWarning},
		{"huge limit at 80%", []billing.LimitUsage{lim(p(math.MaxInt64), math.MaxInt64/5*4+3)}, billing.UsageWarning},
		{"huge limit under 80%", []billing.LimitUsage{lim(p(math.MaxInt64), math.MaxInt64/5*4)}, billing.UsageActive},
		{"disallowed and unused is ignored", []billing.LimitUsage{lim(p(0), 0), lim(p(1000), 10)}, billing.UsageActive},
		{"disallowed and used", []billing.LimitUsage{lim(p(1000), 10), lim(p(0), 1)}, billing.UsageLimitReached},
		{"reached wins over warning, either order", []billing.LimitUsage{lim(p(1000), 900), lim(p(10), 10)}, billing.UsageLimitReached},
		{"reached wins over warning, reversed", []billing.LimitUsage{lim(p(10), 10), lim(p(1000), 900)}, billing.UsageLimitReached},
		{"warning survives later active limits", []billing.LimitUsage{lim(p(10), 9), lim(p(1000), 1), lim(nil, 5)}, billing.UsageWarning},
		{"money limit", []billing.LimitUsage{{Key: "monthly_cost", Money: true,
			Limit: p(int64(money.MustParse("10"))), Used: int64(money.MustParse("8"))}}, billing.UsageWarning},
	}
	for _, tt := range tests {
		if got := billing.UsageStatus(tt.limits); got != tt.want {
			t.Errorf("%s: UsageStatus = %s; want %s", tt.name, got, tt.want)
		}
	}
}

// TestPropUsageStatusExact checks UsageStatus against exact integer
// arithmetic for one finite limit.
func TestPropUsageStatusExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		limit := rapid.OneOf(rapid.Int64Range(0, 10_000), rapid.Int64Range(0, math.MaxInt64)).Draw(t, "limit")
		used := rapid.OneOf(rapid.Int64Range(0, 10_000), rapid.Int64Range(0, math.MaxInt64),
			rapid.Int64Range(max(0, limit-5), limit+min(5, math.MaxInt64-limit)),
			rapid.Int64Range(max(0, limit/5*4-5), limit/5*4+5)).Draw(t, "used")
		u, l := big.NewInt(used), big.NewInt(limit)
		want := billing.UsageActive
		switch {
		case limit == 0 && used == 0:
		case u.Cmp(l) >= 0:
			want = billing.UsageLimitReached
		case new(big.Int).Mul(u, big.NewInt(100)).Cmp(new(big.Int).Mul(l, big.NewInt(billing.WarningPercent))) >= 0:
			want = billing.UsageWarning
		}
		if got := billing.UsageStatus([]billing.LimitUsage{lim(&limit, used)}); got != want {
			t.Fatalf("UsageStatus(%d of %d) = %s; want %s", used, limit, got, want)
		}
	})
}

func TestProviderFault(t *testing.T) {
	for status, want := range map[int]bool{200: false, 201: false, 304: false, 400: false, 401: true, 403: true, 404: false,
		408: true, 409: false, 413: false, 422: false, 429: true, 499: false, 500: true, 502: true, 503: true, 504: true, 599: true} {
		if got := billing.ProviderFault(status); got != want {
			t.Errorf("ProviderFault(%d) = %v, want %v", status, got, want)
		}
	}
}
