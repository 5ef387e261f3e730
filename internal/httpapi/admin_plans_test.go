package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// adminPlanSpec is a plan as the admin routes show it.
func adminPlanSpec() Obj {
	o := Obj{}
	for k, v := range planSpec {
		o[k] = v
	}
	limit := Nullable{"int"}
	o["limit_settings"] = Obj{"total_calls": limit, "monthly_cost": Nullable{"number"},
		"providers": MapOf{Obj{"calls": limit, "tokens": limit}}}
	o["is_active"], o["replaced_by"], o["created_at"], o["updated_at"] = "bool", Nullable{"int"}, "time", "time"
	return o
}

const teamPlan = `{"name": "Team", "tier": "pro", "price_monthly": 49.99, "price_yearly": 499.9,
	"description": "For teams", "features": ["SSO", "Audit log"],
	"limits": {"total_calls": 5000, "monthly_cost": 25.5, "providers": {"openai": {"calls": 100, "tokens": 200000}, "tavily": {"calls": 0}}},
	"soft_limits": true, "overage_per_call": 0.002, "overage_per_1k_tokens": 0.0004}`

func TestAdminPlans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		r := e.send("POST", "/api/admin/plans", testAdminKey, teamPlan)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		p := decode(t, r.body)
		check(t, "created", p, adminPlanSpec())
		id := integer(t, p["id"])
		ls := obj(t, p["limit_settings"])
		if p["name"] != "Team" || num(t, p["price_monthly"]) != "49.99" || num(t, p["price_yearly"]) != "499.9" ||
			integer(t, p["version"]) != 1 || p["soft_limits"] != true || num(t, p["overage_per_call"]) != "0.002" ||
			num(t, p["overage_per_1k_tokens"]) != "0.0004" || p["is_active"] != true || p["replaced_by"] != nil ||
			num(t, ls["total_calls"]) != "5000" || num(t, ls["monthly_cost"]) != "25.5" {
			t.Errorf("created plan: %v", p)
		}
		prov := obj(t, ls["providers"])
		if o := obj(t, prov["openai"]); num(t, o["calls"]) != "100" || num(t, o["tokens"]) != "200000" {
			t.Errorf("openai limits %v", o)
		}
		if tv := obj(t, prov["tavily"]); num(t, tv["calls"]) != "0" || tv["tokens"] != nil {
			t.Errorf("tavily limits %v", tv)
		}
		limits := obj(t, p["limits"])
		zero := obj(t, limits["_zero_means"])
		if num(t, limits["tavily_calls"]) != "0" || zero["tavily_calls"] != "disabled" || zero["gemini_calls"] != "unlimited" ||
			num(t, limits["openai_tokens"]) != "200000" {
			t.Errorf("public limits %v", limits)
		}

		// The public list shows it, with the new fields; seeded plans are
		// version 1 with hard limits.
		var team map[string]any
		for _, pl := range arr(t, e.data(e.get("/api/subscription/plans", ""))["plans"]) {
			m := obj(t, pl)
			if m["name"] == "Team" {
				team = m
			} else if integer(t, m["version"]) != 1 || m["soft_limits"] != false || m["overage_per_call"] != nil {
				t.Errorf("seeded plan %v", m)
			}
		}
		if team == nil || num(t, team["overage_per_call"]) != "0.002" || integer(t, team["id"]) != id {
			t.Fatalf("public Team plan %v", team)
		}

		// Refused bodies name the field and create nothing.
		before := string(e.get("/api/admin/plans", testAdminKey).body)
		for _, tc := range [][2]string{
			{`{"name": "Team", "tier": "pro", "price_monthly": 1, "price_yearly": 1}`, ""}, // the name is taken
			{`{"tier": "pro", "price_monthly": 1, "price_yearly": 1}`, "body.name"},
			{`{"name": "X", "tier": "gold", "price_monthly": 1, "price_yearly": 1}`, "tier"},
			{`{"name": "X", "tier": "pro", "price_monthly": -1, "price_yearly": 1}`, "body.price_monthly"},
			{`{"name": "X", "tier": "pro", "price_yearly": 1}`, "price_monthly"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1e-13, "price_yearly": 1}`, "finer than one pico-dollar"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1, "limits": {"total_calls": -1}}`, "total_calls"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1, "limits": {"providers": {"azure": {"calls": 1}}}}`, "body.limits.providers.azure"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1, "limits": {"providers": {"tavily": {"tokens": 1}}}}`, "body.limits.providers.tavily.tokens"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1, "overage_per_call": 0.1}`, "body.soft_limits"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1, "colour": "red"}`, "colour"},
			{`{"name": "X", "tier": "pro", "price_monthly": 1, "price_yearly": 1,`, "body"},
		} {
			r := e.send("POST", "/api/admin/plans", testAdminKey, tc[0])
			if tc[1] == "" {
				e.problem(r, http.StatusConflict)
				continue
			}
			e.problem4xx(r, tc[1])
		}
		if after := string(e.get("/api/admin/plans", testAdminKey).body); after != before {
			t.Fatalf("refused creates changed the plans:\n%s\n%s", before, after)
		}

		// Edit: a new version; the subscriber moves at once when asked.
		e.subscribeAPI("dora", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, id))
		r = e.send("PUT", fmt.Sprintf("/api/admin/plans/%d", id), testAdminKey,
			`{"tier": "pro", "price_monthly": 59, "price_yearly": 590, "features": ["SSO"], "move_subscribers_now": true}`)
		if r.status != http.StatusOK {
			t.Fatalf("edit: %s", r)
		}
		ed := decode(t, r.body)
		check(t, "edit", ed, Obj{"plan": adminPlanSpec(), "previous": adminPlanSpec(), "moved": "int"})
		nw, prev := obj(t, ed["plan"]), obj(t, ed["previous"])
		newID := integer(t, nw["id"])
		if nw["name"] != "Team" || integer(t, nw["version"]) != 2 || num(t, nw["price_monthly"]) != "59" || nw["is_active"] != true ||
			nw["soft_limits"] != false || obj(t, nw["limit_settings"])["total_calls"] != nil || integer(t, ed["moved"]) != 1 {
			t.Errorf("new version %v", ed)
		}
		if prev["name"] != "Team (version 1)" || prev["is_active"] != false || integer(t, prev["replaced_by"]) != newID {
			t.Errorf("previous version %v", prev)
		}
		if s := obj(t, e.data(e.get("/api/subscription/user/dora/subscription", testAdminKey))["plan"]); integer(t, s["id"]) != newID {
			t.Errorf("dora's plan after a move-now edit: %v", s)
		}
		// Only the newest version can be edited or offered again.
		e.problem(e.send("PUT", fmt.Sprintf("/api/admin/plans/%d", id), testAdminKey, `{"tier": "pro", "price_monthly": 1, "price_yearly": 1}`), http.StatusConflict)
		e.problem(e.send("POST", fmt.Sprintf("/api/admin/plans/%d/activate", id), testAdminKey, ""), http.StatusConflict)
		e.problem(e.send("PUT", "/api/admin/plans/99999", testAdminKey, `{"tier": "pro", "price_monthly": 1, "price_yearly": 1}`), http.StatusNotFound)
		e.problem4xx(e.send("PUT", fmt.Sprintf("/api/admin/plans/%d", newID), testAdminKey, `{"tier": "pro", "price_monthly": -5, "price_yearly": 1}`), "body.price_monthly")

		// Deactivate: no longer offered, nor chosen; activate: back.
		m := e.ok(e.send("POST", fmt.Sprintf("/api/admin/plans/%d/deactivate", newID), testAdminKey, ""))
		if m["is_active"] != false {
			t.Errorf("deactivated: %v", m)
		}
		for _, pl := range arr(t, e.data(e.get("/api/subscription/plans", ""))["plans"]) {
			if integer(t, obj(t, pl)["id"]) == newID {
				t.Errorf("a deactivated plan is offered")
			}
		}
		e.problem4xx(e.send("POST", "/api/subscription/subscribe/erin", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, newID)), "body.plan_id")
		if m := e.ok(e.send("POST", fmt.Sprintf("/api/admin/plans/%d/activate", newID), testAdminKey, "")); m["is_active"] != true {
			t.Errorf("activated: %v", m)
		}
		e.subscribeAPI("erin", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, newID))
		// The only free plan stays.
		e.problem(e.send("POST", fmt.Sprintf("/api/admin/plans/%d/deactivate", e.planID("Free")), testAdminKey, ""), http.StatusConflict)
		e.problem(e.send("POST", "/api/admin/plans/99999/deactivate", testAdminKey, ""), http.StatusNotFound)
		e.problem4xx(e.send("POST", "/api/admin/plans/0/activate", testAdminKey, ""), "plan_id")

		all := e.ok(e.get("/api/admin/plans", testAdminKey))
		check(t, "all plans", all, Obj{"plans": Arr{adminPlanSpec()}, "total": "int"})
		if integer(t, all["total"]) != 6 {
			t.Errorf("admin list has %v plans; want the 4 seeded and 2 versions of Team", all["total"])
		}
	})
}
