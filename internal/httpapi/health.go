package httpapi

import (
	"context"
	"slices"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Error-rate thresholds (percent) for the overall health status.
const (
	healthWarningRate  = 5
	healthCriticalRate = 20
	healthSampleLimit  = 10_000
)

type healthInput struct{}

func (s *Server) getHealth(ctx context.Context, _ *healthInput) (*struct{ Body Envelope[HealthData] }, error) {
	now := s.now().UTC()
	data := HealthData{Status: "healthy", WindowSeconds: int(s.healthWindow.Seconds()), Database: "ok",
		Providers: map[string]ProviderHealthJSON{}, Timestamp: now}
	if err := s.store.Ping(ctx); err != nil {
		s.logger.WarnContext(ctx, "health: database unreachable", "error", err)
		data.Database, data.Status = "unreachable", "critical"
		return ok(data), nil
	}
	calls, err := s.store.RecentCalls(ctx, now.Add(-s.healthWindow), healthSampleLimit)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	byProvider := map[string][]billing.CallStat{}
	for _, c := range calls {
		byProvider[c.Provider] = append(byProvider[c.Provider], c)
		data.RecentRequests++
		if c.Failed {
			data.RecentErrors++
		}
	}
	if data.RecentRequests > 0 {
		data.ErrorRate = round(float64(data.RecentErrors)*100/float64(data.RecentRequests), 2)
	}
	for name, cs := range byProvider {
		h := providerHealth(cs)
		data.Providers[name] = ProviderHealthJSON{Requests: h.Requests, Errors: h.Errors, ErrorRate: h.ErrorRate, P50Ms: h.P50Ms, P95Ms: h.P95Ms}
	}
	switch {
	case data.ErrorRate >= healthCriticalRate:
		data.Status = "critical"
	case data.ErrorRate >= healthWarningRate:
		data.Status = "warning"
	}
	return ok(data), nil
}

// providerHealth summarises one provider's recent calls: error rate and
// nearest-rank latency percentiles.
func providerHealth(calls []billing.CallStat) billing.ProviderHealth {
	h := billing.ProviderHealth{Requests: int64(len(calls))}
	ms := make([]float64, 0, len(calls))
	for _, c := range calls {
		if c.Failed {
			h.Errors++
		}
		ms = append(ms, c.ResponseTime*1000)
	}
	if h.Requests == 0 {
		return h
	}
	slices.Sort(ms)
	pct := func(p float64) float64 {
		i := int(p*float64(len(ms))+0.999999) - 1
		return round(ms[max(0, min(i, len(ms)-1))], 1)
	}
	h.ErrorRate = round(float64(h.Errors)*100/float64(h.Requests), 2)
	h.P50Ms, h.P95Ms = pct(0.50), pct(0.95)
	return h
}
