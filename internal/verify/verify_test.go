package verify

import (
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// Good bodies for every endpoint Server checks, in their contract shapes.
const (
	goodPlans = `{"success":true,"data":{"plans":[{"id":1,"name":"Free","tier":"free","price_monthly":0,"price_yearly":0,
		"description":"","features":[],"limits":{"ai_text_generation_calls":1000,"_zero_means":"not allowed"}}]}}`
	goodPricing = `{"success":true,"data":{"pricing":[{"provider":"openai","model_name":"gpt-4","cost_per_input_token":0.00003,
		"cost_per_output_token":0.00006,"cost_per_request":0,"effective_date":"2026-01-01T00:00:00Z"}]}}`
	goodHealth = `{"success":true,"data":{"status":"healthy","recent_requests":0,"recent_errors":0,"error_rate":0,
		"providers":{},"database":"ok","timestamp":"2026-01-01T00:00:00Z"}}`
	goodProblem = `{"title":"Bad Request","status":400,"detail":"unknown provider"}`
	goodOpenAPI = `{"openapi":"3.1.0","paths":{"/api/subscription/plans":{},` +
		`"/api/subscription/usage/{user_id}":{},"/api/subscription/dashboard/{user_id}":{}}}`
)

// fakeServer answers like a healthy alwrity-billing, except for the
// bodies in override (path → body; "" means 404).
func fakeServer(t *testing.T, override map[string]string) *httptest.Server {
	t.Helper()
	var plansCount atomic.Int64
	bodies := map[string]string{
		"/healthz":                      "ok\n",
		"/readyz":                       "ready\n",
		"/api/subscription/plans":       goodPlans,
		"/api/subscription/pricing":     goodPricing,
		"/api/subscription/health":      goodHealth,
		"/api/openapi.json":             goodOpenAPI,
		"/api/docs":                     `<div id="swagger-ui"></div>`,
		"/api/redoc":                    `<redoc spec-url="/api/openapi.json"></redoc>`,
		"/api/subscription/usage/demo":  goodProblem,
		"/api/subscription/pricing?bad": goodProblem,
	}
	for k, v := range override {
		bodies[k] = v
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case path == "/metrics":
			fmt.Fprintf(w, "# TYPE alwrity_http_requests_total counter\n"+
				"alwrity_http_requests_total{code=\"200\",method=\"GET\",route=\"GET /api/subscription/plans\"} %d\n", plansCount.Load())
			return
		case path == "/api/subscription/pricing" && r.URL.Query().Get("provider") == "no-such-provider":
			path = "/api/subscription/pricing?bad"
		}
		body, ok := bodies[path]
		if !ok || body == "" {
			http.NotFound(w, r)
			return
		}
		if path == "/api/subscription/plans" {
			plansCount.Add(1)
		}
		switch {
		case body == goodProblem:
			w.Header().Set("Content-Type", "application/problem+json")
			if path == "/api/subscription/usage/demo" {
				w.WriteHeader(http.StatusUnauthorized)
			} else {
				w.WriteHeader(http.StatusBadRequest)
			}
		case strings.HasPrefix(body, "{"):
			w.Header().Set("Content-Type", "application/json")
		}
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// byName indexes results by check name.
func byName(results []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range results {
		m[r.Name] = r
	}
	return m
}

func TestVerifyServerHealthy(t *testing.T) {
	srv := fakeServer(t, nil)
	results := Server(t.Context(), srv.URL+"/", srv.Client())
	if len(results) != 12 {
		t.Errorf("%d results, want 12", len(results))
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("%s", r)
		}
	}
	if Failed(results) {
		t.Error("Failed reports a failure although every check passed")
	}
}

func TestVerifyServerWrongShapes(t *testing.T) {
	tests := []struct {
		name     string
		path     string
		body     string
		check    string
		inDetail string
	}{
		{"plans without limits._zero_means", "/api/subscription/plans",
			strings.Replace(goodPlans, `,"_zero_means":"not allowed"`, "", 1),
			"GET /api/subscription/plans", "missing field limits._zero_means"},
		{"plans without tier", "/api/subscription/plans", strings.Replace(goodPlans, `"tier":"free",`, "", 1),
			"GET /api/subscription/plans", "plans[0]: missing field tier"},
		{"plans not in the envelope", "/api/subscription/plans", `{"plans":[]}`,
			"GET /api/subscription/plans", `"success" is not true`},
		{"no plans", "/api/subscription/plans", `{"success":true,"data":{"plans":[]}}`,
			"GET /api/subscription/plans", "non-empty array"},
		{"plans not JSON", "/api/subscription/plans", `<html>`,
			"GET /api/subscription/plans", "not a JSON object"},
		{"pricing without cost_per_output_token", "/api/subscription/pricing",
			strings.Replace(goodPricing, `"cost_per_output_token":0.00006,`, "", 1),
			"GET /api/subscription/pricing", "missing field cost_per_output_token"},
		{"health without database", "/api/subscription/health", strings.Replace(goodHealth, `"database":"ok",`, "", 1),
			"GET /api/subscription/health", "missing field database"},
		{"OpenAPI 3.0", "/api/openapi.json", strings.Replace(goodOpenAPI, "3.1.0", "3.0.3", 1),
			"GET /api/openapi.json", `want 3.1`},
		{"OpenAPI without the dashboard", "/api/openapi.json",
			strings.Replace(goodOpenAPI, `,"/api/subscription/dashboard/{user_id}":{}`, "", 1),
			"GET /api/openapi.json", "/api/subscription/dashboard/{user_id} is not documented"},
		{"no Swagger UI", "/api/docs", "", "Swagger UI at /api/docs", "status 404, want 200"},
		{"ReDoc page without ReDoc", "/api/redoc", "<html></html>", "ReDoc at /api/redoc", `does not contain "redoc"`},
		{"not ready", "/readyz", "", "GET /readyz", "status 404, want 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeServer(t, map[string]string{tt.path: tt.body})
			results := Server(t.Context(), srv.URL, srv.Client())
			if !Failed(results) {
				t.Fatal("every check passed")
			}
			r, ok := byName(results)[tt.check]
			if !ok {
				t.Fatalf("no %q check", tt.check)
			}
			if r.OK || !strings.Contains(r.Detail, tt.inDetail) {
				t.Errorf("%s; want ✗ with %q", r, tt.inDetail)
			}
			if !strings.HasPrefix(r.String(), "✗ "+tt.check+" — ") {
				t.Errorf("line = %q", r.String())
			}
			for _, other := range results {
				// The pricing body also answers ?provider=openai.
				if !strings.HasPrefix(other.Name, tt.check) && !other.OK {
					t.Errorf("an unrelated check failed: %s", other)
				}
			}
		})
	}
}

func TestVerifyServerProblemNeedsProblemJSON(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"unauthorized"}`)
	}))
	defer srv.Close()
	r := byName(Server(t.Context(), srv.URL, srv.Client()))["user routes need a key (401)"]
	if r.OK || !strings.Contains(r.Detail, "application/problem+json") {
		t.Errorf("%s; want ✗ naming the content type", r)
	}
}

func TestVerifyServerMetricsNotCounting(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			// A counter that never moves, under the label an outer
			// middleware records when it cannot see the route.
			fmt.Fprint(w, "alwrity_http_requests_total{code=\"200\",method=\"GET\",route=\"unmatched\"} 7\n")
			return
		}
		fmt.Fprint(w, goodPlans)
	}))
	defer srv.Close()
	r := byName(Server(t.Context(), srv.URL, srv.Client()))["tracking middleware counts requests"]
	if r.OK || !strings.Contains(r.Detail, "count went from 0 to 0") {
		t.Errorf("%s; want ✗", r)
	}
}

func TestVerifyServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	results := Server(t.Context(), base, srv.Client())
	for _, r := range results {
		if r.OK {
			t.Errorf("passed against a closed server: %s", r)
		}
	}
}

func TestVerifyResultString(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{pass("GET /healthz", ""), "✓ GET /healthz"},
		{pass("every table present", "13 tables"), "✓ every table present — 13 tables"},
		{fail("every table present", errors.New("missing: usage_alerts")), "✗ every table present — missing: usage_alerts"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
	if Failed(nil) || Failed([]Result{pass("a", "")}) || !Failed([]Result{pass("a", ""), fail("b", errors.New("x"))}) {
		t.Error("Failed is wrong")
	}
}

func TestVerifySQLitePath(t *testing.T) {
	tests := []struct {
		url, path string
		ok        bool
	}{
		{"sqlite:///./alwrity.db", "./alwrity.db", true},
		{"sqlite:////tmp/x.db", "/tmp/x.db", true},
		{"sqlite:///data/x.db?mode=rwc", "data/x.db", true},
		{"sqlite://", "", false},
		{"postgres://u@h/db", "", false},
	}
	for _, tt := range tests {
		path, ok := sqlitePath(tt.url)
		if path != tt.path || ok != tt.ok {
			t.Errorf("sqlitePath(%q) = %q, %v; want %q, %v", tt.url, path, ok, tt.path, tt.ok)
		}
	}
}

func TestVerifyDatabase(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		storetest.OpenURL(t, url) // migrated and seeded
		results := Database(t.Context(), url)
		want := []string{"database reachable", "migrations at the latest version", "every table present",
			"default plans present", "default prices present", "usage summaries equal the ledger",
			"reservations agree with the ledger"}
		if len(results) != len(want) {
			t.Fatalf("results = %v, want %d checks", results, len(want))
		}
		for i, r := range results {
			if r.Name != want[i] || !r.OK {
				t.Errorf("result %d = %s, want ✓ %s", i, r, want[i])
			}
		}
	})
}

// TestVerifyDatabaseNewerSchema: a database migrated by a newer binary
// fails the schema check with advice to run a newer binary, not migrate
// (which refuses it).
func TestVerifyDatabaseNewerSchema(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		db := storetest.OpenURL(t, url) // migrated and seeded
		_, latest, err := db.SchemaVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		driver, dsn := "pgx", url
		if path, ok := strings.CutPrefix(url, "sqlite:///"); ok {
			driver, dsn = "sqlite", "file:"+path
		}
		raw, err := sql.Open(driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, latest+1); err != nil {
			t.Fatal(err)
		}
		results := Database(t.Context(), url)
		want := fmt.Sprintf("✗ migrations at the latest version — database schema version %d is newer than this binary's newest migration %d: run a newer alwrity-billing",
			latest+1, latest)
		if len(results) < 2 || results[1].String() != want {
			t.Fatalf("results = %v, want a second line %q", results, want)
		}
	})
}

func TestVerifyDatabaseMissingSQLiteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "missing.db")
	results := Database(t.Context(), "sqlite:///"+path)
	if len(results) != 1 || results[0].OK || results[0].Name != "database reachable" {
		t.Errorf("results = %v, want one ✗ database reachable", results)
	}
	if _, err := os.Stat(filepath.Dir(path)); err == nil {
		t.Error("Database created the directory of the file it was asked to check")
	}
}

func TestVerifyDatabaseUnreachable(t *testing.T) {
	results := Database(t.Context(), "mysql://x")
	if len(results) != 1 || results[0].OK || !strings.Contains(results[0].Detail, "DATABASE_URL") {
		t.Errorf("results = %v, want one ✗ naming DATABASE_URL", results)
	}
}
