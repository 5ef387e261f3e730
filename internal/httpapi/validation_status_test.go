package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestValidationStatus pins one status for one kind of mistake: a request
// field that fails a check is 422 naming the field, whether huma's schema
// or the code's own check found it (FastAPI clients read 422 as
// "validation failed"); a body that is not a JSON object at all is 400, as
// huma's parser answers; and the two 400s the contract documents stay:
// GET /pricing's unknown provider and POST /usage's refused batch.
func TestValidationStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		rsv := mtHeld(e, mtReserve(e, alice, `{"provider": "gemini", "model": "gemini-2.5-flash"}`))["reservation_id"].(string)
		for _, tc := range []struct {
			name, method, path, key, body string
			status                        int
			names                         string
		}{
			// The same parameter, checked by huma's pattern and by the code.
			{"period not YYYY-MM", "GET", "/api/subscription/usage/alice?billing_period=abc", alice, "", 422, "query.billing_period"},
			{"month 13", "GET", "/api/subscription/usage/alice?billing_period=2026-13", alice, "", 422, "query.billing_period"},
			{"logs month 13", "GET", "/api/subscription/usage-logs?billing_period=2026-13", alice, "", 422, "query.billing_period"},
			{"logs unknown provider", "GET", "/api/subscription/usage-logs?provider=nope", alice, "", 422, "query.provider"},
			{"logs bad cursor", "GET", "/api/subscription/usage-logs?cursor=x", alice, "", 422, "query.cursor"},
			{"months out of range", "GET", "/api/subscription/trends/alice?months=25", alice, "", 422, "query.months"},
			{"unknown plan", "POST", "/api/subscription/subscribe/alice", alice, `{"plan_id": 99999}`, 422, "body.plan_id"},
			{"reserve unknown provider", "POST", "/api/subscription/reserve", alice, `{"provider": "no-such-ai"}`, 422, "body.provider"},
			{"reserve negative tokens", "POST", "/api/subscription/reserve", alice, `{"provider": "openai", "tokens_requested": -1}`, 422, "body.tokens_requested"},
			{"settle unknown field", "POST", "/api/subscription/reservations/" + rsv + "/settle", alice, `{"tokens_inptu": 1}`, 422, "body.tokens_inptu"},
			{"settle wrong type", "POST", "/api/subscription/reservations/" + rsv + "/settle", alice, `{"tokens_input": "many"}`, 422, "body.tokens_input"},
			{"preflight unknown provider", "POST", "/api/subscription/preflight-check", alice, `{"operations": [{"provider": "nope"}]}`, 422, "body.operations[0].provider"},
			{"preflight admin without user", "POST", "/api/subscription/preflight-check", testAdminKey, `{"operations": [{"provider": "gemini"}]}`, 422, "body.user_id"},
			{"admin price field", "POST", "/api/admin/prices", testAdminKey, `{"provider": "openai", "model": "m", "input": -1, "output": 1}`, 422, "body.input"},
			// Not a JSON object at all.
			{"settle not an object", "POST", "/api/subscription/reservations/" + rsv + "/settle", alice, `[]`, 400, "body"},
			{"subscribe not JSON", "POST", "/api/subscription/subscribe/alice", alice, `{"plan_id": `, 400, "body"},
			// Documented 400s.
			{"pricing unknown provider", "GET", "/api/subscription/pricing?provider=nope", "", "", 400, "query.provider"},
			{"batch with a bad event", "POST", "/api/subscription/usage", alice,
				`{"events": [{"event_id": "v-1", "provider": "openai", "model": "gpt-4"}, {"event_id": "v-2", "provider": "nope"}]}`, 400, "body.events[1].provider"},
			{"single bad event", "POST", "/api/subscription/usage", alice, `{"provider": "openai", "tokens_input": "many"}`, 400, "body.tokens_input"},
		} {
			r := e.send(tc.method, tc.path, tc.key, tc.body)
			if r.status != tc.status {
				t.Errorf("%s: %s; want %d", tc.name, r, tc.status)
				continue
			}
			p := e.problem4xx(r, tc.names)
			if tc.status == http.StatusUnprocessableEntity && !contains(mtErrorLocations(t, p), tc.names) {
				t.Errorf("%s: errors do not list %s: %s", tc.name, tc.names, r)
			}
		}
	})
}
