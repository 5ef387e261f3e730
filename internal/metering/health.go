package metering

import (
	"context"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// HealthPolicy decides when a provider's recent failures raise a
// system_health alert.
type HealthPolicy struct {
	Window    time.Duration // how far back to look (default 5 minutes)
	ErrorRate float64       // percent of failed calls that raises the alert (default 20)
	MinCalls  int64         // calls needed before a rate means anything (default 20)
}

func (p HealthPolicy) withDefaults() HealthPolicy {
	if p.Window <= 0 {
		p.Window = 5 * time.Minute
	}
	if p.ErrorRate <= 0 {
		p.ErrorRate = 20
	}
	if p.MinCalls <= 0 {
		p.MinCalls = 20
	}
	return p
}

// checkHealth raises one system_health alert per provider and hour when the
// provider's error rate over the window passes the policy's threshold; its
// errors are the provider's faults (billing.ProviderFault), not the
// callers' own 4xx. It
// runs after items with failed calls commit; it is best-effort, since the
// alert is derived from the ledger and the next failing call checks again.
func (m *Meter) checkHealth(ctx context.Context, items []store.IngestItem) {
	p := m.Health.withDefaults()
	now := m.now()
	hour := now.UTC().Format("2006-01-02T15")
	var checked map[string]bool
	for _, it := range items {
		e := it.Log
		if !billing.ProviderFault(e.StatusCode) || checked[e.Provider] {
			continue
		}
		if checked == nil {
			checked = map[string]bool{}
		}
		checked[e.Provider] = true
		if m.healthRaised(e.Provider, hour, false) || !m.healthDue(e.Provider, now) {
			continue // this hour's alert exists, or the provider was counted a moment ago
		}
		calls, failed, err := m.db.ProviderErrors(ctx, e.Provider, now.Add(-p.Window))
		if err != nil {
			m.logger.Warn("health check failed", "provider", e.Provider, "error", err)
			continue
		}
		if calls < p.MinCalls || float64(failed)*100 < p.ErrorRate*float64(calls) {
			continue
		}
		a := billing.Alert{
			Type: billing.AlertSystemHealth, LimitKey: "provider:" + e.Provider, ThresholdPercentage: int(p.ErrorRate),
			Provider: e.Provider, Severity: "error", BillingPeriod: hour,
			Title: "High error rate: " + e.Provider,
			Message: fmt.Sprintf("%d of the last %d calls to %s failed (%.1f%%) in the past %s.",
				failed, calls, e.Provider, float64(failed)*100/float64(calls), p.Window),
		}
		if _, _, err := m.db.CreateAlert(ctx, a, now); err != nil {
			m.logger.Warn("raise health alert", "provider", e.Provider, "error", err)
			continue
		}
		m.healthRaised(e.Provider, hour, true)
	}
}

// healthRecount is the least time between two counts of one provider's
// recent calls. Every settle of a failed call checks the provider's health;
// under load with a steady trickle of failures, counting the window each
// time would cost a database query per failed call.
const healthRecount = 10 * time.Second

// healthDue reports whether the provider's recent calls may be counted
// now, and if so notes that they are.
func (m *Meter) healthDue(provider string, now time.Time) bool {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	if last, ok := m.healthCounted[provider]; ok && now.Sub(last) < healthRecount && !now.Before(last) {
		return false
	}
	if m.healthCounted == nil {
		m.healthCounted = map[string]time.Time{}
	}
	m.healthCounted[provider] = now
	return true
}

// healthRaised reports (or, with set, records) that a provider's
// system_health alert of an hour exists, so that a provider failing for
// the rest of that hour costs no further count of its recent calls.
func (m *Meter) healthRaised(provider, hour string, set bool) bool {
	m.healthMu.Lock()
	defer m.healthMu.Unlock()
	if set {
		if m.raised == nil || m.raisedHour != hour {
			m.raised, m.raisedHour = map[string]bool{}, hour
		}
		m.raised[provider] = true
		return true
	}
	return m.raisedHour == hour && m.raised[provider]
}
