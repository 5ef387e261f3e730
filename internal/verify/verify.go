// Package verify checks an installation for real: the database and its
// schema, the seeded defaults and, given a server URL, every public
// endpoint in its contract shape. It replaces the seed's
// verify_billing_setup.py, which only looked for files.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Result is the outcome of one check.
type Result struct {
	Name   string
	OK     bool
	Detail string
}

// String renders a result as one ✓/✗ line.
func (r Result) String() string {
	mark := "✓"
	if !r.OK {
		mark = "✗"
	}
	if r.Detail == "" {
		return mark + " " + r.Name
	}
	return mark + " " + r.Name + " — " + r.Detail
}

// Failed reports whether any result failed.
func Failed(results []Result) bool {
	for _, r := range results {
		if !r.OK {
			return true
		}
	}
	return false
}

func pass(name, detail string) Result    { return Result{Name: name, OK: true, Detail: detail} }
func fail(name string, err error) Result { return Result{Name: name, Detail: err.Error()} }
func check(name string, err error, detail string) Result {
	if err != nil {
		return fail(name, err)
	}
	return pass(name, detail)
}

// Database checks the database named by databaseURL without changing it.
func Database(ctx context.Context, databaseURL string) []Result {
	// Opening a SQLite file that is not there would create it (and its
	// directory), so a mistyped path is reported instead of "fixed".
	if path, ok := sqlitePath(databaseURL); ok {
		if _, err := os.Stat(path); err != nil {
			return []Result{fail("database reachable", fmt.Errorf("no SQLite database at %s: %w", path, err))}
		}
	}
	db, err := store.Open(ctx, databaseURL, nil)
	if err != nil {
		return []Result{fail("database reachable", err)}
	}
	defer db.Close()
	out := []Result{pass("database reachable", string(db.Dialect())+" "+db.Source())}

	cur, latest, err := db.SchemaVersion(ctx)
	switch {
	case err != nil:
	case cur > latest:
		// Migrating cannot help: this binary is the older one.
		err = fmt.Errorf("database schema version %d is newer than this binary's newest migration %d: run a newer alwrity-billing", cur, latest)
	case cur < latest:
		err = fmt.Errorf("schema version %d, latest is %d: run `alwrity-billing migrate`", cur, latest)
	}
	out = append(out, check("migrations at the latest version", err, fmt.Sprintf("version %d", cur)))

	missing, err := db.MissingTables(ctx)
	if err == nil && len(missing) > 0 {
		err = fmt.Errorf("missing: %s", strings.Join(missing, ", "))
	}
	out = append(out, check("every table present", err, fmt.Sprintf("%d tables", len(store.Tables))))
	if len(missing) > 0 {
		return out
	}

	absent, err := db.MissingDefaults(ctx, billing.DefaultPlans(), nil)
	if err == nil && len(absent) > 0 {
		err = fmt.Errorf("missing: %s", strings.Join(absent, ", "))
	}
	out = append(out, check("default plans present", err, fmt.Sprintf("%d plans", len(billing.DefaultPlans()))))

	absent, err = db.MissingDefaults(ctx, nil, billing.DefaultPrices())
	if err == nil && len(absent) > 0 {
		err = fmt.Errorf("missing: %s", strings.Join(absent, ", "))
	}
	out = append(out, check("default prices present", err, fmt.Sprintf("%d prices", len(billing.DefaultPrices()))))

	mismatches, err := db.Reconcile(ctx)
	if err == nil && len(mismatches) > 0 {
		lines := make([]string, 0, min(len(mismatches), 5))
		for _, m := range mismatches[:min(len(mismatches), 5)] {
			lines = append(lines, m.String())
		}
		err = fmt.Errorf("%d mismatches: %s", len(mismatches), strings.Join(lines, "; "))
	}
	out = append(out, check("usage summaries equal the ledger", err, "every user, period and provider"))

	held, err := db.HeldReservationsMismatch(ctx)
	if err == nil && held > 0 {
		err = fmt.Errorf("%d reservations contradict the ledger (held with an event, or settled by an event it lacks)", held)
	}
	out = append(out, check("reservations agree with the ledger", err, ""))
	return out
}

// sqlitePath returns the file a sqlite:// URL names, read the way the store
// reads it: sqlite:///./x.db is ./x.db and sqlite:////tmp/x.db is /tmp/x.db.
func sqlitePath(databaseURL string) (string, bool) {
	rest, ok := strings.CutPrefix(databaseURL, "sqlite://")
	if !ok {
		return "", false
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "?")
	return path, path != ""
}

// Server checks a running server at baseURL: its public endpoints answer in
// their contract shapes, the docs are served and the tracking middleware
// counts requests.
func Server(ctx context.Context, baseURL string, client *http.Client) []Result {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	c := checker{ctx: ctx, base: strings.TrimRight(baseURL, "/"), client: client}
	return []Result{
		c.text("GET /healthz", "/healthz", http.StatusOK, "ok"),
		c.text("GET /readyz", "/readyz", http.StatusOK, "ready"),
		c.json("GET /api/subscription/plans", "/api/subscription/plans", http.StatusOK, checkPlans),
		c.json("GET /api/subscription/pricing", "/api/subscription/pricing", http.StatusOK, checkPricing),
		c.json("GET /api/subscription/pricing?provider=openai", "/api/subscription/pricing?provider=openai", http.StatusOK, checkPricing),
		c.json("unknown provider is a 400 problem", "/api/subscription/pricing?provider=no-such-provider", http.StatusBadRequest, checkProblem),
		c.json("GET /api/subscription/health", "/api/subscription/health", http.StatusOK, checkHealth),
		c.json("user routes need a key (401)", "/api/subscription/usage/demo", http.StatusUnauthorized, checkProblem),
		c.json("GET /api/openapi.json", "/api/openapi.json", http.StatusOK, checkOpenAPI),
		c.text("Swagger UI at /api/docs", "/api/docs", http.StatusOK, "swagger-ui"),
		c.text("ReDoc at /api/redoc", "/api/redoc", http.StatusOK, "redoc"),
		c.metricsCount(),
	}
}

type checker struct {
	ctx    context.Context
	base   string
	client *http.Client
}

func (c checker) get(path string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, resp.Header, body, err
}

func (c checker) text(name, path string, status int, want string) Result {
	got, _, body, err := c.get(path)
	if err == nil && got != status {
		err = fmt.Errorf("status %d, want %d: %.200s", got, status, strings.TrimSpace(string(body)))
	}
	if err == nil && !strings.Contains(string(body), want) {
		err = fmt.Errorf("body does not contain %q", want)
	}
	return check(name, err, "")
}

func (c checker) json(name, path string, status int, shape func(map[string]any, http.Header) (string, error)) Result {
	got, header, body, err := c.get(path)
	if err != nil {
		return fail(name, err)
	}
	if got != status {
		return fail(name, fmt.Errorf("status %d, want %d: %.200s", got, status, body))
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return fail(name, fmt.Errorf("body is not a JSON object: %w", err))
	}
	detail, err := shape(doc, header)
	return check(name, err, detail)
}

// field walks doc along keys and returns the value found.
func field(doc any, keys ...string) (any, error) {
	cur := doc
	for i, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not an object", strings.Join(keys[:i], "."))
		}
		if cur, ok = m[k]; !ok {
			return nil, fmt.Errorf("missing field %s", strings.Join(keys[:i+1], "."))
		}
	}
	return cur, nil
}

func fields(doc any, prefix string, keys ...string) error {
	for _, k := range keys {
		if _, err := field(doc, k); err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
	}
	return nil
}

func envelope(doc map[string]any) (map[string]any, error) {
	if doc["success"] != true {
		return nil, fmt.Errorf(`"success" is not true`)
	}
	data, ok := doc["data"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf(`"data" is not an object`)
	}
	return data, nil
}

func checkPlans(doc map[string]any, _ http.Header) (string, error) {
	data, err := envelope(doc)
	if err != nil {
		return "", err
	}
	plans, ok := data["plans"].([]any)
	if !ok || len(plans) == 0 {
		return "", fmt.Errorf("data.plans is not a non-empty array")
	}
	for i, p := range plans {
		if err := fields(p, fmt.Sprintf("plans[%d]", i), "id", "name", "tier", "price_monthly", "price_yearly", "description", "features", "limits"); err != nil {
			return "", err
		}
		if _, err := field(p, "limits", "_zero_means"); err != nil {
			return "", fmt.Errorf("plans[%d]: %w", i, err)
		}
	}
	return fmt.Sprintf("%d plans", len(plans)), nil
}

func checkPricing(doc map[string]any, _ http.Header) (string, error) {
	data, err := envelope(doc)
	if err != nil {
		return "", err
	}
	prices, ok := data["pricing"].([]any)
	if !ok || len(prices) == 0 {
		return "", fmt.Errorf("data.pricing is not a non-empty array")
	}
	for i, p := range prices {
		if err := fields(p, fmt.Sprintf("pricing[%d]", i), "provider", "model_name", "cost_per_input_token",
			"cost_per_output_token", "cost_per_request", "effective_date"); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d prices", len(prices)), nil
}

func checkHealth(doc map[string]any, _ http.Header) (string, error) {
	data, err := envelope(doc)
	if err != nil {
		return "", err
	}
	if err := fields(data, "data", "status", "recent_requests", "recent_errors", "error_rate", "providers", "database", "timestamp"); err != nil {
		return "", err
	}
	return fmt.Sprintf("status %v, database %v", data["status"], data["database"]), nil
}

func checkProblem(doc map[string]any, h http.Header) (string, error) {
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		return "", fmt.Errorf("content type %q, want application/problem+json", ct)
	}
	detail, ok := doc["detail"].(string)
	if !ok || detail == "" {
		return "", fmt.Errorf("no readable detail")
	}
	return detail, nil
}

func checkOpenAPI(doc map[string]any, _ http.Header) (string, error) {
	v, _ := doc["openapi"].(string)
	if !strings.HasPrefix(v, "3.1") {
		return "", fmt.Errorf("openapi version %q, want 3.1", v)
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range []string{"/api/subscription/plans", "/api/subscription/usage/{user_id}", "/api/subscription/dashboard/{user_id}"} {
		if _, ok := paths[p]; !ok {
			return "", fmt.Errorf("path %s is not documented", p)
		}
	}
	return fmt.Sprintf("OpenAPI %s, %d paths", v, len(paths)), nil
}

var plansCounter = regexp.MustCompile(`(?m)^alwrity_http_requests_total\{[^}]*route="GET /api/subscription/plans"[^}]*\} ([0-9.e+]+)$`)

// metricsCount checks that a request shows up in the request counter.
func (c checker) metricsCount() Result {
	const name = "tracking middleware counts requests"
	count := func() (float64, error) {
		status, _, body, err := c.get("/metrics")
		if err != nil {
			return 0, err
		}
		if status != http.StatusOK {
			return 0, fmt.Errorf("/metrics answered %d", status)
		}
		var total float64
		for _, m := range plansCounter.FindAllSubmatch(body, -1) {
			v, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil {
				return 0, err
			}
			total += v
		}
		return total, nil
	}
	before, err := count()
	if err != nil {
		return fail(name, err)
	}
	if _, _, _, err := c.get("/api/subscription/plans"); err != nil {
		return fail(name, err)
	}
	after, err := count()
	if err != nil {
		return fail(name, err)
	}
	if after < before+1 {
		return fail(name, fmt.Errorf("GET /api/subscription/plans count went from %v to %v", before, after))
	}
	return pass(name, fmt.Sprintf("plans requests counted: %v → %v", before, after))
}
