package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// limitInfoSpec is a preflight operation's limit_info: limit and remaining
// are null when the operation is unlimited.
var limitInfoSpec = Obj{"type": "string", "current_usage": "number", "limit": Nullable{"number"}, "remaining": Nullable{"number"}}

// TestPreflightLimitInfo pins the contract's limit_info: an unlimited
// operation reports its usage with "limit" and "remaining" null (never
// limit_info null), and a limited one numbers for both.
func TestPreflightLimitInfo(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		rich, free := e.userKey("rich"), e.userKey("free")
		mtSubscribe(e, "rich", billing.Plan{}) // no limit at all
		e.record(call{user: "rich", provider: "openai", at: day(2026, 11, 2, 0)}, call{user: "rich", provider: "openai", at: day(2026, 11, 3, 0)},
			call{user: "free", provider: "openai", at: day(2026, 11, 2, 0)})
		body := `{"operations": [{"provider": "openai", "model": "gpt-4", "tokens_requested": 100, "operation_type": "blog"}]}`

		d := e.data(e.send(http.MethodPost, "/api/subscription/preflight-check", rich, body))
		op := obj(t, arr(t, d["operations"])[0])
		if op["limit_info"] == nil {
			t.Fatalf("unlimited operation: limit_info null: %v", op)
		}
		li := obj(t, op["limit_info"])
		check(t, "limit_info", li, limitInfoSpec)
		if li["type"] != "openai_calls" || num(t, li["current_usage"]) != "2" || li["limit"] != nil || li["remaining"] != nil {
			t.Errorf("unlimited limit_info = %v; want openai_calls, current_usage 2, limit and remaining null", li)
		}
		if op["allowed"] != true || d["can_proceed"] != true {
			t.Errorf("unlimited operation refused: %v", d)
		}

		d = e.data(e.send(http.MethodPost, "/api/subscription/preflight-check", free, body))
		li = obj(t, obj(t, arr(t, d["operations"])[0])["limit_info"])
		check(t, "limit_info", li, limitInfoSpec)
		if li["limit"] == nil || li["remaining"] == nil {
			t.Errorf("limited limit_info = %v; want numbers", li)
		}
	})
}
