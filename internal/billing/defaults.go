package billing

import (
	"time"

	"github.com/alwrity/alwrity-billing/internal/money"
)

// DefaultProviders are the providers ALwrity meters, in the order its
// frontend lists them.
func DefaultProviders() []Provider {
	return []Provider{
		{Name: "gemini", DisplayName: "Google Gemini", Kind: "llm", MetersTokens: true, SortOrder: 10},
		{Name: "openai", DisplayName: "OpenAI", Kind: "llm", MetersTokens: true, SortOrder: 20},
		{Name: "anthropic", DisplayName: "Anthropic", Kind: "llm", MetersTokens: true, SortOrder: 30},
		{Name: "mistral", DisplayName: "Mistral AI", Kind: "llm", MetersTokens: true, SortOrder: 40},
		{Name: "tavily", DisplayName: "Tavily", Kind: "search", SortOrder: 50},
		{Name: "serper", DisplayName: "Serper", Kind: "search", SortOrder: 60},
		{Name: "metaphor", DisplayName: "Metaphor (Exa)", Kind: "search", SortOrder: 70},
		{Name: "firecrawl", DisplayName: "Firecrawl", Kind: "scrape", SortOrder: 80},
		{Name: "stability", DisplayName: "Stability AI", Kind: "image", SortOrder: 90},
	}
}

// DefaultPlans are the seed's four plans.
func DefaultPlans() []Plan {
	usd := money.MustParse
	return []Plan{
		{
			Name: "Free", Tier: "free", PriceMonthly: usd("0"), PriceYearly: usd("0"), IsActive: true,
			Description:     "Try ALwrity with a small monthly allowance of AI calls.",
			Features:        []string{"1,000 API calls a month", "All AI providers", "Usage dashboard"},
			TotalCallsLimit: Ptr[int64](1_000),
		},
		{
			Name: "Starter", Tier: "basic", PriceMonthly: usd("29"), PriceYearly: usd("290"), IsActive: true,
			Description:     "For individual creators publishing every week.",
			Features:        []string{"10,000 API calls a month", "All AI providers", "Usage alerts", "Email support"},
			TotalCallsLimit: Ptr[int64](10_000),
		},
		{
			Name: "Professional", Tier: "pro", PriceMonthly: usd("99"), PriceYearly: usd("990"), IsActive: true,
			Description:     "For teams and agencies running content at scale.",
			Features:        []string{"100,000 API calls a month", "All AI providers", "Usage alerts", "Usage trends and exports", "Priority support"},
			TotalCallsLimit: Ptr[int64](100_000),
		},
		{
			Name: "Enterprise", Tier: "enterprise", PriceMonthly: usd("299"), PriceYearly: usd("2990"), IsActive: true,
			Description: "Unlimited API calls with dedicated support.",
			Features:    []string{"Unlimited API calls", "All AI providers", "Usage alerts", "Usage trends and exports", "Dedicated support", "Custom limits"},
		},
	}
}

// DefaultPricesEffective is when the default prices take effect: early
// enough that any usage this system records is priced by them.
var DefaultPricesEffective = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// DefaultPrices are the seed's five prices plus current models and the
// per-request tools ALwrity metered, all in USD per token (or per unit).
func DefaultPrices() []Price {
	usd := func(s string) money.Amount { return money.MustParse(s) }
	ptr := func(s string) *money.Amount { return Ptr(money.MustParse(s)) }
	tok := func(provider, model, desc, in, out string) Price {
		return Price{Provider: provider, ModelName: model, Description: desc, IsActive: true,
			Tier: PriceTier{Input: usd(in), Output: usd(out)}, EffectiveFrom: DefaultPricesEffective}
	}
	fee := func(provider, model, desc string, set func(*Price)) Price {
		p := Price{Provider: provider, ModelName: model, Description: desc, IsActive: true, EffectiveFrom: DefaultPricesEffective}
		set(&p)
		return p
	}

	gpt4o := tok("openai", "gpt-4o", "GPT-4o", "0.0000025", "0.00001")
	gpt4o.Tier.CachedInput = ptr("0.00000125")
	gpt4oMini := tok("openai", "gpt-4o-mini", "GPT-4o mini", "0.00000015", "0.0000006")
	gpt4oMini.Tier.CachedInput = ptr("0.000000075")
	sonnet := tok("anthropic", "claude-3.5-sonnet", "Claude 3.5 Sonnet", "0.000003", "0.000015")
	sonnet.Tier.CacheWrite5m = ptr("0.00000375")
	sonnet.Tier.CacheWrite1h = ptr("0.000006") // Anthropic bills 1 h cache writes at 2 × input.
	sonnet.Tier.CachedInput = ptr("0.0000003")
	gemini25Pro := tok("gemini", "gemini-2.5-pro", "Gemini 2.5 Pro", "0.00000125", "0.00001")
	gemini25Pro.LongContextThreshold = Ptr[int64](200_000)
	gemini25Pro.LongContext = &PriceTier{Input: usd("0.0000025"), Output: usd("0.000015")}

	return []Price{
		tok("openai", "gpt-4", "GPT-4", "0.00003", "0.00006"),
		tok("openai", "gpt-3.5-turbo", "GPT-3.5 Turbo", "0.0000015", "0.000002"),
		tok("gemini", "gemini-pro", "Gemini Pro", "0.0000005", "0.0000015"),
		tok("anthropic", "claude-3", "Claude 3", "0.000008", "0.000024"),
		tok("mistral", "mistral-7b", "Mistral 7B", "0.0000002", "0.0000006"),
		gpt4o,
		gpt4oMini,
		sonnet,
		gemini25Pro,
		tok("gemini", "gemini-2.5-flash", "Gemini 2.5 Flash", "0.0000003", "0.0000025"),
		tok("gemini", "gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", "0.0000001", "0.0000004"),
		tok("gemini", "gemini-1.5-flash", "Gemini 1.5 Flash", "0.000000075", "0.0000003"),
		fee("tavily", "tavily-search", "Tavily web search, per request", func(p *Price) { p.PerRequest = usd("0.001") }),
		fee("serper", "serper-search", "Serper Google search, per request", func(p *Price) { p.PerRequest = usd("0.001") }),
		fee("metaphor", "metaphor-search", "Metaphor (Exa) neural search, per request", func(p *Price) { p.PerRequest = usd("0.003") }),
		fee("firecrawl", "firecrawl-extract", "Firecrawl extraction, per page", func(p *Price) { p.PerPage = usd("0.002") }),
		fee("stability", "stable-diffusion", "Stable Diffusion image generation, per image", func(p *Price) { p.PerImage = usd("0.04") }),
	}
}
