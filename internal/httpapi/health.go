package httpapi

import (
	"context"
	"sync"
	"time"
)

// Error-rate thresholds (percent) for the overall health status.
const (
	healthWarningRate  = 5
	healthCriticalRate = 20
)

type healthInput struct{}

// getHealth answers GET /health. The figures of the window (every call in
// it, not a sample) come from Store.ProviderHealth and are shared by the
// requests of one second of the server's clock through s.health: see
// healthCache.
func (s *Server) getHealth(ctx context.Context, _ *healthInput) (*struct{ Body Envelope[HealthData] }, error) {
	arrived := time.Now()
	now := s.now().UTC()
	data := HealthData{Status: "healthy", WindowSeconds: int(s.healthWindow.Seconds()), Database: "ok",
		Providers: map[string]ProviderHealthJSON{}, Timestamp: now}
	if err := s.store.Ping(ctx); err != nil {
		s.logger.WarnContext(ctx, "health: database unreachable", "error", err)
		data.Database, data.Status = "unreachable", "critical"
		return ok(data), nil
	}
	mark, err := s.store.LedgerMark(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	key := healthKey{second: now.Unix(), window: s.healthWindow, mark: mark}
	f, err := s.health.get(key, arrived, func() (healthFigures, error) {
		return s.healthFigures(ctx, now.Add(-s.healthWindow))
	})
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data.RecentRequests, data.RecentErrors, data.ErrorRate = f.requests, f.errors, f.errorRate
	if f.providers != nil {
		data.Providers = f.providers
	}
	switch {
	case data.ErrorRate >= healthCriticalRate:
		data.Status = "critical"
	case data.ErrorRate >= healthWarningRate:
		data.Status = "warning"
	}
	return ok(data), nil
}

// healthFigures are the window's calls, errors and per-provider figures.
type healthFigures struct {
	requests, errors int64
	errorRate        float64
	// providers is shared by every response that reuses the figures, so it
	// is never changed after healthFigures returns it.
	providers map[string]ProviderHealthJSON
}

// healthFigures reads the calls made since `since`, per provider, with
// error rates in percent and nearest-rank latency percentiles in
// milliseconds, rounded as the contract shows them.
func (s *Server) healthFigures(ctx context.Context, since time.Time) (healthFigures, error) {
	byProvider, err := s.store.ProviderHealth(ctx, since)
	if err != nil {
		return healthFigures{}, err
	}
	f := healthFigures{providers: make(map[string]ProviderHealthJSON, len(byProvider))}
	for name, h := range byProvider {
		f.requests += h.Requests
		f.errors += h.Errors
		p := ProviderHealthJSON{Requests: h.Requests, Errors: h.Errors, P50Ms: round(h.P50Ms, 1), P95Ms: round(h.P95Ms, 1)}
		if h.Requests > 0 {
			p.ErrorRate = round(float64(h.Errors)*100/float64(h.Requests), 2)
		}
		f.providers[name] = p
	}
	if f.requests > 0 {
		f.errorRate = round(float64(f.errors)*100/float64(f.requests), 2)
	}
	return f, nil
}

// healthKey names what one health result answers: a second of the server's
// clock, the window, and the ledger's mark (its highest log id) read before
// the figures were computed.
type healthKey struct {
	second int64
	window time.Duration
	mark   int64
}

// healthCache holds the newest health figures so that the requests of one
// second share them: aggregating the window costs as much as the window
// holds calls (16–19 ms at 20,000 calls, docs/BENCHMARKS.md), a dashboard polling
// health must not pay that per request, and the figures of a 15-minute
// window barely move within a second. A result answers a later request of
// the same second when either the ledger's mark is unchanged (no call was
// recorded since; on PostgreSQL a commit of the same moment with a lower id
// may be missed until the second ends) or it was computed after that
// request arrived (so it saw every call committed before it). So a response
// is at most one second older than its request, and at a standstill (a
// test's fixed clock) every new call shows at once. One computation runs at
// a time; requests that find no usable result wait for it and reuse it when
// they can. The zero value is ready to use.
type healthCache struct {
	compute sync.Mutex // held while figures are computed
	mu      sync.Mutex // guards last
	last    *healthResult
}

type healthResult struct {
	key     healthKey
	started time.Time // wall clock, when the computation began
	figures healthFigures
}

// get returns figures usable for key by a request that arrived at
// `arrived`, computing them when no cached result is.
func (c *healthCache) get(key healthKey, arrived time.Time, compute func() (healthFigures, error)) (healthFigures, error) {
	if f, ok := c.lookup(key, arrived); ok {
		return f, nil
	}
	c.compute.Lock()
	defer c.compute.Unlock()
	if f, ok := c.lookup(key, arrived); ok {
		return f, nil // computed while this request waited
	}
	started := time.Now()
	f, err := compute()
	if err != nil {
		return healthFigures{}, err
	}
	c.mu.Lock()
	c.last = &healthResult{key: key, started: started, figures: f}
	c.mu.Unlock()
	return f, nil
}

func (c *healthCache) lookup(key healthKey, arrived time.Time) (healthFigures, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.last
	if r == nil || r.key.second != key.second || r.key.window != key.window {
		return healthFigures{}, false
	}
	if r.key.mark == key.mark || !r.started.Before(arrived) {
		return r.figures, true
	}
	return healthFigures{}, false
}
