package httpmetrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/httpmetrics"
)

// exposition returns the metrics text the Handler serves.
func exposition(t *testing.T, m *httpmetrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler answered %d", rec.Code)
	}
	return rec.Body.String()
}

// TestServerMetrics pins what the server's /metrics holds: the request
// metrics of its routes beside the Go runtime and process metrics.
func TestServerMetrics(t *testing.T) {
	m := httpmetrics.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /x/{id}", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "x") })
	h := m.Middleware(mux)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x/1", nil))
	body := exposition(t, m)
	for _, want := range []string{
		`alwrity_http_requests_total{code="200",method="GET",route="GET /x/{id}"} 1`,
		`alwrity_http_request_duration_seconds_count{method="GET",route="GET /x/{id}"} 1`,
		"alwrity_http_requests_in_flight 0",
		"go_goroutines", "process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics text lacks %q:\n%s", want, body)
		}
	}
}

// TestRegistriesAreSeparate pins that two servers' metrics in one process
// neither collide on registration nor see each other's counts.
func TestRegistriesAreSeparate(t *testing.T) {
	a, b := httpmetrics.New(), httpmetrics.New()
	a.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if !strings.Contains(exposition(t, a), `alwrity_http_requests_total{code="404",method="GET",route="unmatched"} 1`) {
		t.Errorf("a did not count its request")
	}
	if strings.Contains(exposition(t, b), "alwrity_http_requests_total{") {
		t.Errorf("b counts a's request")
	}
}
