package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Helpers of the metering tests (POST /usage, /reserve, settle, release).
// Their names start with "mt" so they never collide with other test files
// of the package.

// Shapes of the metering answers.
var (
	mtResultSpec = Obj{"event_id": "string", "status": Enum{"recorded", "duplicate"}, "cost": "number",
		"billing_period": "period", "unpriced": "bool"}
	mtRecordSpec      = Obj{"results": Arr{mtResultSpec}, "recorded": "int", "duplicates": "int"}
	mtReservationSpec = Obj{"reservation_id": "string", "user_id": "string", "provider": "string", "model": "string",
		"billing_period": "period", "calls": "int", "tokens": "int", "cost": "number",
		"status": Enum{"held", "settled", "released", "expired"}, "expires_at": "time"}
	// mtLimitSpec is the 429 body: problem+json plus exactly ALwrity's
	// fields; usage_info carries ALwrity's four plus the requested amount
	// and the period.
	mtLimitSpec = Obj{"status": "int", "title": "string", "detail": "string",
		"error": Enum{"Usage limit exceeded"}, "message": "string", "provider": Nullable{"string"},
		"usage_info": Obj{"current_calls": "number", "limit": "number", "usage_percentage": "float",
			"type": "string", "requested": "number", "billing_period": "period"}}
)

// mtEvent is one usage event as a client sends it: a gpt-4 call of 1,000
// input and 500 output tokens (0.06 USD at the seed's price) a minute
// before the test clock.
func mtEvent(id, user string) map[string]any {
	ev := map[string]any{"provider": "openai", "model": "gpt-4", "endpoint": "/v1/chat/completions", "method": "POST",
		"tokens_input": 1000, "tokens_output": 500, "status_code": 200, "response_time": 0.5,
		"timestamp": defaultNow.Add(-time.Minute).Format(time.RFC3339)}
	if id != "" {
		ev["event_id"] = id
	}
	if user != "" {
		ev["user_id"] = user
	}
	return ev
}

// mtBatch wraps events as {"events": [...]}.
func mtBatch(events ...map[string]any) map[string]any {
	return map[string]any{"events": events}
}

// mtJSON marshals v.
func mtJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mtPost sends body as application/json.
func mtPost(e *env, path, key, body string) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, key, strings.NewReader(body), "Content-Type", "application/json")
}

// mtRecord posts body to POST /usage.
func mtRecord(e *env, key, body string) response {
	e.t.Helper()
	return mtPost(e, "/api/subscription/usage", key, body)
}

// mtRecorded asserts a 200 POST /usage answer with n results and returns
// its data.
func mtRecorded(e *env, r response, n int) map[string]any {
	e.t.Helper()
	d := e.data(r)
	check(e.t, "usage", d, mtRecordSpec)
	if got := len(arr(e.t, d["results"])); got != n {
		e.t.Fatalf("%d results, want %d: %s", got, n, r)
	}
	return d
}

// mtResult returns the i-th result of a POST /usage answer's data.
func mtResult(t *testing.T, d map[string]any, i int) map[string]any {
	t.Helper()
	return obj(t, arr(t, d["results"])[i])
}

// mtLogCount returns how many usage logs the ledger holds, read through
// the API with the admin key.
func mtLogCount(e *env) int64 {
	e.t.Helper()
	body := e.ok(e.get("/api/subscription/usage-logs?limit=1", testAdminKey))
	return integer(e.t, body["total_count"])
}

// mtLoggedIDs returns the event ids of every usage log of user.
func mtLoggedIDs(e *env, user string) map[string]int {
	e.t.Helper()
	logs, _, err := e.app.DB.ListLogs(e.ctx, billing.LogFilter{UserID: user, Limit: 100000})
	if err != nil {
		e.t.Fatal(err)
	}
	ids := map[string]int{}
	for _, l := range logs {
		ids[l.EventID]++
	}
	return ids
}

// mtErrorLocations returns the locations a problem's errors name.
func mtErrorLocations(t *testing.T, p map[string]any) []string {
	t.Helper()
	var locs []string
	list, _ := p["errors"].([]any)
	for _, x := range list {
		if loc, ok := obj(t, x)["location"].(string); ok {
			locs = append(locs, loc)
		}
	}
	return locs
}

// mtRefused asserts a 400 problem whose errors and detail name every one
// of locations.
func mtRefused(e *env, r response, locations ...string) map[string]any {
	e.t.Helper()
	p := e.problem(r, http.StatusBadRequest)
	locs := mtErrorLocations(e.t, p)
	for _, want := range locations {
		if !contains(locs, want) {
			e.t.Errorf("errors name %v, not %s: %s", locs, want, r)
		}
		if !strings.Contains(p["detail"].(string), want) {
			e.t.Errorf("detail %q does not name %s", p["detail"], want)
		}
	}
	return p
}

// mtSubscribe stores plan under a name of its own and subscribes user to
// it, with periods anchored at the start of the test clock's month.
func mtSubscribe(e *env, user string, plan billing.Plan) {
	e.t.Helper()
	plan.Name, plan.Tier, plan.IsActive = "mt "+user, "basic", true
	id, err := e.app.DB.CreatePlan(e.ctx, plan, e.now())
	if err != nil {
		e.t.Fatalf("create plan: %v", err)
	}
	start := time.Date(e.now().Year(), e.now().Month(), 1, 0, 0, 0, 0, time.UTC)
	if _, err := e.app.DB.CreateSubscription(e.ctx, billing.Subscription{UserID: user, PlanID: id, BillingCycle: "monthly",
		Status: billing.StatusActive, Anchor: start, CurrentPeriodStart: start, CurrentPeriodEnd: start.AddDate(0, 1, 0)}, e.now()); err != nil {
		e.t.Fatalf("create subscription: %v", err)
	}
}

// mtConsistent asserts invariant 2 (every summary equals its ledger rows)
// and that the reservations agree with the ledger.
func mtConsistent(e *env) {
	e.t.Helper()
	mismatches, err := e.app.DB.Reconcile(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, m := range mismatches {
		e.t.Errorf("reconcile: %s", m)
	}
	n, err := e.app.DB.HeldReservationsMismatch(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if n != 0 {
		e.t.Errorf("%d reserved counters differ from their held reservations", n)
	}
}
