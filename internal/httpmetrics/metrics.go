// Package httpmetrics gives the server its request metrics: the tracking
// package's Metrics (the same implementation and series a service wrapped
// by the tracking middleware exports), on a registry of the server's own,
// beside the Go runtime and process collectors. A registry per server lets
// tests run many servers in one process.
package httpmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/alwrity/alwrity-billing/tracking"
)

// Metrics is tracking.Metrics: Middleware counts and times requests,
// Handler serves /metrics.
type Metrics = tracking.Metrics

// New returns request metrics registered on a new registry, with the Go
// runtime and process collectors beside them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return tracking.NewMetrics(reg)
}
