package httpapi

import (
	"context"
	"fmt"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

type listPlansInput struct{}

func (s *Server) listPlans(ctx context.Context, _ *listPlansInput) (*struct{ Body Envelope[PlansData] }, error) {
	plans, err := s.store.ListPlans(ctx, true)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	providers, err := s.store.ListProviders(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data := PlansData{Plans: make([]PlanJSON, 0, len(plans)), Total: len(plans)}
	for _, p := range plans {
		data.Plans = append(data.Plans, publicPlan(p, providers))
	}
	return ok(data), nil
}

// planLimits lists a plan's limits without usage.
func planLimits(p billing.Plan, providers []billing.Provider) Limits {
	return Limits{entries: billing.EvaluateLimits(p, providers, billing.PeriodUsage{})}
}

type listPricingInput struct {
	Provider string `query:"provider" maxLength:"64" doc:"Only this provider's models (e.g. openai)."`
}

func (s *Server) listPricing(ctx context.Context, in *listPricingInput) (*struct{ Body Envelope[PricingData] }, error) {
	if in.Provider != "" {
		if err := s.checkProvider(ctx, "query.provider", in.Provider); err != nil {
			// The contract's 400 (ALwrity answered 500).
			return nil, s.problem(ctx, keepBadRequest(err))
		}
	}
	prices, err := s.store.ListPrices(ctx, in.Provider, s.now())
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data := PricingData{Pricing: make([]PriceJSON, 0, len(prices)), Total: len(prices)}
	for _, p := range prices {
		t := p.Tier.Effective()
		pj := PriceJSON{
			Provider: p.Provider, ModelName: p.ModelName,
			CostPerInputToken: t.Input, CostPerOutputToken: t.Output,
			CostPerCachedInputToken: *t.CachedInput, CostPerCacheWrite5mToken: *t.CacheWrite5m,
			CostPerCacheWrite1hToken: *t.CacheWrite1h, CostPerReasoningToken: *t.Reasoning,
			CostPerRequest: p.PerRequest, CostPerSearch: p.PerSearch, CostPerImage: p.PerImage, CostPerPage: p.PerPage,
			Description: p.Description, EffectiveDate: p.EffectiveFrom, EffectiveTo: p.EffectiveTo,
		}
		if p.LongContext != nil && p.LongContextThreshold != nil {
			lc := p.LongContext.Effective()
			pj.LongContext = &LongContextJSON{
				ThresholdTokens: *p.LongContextThreshold, CostPerInputToken: lc.Input, CostPerOutputToken: lc.Output,
				CostPerCachedInputToken: *lc.CachedInput, CostPerCacheWrite5mToken: *lc.CacheWrite5m,
				CostPerCacheWrite1hToken: *lc.CacheWrite1h, CostPerReasoningToken: *lc.Reasoning,
			}
		}
		data.Pricing = append(data.Pricing, pj)
	}
	return ok(data), nil
}

// checkProvider returns an invalid-field error unless name is a known
// provider.
func (s *Server) checkProvider(ctx context.Context, location, name string) error {
	providers, err := s.store.ListProviders(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(providers))
	for _, p := range providers {
		if p.Name == name {
			return nil
		}
		names = append(names, p.Name)
	}
	return billing.InvalidField(location, fmt.Sprintf("unknown provider %q; known providers: %s", name, strings.Join(names, ", ")), name)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
