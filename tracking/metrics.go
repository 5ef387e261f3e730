package tracking

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports the middleware's metered calls to Prometheus: calls by
// provider and status, their duration, and refusals by limit.
type Metrics struct {
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alwrity_tracked_calls_total",
			Help: "Metered provider calls served by the tracking middleware, by provider and HTTP status code.",
		}, []string{"provider", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alwrity_tracked_call_duration_seconds",
			Help:    "Duration of metered provider calls, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"provider"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alwrity_tracked_refusals_total",
			Help: "Calls refused before reaching the handler, by provider and reason (a limit key, or unavailable).",
		}, []string{"provider", "reason"}),
	}
	reg.MustRegister(m.calls, m.duration, m.refused)
	return m
}

func (m *Metrics) served(provider string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(provider, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(provider).Observe(d.Seconds())
}

func (m *Metrics) refusal(provider, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(provider, reason).Inc()
}
