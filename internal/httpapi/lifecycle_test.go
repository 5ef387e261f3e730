package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// lifecycleRoutes are the subscription lifecycle and admin billing and plan
// operations.
var lifecycleRoutes = []route{
	{"POST", "/api/subscription/subscribe/{user_id}", false},
	{"POST", "/api/subscription/cancel/{user_id}", false},
	{"GET", "/api/subscription/renewal-history/{user_id}", false},
	{"GET", "/api/subscription/billing-history/{user_id}", false},
	{"GET", "/api/admin/billing-history/export", false},
	{"POST", "/api/admin/invoices/{invoice_id}/status", false},
	{"POST", "/api/admin/billing/close", false},
	{"PATCH", "/api/admin/subscriptions/{user_id}", false},
	{"GET", "/api/admin/plans", false},
	{"POST", "/api/admin/plans", false},
	{"PUT", "/api/admin/plans/{plan_id}", false},
	{"POST", "/api/admin/plans/{plan_id}/deactivate", false},
	{"POST", "/api/admin/plans/{plan_id}/activate", false},
}

// The paths join ops_test.go's API-wide route checks once each;
// TestLifecycleOpenAPI checks every method.
func init() {
	seen := map[string]bool{}
	for _, r := range lifecycleRoutes {
		if !seen[r.path] {
			seen[r.path] = true
			routes = append(routes, r)
		}
	}
}

// send sends a JSON body ("" sends none) with an optional key.
func (e *env) send(method, path, key, body string) response {
	e.t.Helper()
	if body == "" {
		return e.do(method, path, key, nil)
	}
	return e.do(method, path, key, strings.NewReader(body), "Content-Type", "application/json")
}

var (
	planRefSpec = Nullable{Obj{"id": "int", "name": "string"}}
	changeSpec  = Obj{
		"subscription_id": "int", "plan_id": "int", "plan_name": "string", "billing_cycle": Enum{"monthly", "yearly"},
		"current_period_start": "time", "current_period_end": "time", "status": Enum{"active", "past_due", "cancelled", "expired"},
		"auto_renew": "bool", "limits": limitsSpec(),
		"change":       Enum{"created", "upgraded", "changed", "scheduled", "unchanged", "cancelled"},
		"effective_at": Nullable{"time"}, "pending_plan_id": Nullable{"int"}, "pending_billing_cycle": Nullable{Enum{"monthly", "yearly"}},
		"cancel_at_period_end": "bool", "cancelled_at": Nullable{"time"},
	}
	renewalSpec = Obj{
		"id": "int", "subscription_id": "int", "renewal_type": Enum{"new", "renewal", "upgrade", "downgrade", "cancel", "expire"},
		"previous_plan": planRefSpec, "new_plan": planRefSpec, "billing_cycle": Enum{"monthly", "yearly"},
		"period_start": "time", "period_end": "time", "usage_snapshot": Obj{"calls": "int", "tokens": "int", "cost": "number"},
		"effective_at": "time", "created_at": "time",
	}
	lineSpec = Obj{"type": Enum{"base", "upgrade", "downgrade", "credit", "overage", "adjustment"}, "description": "string",
		"period_start": "time", "period_end": "time", "quantity": Nullable{"int"}, "unit_price": Nullable{"number"}, "amount": "number"}
	invoiceSpec = Obj{
		"id": "int", "invoice_number": "string", "billing_period": "period", "period_start": "time", "period_end": "time",
		"plan_name": "string", "base_cost": "number", "usage_cost": "number", "overage_cost": "number", "credits": "number",
		"total_amount": "number", "total_api_calls": "int", "total_tokens": "int", "line_items": Arr{lineSpec},
		"status": Enum{"draft", "issued", "paid", "void"}, "issued_at": Nullable{"time"}, "payment_date": Nullable{"time"},
		"voided_at": Nullable{"time"},
	}
)

// subscribe asks for plan on behalf of user with key and returns data.
func (e *env) subscribeAPI(user, key, body string) map[string]any {
	e.t.Helper()
	d := e.data(e.send(http.MethodPost, "/api/subscription/subscribe/"+url.PathEscape(user), key, body))
	check(e.t, "subscribe", d, changeSpec)
	return d
}

func (e *env) renewals(user, key string) []map[string]any {
	e.t.Helper()
	d := e.data(e.get("/api/subscription/renewal-history/"+url.PathEscape(user), key))
	check(e.t, "renewal history", d, Obj{"renewal_history": Arr{renewalSpec}, "total": "int"})
	var out []map[string]any
	for _, r := range arr(e.t, d["renewal_history"]) {
		out = append(out, obj(e.t, r))
	}
	if integer(e.t, d["total"]) != int64(len(out)) {
		e.t.Fatalf("renewal history total %v for %d entries", d["total"], len(out))
	}
	return out
}

func (e *env) invoices(user, key, query string) map[string]any {
	e.t.Helper()
	d := e.data(e.get("/api/subscription/billing-history/"+url.PathEscape(user)+query, key))
	check(e.t, "billing history", d, Obj{"billing_history": Arr{invoiceSpec}, "total": "int", "limit": "int", "offset": "int"})
	return d
}

// accountOf is everything the API shows of a user's subscription, to
// compare before and after a refused request.
func (e *env) accountOf(user string) string {
	e.t.Helper()
	sub := e.get("/api/subscription/user/"+user+"/subscription", testAdminKey)
	hist := e.get("/api/subscription/renewal-history/"+user, testAdminKey)
	inv := e.get("/api/subscription/billing-history/"+user, testAdminKey)
	return string(sub.body) + string(hist.body) + string(inv.body)
}

func TestLifecycleOpenAPI(t *testing.T) {
	e := newEnv(t, storetest.Backends()[0], defaultNow)
	doc := decode(t, e.get("/api/openapi.json", "").body)
	paths := obj(t, doc["paths"])
	for _, r := range lifecycleRoutes {
		op := obj(t, obj(t, paths[r.path])[strings.ToLower(r.method)])
		if op["security"] == nil || op["operationId"] == nil || op["summary"] == nil || op["description"] == nil {
			t.Errorf("%s %s: security %v, operationId %v, summary %v", r.method, r.path, op["security"], op["operationId"], op["summary"])
		}
		want := "admin"
		if strings.HasPrefix(r.path, "/api/subscription/") {
			want = "subscription"
		}
		if tags := arr(t, op["tags"]); len(tags) != 1 || tags[0] != want {
			t.Errorf("%s %s: tags %v", r.method, r.path, tags)
		}
	}
	export := obj(t, obj(t, paths["/api/admin/billing-history/export"])["get"])
	content := obj(t, obj(t, obj(t, export["responses"])["200"])["content"])
	if _, ok := content["text/csv"]; !ok || len(content) != 1 {
		t.Errorf("export is documented as %v, want text/csv", sortedKeys(content))
	}
	declared := map[string]bool{}
	for _, p := range arr(t, export["parameters"]) {
		declared[obj(t, p)["name"].(string)] = true
	}
	if !declared["billing_period"] || !declared["user_id"] {
		t.Errorf("export parameters %v", declared)
	}
	// The subscribe body documents the options beside ALwrity's fields.
	schemas := obj(t, obj(t, doc["components"])["schemas"])
	var body map[string]any
	for name, s := range schemas {
		if strings.HasPrefix(strings.ToLower(name), "subscribebody") {
			body = obj(t, obj(t, s)["properties"])
		}
	}
	for _, f := range []string{"plan_id", "billing_cycle", "immediate", "time_zone"} {
		if body[f] == nil {
			t.Errorf("subscribe body does not document %s (%v)", f, sortedKeys(body))
		}
	}
	// Plans show their version and overage prices.
	plan := obj(t, obj(t, schemas["PlanJSON"])["properties"])
	for _, f := range []string{"version", "soft_limits", "overage_per_call", "overage_per_1k_tokens"} {
		if plan[f] == nil {
			t.Errorf("PlanJSON does not document %s", f)
		}
	}
}

// TestSubscribeAuthMatrix: a user key acts only for its own user and only
// chooses free plans; an admin key assigns any plan to anyone; no key is
// 401; and a refused request changes nothing.
func TestSubscribeAuthMatrix(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		free, starter, pro := e.planID("Free"), e.planID("Starter"), e.planID("Professional")
		body := func(plan int64, extra string) string { return fmt.Sprintf(`{"plan_id": %d%s}`, plan, extra) }

		userRoutes := [][3]string{
			{"POST", "/api/subscription/subscribe/alice", body(free, "")},
			{"POST", "/api/subscription/cancel/alice", `{"immediate": false}`},
			{"GET", "/api/subscription/renewal-history/alice", ""},
			{"GET", "/api/subscription/billing-history/alice", ""},
		}
		before := e.accountOf("alice")
		for _, r := range userRoutes {
			p := e.problem(e.send(r[0], r[1], "", r[2]), http.StatusUnauthorized)
			if !strings.Contains(p["detail"].(string), "API key") {
				t.Errorf("%s %s without a key: %v", r[0], r[1], p["detail"])
			}
			e.problem(e.send(r[0], r[1], bob, r[2]), http.StatusForbidden)
			e.problem(e.send(r[0], r[1], "Bearer nonsense", r[2]), http.StatusUnauthorized)
		}
		// A user key may not give itself a paid plan, in either cycle.
		for _, c := range []string{"", `, "billing_cycle": "yearly"`} {
			p := e.problem(e.send("POST", "/api/subscription/subscribe/alice", alice, body(starter, c)), http.StatusForbidden)
			if d := p["detail"].(string); !strings.Contains(d, "admin") || !strings.Contains(d, "Starter") {
				t.Errorf("paid plan with a user key: detail %q", d)
			}
		}
		if after := e.accountOf("alice"); after != before {
			t.Fatalf("refused requests changed alice's account:\n%s\n%s", before, after)
		}
		if r := e.renewals("alice", alice); len(r) != 0 {
			t.Fatalf("history after refusals: %v", r)
		}

		// Alice may choose the free plan herself (ALwrity's client also sends
		// other fields, which are ignored). A free plan keeps the calendar
		// months she had without a subscription.
		d := e.subscribeAPI("alice", alice, body(free, `, "billing_cycle": "monthly", "user_id": "mallory"`))
		if d["change"] != "created" || d["plan_name"] != "Free" || integer(t, d["plan_id"]) != free || d["status"] != "active" ||
			d["effective_at"] != "2026-11-15T12:00:00Z" || d["current_period_start"] != "2026-11-01T00:00:00Z" ||
			d["current_period_end"] != "2026-12-01T00:00:00Z" || d["pending_plan_id"] != nil || d["cancel_at_period_end"] != false {
			t.Errorf("free subscription: %v", d)
		}
		if s := e.data(e.get("/api/subscription/user/mallory/subscription", testAdminKey)); s["subscription"] != nil {
			t.Errorf("a body field chose the user: mallory has %v", s["subscription"])
		}
		// The admin upgrades her: at once, the difference prorated.
		e.setNow(defaultNow.Add(time.Hour))
		d = e.subscribeAPI("alice", testAdminKey, body(pro, ""))
		if d["change"] != "upgraded" || d["plan_name"] != "Professional" || d["effective_at"] != "2026-11-15T13:00:00Z" {
			t.Errorf("upgrade: %v", d)
		}
		if l := obj(t, d["limits"]); num(t, l["total_calls"]) != "100000" {
			t.Errorf("upgrade limits: %v", l)
		}
		// Alice moves herself back to Free: a downgrade, at the cycle's end.
		d = e.subscribeAPI("alice", alice, body(free, ""))
		if d["change"] != "scheduled" || d["plan_name"] != "Professional" || integer(t, d["pending_plan_id"]) != free ||
			d["effective_at"] != "2026-12-01T00:00:00Z" || d["pending_billing_cycle"] != "monthly" {
			t.Errorf("scheduled downgrade: %v", d)
		}
		// Bob's key cannot cancel for her; she can.
		e.problem(e.send("POST", "/api/subscription/cancel/alice", bob, `{}`), http.StatusForbidden)
		d = e.data(e.send("POST", "/api/subscription/cancel/alice", alice, `{"immediate": false}`))
		check(t, "cancel", d, changeSpec)
		if d["change"] != "scheduled" || d["cancel_at_period_end"] != true || d["status"] != "active" || d["pending_plan_id"] != nil ||
			d["effective_at"] != "2026-12-01T00:00:00Z" || d["cancelled_at"] != nil {
			t.Errorf("cancel at period end: %v", d)
		}
		// The admin may act for anyone: a yearly plan for bob, then an
		// immediate cancellation.
		d = e.subscribeAPI("bob", testAdminKey, body(starter, `, "billing_cycle": "yearly", "time_zone": "Europe/Berlin"`))
		if d["change"] != "created" || d["billing_cycle"] != "yearly" || d["current_period_end"] != "2027-11-15T13:00:00Z" {
			t.Errorf("bob's yearly subscription: %v", d)
		}
		d = e.data(e.send("POST", "/api/subscription/cancel/bob", testAdminKey, `{"immediate": true}`))
		if d["change"] != "cancelled" || d["status"] != "cancelled" || d["cancelled_at"] != "2026-11-15T13:00:00Z" ||
			d["effective_at"] != d["cancelled_at"] {
			t.Errorf("immediate cancel: %v", d)
		}
		if s := e.data(e.get("/api/subscription/user/bob/subscription", bob)); s["subscription"] != nil || s["status"] != "free" {
			t.Errorf("bob after an immediate cancel: %v", s)
		}
		// No subscription to cancel.
		e.problem(e.send("POST", "/api/subscription/cancel/bob", bob, ""), http.StatusNotFound)

		// Alice's history, newest first, readable by her and the admin only.
		hist := e.renewals("alice", alice)
		var types []string
		for _, h := range hist {
			types = append(types, h["renewal_type"].(string))
		}
		if strings.Join(types, ",") != "upgrade,new" {
			t.Fatalf("alice's history: %v", hist)
		}
		up := hist[0]
		if p := obj(t, up["previous_plan"]); integer(t, p["id"]) != free || p["name"] != "Free" {
			t.Errorf("upgrade previous plan %v", p)
		}
		if p := obj(t, up["new_plan"]); integer(t, p["id"]) != pro || p["name"] != "Professional" {
			t.Errorf("upgrade new plan %v", p)
		}
		if hist[1]["previous_plan"] != nil || up["effective_at"] != "2026-11-15T13:00:00Z" {
			t.Errorf("history entries: %v", hist)
		}
		if h := e.renewals("alice", testAdminKey); len(h) != 2 {
			t.Errorf("the admin sees %d entries", len(h))
		}
		bobHist := e.renewals("bob", bob)
		if len(bobHist) != 2 || bobHist[0]["renewal_type"] != "cancel" || bobHist[0]["new_plan"] != nil {
			t.Errorf("bob's history: %v", bobHist)
		}
	})
}

// TestSubscribeBadInput: bad bodies are refused with a 4xx that names the
// field, and change nothing.
func TestSubscribeBadInput(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		free, starter := e.planID("Free"), e.planID("Starter")
		e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, starter))
		// A plan that is not offered.
		if r := e.send("POST", "/api/admin/plans", testAdminKey,
			`{"name": "Old", "tier": "basic", "price_monthly": 0, "price_yearly": 0, "is_active": false}`); r.status != http.StatusCreated {
			t.Fatalf("create plan: %s", r)
		}
		old := e.planID("Old")
		before := e.accountOf("alice")
		for _, tc := range []struct {
			key, body, names string
		}{
			{testAdminKey, `{}`, "plan_id"},
			{testAdminKey, `{"plan_id": 0}`, "plan_id"},
			{testAdminKey, `{"plan_id": -3}`, "plan_id"},
			{testAdminKey, `{"plan_id": "two"}`, "plan_id"},
			{testAdminKey, `{"plan_id": 99999}`, "body.plan_id"},
			{alice, `{"plan_id": 99999}`, "body.plan_id"},
			{testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, old), "body.plan_id"},
			{testAdminKey, fmt.Sprintf(`{"plan_id": %d, "billing_cycle": "weekly"}`, free), "billing_cycle"},
			{testAdminKey, fmt.Sprintf(`{"plan_id": %d, "immediate": "yes"}`, free), "immediate"},
			{testAdminKey, fmt.Sprintf(`{"plan_id": %d, "time_zone": %q}`, free, strings.Repeat("x", 65)), "time_zone"},
			{alice, `{"plan_id": `, "body"},
			{alice, `[1, 2]`, "body"},
		} {
			r := e.send("POST", "/api/subscription/subscribe/alice", tc.key, tc.body)
			e.problem4xx(r, tc.names)
		}
		// A new subscription's unknown time zone.
		r := e.send("POST", "/api/subscription/subscribe/carol", testAdminKey, fmt.Sprintf(`{"plan_id": %d, "time_zone": "Mars/Olympus"}`, starter))
		e.problem(r, http.StatusUnprocessableEntity)
		e.problem4xx(r, "body.time_zone")
		for _, body := range []string{`{"immediate": "now"}`, `{"immediate": true, "extra": 1}`, `[]`} {
			e.problem4xx(e.send("POST", "/api/subscription/cancel/alice", alice, body), "body")
		}
		for _, q := range []string{"?limit=0", "?limit=501", "?offset=-1", "?limit=x"} {
			e.problem4xx(e.get("/api/subscription/billing-history/alice"+q, alice), strings.Split(strings.TrimPrefix(q, "?"), "=")[0])
		}
		e.problem4xx(e.get("/api/subscription/renewal-history/alice?limit=0", alice), "limit")
		if after := e.accountOf("alice"); after != before {
			t.Fatalf("refused requests changed alice's account:\n%s\n%s", before, after)
		}
		if s := e.data(e.get("/api/subscription/user/carol/subscription", testAdminKey)); s["subscription"] != nil {
			t.Errorf("a refused subscribe created carol's subscription: %v", s)
		}
		// Asking for the current plan changes nothing.
		d := e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, starter))
		if d["change"] != "unchanged" || d["effective_at"] != nil {
			t.Errorf("same plan again: %v", d)
		}
	})
}

// TestBillingHistory: periods close into invoices whose lines explain
// their totals, in the contract's shape, paged.
func TestBillingHistory(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Starter")))
		e.record(many(3, call{user: "alice", at: day(2026, 11, 20, 0), in: 100, out: 50, cost: "0.0015"})...)
		// Upgrade in the middle of the first cycle.
		e.setNow(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
		e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Professional")))

		if d := e.invoices("alice", alice, ""); integer(t, d["total"]) != 0 {
			t.Fatalf("invoices before any period closed: %v", d)
		}
		e.setNow(time.Date(2027, 2, 16, 0, 0, 0, 0, time.UTC))
		c := e.ok(e.send("POST", "/api/admin/billing/close", testAdminKey, ""))
		check(t, "close", c, Obj{"closed": "int", "more": "bool", "at": "time"})
		if integer(t, c["closed"]) != 3 || c["more"] != false {
			t.Errorf("close: %v", c)
		}
		if c := e.ok(e.send("POST", "/api/admin/billing/close", testAdminKey, "")); integer(t, c["closed"]) != 0 {
			t.Errorf("closing again: %v", c)
		}
		d := e.invoices("alice", alice, "")
		list := arr(t, d["billing_history"])
		if integer(t, d["total"]) != 3 || len(list) != 3 || integer(t, d["limit"]) != 50 || integer(t, d["offset"]) != 0 {
			t.Fatalf("billing history: %v", d)
		}
		first := obj(t, list[2]) // newest first
		// Starter's $29 fee, then the upgrade to Professional for the 15 of
		// 30 days left: (99 - 29) × 15/30 = 35.
		if first["billing_period"] != "2026-11" || first["period_start"] != "2026-11-15T12:00:00Z" ||
			first["period_end"] != "2026-12-15T12:00:00Z" || num(t, first["base_cost"]) != "64" ||
			num(t, first["total_amount"]) != "64" || num(t, first["credits"]) != "0" || num(t, first["overage_cost"]) != "0" ||
			integer(t, first["total_api_calls"]) != 3 || integer(t, first["total_tokens"]) != 450 ||
			num(t, first["usage_cost"]) != "0.0045" || first["status"] != "issued" || first["issued_at"] == nil ||
			first["payment_date"] != nil || first["plan_name"] != "Professional" {
			t.Errorf("first invoice: %v", first)
		}
		lines := arr(t, first["line_items"])
		if len(lines) != 2 {
			t.Fatalf("first invoice lines: %v", lines)
		}
		base, up := obj(t, lines[0]), obj(t, lines[1])
		if base["type"] != "base" || num(t, base["amount"]) != "29" || integer(t, base["quantity"]) != 1 || num(t, base["unit_price"]) != "29" {
			t.Errorf("base line: %v", base)
		}
		if up["type"] != "upgrade" || num(t, up["amount"]) != "35" || up["quantity"] != nil || up["unit_price"] != nil {
			t.Errorf("upgrade line: %v", up)
		}
		if second := obj(t, list[1]); second["billing_period"] != "2026-12" || num(t, second["total_amount"]) != "99" {
			t.Errorf("second invoice: %v", second)
		}
		// Paging.
		page := e.invoices("alice", testAdminKey, "?limit=1&offset=1")
		if pl := arr(t, page["billing_history"]); len(pl) != 1 || integer(t, page["total"]) != 3 ||
			num(t, obj(t, pl[0])["id"]) != num(t, obj(t, list[1])["id"]) {
			t.Errorf("page 2 of 1: %v", page)
		}
		if empty := e.invoices("alice", alice, "?offset=10"); len(arr(t, empty["billing_history"])) != 0 || integer(t, empty["total"]) != 3 {
			t.Errorf("past the end: %v", empty)
		}
		if none := e.invoices("nobody", testAdminKey, ""); integer(t, none["total"]) != 0 {
			t.Errorf("a user without invoices: %v", none)
		}
		// The renewals are in the history too.
		var types []string
		for _, h := range e.renewals("alice", alice) {
			types = append(types, h["renewal_type"].(string))
		}
		if strings.Join(types, ",") != "renewal,renewal,renewal,upgrade,new" {
			t.Errorf("history after renewals: %v", types)
		}
	})
}

// TestLifecycleInternalErrors: with the database gone the lifecycle routes
// answer 500 "internal error" and say nothing of the database.
func TestLifecycleInternalErrors(t *testing.T) {
	e := newEnv(t, storetest.Backends()[0], defaultNow)
	free := e.planID("Free")
	if err := e.app.DB.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][3]string{
		{"POST", "/api/subscription/subscribe/alice", fmt.Sprintf(`{"plan_id": %d}`, free)},
		{"POST", "/api/subscription/cancel/alice", `{}`},
		{"GET", "/api/subscription/renewal-history/alice", ""},
		{"GET", "/api/subscription/billing-history/alice", ""},
		{"GET", "/api/admin/billing-history/export", ""},
		{"POST", "/api/admin/billing/close", ""},
		{"POST", "/api/admin/invoices/1/status", `{"status": "paid"}`},
		{"PATCH", "/api/admin/subscriptions/alice", `{"auto_renew": true}`},
		{"POST", "/api/admin/plans", `{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1}`},
	} {
		// The admin key needs no database, so each handler itself meets
		// the closed database.
		res := e.send(r[0], r[1], testAdminKey, r[2])
		p := e.problem(res, http.StatusInternalServerError)
		if p["detail"] != "internal error" || strings.Contains(strings.ToLower(string(res.body)), "sql") {
			t.Errorf("%s %s with the database closed: %s", r[0], r[1], res)
		}
	}
}

// TestEditOfTheOnlyFreePlanIsAConflict: editing the only active free plan
// into a paid version would leave users without a subscription with no
// plan; the API answers 409 with a detail saying why, and the plan stays.
func TestEditOfTheOnlyFreePlanIsAConflict(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		free := e.planID("Free")
		p := e.problem(e.send("PUT", fmt.Sprintf("/api/admin/plans/%d", free), testAdminKey,
			`{"tier": "basic", "price_monthly": 5, "price_yearly": 50}`), http.StatusConflict)
		if d, _ := p["detail"].(string); !strings.Contains(d, "only active free plan") {
			t.Errorf("detail %q; want it to name the only active free plan", d)
		}
		if got := e.planID("Free"); got != free {
			t.Errorf("the Free plan is %d after a refused edit; want %d", got, free)
		}
		e.data(e.get("/api/subscription/user/nosub/subscription", testAdminKey))
	})
}
