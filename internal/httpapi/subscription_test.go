package httpapi_test

import (
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var userSubscriptionSpec = func(withSub bool) Obj {
	var sub any = "null"
	if withSub {
		sub = Obj{"id": "int", "billing_cycle": Enum{"monthly", "yearly"}, "current_period_start": "time",
			"current_period_end": "time", "status": "string", "auto_renew": "bool", "time_zone": "string", "created_at": "time"}
	}
	return Obj{
		"subscription": sub,
		"plan": Obj{"id": "int", "name": "string", "tier": Enum{"free", "basic", "pro", "enterprise"},
			"price_monthly": "number", "price_yearly": "number", "description": "string", "is_free": "bool"},
		"status": "string", "limits": limitsSpec(),
		"usage_period": Obj{"billing_period": "period", "start": "time", "end": "time"},
	}
}

// subscribe gives user the named plan with periods anchored at anchor.
func (e *env) subscribe(user, plan, cycle, status string, anchor, start, end time.Time) int64 {
	e.t.Helper()
	id, err := e.app.DB.CreateSubscription(e.ctx, billing.Subscription{UserID: user, PlanID: e.planID(plan),
		BillingCycle: cycle, Status: status, AutoRenew: true, Anchor: anchor, CurrentPeriodStart: start,
		CurrentPeriodEnd: end}, anchor)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestUserSubscription(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)

		// No subscription: the Free plan.
		d := e.data(e.get("/api/subscription/user/u1/subscription", testAdminKey))
		check(t, "subscription", d, userSubscriptionSpec(false))
		plan := obj(t, d["plan"])
		if d["subscription"] != nil || d["status"] != "free" || plan["name"] != "Free" || plan["tier"] != "free" ||
			plan["is_free"] != true || num(t, plan["price_monthly"]) != "0" || integer(t, plan["id"]) != e.planID("Free") ||
			num(t, obj(t, d["limits"])["total_calls"]) != "1000" {
			t.Errorf("free user = %v", d)
		}
		if p := obj(t, d["usage_period"]); p["billing_period"] != "2026-11" || p["start"] != "2026-11-01T00:00:00Z" || p["end"] != "2026-12-01T00:00:00Z" {
			t.Errorf("free usage_period = %v", p)
		}

		// A Starter subscription anchored on the 10th.
		anchor := day(2026, 10, 10, 0)
		id := e.subscribe("u2", "Starter", "yearly", billing.StatusActive, anchor, day(2026, 10, 10, 0), day(2027, 10, 10, 0))
		d = e.data(e.get("/api/subscription/user/u2/subscription", testAdminKey))
		check(t, "subscription", d, userSubscriptionSpec(true))
		plan, sub := obj(t, d["plan"]), obj(t, d["subscription"])
		if d["status"] != "active" || plan["name"] != "Starter" || plan["tier"] != "basic" || plan["is_free"] != false ||
			num(t, plan["price_monthly"]) != "29" || num(t, plan["price_yearly"]) != "290" ||
			num(t, obj(t, d["limits"])["total_calls"]) != "10000" {
			t.Errorf("starter user = %v", d)
		}
		if integer(t, sub["id"]) != id || sub["billing_cycle"] != "yearly" || sub["status"] != "active" || sub["auto_renew"] != true ||
			sub["current_period_start"] != "2026-10-10T00:00:00Z" || sub["current_period_end"] != "2027-10-10T00:00:00Z" ||
			sub["created_at"] != "2026-10-10T00:00:00Z" {
			t.Errorf("subscription = %v", sub)
		}
		// A yearly plan's limits reset monthly, on the anchor day.
		if p := obj(t, d["usage_period"]); p["billing_period"] != "2026-11" || p["start"] != "2026-11-10T00:00:00Z" || p["end"] != "2026-12-10T00:00:00Z" {
			t.Errorf("starter usage_period = %v", p)
		}
		u := e.data(e.get("/api/subscription/usage/u2", testAdminKey))
		if u["period_start"] != "2026-11-10T00:00:00Z" || u["period_end"] != "2026-12-10T00:00:00Z" ||
			obj(t, u["limits"])["plan_name"] != "Starter" {
			t.Errorf("starter usage = %v", u)
		}

		// A cancelled subscription leaves the user on Free.
		e.subscribe("u3", "Professional", "monthly", billing.StatusCancelled, anchor, day(2026, 11, 10, 0), day(2026, 12, 10, 0))
		d = e.data(e.get("/api/subscription/user/u3/subscription", testAdminKey))
		if d["subscription"] != nil || d["status"] != "free" || obj(t, d["plan"])["name"] != "Free" {
			t.Errorf("cancelled user = %v", d)
		}
	})
}

var statusSpec = Obj{"active": "bool", "plan": "string", "tier": Enum{"free", "basic", "pro", "enterprise"},
	"can_use_api": "bool", "limits": limitsSpec()}

func TestStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		d := e.data(e.get("/api/subscription/status/u1", testAdminKey))
		check(t, "status", d, statusSpec)
		if d["active"] != true || d["can_use_api"] != true || d["plan"] != "Free" || d["tier"] != "free" {
			t.Errorf("free status = %v", d)
		}

		// The Free plan used up: still active, but no more calls. reason is
		// only for an inactive subscription (ALwrity's clients read its
		// presence as "not active"); usage_reason says why calls stop.
		e.record(many(1000, call{user: "u1", at: day(2026, 11, 1, 0)})...)
		d = e.data(e.get("/api/subscription/status/u1", testAdminKey))
		withReason, withUsageReason := Obj{}, Obj{}
		for k, v := range statusSpec {
			withReason[k], withUsageReason[k] = v, v
		}
		withReason["reason"] = "string"
		withUsageReason["usage_reason"] = "string"
		check(t, "status", d, withUsageReason)
		if _, ok := d["reason"]; ok {
			t.Errorf("an active subscription at its limit has a reason: %v", d)
		}
		if d["active"] != true || d["can_use_api"] != false || d["usage_reason"] != "total_calls limit reached for period 2026-11" {
			t.Errorf("status at the limit = %v", d)
		}
		// Next month starts clean.
		e.setNow(day(2026, 12, 1, 0))
		d = e.data(e.get("/api/subscription/status/u1", testAdminKey))
		check(t, "status", d, statusSpec)
		if d["can_use_api"] != true {
			t.Errorf("status in December = %v", d)
		}

		// A subscription cancelled at once mid-month leaves its own
		// period's calls behind: the free plan's limit for the rest of the
		// month counts the calendar month's own calls, as admission does,
		// so status still lets calls through (it summed both periods).
		anchor := day(2026, 12, 5, 0)
		e.subscribe("u4", "Professional", "monthly", billing.StatusActive, anchor, anchor, anchor.AddDate(0, 1, 0))
		e.setNow(day(2026, 12, 10, 0))
		e.record(many(1000, call{user: "u4", at: day(2026, 12, 9, 0)})...)
		if _, err := e.app.DB.Cancel(e.ctx, "u4", true, e.now()); err != nil {
			t.Fatal(err)
		}
		e.record(many(3, call{user: "u4", at: e.now()})...)
		if d = e.data(e.get("/api/subscription/status/u4", testAdminKey)); d["can_use_api"] != true {
			t.Errorf("status after an immediate cancellation = %v; want calls allowed, as admission allows them", d)
		}
		if _, err := e.app.Meter.Reserve(e.ctx, billing.ReserveRequest{UserID: "u4", Provider: "openai", Model: "gpt-4"}); err != nil {
			t.Errorf("admission after the cancellation: %v", err)
		}

		e.subscribe("u2", "Enterprise", "monthly", billing.StatusPastDue, day(2026, 11, 1, 0), day(2026, 11, 1, 0), day(2026, 12, 1, 0))
		d = e.data(e.get("/api/subscription/status/u2", testAdminKey))
		check(t, "status", d, withReason)
		if d["active"] != false || d["can_use_api"] != false || d["plan"] != "Enterprise" || d["tier"] != "enterprise" ||
			d["reason"] != "subscription is past_due" {
			t.Errorf("past-due status = %v", d)
		}
		e.subscribe("u3", "Enterprise", "monthly", billing.StatusActive, day(2026, 11, 1, 0), day(2026, 11, 1, 0), day(2026, 12, 1, 0))
		e.record(many(1001, call{user: "u3", at: day(2026, 12, 1, 1)})...)
		d = e.data(e.get("/api/subscription/status/u3", testAdminKey))
		check(t, "status", d, statusSpec)
		if d["active"] != true || d["can_use_api"] != true || obj(t, obj(t, d["limits"])["_zero_means"])["total_calls"] != "unlimited" {
			t.Errorf("enterprise status = %v", d)
		}
	})
}
