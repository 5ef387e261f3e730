package metering

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// commitMetrics describe the group commits, the ledger's write path:
//
//	alwrity_ledger_commit_events       events written per group transaction
//	alwrity_ledger_commit_seconds      time to write and commit one group
//	alwrity_ledger_commit_errors_total group transactions that failed (each
//	                                   batch is then retried on its own)
//
// Large groups mean each event shares its transaction's page writes with
// many others; commit time is what every caller of the group waits for.
type commitMetrics struct {
	events  prometheus.Histogram
	seconds prometheus.Histogram
	errors  prometheus.Counter
}

// RegisterMetrics exports the meter's metrics on reg. Without it the meter
// keeps none.
func (m *Meter) RegisterMetrics(reg prometheus.Registerer) error {
	cm := &commitMetrics{
		events: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "alwrity_ledger_commit_events",
			Help:    "Usage events written per group transaction of the ledger.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 … 4096
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "alwrity_ledger_commit_seconds",
			Help:    "Time to write and commit one group transaction of the ledger.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alwrity_ledger_commit_errors_total",
			Help: "Group transactions of the ledger that failed; their batches were retried one by one.",
		}),
	}
	for _, c := range []prometheus.Collector{cm.events, cm.seconds, cm.errors} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	m.metrics.Store(cm)
	return nil
}

// committed records one group transaction of n events that took since
// start.
func (m *Meter) committed(n int, start time.Time, err error) {
	cm := m.metrics.Load()
	if cm == nil {
		return
	}
	if err != nil {
		cm.errors.Inc()
		return
	}
	cm.events.Observe(float64(n))
	cm.seconds.Observe(time.Since(start).Seconds())
}
