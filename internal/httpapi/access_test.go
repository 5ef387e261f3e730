package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// protectedOp is one operation of the OpenAPI document that needs a key,
// with a request to it whose every parameter and body is invalid.
type protectedOp struct {
	id, method, path, body string
	admin                  bool // an admin route
	namesUser              bool // names the user in a user_id parameter (alice)
}

// protectedOps lists every protected operation the server documents, each
// with invalid input: user_id parameters name alice, every other path
// parameter is 0 (below every id's minimum), every other query parameter
// "!x" (not a number, a boolean, an enum value or a month) and a body, if
// the operation reads one, is a JSON string where an object belongs.
func protectedOps(t *testing.T, e *env) []protectedOp {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string                `json:"operationId"`
			Security    []map[string][]string `json:"security"`
			Parameters  []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			RequestBody *struct{} `json:"requestBody"`
		} `json:"paths"`
	}
	r := e.get("/api/openapi.json", "")
	if r.status != http.StatusOK {
		t.Fatalf("openapi: %s", r)
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []protectedOp
	for path, item := range doc.Paths {
		for method, op := range item {
			if len(op.Security) == 0 {
				continue
			}
			p := protectedOp{id: op.OperationID, method: strings.ToUpper(method), path: path,
				admin: strings.HasPrefix(path, httpapi.AdminPrefix+"/")}
			query := url.Values{}
			for _, prm := range op.Parameters {
				switch {
				case prm.Name == "user_id" && prm.In == "path":
					p.path = strings.ReplaceAll(p.path, "{user_id}", "alice")
					p.namesUser = true
				case prm.Name == "user_id" && prm.In == "query":
					query.Set("user_id", "alice")
					p.namesUser = true
				case prm.In == "path":
					p.path = strings.ReplaceAll(p.path, "{"+prm.Name+"}", "0")
				case prm.In == "query":
					query.Set(prm.Name, "!x")
				}
			}
			if len(query) > 0 {
				p.path += "?" + query.Encode()
			}
			if op.RequestBody != nil {
				p.body = `"not an object"`
			}
			ops = append(ops, p)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].id < ops[j].id })
	return ops
}

// TestAccessBeforeValidation pins that access is decided before input is:
// on every protected route, a request without a key is 401, and one whose
// user key names another user (or calls an admin route) is 403, however
// invalid its parameters and body.
func TestAccessBeforeValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		ops := protectedOps(t, e)
		seen := map[string]bool{}
		for _, op := range ops {
			seen[op.id] = true
			name := op.id + " " + op.method + " " + op.path
			r := e.send(op.method, op.path, "", op.body)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s without a key: %s; want 401", name, r)
			} else if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("%s without a key: WWW-Authenticate %q", name, h)
			} else {
				checkProblem(t, r)
			}
			var key string
			switch {
			case op.admin:
				key = alice
			case op.namesUser:
				key = bob
			default:
				continue // whose the request is shows only in its body or a stored object
			}
			if r := e.send(op.method, op.path, key, op.body); r.status != http.StatusForbidden {
				t.Errorf("%s with a user key that may not use it: %s; want 403", name, r)
			} else {
				checkProblem(t, r)
			}
		}
		for _, id := range []string{"get-usage", "get-trends", "get-usage-trends", "get-dashboard", "list-alerts",
			"mark-alert-read", "get-user-subscription", "get-status", "list-usage-logs", "subscribe", "cancel-subscription",
			"get-renewal-history", "get-billing-history", "record-usage", "reserve", "settle-reservation",
			"release-reservation", "preflight-check", "list-all-alerts", "create-key", "list-all-plans",
			"update-subscription", "import-prices", "create-webhook"} {
			if !seen[id] {
				t.Errorf("operation %s is not in the table", id)
			}
		}

		if len(ops) < 40 {
			t.Errorf("only %d protected operations found", len(ops))
		}

		// The reviewer's probes, and what the owner of the data gets for
		// the same invalid input: the validation error.
		for _, p := range []struct {
			method, path, key, body string
			status                  int
		}{
			{"GET", "/api/subscription/trends/alice?months=99", "", "", http.StatusUnauthorized},
			{"GET", "/api/subscription/trends/alice?months=99", bob, "", http.StatusForbidden},
			{"GET", "/api/subscription/trends/alice?months=99", alice, "", http.StatusUnprocessableEntity},
			{"GET", "/api/subscription/usage/alice?billing_period=x", bob, "", http.StatusForbidden},
			{"GET", "/api/subscription/usage/alice?billing_period=x", alice, "", http.StatusUnprocessableEntity},
			{"POST", "/api/subscription/subscribe/alice", "", `{"plan_id": 0}`, http.StatusUnauthorized},
			{"POST", "/api/subscription/subscribe/alice", bob, `{"plan_id": 0}`, http.StatusForbidden},
			{"POST", "/api/subscription/subscribe/alice", alice, `{"plan_id": 0}`, http.StatusUnprocessableEntity},
			{"GET", "/api/subscription/usage-logs?user_id=alice&limit=0", bob, "", http.StatusForbidden},
			{"GET", "/api/admin/alerts?limit=0", alice, "", http.StatusForbidden},
			{"GET", "/api/admin/alerts?limit=0", testAdminKey, "", http.StatusUnprocessableEntity},
		} {
			e.problem(e.send(p.method, p.path, p.key, p.body), p.status)
		}
	})
}

// countingKeys counts key lookups.
type countingKeys struct {
	auth.KeyStore
	lookups atomic.Int64
}

func (c *countingKeys) KeyByPrefix(ctx context.Context, prefix string) (billing.APIKey, string, error) {
	c.lookups.Add(1)
	return c.KeyStore.KeyByPrefix(ctx, prefix)
}

// TestAccessLooksKeyUpOnce pins that checking access before validation
// costs no second key lookup: the handlers read the principal the check
// found.
func TestAccessLooksKeyUpOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		keys := &countingKeys{KeyStore: e.app.DB}
		mux := http.NewServeMux()
		httpapi.New(mux, httpapi.Config{Store: e.app.DB, Meter: e.app.Meter, Preflighter: e.app.Meter,
			Auth: &auth.Authenticator{Keys: keys, AdminKey: testAdminKey, Now: e.now}, Now: e.now})
		srv := httptest.NewServer(auth.Middleware(mux))
		defer srv.Close()
		for _, rq := range []struct{ method, path, body string }{
			{"POST", "/api/subscription/usage", `{"event_id": "once-1", "provider": "openai", "model": "gpt-4", "tokens_input": 10, "tokens_output": 5}`},
			{"POST", "/api/subscription/reserve", `{"provider": "gemini", "model": "gemini-2.5-flash", "tokens_requested": 100}`},
			{"GET", "/api/subscription/usage/alice", ""},
			{"GET", "/api/subscription/usage-logs", ""},
			{"POST", "/api/subscription/preflight-check", `{"operations": [{"provider": "gemini", "operation_type": "blog"}]}`},
		} {
			before := keys.lookups.Load()
			req, err := http.NewRequest(rq.method, srv.URL+rq.path, strings.NewReader(rq.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode >= 300 {
				t.Errorf("%s %s: %d", rq.method, rq.path, res.StatusCode)
			}
			if n := keys.lookups.Load() - before; n != 1 {
				t.Errorf("%s %s looked the key up %d times; want once", rq.method, rq.path, n)
			}
		}
	})
}
