package httpapi_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// route is one operation of the API.
type route struct {
	method, path string
	public       bool
}

var routes = []route{
	{"GET", "/api/subscription/plans", true},
	{"GET", "/api/subscription/pricing", true},
	{"GET", "/api/subscription/health", true},
	{"GET", "/api/subscription/usage/{user_id}", false},
	{"GET", "/api/subscription/trends/{user_id}", false},
	{"GET", "/api/subscription/usage/{user_id}/trends", false},
	{"GET", "/api/subscription/dashboard/{user_id}", false},
	{"GET", "/api/subscription/alerts/{user_id}", false},
	{"POST", "/api/subscription/alerts/{alert_id}/mark-read", false},
	{"GET", "/api/subscription/user/{user_id}/subscription", false},
	{"GET", "/api/subscription/status/{user_id}", false},
	{"GET", "/api/subscription/usage-logs", false},
	{"POST", "/api/subscription/usage", false},
	{"POST", "/api/subscription/reserve", false},
	{"POST", "/api/subscription/reservations/{reservation_id}/settle", false},
	{"DELETE", "/api/subscription/reservations/{reservation_id}", false},
	{"POST", "/api/subscription/preflight-check", false},
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func TestOpenAPI(t *testing.T) {
	e := newEnv(t, storetest.Backends()[0], defaultNow)
	r := e.get("/api/openapi.json", "")
	if ct := r.header.Get("Content-Type"); r.status != http.StatusOK || !strings.HasSuffix(ct, "json") {
		t.Fatalf("/api/openapi.json: %s (%s)", r, ct)
	}
	doc := decode(t, r.body)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1") {
		t.Fatalf("openapi = %v, want 3.1.x", doc["openapi"])
	}
	paths := obj(t, doc["paths"])
	for _, r := range routes {
		item, ok := paths[r.path].(map[string]any)
		if !ok {
			t.Errorf("%s is not documented", r.path)
			continue
		}
		op, ok := item[strings.ToLower(r.method)].(map[string]any)
		if !ok {
			t.Errorf("%s %s is not documented", r.method, r.path)
			continue
		}
		_, secured := op["security"]
		if secured == r.public {
			t.Errorf("%s %s: security %v, public %v", r.method, r.path, op["security"], r.public)
		}
		if op["operationId"] == nil || op["summary"] == nil {
			t.Errorf("%s %s lacks an operationId or summary", r.method, r.path)
		}
		// Every path parameter is declared (and so parsed: huma reads only
		// what it declares).
		declared := map[string]bool{}
		if ps, ok := op["parameters"].([]any); ok {
			for _, p := range ps {
				p := obj(t, p)
				declared[p["in"].(string)+"."+p["name"].(string)] = true
			}
		}
		for _, m := range pathParam.FindAllStringSubmatch(r.path, -1) {
			if !declared["path."+m[1]] {
				t.Errorf("%s %s does not declare path parameter %s (declared %v)", r.method, r.path, m[1], declared)
			}
		}
		want := map[string][]string{
			"/api/subscription/usage/{user_id}":        {"query.billing_period"},
			"/api/subscription/trends/{user_id}":       {"query.months"},
			"/api/subscription/usage/{user_id}/trends": {"query.months"},
			"/api/subscription/alerts/{user_id}":       {"query.limit", "query.unread_only"},
			"/api/subscription/pricing":                {"query.provider"},
			"/api/subscription/usage-logs": {"query.limit", "query.offset", "query.provider", "query.status_code",
				"query.billing_period", "query.user_id"},
		}[r.path]
		for _, w := range want {
			if !declared[w] {
				t.Errorf("%s %s does not declare %s", r.method, r.path, w)
			}
		}
	}
	if n := len(paths); n != len(routes) {
		t.Errorf("%d paths documented, %d routes known: update the route list", n, len(routes))
	}
	if schemes := obj(t, obj(t, doc["components"])["securitySchemes"]); schemes["bearer"] == nil {
		t.Errorf("no bearer security scheme: %v", schemes)
	}
	// Money is documented as a number.
	price := obj(t, obj(t, obj(t, obj(t, doc["components"])["schemas"])["PriceJSON"])["properties"])
	if ty := obj(t, price["cost_per_input_token"])["type"]; ty != "number" {
		t.Errorf("cost_per_input_token documented as %v", ty)
	}
	// The YAML form is served too.
	if r = e.get("/api/openapi.yaml", ""); r.status != http.StatusOK || !strings.Contains(string(r.body), "openapi: 3.1") {
		t.Errorf("openapi.yaml: %s", r)
	}
}

func TestProbesMetricsAndDocs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		if r := e.get("/healthz", ""); r.status != http.StatusOK || string(r.body) != "ok\n" {
			t.Errorf("/healthz: %s", r)
		}
		if r := e.get("/readyz", ""); r.status != http.StatusOK || string(r.body) != "ready\n" {
			t.Errorf("/readyz: %s", r)
		}

		e.ok(e.get("/api/subscription/plans", ""))
		e.ok(e.get("/api/subscription/plans", ""))
		e.ok(e.get("/api/subscription/usage/u1", testAdminKey))
		e.get("/api/subscription/usage/u1", "")
		e.get("/no/such/page", "")
		r := e.get("/metrics", "")
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %s", r)
		}
		metrics := string(r.body)
		for _, want := range []string{
			`alwrity_http_requests_total{code="200",method="GET",route="GET /api/subscription/plans"} 2`,
			`alwrity_http_requests_total{code="200",method="GET",route="GET /api/subscription/usage/{user_id}"} 1`,
			`alwrity_http_requests_total{code="401",method="GET",route="GET /api/subscription/usage/{user_id}"} 1`,
			`alwrity_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
			`alwrity_http_request_duration_seconds_count{method="GET",route="GET /api/subscription/plans"} 2`,
			`alwrity_http_requests_in_flight`,
			`go_goroutines`,
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		// URLs with user ids never become labels.
		if strings.Contains(metrics, "/usage/u1") {
			t.Errorf("/metrics labels a raw URL")
		}

		for path, want := range map[string]string{"/api/docs": "swagger-ui", "/api/redoc": "redoc", "/": "/api/docs"} {
			r := e.get(path, "")
			if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
				!strings.Contains(strings.ToLower(string(r.body)), want) {
				t.Errorf("%s: %s", path, r)
			}
		}

		// Unknown API routes and methods answer problem+json too.
		p := e.problem(e.get("/api/subscription/nope", ""), http.StatusNotFound)
		if !strings.Contains(p["detail"].(string), "/api/subscription/nope") {
			t.Errorf("404 detail %q", p["detail"])
		}
		r = e.post("/api/subscription/plans", "")
		e.problem(r, http.StatusMethodNotAllowed)
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") {
			t.Errorf("405 Allow = %q", allow)
		}
		e.problem(e.do(http.MethodDelete, "/api/subscription/usage/u1", testAdminKey, nil), http.StatusMethodNotAllowed)
		if r := e.get("/api/docs/", ""); r.status != http.StatusOK { // redirected to /api/docs
			t.Errorf("/api/docs/: %s", r)
		}

		// Dropping a table makes the service unready (but still alive).
		if _, err := e.rawDB().ExecContext(e.ctx, "DROP TABLE api_usage_logs"); err != nil {
			t.Fatal(err)
		}
		if r := e.get("/readyz", ""); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "api_usage_logs") {
			t.Errorf("/readyz without api_usage_logs: %s", r)
		}
		if r := e.get("/healthz", ""); r.status != http.StatusOK {
			t.Errorf("/healthz: %s", r)
		}
	})
}
