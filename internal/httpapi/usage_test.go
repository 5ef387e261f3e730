package httpapi_test

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func day(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }

func float(t *testing.T, v any) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(num(t, v), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// seedUsage gives u1 three calls this period (one failed) and one in
// October, u2 one call this period, and u1 twelve unread alerts this period,
// one read, and one unread in October. It returns the ids of u1's unread
// alerts of this period and of October's.
func seedUsage(e *env) (novUnread map[int64]bool, octAlert int64) {
	e.record(
		call{user: "u1", provider: "openai", model: "gpt-4", at: day(2026, 11, 10, 9), in: 1000, out: 500, cost: "0.06", rt: 0.5},
		call{user: "u1", provider: "gemini", model: "gemini-pro", at: day(2026, 11, 12, 9), in: 200, out: 100, cost: "0.00025", rt: 1.5},
		call{user: "u1", provider: "openai", model: "gpt-4", at: day(2026, 11, 14, 9), status: 500, rt: 1, errMsg: "upstream error"},
		call{user: "u1", provider: "anthropic", model: "claude-3", at: day(2026, 10, 20, 9), in: 100, out: 100, cost: "0.0032", rt: 2},
		call{user: "u2", provider: "mistral", model: "mistral-7b", at: day(2026, 11, 11, 9), in: 10, out: 10, cost: "0.000008"},
	)
	novUnread = map[int64]bool{}
	for i := range 12 {
		novUnread[e.alert("u1", "2026-11", fmt.Sprintf("k%d", i), day(2026, 11, 1+i, 0))] = true
	}
	read := e.alert("u1", "2026-11", "read", day(2026, 11, 14, 0))
	if err := e.app.DB.MarkAlertRead(e.ctx, read, e.now()); err != nil {
		e.t.Fatal(err)
	}
	octAlert = e.alert("u1", "2026-10", "oct", day(2026, 10, 25, 0))
	e.alert("u2", "2026-11", "other", day(2026, 11, 14, 1))
	return novUnread, octAlert
}

func TestUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		novUnread, octAlert := seedUsage(e)

		d := e.data(e.get("/api/subscription/usage/u1", testAdminKey))
		check(t, "usage", d, usageStatsSpec(false))
		want := map[string]string{
			"billing_period": "2026-11", "period_start": "2026-11-01T00:00:00Z", "period_end": "2026-12-01T00:00:00Z",
			"usage_status": "active", "last_updated": "2026-11-15T12:00:00Z",
		}
		for k, w := range want {
			if d[k] != w {
				t.Errorf("%s = %v, want %s", k, d[k], w)
			}
		}
		wantNum := map[string]string{"total_calls": "3", "total_tokens": "1800", "tokens_input": "1200",
			"tokens_output": "600", "total_cost": "0.06025", "total_errors": "1"}
		for k, w := range wantNum {
			if got := num(t, d[k]); got != w {
				t.Errorf("%s = %s, want %s", k, got, w)
			}
		}
		// (0.5 + 1.5 + 1) / 3 seconds; one call in three failed.
		if got := float(t, d["avg_response_time"]); got != 1 {
			t.Errorf("avg_response_time = %v, want 1 (seconds)", got)
		}
		if got := float(t, d["error_rate"]); got != 33.33 {
			t.Errorf("error_rate = %v, want 33.33 (percent)", got)
		}
		limits := obj(t, d["limits"])
		if limits["plan_name"] != "Free" || limits["tier"] != "free" || num(t, obj(t, limits["limits"])["total_calls"]) != "1000" {
			t.Errorf("limits = %v", limits)
		}
		breakdown := obj(t, d["provider_breakdown"])
		wantBreakdown := map[string][3]string{"openai": {"2", "1500", "0.06"}, "gemini": {"1", "300", "0.00025"}}
		for _, p := range providers {
			w, ok := wantBreakdown[p]
			if !ok {
				w = [3]string{"0", "0", "0"}
			}
			pb := obj(t, breakdown[p])
			if got := [3]string{num(t, pb["calls"]), num(t, pb["tokens"]), num(t, pb["cost"])}; got != w {
				t.Errorf("provider_breakdown.%s = %v, want %v", p, got, w)
			}
		}
		pct := obj(t, d["usage_percentages"])
		if float(t, pct["total_calls"]) != 0.3 || float(t, pct["openai_calls"]) != 0 || float(t, pct["cost"]) != 0 {
			t.Errorf("usage_percentages = %v", pct)
		}
		alerts := arr(t, d["alerts"])
		if len(alerts) != 10 {
			t.Fatalf("want the 10 newest unread alerts of the period, got %d", len(alerts))
		}
		var last time.Time
		for i, a := range alerts {
			id := integer(t, obj(t, a)["id"])
			if !novUnread[id] {
				t.Errorf("alert %d is not an unread alert of u1 in 2026-11", id)
			}
			at, _ := time.Parse(time.RFC3339, obj(t, a)["created_at"].(string))
			if i > 0 && at.After(last) {
				t.Errorf("alerts not newest first")
			}
			last = at
		}

		// Another period.
		d = e.data(e.get("/api/subscription/usage/u1?billing_period=2026-10", testAdminKey))
		check(t, "usage", d, usageStatsSpec(false))
		if d["billing_period"] != "2026-10" || d["period_start"] != "2026-10-01T00:00:00Z" || d["period_end"] != "2026-11-01T00:00:00Z" ||
			num(t, d["total_calls"]) != "1" || num(t, d["total_cost"]) != "0.0032" || float(t, d["avg_response_time"]) != 2 ||
			num(t, obj(t, obj(t, d["provider_breakdown"])["anthropic"])["tokens"]) != "200" {
			t.Errorf("2026-10 usage = %v", d)
		}
		if alerts := arr(t, d["alerts"]); len(alerts) != 1 || integer(t, obj(t, alerts[0])["id"]) != octAlert {
			t.Errorf("2026-10 alerts = %v, want only the October alert", alerts)
		}

		// A period without usage has the same shape, all zeros.
		for _, q := range []string{"?billing_period=2026-05", "?billing_period=2031-01"} {
			d = e.data(e.get("/api/subscription/usage/u1"+q, testAdminKey))
			check(t, "usage", d, usageStatsSpec(false))
			if d["usage_status"] != "active" || num(t, d["total_calls"]) != "0" || num(t, d["total_cost"]) != "0" ||
				float(t, d["avg_response_time"]) != 0 || float(t, d["error_rate"]) != 0 || len(arr(t, d["alerts"])) != 0 {
				t.Errorf("empty period %s = %v", q, d)
			}
			for _, p := range providers {
				pb := obj(t, obj(t, d["provider_breakdown"])[p])
				if num(t, pb["calls"]) != "0" || num(t, pb["tokens"]) != "0" || num(t, pb["cost"]) != "0" {
					t.Errorf("empty period %s: %s = %v", q, p, pb)
				}
			}
		}
		// A user never seen reads as a Free user without usage.
		d = e.data(e.get("/api/subscription/usage/nobody", testAdminKey))
		check(t, "usage", d, usageStatsSpec(false))

		for _, bad := range []string{"2026-13", "nov", "2026-00", "2026-1", "202611", "2026-11-01", "0000-01", "9999-12"} {
			e.problem4xx(e.get("/api/subscription/usage/u1?billing_period="+bad, testAdminKey), "query.billing_period")
		}
	})
}

func TestUsageStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		// 800 of the Free plan's 1,000 calls, in one batch.
		e.record(many(800, call{user: "u1", at: day(2026, 11, 2, 0), cost: "0.000001"})...)
		d := e.data(e.get("/api/subscription/usage/u1", testAdminKey))
		if d["usage_status"] != "warning" || float(t, obj(t, d["usage_percentages"])["total_calls"]) != 80 ||
			num(t, d["total_cost"]) != "0.0008" {
			t.Errorf("at 800 calls: status %v, percentages %v, cost %v", d["usage_status"], d["usage_percentages"], d["total_cost"])
		}
		e.record(many(199, call{user: "u1", at: day(2026, 11, 3, 0)})...)
		if d := e.data(e.get("/api/subscription/usage/u1", testAdminKey)); d["usage_status"] != "warning" {
			t.Errorf("at 999 calls: status %v", d["usage_status"])
		}
		e.record(call{user: "u1", at: day(2026, 11, 4, 0)})
		d = e.data(e.get("/api/subscription/usage/u1", testAdminKey))
		if d["usage_status"] != "limit_reached" || float(t, obj(t, d["usage_percentages"])["total_calls"]) != 100 {
			t.Errorf("at 1000 calls: status %v, percentages %v", d["usage_status"], d["usage_percentages"])
		}
		// Last month's usage does not count against this month.
		if d := e.data(e.get("/api/subscription/usage/u1?billing_period=2026-10", testAdminKey)); d["usage_status"] != "active" {
			t.Errorf("2026-10 status %v", d["usage_status"])
		}
	})
}

// monthsBetween lists n consecutive month keys ending with the month of end.
func monthsBack(end time.Time, n int) []string {
	out := make([]string, n)
	y, m := end.Year(), int(end.Month())
	for i := n - 1; i >= 0; i-- {
		out[i] = fmt.Sprintf("%04d-%02d", y, m)
		if m--; m == 0 {
			y, m = y-1, 12
		}
	}
	return out
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range arr(t, v) {
		out = append(out, x.(string))
	}
	return out
}

func nums(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, x := range arr(t, v) {
		out = append(out, num(t, x))
	}
	return out
}

// checkTrends asserts the trends' shape, that its periods are the n months
// ending with end's and that every series is aligned with them.
func checkTrends(t *testing.T, d map[string]any, end time.Time, n int) {
	t.Helper()
	check(t, "trends", d, trendsSpec())
	if got, want := strs(t, d["periods"]), monthsBack(end, n); !reflect.DeepEqual(got, want) {
		t.Fatalf("periods = %v, want %v", got, want)
	}
	for _, k := range []string{"total_calls", "total_cost", "total_tokens"} {
		if l := len(arr(t, d[k])); l != n {
			t.Errorf("%s has %d entries, want %d", k, l, n)
		}
	}
	pt := obj(t, d["provider_trends"])
	for _, p := range providers {
		for _, k := range []string{"calls", "cost", "tokens"} {
			if l := len(arr(t, obj(t, pt[p])[k])); l != n {
				t.Errorf("provider_trends.%s.%s has %d entries, want %d", p, k, l, n)
			}
		}
	}
}

func TestTrends(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		e.record(
			call{user: "u1", provider: "gemini", at: day(2025, 12, 31, 23), in: 10, out: 5, cost: "0.001"},
			call{user: "u1", provider: "openai", at: day(2026, 1, 1, 0), in: 20, out: 10, cost: "0.002"},
			call{user: "u1", provider: "openai", at: day(2026, 1, 31, 0), in: 20, out: 10, cost: "0.002"},
			call{user: "u1", provider: "openai", at: day(2026, 9, 30, 0), in: 1, out: 1, cost: "0.0000001"},
			call{user: "u1", provider: "mistral", at: day(2026, 11, 1, 0), in: 3, out: 4, cost: "0.5"},
			call{user: "u2", provider: "openai", at: day(2026, 11, 2, 0), in: 100, out: 100, cost: "9"},
		)
		for _, path := range []string{"/api/subscription/trends/u1", "/api/subscription/usage/u1/trends"} {
			d := e.data(e.get(path, testAdminKey))
			checkTrends(t, d, defaultNow, 6)
			if got := nums(t, d["total_calls"]); !reflect.DeepEqual(got, []string{"0", "0", "0", "1", "0", "1"}) {
				t.Errorf("%s total_calls = %v", path, got)
			}
			if got := nums(t, d["total_cost"]); !reflect.DeepEqual(got, []string{"0", "0", "0", "0.0000001", "0", "0.5"}) {
				t.Errorf("%s total_cost = %v", path, got)
			}

			// Twelve months reach back across the year boundary.
			d = e.data(e.get(path+"?months=12", testAdminKey))
			checkTrends(t, d, defaultNow, 12)
			if got := nums(t, d["total_calls"]); !reflect.DeepEqual(got, []string{"1", "2", "0", "0", "0", "0", "0", "0", "0", "1", "0", "1"}) {
				t.Errorf("%s?months=12 total_calls = %v", path, got)
			}
			if got := nums(t, d["total_tokens"]); !reflect.DeepEqual(got, []string{"15", "60", "0", "0", "0", "0", "0", "0", "0", "2", "0", "7"}) {
				t.Errorf("%s?months=12 total_tokens = %v", path, got)
			}
			pt := obj(t, d["provider_trends"])
			if got := nums(t, obj(t, pt["openai"])["cost"]); !reflect.DeepEqual(got, []string{"0", "0.004", "0", "0", "0", "0", "0", "0", "0", "0.0000001", "0", "0"}) {
				t.Errorf("openai cost trend = %v", got)
			}
			if got := nums(t, obj(t, pt["gemini"])["calls"]); !reflect.DeepEqual(got, []string{"1", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0", "0"}) {
				t.Errorf("gemini calls trend = %v", got)
			}
			for _, n := range []int{1, 24} {
				checkTrends(t, e.data(e.get(fmt.Sprintf("%s?months=%d", path, n), testAdminKey)), defaultNow, n)
			}
			for _, bad := range []string{"0", "25", "-1", "abc", "1.5"} {
				e.problem4xx(e.get(path+"?months="+bad, testAdminKey), "query.months")
			}
		}

		// Month ends never skip or repeat a month (ALwrity stepped back 30 days).
		for _, now := range []time.Time{
			time.Date(2027, 3, 31, 23, 59, 59, 0, time.UTC), time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC),
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 23, 59, 59, 999_999_000, time.UTC),
		} {
			e.setNow(now)
			checkTrends(t, e.data(e.get("/api/subscription/trends/u1?months=24", testAdminKey)), now, 24)
		}
	})
}

var dashboardSpec = Obj{
	"current_usage": usageStatsSpec(false), "current_period_usage": usageStatsSpec(false),
	"total_usage": usageStatsSpec(true), "trends": trendsSpec(), "limits": planLimitsSpec,
	"alerts":      Arr{alertBriefSpec},
	"projections": Obj{"projected_monthly_cost": "number", "cost_limit": "number", "projected_usage_percentage": "float"},
	"summary": Obj{"total_api_calls_this_month": "int", "total_cost_this_month": "number",
		"usage_status": Enum{"active", "warning", "limit_reached"}, "unread_alerts": "int"},
}

func TestDashboard(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		seedUsage(e)
		d := e.data(e.get("/api/subscription/dashboard/u1", testAdminKey))
		check(t, "dashboard", d, dashboardSpec)
		if !reflect.DeepEqual(d["current_usage"], d["current_period_usage"]) {
			t.Errorf("current_usage and current_period_usage differ")
		}
		usage := e.data(e.get("/api/subscription/usage/u1", testAdminKey))
		if !reflect.DeepEqual(d["current_usage"], usage) {
			t.Errorf("current_usage differs from GET /usage:\n%v\n%v", d["current_usage"], usage)
		}
		total := obj(t, d["total_usage"])
		if total["billing_period"] != "all" || num(t, total["total_calls"]) != "4" || num(t, total["total_cost"]) != "0.06345" ||
			num(t, total["total_errors"]) != "1" || num(t, obj(t, obj(t, total["provider_breakdown"])["anthropic"])["calls"]) != "1" {
			t.Errorf("total_usage = %v", total)
		}
		checkTrends(t, obj(t, d["trends"]), defaultNow, 6)
		if !reflect.DeepEqual(d["limits"], obj(t, d["current_usage"])["limits"]) {
			t.Errorf("limits = %v", d["limits"])
		}
		if n := len(arr(t, d["alerts"])); n != 5 {
			t.Errorf("dashboard lists %d alerts, want 5", n)
		}
		s := obj(t, d["summary"])
		if num(t, s["total_api_calls_this_month"]) != "3" || num(t, s["total_cost_this_month"]) != "0.06025" ||
			s["usage_status"] != "active" || num(t, s["unread_alerts"]) != "13" {
			t.Errorf("summary = %v", s)
		}
		// Half of November (30 days) has passed at the injected clock plus 12 h.
		p := obj(t, d["projections"])
		if num(t, p["cost_limit"]) != "0" || float(t, p["projected_usage_percentage"]) != 0 {
			t.Errorf("projections = %v", p)
		}

		// A user without any data.
		d = e.data(e.get("/api/subscription/dashboard/nobody", testAdminKey))
		check(t, "dashboard", d, dashboardSpec)
		if num(t, obj(t, d["projections"])["projected_monthly_cost"]) != "0" || len(arr(t, d["alerts"])) != 0 {
			t.Errorf("empty dashboard = %v", d)
		}
	})
}

// TestProjection: cost so far divided by the elapsed fraction of the
// period, exactly.
func TestProjection(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		half := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC) // November has 30 days
		e := newEnv(t, b, half)
		e.record(
			call{user: "u1", at: day(2026, 11, 3, 0), cost: "0.004"},
			call{user: "u1", at: day(2026, 11, 15, 0), cost: "0.006"},
			call{user: "u1", at: day(2026, 10, 15, 0), cost: "5"},
		)
		p := obj(t, e.data(e.get("/api/subscription/dashboard/u1", testAdminKey))["projections"])
		if num(t, p["projected_monthly_cost"]) != "0.02" {
			t.Errorf("projected_monthly_cost = %v, want 0.02", p["projected_monthly_cost"])
		}

		// A third of a 31-day period: 0.01 × 3 exactly; a plan with a cost
		// limit reports it and the projected share of it.
		capped := billing.Plan{Name: "Capped", Tier: "free", IsActive: true, Features: []string{"capped"},
			MonthlyCostLimit: billing.Ptr(money.MustParse("0.04"))}
		id, err := e.app.DB.CreatePlan(e.ctx, capped, half)
		if err != nil {
			t.Fatal(err)
		}
		anchor := day(2026, 12, 1, 0)
		if _, err := e.app.DB.CreateSubscription(e.ctx, billing.Subscription{UserID: "u3", PlanID: id, BillingCycle: "monthly",
			Status: billing.StatusActive, AutoRenew: true, Anchor: anchor, CurrentPeriodStart: anchor,
			CurrentPeriodEnd: day(2027, 1, 1, 0)}, half); err != nil {
			t.Fatal(err)
		}
		e.setNow(time.Date(2026, 12, 11, 8, 0, 0, 0, time.UTC)) // 10⅓ of 31 days
		e.record(call{user: "u3", at: day(2026, 12, 2, 0), cost: "0.01"})
		p = obj(t, e.data(e.get("/api/subscription/dashboard/u3", testAdminKey))["projections"])
		if num(t, p["projected_monthly_cost"]) != "0.03" || num(t, p["cost_limit"]) != "0.04" ||
			float(t, p["projected_usage_percentage"]) != 75 {
			t.Errorf("capped projections = %v", p)
		}

		// At the very start of a period nothing is extrapolated.
		e.setNow(day(2027, 1, 1, 0))
		p = obj(t, e.data(e.get("/api/subscription/dashboard/u3", testAdminKey))["projections"])
		if num(t, p["projected_monthly_cost"]) != "0" {
			t.Errorf("projection at period start = %v", p)
		}
	})
}

// TestDashboardEarlyInThePeriod: in the first seconds of a period the
// projection is the cost so far (extrapolated from 2 seconds, $10 would be
// past the largest amount money holds, and the dashboard answered 500).
func TestDashboardEarlyInThePeriod(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, storetest.Backends()[0], start.Add(2*time.Second))
	e.record(call{user: "early", at: start.Add(time.Second), cost: "10"})
	d := e.data(e.get("/api/subscription/dashboard/early", testAdminKey))
	if p := obj(t, d["projections"]); num(t, p["projected_monthly_cost"]) != "10" {
		t.Errorf("projected_monthly_cost = %v, want the cost so far, 10", p["projected_monthly_cost"])
	}
}
