package httpmetrics_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/httpmetrics"
)

const requestsTotal = "alwrity_http_requests_total"

// series returns the values of one metric family by its labels, written
// `name="value",…` in label-name order, as gathered from the registry. For
// histograms the value is the sample count.
func series(t *testing.T, m *httpmetrics.Metrics, family string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
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

func checkSeries(t *testing.T, m *httpmetrics.Metrics, family string, want map[string]float64) {
	t.Helper()
	got := series(t, m, family)
	if !maps.Equal(got, want) {
		t.Errorf("%s series:\n got %v\nwant %v", family, got, want)
	}
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
	return mux
}

func serve(t *testing.T, h http.Handler, method, target string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code
}

// exposition returns the metrics text the Handler serves.
func exposition(t *testing.T, m *httpmetrics.Metrics) string {
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

func TestMiddlewareCountsByPattern(t *testing.T) {
	m := httpmetrics.New()
	h := m.Middleware(testMux())
	for _, target := range []string{"/x/1", "/x/2"} {
		if code := serve(t, h, http.MethodGet, target); code != http.StatusOK {
			t.Fatalf("GET %s = %d", target, code)
		}
	}
	checkSeries(t, m, requestsTotal, map[string]float64{
		`code="200",method="GET",route="GET /x/{id}"`: 2,
	})
	checkSeries(t, m, "alwrity_http_request_duration_seconds", map[string]float64{`method="GET",route="GET /x/{id}"`: 2})
}

func TestMiddlewareStatusCodes(t *testing.T) {
	m := httpmetrics.New()
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
		{http.MethodGet, "/x/7", http.StatusOK},
	}
	for _, r := range requests {
		if code := serve(t, h, r.method, r.target); code != r.wantCode {
			t.Fatalf("%s %s = %d; want %d", r.method, r.target, code, r.wantCode)
		}
	}
	checkSeries(t, m, requestsTotal, map[string]float64{
		`code="200",method="GET",route="GET /nothing"`:           1,
		`code="200",method="GET",route="GET /write-then-header"`: 1,
		`code="200",method="GET",route="GET /x/{id}"`:            1,
		`code="202",method="GET",route="GET /flush"`:             1,
		`code="404",method="GET",route="unmatched"`:              2,
		`code="500",method="POST",route="POST /fail"`:            1,
	})
	if !strings.Contains(exposition(t, m), "\nalwrity_http_requests_in_flight 0\n") {
		t.Errorf("in-flight gauge is not 0 after all requests finished")
	}
}

// TestMiddlewareBehindContextMiddleware pins how the middleware must be
// composed with auth.Middleware: the route pattern is what the ServeMux
// writes into the *http.Request it is given, so the metrics middleware must
// see that same request. Wrapping it around a middleware that calls
// r.WithContext would hide the pattern and count every request "unmatched".
func TestMiddlewareBehindContextMiddleware(t *testing.T) {
	m := httpmetrics.New()
	h := auth.Middleware(m.Middleware(testMux()))
	serve(t, h, http.MethodGet, "/x/1")
	checkSeries(t, m, requestsTotal, map[string]float64{
		`code="200",method="GET",route="GET /x/{id}"`: 1,
	})
}

// TestInFlight reads the gauge from inside a request.
func TestInFlight(t *testing.T) {
	m := httpmetrics.New()
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
	m := httpmetrics.New()
	serve(t, m.Middleware(testMux()), http.MethodGet, "/x/1")
	body := exposition(t, m)
	for _, want := range []string{
		"# TYPE alwrity_http_requests_total counter",
		`alwrity_http_requests_total{code="200",method="GET",route="GET /x/{id}"} 1`,
		"# TYPE alwrity_http_request_duration_seconds histogram",
		`alwrity_http_request_duration_seconds_count{method="GET",route="GET /x/{id}"} 1`,
		"alwrity_http_requests_in_flight 0",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics text lacks %q:\n%s", want, body)
		}
	}
}

// TestRegistriesAreSeparate pins that two Metrics in one process neither
// collide on registration nor see each other's counts.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := httpmetrics.New(), httpmetrics.New()
	serve(t, a.Middleware(testMux()), http.MethodGet, "/x/1")
	checkSeries(t, a, requestsTotal, map[string]float64{`code="200",method="GET",route="GET /x/{id}"`: 1})
	checkSeries(t, b, requestsTotal, map[string]float64{})
}
