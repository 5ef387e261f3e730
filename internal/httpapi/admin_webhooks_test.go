package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/internal/webhook"
	"github.com/alwrity/alwrity-billing/webhooks"
)

// webhookRoutes are the admin webhook operations.
var webhookRoutes = []route{
	{"POST", "/api/admin/webhooks", false},
	{"GET", "/api/admin/webhooks", false},
	{"GET", "/api/admin/webhooks/{id}", false},
	{"DELETE", "/api/admin/webhooks/{id}", false},
	{"POST", "/api/admin/webhooks/{id}/rotate-secret", false},
	{"GET", "/api/admin/webhooks/{id}/deliveries", false},
	{"POST", "/api/admin/webhooks/{id}/test", false},
}

// The paths join ops_test.go's API-wide checks, each once.
func init() {
	seen := map[string]bool{}
	for _, r := range webhookRoutes {
		if !seen[r.path] {
			seen[r.path] = true
			routes = append(routes, r)
		}
	}
}

func checkEndpoint(t *testing.T, m map[string]any, withSecret bool) {
	t.Helper()
	spec := Obj{"id": "int", "url": "string", "events": Arr{Enum(webhooks.EventTypes())}, "description": "string",
		"active": "bool", "created_at": "time", "deactivated_at": Nullable{"time"}, "secret_rotated_at": Nullable{"time"}}
	if withSecret {
		spec["secret"] = "string"
	}
	check(t, "endpoint", m, spec)
}

// TestAdminWebhooks drives the admin webhook API end to end: bad input
// is refused and changes nothing, an endpoint is registered, a test event
// reaches a receiver signed with the secret shown once, deliveries list
// their attempts, the secret rotates and the endpoint is deactivated.
func TestAdminWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		user := e.userKey("u1")
		const base = "/api/admin/webhooks"

		// Admin only.
		e.problem(e.do(http.MethodGet, base, "", nil), http.StatusUnauthorized)
		e.problem(e.do(http.MethodGet, base, user, nil), http.StatusForbidden)
		e.problem(e.do(http.MethodPost, base, user, strings.NewReader(`{"url":"https://x.example/h","events":["alert.created"]}`),
			"Content-Type", "application/json"), http.StatusForbidden)

		// Bad input: a 4xx naming what is wrong, and nothing stored.
		for _, c := range []struct{ body, location string }{
			{`{"url":"ftp://x.example/h","events":["alert.created"]}`, "body.url"},
			{`{"url":"not a url","events":["alert.created"]}`, "body.url"},
			{`{"url":"https://","events":["alert.created"]}`, "body.url"},
			{`{"url":"https://me:pw@x.example/h","events":["alert.created"]}`, "body.url"},
			{`{"url":"https://x.example/h#frag","events":["alert.created"]}`, "body.url"},
			{`{"url":"","events":["alert.created"]}`, "body.url"},
			{`{"url":"https://x.example/` + strings.Repeat("a", 2100) + `","events":["alert.created"]}`, "body.url"},
			{`{"events":["alert.created"]}`, "url"},
			{`{"url":"https://x.example/h"}`, "events"},
			{`{"url":"https://x.example/h","events":[]}`, "body.events"},
			{`{"url":"https://x.example/h","events":["alert.created","alert.deleted"]}`, "body.events[1]"},
			{`{"url":"https://x.example/h","events":["alert.created","alert.created"]}`, "body.events"},
			{`{"url":"https://x.example/h","events":"alert.created"}`, "body.events"},
			{`{"url":"https://x.example/h","events":["alert.created"],"secret":"mine"}`, "secret"},
			{`{"url":"https://x.example/h","events":["alert.created"],"description":"` + strings.Repeat("d", 501) + `"}`, "body.description"},
			{`{"url":`, "body"},
		} {
			e.problem4xx(e.admin(http.MethodPost, base, c.body), c.location)
		}
		list := e.ok(e.get(base, testAdminKey))
		if integer(t, list["total"]) != 0 {
			t.Fatalf("bad input stored an endpoint: %v", list)
		}

		// A receiver that checks every signature with the public package.
		var mu sync.Mutex
		var secrets []string
		got := map[string]int{}
		var bad []string
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, s := range secrets {
				ev, err := webhooks.ParseEvent(s, r.Header.Get(webhooks.SignatureHeader), body, 0, e.now())
				if err != nil {
					bad = append(bad, fmt.Sprintf("secret %d: %v", i, err))
					continue
				}
				got[s+" "+ev.ID]++
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(rcv.Close)

		r := e.admin(http.MethodPost, base, `{"url":"`+rcv.URL+`/hook","events":["usage.limit_reached","alert.created"],"description":"ops"}`)
		if r.status != http.StatusCreated {
			t.Fatalf("create: %s", r)
		}
		created := decode(t, r.body)
		checkEndpoint(t, created, true)
		secret := created["secret"].(string)
		if !strings.HasPrefix(secret, webhook.SecretPrefix) || len(secret) < 40 {
			t.Fatalf("secret %q", secret)
		}
		if ev := arr(t, created["events"]); len(ev) != 2 || ev[0] != "alert.created" || ev[1] != "usage.limit_reached" {
			t.Fatalf("events %v", ev)
		}
		id := integer(t, created["id"])
		path := fmt.Sprintf("%s/%d", base, id)
		mu.Lock()
		secrets = append(secrets, secret)
		mu.Unlock()

		// Listed and read without the secret.
		list = e.ok(e.get(base, testAdminKey))
		if integer(t, list["total"]) != 1 {
			t.Fatalf("list %v", list)
		}
		checkEndpoint(t, obj(t, arr(t, list["webhooks"])[0]), false)
		one := e.ok(e.get(path, testAdminKey))
		checkEndpoint(t, one, false)
		if one["description"] != "ops" || one["active"] != true {
			t.Fatalf("get %v", one)
		}
		e.problem(e.get(base+"/999", testAdminKey), http.StatusNotFound)
		e.problem4xx(e.get(base+"/abc", testAdminKey), "path.id")
		e.problem4xx(e.get(base+"/0", testAdminKey), "path.id")
		e.problem4xx(e.get(path+"/deliveries?status=lost", testAdminKey), "query.status")
		e.problem4xx(e.get(path+"/deliveries?limit=0", testAdminKey), "query.limit")
		e.problem(e.get(base+"/999/deliveries", testAdminKey), http.StatusNotFound)

		// A test event goes out signed and shows up with its attempt.
		w := webhook.New(webhook.Config{Store: e.app.DB, Now: e.now, Client: rcv.Client()})
		r = e.admin(http.MethodPost, path+"/test", "")
		if r.status != http.StatusAccepted {
			t.Fatalf("test: %s", r)
		}
		eventID := decode(t, r.body)["event_id"].(string)
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		page := e.ok(e.get(path+"/deliveries", testAdminKey))
		check(t, "deliveries", page, Obj{"deliveries": Arr{Obj{"id": "int", "event_id": "string", "event_type": "string",
			"event_created_at": "time", "status": Enum{"pending", "delivered", "failed"}, "attempts": "int",
			"next_attempt_at": Nullable{"time"}, "last_status": Nullable{"int"}, "last_error": "string",
			"delivered_at": Nullable{"time"}, "created_at": "time",
			"attempt_log": Arr{Obj{"attempt": "int", "attempted_at": "time", "status_code": Nullable{"int"}, "error": "string",
				"duration_ms": "int"}}}}, "total_count": "int", "limit": "int", "offset": "int", "has_more": "bool"})
		d := obj(t, arr(t, page["deliveries"])[0])
		if d["event_id"] != eventID || d["event_type"] != "ping" || d["status"] != "delivered" || integer(t, d["attempts"]) != 1 {
			t.Fatalf("delivery %v", d)
		}
		if a := obj(t, arr(t, d["attempt_log"])[0]); integer(t, a["status_code"]) != 204 || integer(t, a["attempt"]) != 1 {
			t.Fatalf("attempt %v", a)
		}

		// Rotation: a new secret, shown once; the old one signs beside it
		// during the grace period.
		r = e.admin(http.MethodPost, path+"/rotate-secret?grace_seconds=3600", "")
		rotated := e.ok(r)
		checkEndpoint(t, rotated, true)
		newSecret := rotated["secret"].(string)
		if newSecret == secret || !strings.HasPrefix(newSecret, webhook.SecretPrefix) {
			t.Fatalf("rotated secret %q", newSecret)
		}
		mu.Lock()
		secrets = append(secrets, newSecret)
		mu.Unlock()
		e.problem4xx(e.admin(http.MethodPost, path+"/rotate-secret?grace_seconds=-1", ""), "query.grace_seconds")
		r = e.admin(http.MethodPost, path+"/test", "")
		second := decode(t, r.body)["event_id"].(string)
		if _, err := w.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if got[secret+" "+second] != 1 || got[newSecret+" "+second] != 1 || len(bad) != 0 {
			t.Errorf("after rotation: received %v, refused %v", got, bad)
		}
		mu.Unlock()

		// Deactivation keeps the endpoint and its history.
		off := e.ok(e.do(http.MethodDelete, path, testAdminKey, nil))
		checkEndpoint(t, off, false)
		if off["active"] != false || off["deactivated_at"] == nil {
			t.Fatalf("deactivated %v", off)
		}
		e.ok(e.do(http.MethodDelete, path, testAdminKey, nil))
		e.problem(e.do(http.MethodDelete, base+"/999", testAdminKey, nil), http.StatusNotFound)
		e.problem(e.admin(http.MethodPost, path+"/test", ""), http.StatusConflict)
		e.problem(e.admin(http.MethodPost, path+"/rotate-secret", ""), http.StatusConflict)
		if page := e.ok(e.get(path+"/deliveries?limit=1", testAdminKey)); integer(t, page["total_count"]) != 2 || page["has_more"] != true {
			t.Fatalf("history after deactivation: %v", page)
		}

		// Secrets appear only in the answers that show them once, and never
		// in a log.
		for _, s := range []string{secret, newSecret} {
			if strings.Contains(e.logs.String(), s) {
				t.Errorf("a webhook secret is in the logs")
			}
			n := 0
			e.mu.Lock()
			for _, body := range e.bodies {
				if strings.Contains(string(body), s) {
					n++
				}
			}
			e.mu.Unlock()
			if n != 1 {
				t.Errorf("a webhook secret appears in %d response bodies, want 1", n)
			}
		}
	})
}
