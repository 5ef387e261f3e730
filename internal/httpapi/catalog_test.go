package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var planSpec = Obj{
	"id": "int", "name": "string", "tier": Enum{"free", "basic", "pro", "enterprise"},
	"price_monthly": "number", "price_yearly": "number", "description": "string",
	"features": Arr{"string"}, "limits": limitsSpec(),
	"version": "int", "soft_limits": "bool", "overage_per_call": Nullable{"number"}, "overage_per_1k_tokens": Nullable{"number"},
}

func TestPlans(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		d := e.data(e.get("/api/subscription/plans", ""))
		check(t, "data", d, Obj{"plans": Arr{planSpec}, "total": "int"})
		plans := arr(t, d["plans"])
		if len(plans) != 4 || integer(t, d["total"]) != 4 {
			t.Fatalf("want 4 plans, got %d (total %v)", len(plans), d["total"])
		}
		want := []struct{ name, tier, monthly, yearly, calls, zero string }{
			{"Free", "free", "0", "0", "1000", "limited"},
			{"Starter", "basic", "29", "290", "10000", "limited"},
			{"Professional", "pro", "99", "990", "100000", "limited"},
			{"Enterprise", "enterprise", "299", "2990", "0", "unlimited"},
		}
		for i, w := range want {
			p := obj(t, plans[i])
			limits := obj(t, p["limits"])
			zero := obj(t, limits["_zero_means"])
			if p["name"] != w.name || p["tier"] != w.tier || num(t, p["price_monthly"]) != w.monthly ||
				num(t, p["price_yearly"]) != w.yearly || num(t, limits["total_calls"]) != w.calls || zero["total_calls"] != w.zero {
				t.Errorf("plan %d = %v, want %+v", i, p, w)
			}
			// The seed's plans limit nothing but calls: every other 0 means unlimited.
			for _, k := range limitKeys()[1:] {
				if num(t, limits[k]) != "0" || zero[k] != "unlimited" {
					t.Errorf("%s %s = %v (%v), want 0 unlimited", w.name, k, limits[k], zero[k])
				}
			}
			if len(arr(t, p["features"])) == 0 || p["description"] == "" {
				t.Errorf("%s lacks features or a description", w.name)
			}
		}
	})
}

// TestPlanLimitSemantics: a plan's 0 that forbids something reads
// "disabled", a real limit "limited" and a missing one "unlimited"; an
// inactive plan is not offered.
func TestPlanLimitSemantics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		team := billing.Plan{Name: "Team", Tier: "pro", PriceMonthly: money.MustParse("49.99"), PriceYearly: money.MustParse("499.9"),
			IsActive: true, Description: "Team", Features: []string{"team"}, TotalCallsLimit: billing.Ptr[int64](5000),
			MonthlyCostLimit: billing.Ptr(money.MustParse("12.5")),
			ProviderLimits: map[string]billing.ProviderLimit{
				"stability": {Calls: billing.Ptr[int64](0)},
				"openai":    {Calls: billing.Ptr[int64](100), Tokens: billing.Ptr[int64](250_000)},
			}}
		teamID, err := e.app.DB.CreatePlan(e.ctx, team, defaultNow)
		if err != nil {
			t.Fatal(err)
		}
		old := billing.Plan{Name: "Legacy", Tier: "basic", PriceMonthly: money.MustParse("5"), Features: []string{}}
		if _, err := e.app.DB.CreatePlan(e.ctx, old, defaultNow); err != nil {
			t.Fatal(err)
		}
		d := e.data(e.get("/api/subscription/plans", ""))
		check(t, "data", d, Obj{"plans": Arr{planSpec}, "total": "int"})
		var names []string
		for _, p := range arr(t, d["plans"]) {
			names = append(names, obj(t, p)["name"].(string))
		}
		if strings.Join(names, ",") != "Free,Starter,Team,Professional,Enterprise" || num(t, d["total"]) != "5" {
			t.Fatalf("plans = %v (total %v)", names, d["total"])
		}
		p := obj(t, arr(t, d["plans"])[2])
		limits := obj(t, p["limits"])
		zero := obj(t, limits["_zero_means"])
		want := map[string][2]string{
			"total_calls": {"5000", "limited"}, "stability_calls": {"0", "disabled"}, "openai_calls": {"100", "limited"},
			"openai_tokens": {"250000", "limited"}, "monthly_cost": {"12.5", "limited"}, "gemini_calls": {"0", "unlimited"},
			"gemini_tokens": {"0", "unlimited"},
		}
		for k, w := range want {
			if got := [2]string{num(t, limits[k]), zero[k].(string)}; got != w {
				t.Errorf("Team %s = %v, want %v", k, got, w)
			}
		}
		if num(t, p["price_monthly"]) != "49.99" || num(t, p["price_yearly"]) != "499.9" || integer(t, p["id"]) != teamID {
			t.Errorf("Team = %v", p)
		}

		// On that plan: a forbidden provider never used does not count as a
		// limit reached; 80 of 100 openai calls is a warning.
		anchor := day(2026, 11, 1, 0)
		if _, err := e.app.DB.CreateSubscription(e.ctx, billing.Subscription{UserID: "t1", PlanID: teamID, BillingCycle: "monthly",
			Status: billing.StatusActive, Anchor: anchor, CurrentPeriodStart: anchor, CurrentPeriodEnd: day(2026, 12, 1, 0)}, anchor); err != nil {
			t.Fatal(err)
		}
		u := e.data(e.get("/api/subscription/usage/t1", testAdminKey))
		if u["usage_status"] != "active" {
			t.Errorf("unused Team usage_status = %v", u["usage_status"])
		}
		e.record(many(80, call{user: "t1", provider: "openai", at: day(2026, 11, 2, 0), in: 10, out: 10, cost: "0.1"})...)
		u = e.data(e.get("/api/subscription/usage/t1", testAdminKey))
		pct := obj(t, u["usage_percentages"])
		if u["usage_status"] != "warning" || float(t, pct["openai_calls"]) != 80 || float(t, pct["cost"]) != 64 ||
			float(t, pct["total_calls"]) != 1.6 || float(t, pct["stability_calls"]) != 0 {
			t.Errorf("Team usage at 80 openai calls: %v %v", u["usage_status"], pct)
		}
		e.record(call{user: "t1", provider: "stability", at: day(2026, 11, 3, 0)})
		u = e.data(e.get("/api/subscription/usage/t1", testAdminKey))
		if u["usage_status"] != "limit_reached" || float(t, obj(t, u["usage_percentages"])["stability_calls"]) != 100 {
			t.Errorf("Team usage after a forbidden call: %v", u["usage_status"])
		}
	})
}

var priceTierKeys = []string{"cost_per_input_token", "cost_per_output_token", "cost_per_cached_input_token",
	"cost_per_cache_write_5m_token", "cost_per_cache_write_1h_token", "cost_per_reasoning_token"}

func priceSpec() Obj {
	lc := Obj{"threshold_tokens": "int"}
	o := Obj{"provider": "string", "model_name": "string", "description": "string", "effective_date": "time",
		"effective_to": Nullable{"time"}, "cost_per_request": "number", "cost_per_search": "number",
		"cost_per_image": "number", "cost_per_page": "number"}
	for _, k := range priceTierKeys {
		o[k], lc[k] = "number", "number"
	}
	o["long_context"] = Nullable{lc}
	return o
}

func TestPricing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		seed := billing.DefaultPrices()

		d := e.data(e.get("/api/subscription/pricing", ""))
		check(t, "data", d, Obj{"pricing": Arr{priceSpec()}, "total": "int"})
		rows := arr(t, d["pricing"])
		if len(rows) != len(seed) || integer(t, d["total"]) != int64(len(seed)) {
			t.Fatalf("want %d prices, got %d (total %v)", len(seed), len(rows), d["total"])
		}
		byModel := map[string]map[string]any{}
		for _, r := range rows {
			p := obj(t, r)
			byModel[p["provider"].(string)+"/"+p["model_name"].(string)] = p
		}
		// Every seed price comes back digit for digit, the optional buckets
		// filled with what a call is actually charged.
		for _, sp := range seed {
			p := byModel[sp.Provider+"/"+sp.ModelName]
			if p == nil {
				t.Errorf("price %s/%s missing", sp.Provider, sp.ModelName)
				continue
			}
			tier := sp.Tier.Effective()
			want := map[string]string{
				"cost_per_input_token": tier.Input.String(), "cost_per_output_token": tier.Output.String(),
				"cost_per_cached_input_token": tier.CachedInput.String(), "cost_per_cache_write_5m_token": tier.CacheWrite5m.String(),
				"cost_per_cache_write_1h_token": tier.CacheWrite1h.String(), "cost_per_reasoning_token": tier.Reasoning.String(),
				"cost_per_request": sp.PerRequest.String(), "cost_per_search": sp.PerSearch.String(),
				"cost_per_image": sp.PerImage.String(), "cost_per_page": sp.PerPage.String(),
			}
			for k, w := range want {
				if got := num(t, p[k]); got != w {
					t.Errorf("%s/%s %s = %s, want %s", sp.Provider, sp.ModelName, k, got, w)
				}
			}
			if p["description"] != sp.Description || p["effective_date"] != "2024-01-01T00:00:00Z" || p["effective_to"] != nil {
				t.Errorf("%s/%s: %v", sp.Provider, sp.ModelName, p)
			}
			if (sp.LongContext != nil) != (p["long_context"] != nil) {
				t.Errorf("%s/%s long_context = %v", sp.Provider, sp.ModelName, p["long_context"])
			}
		}
		lc := obj(t, byModel["gemini/gemini-2.5-pro"]["long_context"])
		if num(t, lc["threshold_tokens"]) != "200000" || num(t, lc["cost_per_input_token"]) != "0.0000025" ||
			num(t, lc["cost_per_output_token"]) != "0.000015" {
			t.Errorf("gemini-2.5-pro long context = %v", lc)
		}
		if p := byModel["anthropic/claude-3.5-sonnet"]; num(t, p["cost_per_cache_write_1h_token"]) != "0.000006" ||
			num(t, p["cost_per_cached_input_token"]) != "0.0000003" {
			t.Errorf("claude-3.5-sonnet = %v", p)
		}

		r := e.get("/api/subscription/pricing?provider=openai", "")
		d = e.data(r)
		check(t, "data", d, Obj{"pricing": Arr{priceSpec()}, "total": "int"})
		rows = arr(t, d["pricing"])
		var models []string
		for _, row := range rows {
			p := obj(t, row)
			if p["provider"] != "openai" {
				t.Errorf("provider=openai returned %v", p["provider"])
			}
			models = append(models, p["model_name"].(string))
		}
		if strings.Join(models, ",") != "gpt-3.5-turbo,gpt-4,gpt-4o,gpt-4o-mini" || integer(t, d["total"]) != 4 {
			t.Errorf("openai models = %v (total %v)", models, d["total"])
		}
		body := string(r.body)
		if !strings.Contains(body, `"model_name":"gpt-4","cost_per_input_token":0.00003,"cost_per_output_token":0.00006,`) {
			t.Errorf("gpt-4 not written exactly: %s", body)
		}
		for _, bad := range []string{"e-0", "E-0", "00000000001", "99999999"} {
			if strings.Contains(body, bad) {
				t.Errorf("pricing body holds %q (float artefact): %s", bad, body)
			}
		}

		for _, q := range []string{"nope", "OpenAI"} {
			p := e.problem(e.get("/api/subscription/pricing?provider="+q, ""), http.StatusBadRequest)
			detail := p["detail"].(string)
			if !strings.Contains(detail, "query.provider") || !strings.Contains(detail, q) || !strings.Contains(detail, "openai") {
				t.Errorf("detail %q should name the field, the value and the known providers", detail)
			}
		}
	})
}
