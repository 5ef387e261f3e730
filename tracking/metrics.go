package tracking

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics exports HTTP request metrics to Prometheus: requests by route
// pattern, method and status code, their duration, and the requests in
// flight; and, for the calls the tracking middleware meters, calls by
// provider and status, their duration, and refusals by limit. The
// alwrity-billing server counts its own routes with the same Metrics, so a
// service wrapped by the tracking middleware and the server export the same
// series:
//
//	alwrity_http_requests_total{route, method, code}
//	alwrity_http_request_duration_seconds{route, method}
//	alwrity_http_requests_in_flight
//	alwrity_tracked_calls_total{provider, code}
//	alwrity_tracked_call_duration_seconds{provider}
//	alwrity_tracked_refusals_total{provider, reason}
//
// Every label takes a bounded set of values, whatever clients send: route
// is the http.ServeMux pattern that matched ("GET /x/{id}", never the raw
// path) or "unmatched", method is a standard method or "other", and code is
// a status from 100 to 599 or "other".
type Metrics struct {
	registerer prometheus.Registerer
	gatherer   prometheus.Gatherer

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge

	calls        *prometheus.CounterVec
	callDuration *prometheus.HistogramVec
	refused      *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg, or on a new registry of their
// own when reg is nil. Handler serves reg when it is also a
// prometheus.Gatherer (a *prometheus.Registry is), and otherwise the default
// gatherer. Registering twice on one registry panics, as with any collector.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		registerer: reg,
		gatherer:   prometheus.DefaultGatherer,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alwrity_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alwrity_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "alwrity_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alwrity_tracked_calls_total",
			Help: "Metered provider calls served by the tracking middleware, by provider and HTTP status code.",
		}, []string{"provider", "code"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "alwrity_tracked_call_duration_seconds",
			Help:    "Duration of metered provider calls, by provider.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10),
		}, []string{"provider"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alwrity_tracked_refusals_total",
			Help: "Calls refused before reaching the handler, by provider and reason (a limit key, or unavailable).",
		}, []string{"provider", "reason"}),
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	reg.MustRegister(m.requests, m.duration, m.inflight, m.calls, m.callDuration, m.refused)
	return m
}

// Registerer returns the registry the metrics are on, for more collectors
// to join them on the same Handler.
func (m *Metrics) Registerer() prometheus.Registerer { return m.registerer }

// Handler serves the metrics (and whatever else the registry holds) in the
// Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.gatherer, promhttp.HandlerOpts{Registry: m.registerer})
}

// Middleware counts and times every request next serves. The route label
// is the ServeMux pattern that matched, which the mux records in the
// *http.Request it is given and is known after next has run: so Middleware
// must sit inside any middleware that replaces the request (r.WithContext,
// as an authentication middleware may); outside one, every request counts
// as "unmatched". It may sit outside the mux or inside it, around one
// handler. Do not wrap a handler in both Middleware and the tracking
// Middleware with these Metrics: that one counts requests already.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, func(rec *recorder) { next.ServeHTTP(rec, r) })
	})
}

// serve runs h with a recorder of the status and records the request when
// h returns or panics (as a 500: a panic that a server recovers from or
// aborts on never sends the handler's status). A handler run by h with
// another request than r names it in rec.req, so its route pattern counts.
func (m *Metrics) serve(w http.ResponseWriter, r *http.Request, h func(rec *recorder)) {
	start := time.Now()
	m.inflight.Inc()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK, req: r}
	returned := false
	defer func() {
		m.inflight.Dec()
		status := rec.status
		if !returned {
			status = http.StatusInternalServerError
		}
		route := rec.req.Pattern
		if route == "" {
			route = r.Pattern
		}
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(r.Method)
		m.requests.WithLabelValues(route, method, codeLabel(status)).Inc()
		m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}()
	h(rec)
	returned = true
}

// methodLabel bounds the method label: clients may send any token as a
// method, and each would be a new series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// codeLabel bounds the code label to the statuses HTTP defines classes for.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}

func (m *Metrics) served(provider string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(provider, codeLabel(code)).Inc()
	m.callDuration.WithLabelValues(provider).Observe(d.Seconds())
}

func (m *Metrics) refusal(provider, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(provider, reason).Inc()
}
