package billing_test

import (
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

func defaultPrice(t *testing.T, provider, model string) billing.Price {
	t.Helper()
	p, ok := billing.ResolvePrice(billing.DefaultPrices(), nil, provider, model)
	if !ok {
		t.Fatalf("no default price for %s/%s", provider, model)
	}
	return p
}

func TestRateGolden(t *testing.T) {
	usd := money.MustParse
	tests := []struct {
		name                string
		provider, model     string
		q                   billing.Quantities
		input, output, fees string
		longContext         bool
	}{
		// The seed's arithmetic: 1,000 × 0.00003 + 500 × 0.00006 = 0.06.
		{name: "seed gpt-4", provider: "openai", model: "gpt-4",
			q: billing.Quantities{Input: 1000, Output: 500}, input: "0.03", output: "0.03", fees: "0"},
		// 200 of 1,000 prompt tokens cached: 800 × 0.0000025 + 200 × 0.00000125.
		{name: "gpt-4o cached input", provider: "openai", model: "gpt-4o",
			q: billing.Quantities{Input: 1000, CachedInput: 200, Output: 100}, input: "0.00225", output: "0.001", fees: "0"},
		// Reasoning is billed at the output price when the model has no own price.
		{name: "reasoning at output price", provider: "openai", model: "gpt-4o-mini",
			q: billing.Quantities{Input: 100, Output: 1000, Reasoning: 600}, input: "0.000015", output: "0.0006", fees: "0"},
		// Anthropic: 100 uncached + 1,000 cache read + 2,000 cache write (5 min) + 500 (1 h).
		{name: "claude cache buckets", provider: "anthropic", model: "claude-3.5-sonnet",
			q:     billing.Quantities{Input: 3600, CachedInput: 1000, CacheWrite5m: 2000, CacheWrite1h: 500, Output: 10},
			input: "0.0111", output: "0.00015", fees: "0"},
		// At exactly 200,000 prompt tokens the base tier still applies.
		{name: "gemini 2.5 pro at threshold", provider: "gemini", model: "gemini-2.5-pro",
			q: billing.Quantities{Input: 200_000, Output: 1000}, input: "0.25", output: "0.01", fees: "0"},
		// Above it the whole request uses the long-context prices.
		{name: "gemini 2.5 pro long context", provider: "gemini", model: "gemini-2.5-pro",
			q: billing.Quantities{Input: 200_001, Output: 1000}, input: "0.5000025", output: "0.015", fees: "0", longContext: true},
		{name: "tavily per request", provider: "tavily", model: "tavily-search",
			q: billing.Quantities{Requests: 3}, input: "0", output: "0", fees: "0.003"},
		{name: "firecrawl per page", provider: "firecrawl", model: "firecrawl-extract",
			q: billing.Quantities{Requests: 1, Pages: 7}, input: "0", output: "0", fees: "0.014"},
		{name: "stable diffusion per image", provider: "stability", model: "stable-diffusion",
			q: billing.Quantities{Images: 2}, input: "0", output: "0", fees: "0.08"},
		{name: "prefix resolution", provider: "openai", model: "gpt-4o-2024-08-06",
			q: billing.Quantities{Input: 1_000_000}, input: "2.5", output: "0", fees: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := billing.Rate(defaultPrice(t, tt.provider, tt.model), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			want := billing.Charge{Input: usd(tt.input), Output: usd(tt.output), Fees: usd(tt.fees), LongContext: tt.longContext}
			want.Total, _ = money.Sum(want.Input, want.Output, want.Fees)
			if c != want {
				t.Fatalf("Rate = %+v, want %+v", c, want)
			}
		})
	}
}

func TestRateRejectsBadQuantities(t *testing.T) {
	p := defaultPrice(t, "openai", "gpt-4")
	for name, q := range map[string]billing.Quantities{
		"negative input":       {Input: -1},
		"negative pages":       {Pages: -2},
		"cached beyond input":  {Input: 10, CachedInput: 11},
		"writes beyond input":  {Input: 10, CachedInput: 5, CacheWrite5m: 3, CacheWrite1h: 3},
		"reasoning beyond out": {Output: 5, Reasoning: 6},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := billing.Rate(p, q)
			if billing.ErrorCode(err) != billing.CodeInvalid {
				t.Fatalf("err = %v, want invalid", err)
			}
		})
	}
	// An absurd count overflows the money range and is refused, not wrapped.
	if _, err := billing.Rate(p, billing.Quantities{Input: 1 << 62}); billing.ErrorCode(err) != billing.CodeInvalid {
		t.Fatalf("overflow: err = %v, want invalid", err)
	}
}

func TestResolvePrice(t *testing.T) {
	prices := append(billing.DefaultPrices(),
		billing.Price{Provider: "mistral", ModelName: billing.DefaultModel, Tier: billing.PriceTier{Input: 1}})
	aliases := map[string]string{"claude-sonnet-latest": "claude-3.5-sonnet"}
	tests := []struct {
		provider, model, want string
		ok                    bool
	}{
		{"openai", "gpt-4", "gpt-4", true},
		{"openai", "gpt-4o-2024-08-06", "gpt-4o", true},           // longest prefix, not gpt-4
		{"openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", true}, // longer prefix wins
		{"anthropic", "claude-sonnet-latest", "claude-3.5-sonnet", true},
		{"mistral", "mistral-large-latest", "default", true},
		{"mistral", "mistral-7b-instruct", "mistral-7b", true},
		{"gemini", "imagen-3", "", false},
		{"openai", "gemini-pro", "", false},   // another provider's model
		{"tavily", "", "tavily-search", true}, // the provider's only price
		{"openai", "", "", false},             // several prices: no guess
	}
	for _, tt := range tests {
		p, ok := billing.ResolvePrice(prices, aliases, tt.provider, tt.model)
		if ok != tt.ok || (ok && p.ModelName != tt.want) {
			t.Errorf("ResolvePrice(%s, %s) = %q, %v; want %q, %v", tt.provider, tt.model, p.ModelName, ok, tt.want, tt.ok)
		}
	}
}
