package tracking_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alwrity/alwrity-billing/tracking"
)

type scriptedMeter struct{ refuse bool }

func (s scriptedMeter) Reserve(context.Context, tracking.Call) (string, error) {
	if s.refuse {
		return "", &tracking.LimitError{Provider: "gemini", Limit: "total_calls", Message: "limit", Used: "3", Max: "3"}
	}
	return "rsv_1", nil
}

func (scriptedMeter) Settle(context.Context, string, tracking.Outcome) error {
	return errors.New("ignored")
}

const requestsTotal = "alwrity_http_requests_total"

// series returns the values of one metric family by its labels, written
// `name="value",…` in label-name order. For histograms the value is the
// sample count.
func series(t *testing.T, reg prometheus.Gatherer, family string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, metric := range mf.GetMetric() {
			var labels []string
			for _, l := range metric.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			v := metric.GetCounter().GetValue() + metric.GetGauge().GetValue() + float64(metric.GetHistogram().GetSampleCount())
			out[strings.Join(labels, ",")] = v
		}
	}
	return out
}

func checkSeries(t *testing.T, reg prometheus.Gatherer, family string, want map[string]float64) {
	t.Helper()
	if got := series(t, reg, family); !maps.Equal(got, want) {
		t.Errorf("%s series:\n got %v\nwant %v", family, got, want)
	}
}

func newMetrics() (*tracking.Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return tracking.NewMetrics(reg), reg
}

// testMux has a pattern with a wildcard and routes that answer with
// different status codes in different ways.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x/{id}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "x "+r.PathValue("id")) // 200 implied by the first Write
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.WriteHeader(http.StatusTeapot) // superfluous: the first status stands
	})
	mux.HandleFunc("GET /nothing", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /write-then-header", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "body")
		w.WriteHeader(http.StatusInternalServerError) // too late: 200 was sent
	})
	mux.HandleFunc("GET /flush", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		if err := http.NewResponseController(w).Flush(); err != nil {
			panic(err)
		}
	})
	mux.HandleFunc("GET /hints", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // informational: the final status follows
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	return mux
}

func serve(t *testing.T, h http.Handler, method, target string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code
}

// exposition returns the metrics text the Handler serves.
func exposition(t *testing.T, m *tracking.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler answered %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("metrics Content-Type = %q; want the text format", ct)
	}
	return rec.Body.String()
}

// TestMiddlewareLabelsByPattern pins the route label: the pattern, not the
// path, so a thousand URLs of one route are one series.
func TestMiddlewareLabelsByPattern(t *testing.T) {
	m, reg := newMetrics()
	h := m.Middleware(testMux())
	for i := range 1000 {
		if code := serve(t, h, http.MethodGet, fmt.Sprintf("/x/%d", i)); code != http.StatusOK {
			t.Fatalf("GET /x/%d = %d", i, code)
		}
	}
	for i := range 50 {
		serve(t, h, http.MethodGet, fmt.Sprintf("/no/such/path/%d", i))
	}
	checkSeries(t, reg, requestsTotal, map[string]float64{
		`code="200",method="GET",route="GET /x/{id}"`: 1000,
		`code="404",method="GET",route="unmatched"`:   50,
	})
	checkSeries(t, reg, "alwrity_http_request_duration_seconds", map[string]float64{
		`method="GET",route="GET /x/{id}"`: 1000,
		`method="GET",route="unmatched"`:   50,
	})
}

// TestMiddlewareStatusCodes pins the code label across status classes and
// the ways a handler sets its status.
func TestMiddlewareStatusCodes(t *testing.T) {
	m, reg := newMetrics()
	h := m.Middleware(testMux())
	requests := []struct {
		method, target string
		wantCode       int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/nope/again", http.StatusNotFound},
		{http.MethodPost, "/fail", http.StatusInternalServerError},
		{http.MethodGet, "/nothing", http.StatusOK},
		{http.MethodGet, "/write-then-header", http.StatusOK},
		{http.MethodGet, "/flush", http.StatusAccepted},
		{http.MethodGet, "/hints", 0}, // httptest's recorder keeps the 103
		{http.MethodGet, "/x/7", http.StatusOK},
		{http.MethodDelete, "/x/7", http.StatusMethodNotAllowed},
	}
	for _, r := range requests {
		if code := serve(t, h, r.method, r.target); r.wantCode != 0 && code != r.wantCode {
			t.Fatalf("%s %s = %d; want %d", r.method, r.target, code, r.wantCode)
		}
	}
	checkSeries(t, reg, requestsTotal, map[string]float64{
		`code="200",method="GET",route="GET /nothing"`:           1,
		`code="200",method="GET",route="GET /write-then-header"`: 1,
		`code="200",method="GET",route="GET /x/{id}"`:            1,
		`code="201",method="GET",route="GET /hints"`:             1,
		`code="202",method="GET",route="GET /flush"`:             1,
		`code="404",method="GET",route="unmatched"`:              2,
		`code="405",method="DELETE",route="unmatched"`:           1,
		`code="500",method="POST",route="POST /fail"`:            1,
	})
	if !strings.Contains(exposition(t, m), "\nalwrity_http_requests_in_flight 0\n") {
		t.Errorf("in-flight gauge is not 0 after all requests finished")
	}
}

// TestMiddlewareBoundsLabels pins that what clients send cannot make new
// series: methods outside the standard set count as "other".
func TestMiddlewareBoundsLabels(t *testing.T) {
	m, reg := newMetrics()
	h := m.Middleware(testMux())
	for i := range 20 {
		serve(t, h, fmt.Sprintf("BREW%d", i), "/x/1")
	}
	checkSeries(t, reg, requestsTotal, map[string]float64{`code="405",method="other",route="unmatched"`: 20})
}

// TestMiddlewareCountsPanics counts a handler that panics as the 500 it
// becomes, and leaves nothing in flight.
func TestMiddlewareCountsPanics(t *testing.T) {
	m, reg := newMetrics()
	h := m.Middleware(testMux())
	func() {
		defer func() {
			if recover() == nil {
				t.Errorf("the panic did not reach the caller")
			}
		}()
		serve(t, h, http.MethodGet, "/panic")
	}()
	checkSeries(t, reg, requestsTotal, map[string]float64{`code="500",method="GET",route="GET /panic"`: 1})
	checkSeries(t, reg, "alwrity_http_requests_in_flight", map[string]float64{"": 0})
}

// TestMiddlewareBehindContextMiddleware pins how the middleware must be
// composed with one that replaces the request: the route pattern is what
// the ServeMux writes into the *http.Request it is given, so the metrics
// middleware must see that same request.
func TestMiddlewareBehindContextMiddleware(t *testing.T) {
	withContext := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), struct{}{}, 1)))
		})
	}
	m, reg := newMetrics()
	serve(t, withContext(m.Middleware(testMux())), http.MethodGet, "/x/1")
	checkSeries(t, reg, requestsTotal, map[string]float64{`code="200",method="GET",route="GET /x/{id}"`: 1})
	// Outside it, the pattern is lost.
	m, reg = newMetrics()
	serve(t, m.Middleware(withContext(testMux())), http.MethodGet, "/x/1")
	checkSeries(t, reg, requestsTotal, map[string]float64{`code="200",method="GET",route="unmatched"`: 1})
}

// TestInFlight reads the gauge from inside a request.
func TestInFlight(t *testing.T) {
	m, _ := newMetrics()
	var during string
	h := m.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		during = exposition(t, m)
	}))
	serve(t, h, http.MethodGet, "/")
	if !strings.Contains(during, "\nalwrity_http_requests_in_flight 1\n") {
		t.Errorf("in-flight gauge during a request is not 1:\n%s", during)
	}
	if !strings.Contains(exposition(t, m), "\nalwrity_http_requests_in_flight 0\n") {
		t.Errorf("in-flight gauge is not 0 after the request")
	}
}

func TestHandlerServesTextFormat(t *testing.T) {
	m, _ := newMetrics()
	serve(t, m.Middleware(testMux()), http.MethodGet, "/x/1")
	body := exposition(t, m)
	for _, want := range []string{
		"# TYPE alwrity_http_requests_total counter",
		`alwrity_http_requests_total{code="200",method="GET",route="GET /x/{id}"} 1`,
		"# TYPE alwrity_http_request_duration_seconds histogram",
		`alwrity_http_request_duration_seconds_count{method="GET",route="GET /x/{id}"} 1`,
		`alwrity_http_request_duration_seconds_bucket{method="GET",route="GET /x/{id}",le="+Inf"} 1`,
		"alwrity_http_requests_in_flight 0",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics text lacks %q:\n%s", want, body)
		}
	}
}

// TestNewMetricsRegisterers pins where the metrics go: on the registry
// given (served by Handler), on a private one for nil, and that two
// Metrics on one registry collide loudly.
func TestNewMetricsRegisterers(t *testing.T) {
	a, b := tracking.NewMetrics(nil), tracking.NewMetrics(nil)
	serve(t, a.Middleware(testMux()), http.MethodGet, "/x/1")
	if !strings.Contains(exposition(t, a), `route="GET /x/{id}"`) || strings.Contains(exposition(t, b), `route="GET /x/{id}"`) {
		t.Errorf("private registries are shared")
	}
	reg := prometheus.NewRegistry()
	tracking.NewMetrics(reg)
	defer func() {
		if recover() == nil {
			t.Errorf("a second Metrics on one registry did not panic")
		}
	}()
	tracking.NewMetrics(reg)
}

// TestTrackingMiddlewareCountsRequests pins that the tracking middleware's
// Metrics count the wrapped handler's calls as requests by route, whether
// it wraps a mux or sits inside one, metered or not, and refusals too.
func TestTrackingMiddlewareCountsRequests(t *testing.T) {
	withUser := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u := r.Header.Get("X-Test-User"); u != "" {
				r = r.WithContext(tracking.WithUser(r.Context(), u))
			}
			next.ServeHTTP(w, r)
		})
	}
	send := func(h http.Handler, method, target, user string) int {
		r := httptest.NewRequest(method, target, nil)
		if user != "" {
			r.Header.Set("X-Test-User", user)
		}
		rec := httptest.NewRecorder()
		withUser(h).ServeHTTP(rec, r)
		return rec.Code
	}
	gen := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })

	// Around a mux: the metered request is passed on with a new context,
	// and its pattern still names the route.
	m, reg := newMetrics()
	mux := http.NewServeMux()
	mux.Handle("POST /api/gemini/{op}", gen)
	mux.HandleFunc("GET /status", func(http.ResponseWriter, *http.Request) {})
	h := tracking.Middleware(tracking.Config{Meter: scriptedMeter{}, Metrics: m}, mux)
	for i := range 3 {
		if code := send(h, http.MethodPost, fmt.Sprintf("/api/gemini/op%d", i), "u1"); code != http.StatusTeapot {
			t.Fatalf("metered call = %d", code)
		}
	}
	send(h, http.MethodGet, "/status", "")
	refusing := tracking.Middleware(tracking.Config{Meter: scriptedMeter{refuse: true}, Metrics: m}, mux)
	if code := send(refusing, http.MethodPost, "/api/gemini/op1", "u1"); code != http.StatusTooManyRequests {
		t.Fatalf("refused call = %d", code)
	}
	checkSeries(t, reg, requestsTotal, map[string]float64{
		`code="418",method="POST",route="POST /api/gemini/{op}"`: 3,
		`code="200",method="GET",route="GET /status"`:            1,
		// Refused before the mux ran: no pattern.
		`code="429",method="POST",route="unmatched"`: 1,
	})
	checkSeries(t, reg, "alwrity_tracked_calls_total", map[string]float64{`code="418",provider="gemini"`: 3})
	checkSeries(t, reg, "alwrity_tracked_refusals_total", map[string]float64{`provider="gemini",reason="total_calls"`: 1})

	// Inside a mux, around one handler.
	m, reg = newMetrics()
	mux = http.NewServeMux()
	mux.Handle("POST /api/openai/chat", tracking.Middleware(tracking.Config{Meter: scriptedMeter{}, Metrics: m}, gen))
	send(mux, http.MethodPost, "/api/openai/chat", "u2")
	send(mux, http.MethodPost, "/api/openai/chat", "u2")
	checkSeries(t, reg, requestsTotal, map[string]float64{`code="418",method="POST",route="POST /api/openai/chat"`: 2})
	checkSeries(t, reg, "alwrity_http_request_duration_seconds", map[string]float64{`method="POST",route="POST /api/openai/chat"`: 2})
	checkSeries(t, reg, "alwrity_tracked_calls_total", map[string]float64{`code="418",provider="openai"`: 2})
}

func TestMetricsCountCallsAndRefusals(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := tracking.NewMetrics(reg)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	for _, refuse := range []bool{false, false, true} {
		h := tracking.Middleware(tracking.Config{Meter: scriptedMeter{refuse: refuse}, Metrics: m}, handler)
		r := httptest.NewRequest(http.MethodPost, "/api/gemini/generate", nil)
		h.ServeHTTP(httptest.NewRecorder(), r.WithContext(tracking.WithUser(r.Context(), "u1")))
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := mt.GetCounter().GetValue()
			if mt.GetHistogram() != nil {
				v = float64(mt.GetHistogram().GetSampleCount())
			}
			got[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"alwrity_tracked_calls_total{code=418,provider=gemini}":              2,
		"alwrity_tracked_call_duration_seconds{provider=gemini}":             2,
		"alwrity_tracked_refusals_total{provider=gemini,reason=total_calls}": 1,
		"alwrity_http_requests_total{code=418,method=POST,route=unmatched}":  2,
		"alwrity_http_requests_total{code=429,method=POST,route=unmatched}":  1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], want, got)
		}
	}
}
