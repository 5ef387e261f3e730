package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// mtReserve posts body to POST /reserve.
func mtReserve(e *env, key, body string) response {
	e.t.Helper()
	return mtPost(e, "/api/subscription/reserve", key, body)
}

// mtHeld asserts a 201 reservation and returns it.
func mtHeld(e *env, r response) map[string]any {
	e.t.Helper()
	if r.status != http.StatusCreated {
		e.t.Fatalf("want 201, got %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("content type %q", ct)
	}
	m := decode(e.t, r.body)
	check(e.t, "body", m, Obj{"success": "bool", "data": mtReservationSpec})
	if m["success"] != true {
		e.t.Fatalf("success = %v", m["success"])
	}
	d := obj(e.t, m["data"])
	if d["status"] != "held" {
		e.t.Fatalf("status = %v", d["status"])
	}
	return d
}

// mtLimited asserts a 429 refusal with exactly the ALwrity fields and
// returns it.
func mtLimited(e *env, r response) map[string]any {
	e.t.Helper()
	p := e.problem(r, http.StatusTooManyRequests)
	check(e.t, "429", p, mtLimitSpec)
	if p["detail"] != p["message"] {
		e.t.Errorf("detail %q differs from message %q", p["detail"], p["message"])
	}
	return p
}

// TestReserveContract: reservations hold units until the limit refuses
// with ALwrity's 429 body; what is held counts; settling records the real
// usage; releasing gives units back; only the owner or an admin may act.
func TestReserveContract(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		mtSubscribe(e, "alice", billing.Plan{TotalCallsLimit: billing.Ptr(int64(3))})

		// The shape of a held reservation; the key's user by default, the
		// default TTL of ten minutes, the cost estimated from the model.
		d := mtHeld(e, mtReserve(e, alice, `{"provider": "openai", "model": "gpt-4", "tokens_requested": 1000}`))
		if d["user_id"] != "alice" || d["provider"] != "openai" || d["model"] != "gpt-4" || d["billing_period"] != "2026-11" ||
			integer(t, d["calls"]) != 1 || integer(t, d["tokens"]) != 1000 || num(t, d["cost"]) != "0.06" ||
			d["expires_at"] != defaultNow.Add(10*time.Minute).Format(time.RFC3339) {
			t.Errorf("reservation = %v", d)
		}
		first := d["reservation_id"].(string)
		// An explicit estimate and TTL are kept, written exactly.
		d = mtHeld(e, mtReserve(e, alice, `{"user_id": "alice", "provider": "gemini", "estimated_cost": 0.00155, "ttl_seconds": 60}`))
		if num(t, d["cost"]) != "0.00155" || d["expires_at"] != defaultNow.Add(time.Minute).Format(time.RFC3339) {
			t.Errorf("reservation = %v", d)
		}
		second := d["reservation_id"].(string)
		if !strings.Contains(string(mtReserve(e, alice, `{"provider": "openai"}`).body), `"status":"held"`) {
			t.Fatal("the third call of three was not admitted")
		}

		// The fourth is refused: held calls count against the limit.
		p := mtLimited(e, mtReserve(e, alice, `{"provider": "openai", "model": "gpt-4"}`))
		info := obj(t, p["usage_info"])
		if info["type"] != "total_calls" || num(t, info["current_calls"]) != "3" || num(t, info["limit"]) != "3" ||
			num(t, info["usage_percentage"]) != "100" || num(t, info["requested"]) != "1" || info["billing_period"] != "2026-11" {
			t.Errorf("usage_info = %v", info)
		}
		if p["provider"] != "openai" {
			t.Errorf("provider = %v, want the refused call's provider", p["provider"])
		}
		if !strings.Contains(p["message"].(string), "Used 3 of 3") {
			t.Errorf("message = %q", p["message"])
		}

		// Settling records the real usage, once: the reservation's id is the
		// default event id, so a settle retried is a duplicate.
		settle := "/api/subscription/reservations/" + first + "/settle"
		for i, status := range []string{"recorded", "duplicate"} {
			r := mtPost(e, settle, alice, `{"model": "gpt-4", "tokens_input": 1000, "tokens_output": 500}`)
			if i == 0 && !strings.Contains(string(r.body), `"cost":0.06`) {
				t.Errorf("raw settle body lacks \"cost\":0.06: %s", r)
			}
			res := e.data(r)
			check(t, "settle", res, mtResultSpec)
			if res["event_id"] != first || res["status"] != status || num(t, res["cost"]) != "0.06" || res["billing_period"] != "2026-11" {
				t.Errorf("settle %d = %v", i, res)
			}
		}
		// Settling it again with another event is a conflict.
		e.problem(mtPost(e, settle, alice, `{"event_id": "other", "tokens_input": 1}`), http.StatusConflict)
		if ids := mtLoggedIDs(e, "alice"); len(ids) != 1 || ids[first] != 1 {
			t.Errorf("ledger after settling = %v", ids)
		}

		// Releasing gives the units back, idempotently: one more call fits.
		release := "/api/subscription/reservations/" + second
		for range 2 {
			d := e.data(e.do(http.MethodDelete, release, alice, nil))
			check(t, "release", d, mtReservationSpec)
			if d["reservation_id"] != second || d["status"] != "released" {
				t.Errorf("release = %v", d)
			}
		}
		third := mtHeld(e, mtReserve(e, alice, `{"provider": "mistral"}`))["reservation_id"].(string)
		p = mtLimited(e, mtReserve(e, alice, `{"provider": "mistral"}`))
		if info := obj(t, p["usage_info"]); num(t, info["current_calls"]) != "3" {
			t.Errorf("usage_info after settle and release = %v", info)
		}

		// Only alice (or an admin) acts on alice's reservations.
		e.problem(mtPost(e, settle, bob, `{"tokens_input": 1}`), http.StatusForbidden)
		e.problem(e.do(http.MethodDelete, release, bob, nil), http.StatusForbidden)
		e.problem(mtReserve(e, bob, `{"user_id": "alice", "provider": "openai"}`), http.StatusForbidden)
		e.problem(mtPost(e, settle, "", `{"tokens_input": 1}`), http.StatusUnauthorized)
		e.problem(e.do(http.MethodDelete, release, "", nil), http.StatusUnauthorized)
		e.problem(mtReserve(e, "", `{"provider": "openai"}`), http.StatusUnauthorized)
		if d := e.data(e.do(http.MethodDelete, release, testAdminKey, nil)); d["status"] != "released" {
			t.Errorf("admin release = %v", d)
		}

		// Unknown reservations are 404.
		for _, k := range []string{alice, testAdminKey} {
			e.problem(mtPost(e, "/api/subscription/reservations/rsv_nope/settle", k, `{"tokens_input": 1}`), http.StatusNotFound)
			e.problem(e.do(http.MethodDelete, "/api/subscription/reservations/rsv_nope", k, nil), http.StatusNotFound)
		}
		// Unless the settle names the call's user and provider (a
		// reservation lost in a restart): then the call is recorded, for a
		// key that may record that user's usage.
		lost := "/api/subscription/reservations/rsv_lost/settle"
		e.problem(mtPost(e, lost, bob, `{"user_id": "alice", "provider": "openai", "tokens_input": 1}`), http.StatusForbidden)
		if d := e.data(mtPost(e, lost, alice, `{"user_id": "alice", "provider": "openai", "model": "gpt-4", "tokens_input": 1}`)); d["status"] != "recorded" {
			t.Errorf("settle of a lost reservation naming its user = %v; want recorded", d)
		}

		// A settle body is decoded as strictly as POST /usage, and must be
		// the reservation's user's and provider's usage; a refused settle
		// leaves the reservation held.
		settle3 := "/api/subscription/reservations/" + third + "/settle"
		e.problem4xx(mtPost(e, settle3, alice, `{"tokens_inptu": 1}`), "body.tokens_inptu")
		e.problem4xx(mtPost(e, settle3, alice, `{"tokens_input": "many"}`), "body.tokens_input")
		e.problem4xx(mtPost(e, settle3, alice, `[]`), "body")
		e.problem4xx(mtPost(e, settle3, alice, `{"tokens_input": -1}`), "tokens_input")
		e.problem(mtPost(e, settle3, alice, `{"provider": "openai"}`), http.StatusBadRequest)
		e.problem(mtPost(e, settle3, testAdminKey, `{"user_id": "bob"}`), http.StatusBadRequest)
		if d := e.data(e.do(http.MethodDelete, "/api/subscription/reservations/"+third, alice, nil)); d["status"] != "released" {
			t.Errorf("after refused settles the reservation is %v, want it held until released", d["status"])
		}

		// Bad reservations are refused naming the field (422, see
		// TestValidationStatus).
		for _, tc := range []struct{ key, body, names string }{
			{alice, `{"provider": "no-such-ai"}`, "body.provider"},
			{alice, `{"provider": "openai", "tokens_requested": -1}`, "body.tokens_requested"},
			{alice, `{"provider": "openai", "ttl_seconds": 100000}`, "body.ttl_seconds"},
			{alice, `{"provider": "openai", "bogus": 1}`, "bogus"},
			{alice, `{"provider": "openai", "estimated_cost": -1}`, "body.estimated_cost"},
			{testAdminKey, `{"provider": "openai"}`, "body.user_id"},
		} {
			e.problem4xx(mtReserve(e, tc.key, tc.body), tc.names)
		}
		mtConsistent(e)
	})
}

// TestReserveCostLimit: a monthly cost limit admits reservations while
// their estimates fit, and the 429 writes money as exact USD.
func TestReserveCostLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		carol := e.userKey("carol")
		limit := money.MustParse("1")
		mtSubscribe(e, "carol", billing.Plan{MonthlyCostLimit: &limit})
		for range 14 {
			mtHeld(e, mtReserve(e, carol, `{"provider": "openai", "estimated_cost": 0.07}`))
		}
		p := mtLimited(e, mtReserve(e, carol, `{"provider": "openai", "estimated_cost": 0.07}`))
		info := obj(t, p["usage_info"])
		if info["type"] != "monthly_cost" || num(t, info["limit"]) != "1" || num(t, info["current_calls"]) != "0.98" ||
			num(t, info["requested"]) != "0.07" || num(t, info["usage_percentage"]) != "98" {
			t.Errorf("usage_info = %v", info)
		}
		if p["provider"] != "openai" {
			t.Errorf("provider = %v, want the refused call's provider", p["provider"])
		}
		// What still fits is admitted.
		mtHeld(e, mtReserve(e, carol, `{"provider": "openai", "estimated_cost": 0.02}`))
		mtConsistent(e)
	})
}

// TestReserveProviderLimits: per-provider call and token limits refuse
// with the provider's own limit named, and a zero limit means the
// provider is not allowed at all (invariant 8).
func TestReserveProviderLimits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		dave := e.userKey("dave")
		mtSubscribe(e, "dave", billing.Plan{ProviderLimits: map[string]billing.ProviderLimit{
			"gemini":  {Calls: billing.Ptr(int64(1))},
			"openai":  {Tokens: billing.Ptr(int64(1500))},
			"mistral": {Calls: billing.Ptr(int64(0))},
		}})
		mtHeld(e, mtReserve(e, dave, `{"provider": "gemini"}`))
		p := mtLimited(e, mtReserve(e, dave, `{"provider": "gemini"}`))
		info := obj(t, p["usage_info"])
		if p["provider"] != "gemini" || info["type"] != "gemini_calls" || num(t, info["current_calls"]) != "1" || num(t, info["limit"]) != "1" {
			t.Errorf("gemini refusal = %v", p)
		}
		if !strings.Contains(p["message"].(string), "API call limit reached for gemini") {
			t.Errorf("message = %q", p["message"])
		}

		mtHeld(e, mtReserve(e, dave, `{"provider": "openai", "model": "gpt-4", "tokens_requested": 1000}`))
		p = mtLimited(e, mtReserve(e, dave, `{"provider": "openai", "model": "gpt-4", "tokens_requested": 501}`))
		info = obj(t, p["usage_info"])
		if p["provider"] != "openai" || info["type"] != "openai_tokens" || num(t, info["current_calls"]) != "1000" ||
			num(t, info["limit"]) != "1500" || num(t, info["requested"]) != "501" {
			t.Errorf("openai refusal = %v", p)
		}
		mtHeld(e, mtReserve(e, dave, `{"provider": "openai", "model": "gpt-4", "tokens_requested": 500}`))

		p = mtLimited(e, mtReserve(e, dave, `{"provider": "mistral"}`))
		if info := obj(t, p["usage_info"]); p["provider"] != "mistral" || info["type"] != "mistral_calls" || num(t, info["limit"]) != "0" {
			t.Errorf("mistral refusal = %v", p)
		}
		// Providers the plan does not limit are unlimited.
		for range 5 {
			mtHeld(e, mtReserve(e, dave, `{"provider": "anthropic"}`))
		}
		mtConsistent(e)
	})
}
