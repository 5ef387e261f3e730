package httpapi_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// userRoutes are every route that answers only to its user (alice) or an
// admin, as method and path.
func userRoutes(aliceAlert int64) [][2]string {
	return [][2]string{
		{"GET", "/api/subscription/usage/alice"},
		{"GET", "/api/subscription/usage/alice?billing_period=2026-10"},
		{"GET", "/api/subscription/trends/alice"},
		{"GET", "/api/subscription/usage/alice/trends?months=3"},
		{"GET", "/api/subscription/dashboard/alice"},
		{"GET", "/api/subscription/alerts/alice"},
		{"POST", fmt.Sprintf("/api/subscription/alerts/%d/mark-read", aliceAlert)},
		{"GET", "/api/subscription/user/alice/subscription"},
		{"GET", "/api/subscription/status/alice"},
		{"GET", "/api/subscription/usage-logs?user_id=alice"},
	}
}

var publicRoutes = []string{
	"/api/subscription/plans", "/api/subscription/pricing", "/api/subscription/pricing?provider=gemini",
	"/api/subscription/health", "/api/openapi.json", "/healthz", "/readyz", "/metrics", "/api/docs", "/api/redoc", "/",
}

func TestAuthMatrix(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		revoked := e.revokedKey("alice")
		unknown, _, _ := auth.NewKey() // well formed, never stored
		e.secret(unknown)
		e.record(call{user: "alice", at: day(2026, 11, 2, 0)}, call{user: "bob", at: day(2026, 11, 2, 0)})
		aliceAlert := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 2, 0))

		unauthorized := map[string]string{ // case → Authorization header ("" sends none)
			"no key":          "",
			"empty bearer":    "Bearer ",
			"not bearer":      "Basic " + alice,
			"no scheme":       alice,
			"short key":       "Bearer alw_abc",
			"upper-case key":  "Bearer " + strings.ToUpper(alice),
			"foreign key":     "Bearer sk-" + strings.Repeat("a", 48),
			"unknown key":     "Bearer " + unknown,
			"revoked key":     "Bearer " + revoked,
			"wrong admin key": "Bearer " + testAdminKey + "x",
		}
		for _, rt := range userRoutes(aliceAlert) {
			name := rt[0] + " " + rt[1]
			for c, h := range unauthorized {
				var r response
				if h == "" {
					r = e.do(rt[0], rt[1], "", nil)
				} else {
					r = e.do(rt[0], rt[1], "", nil, "Authorization", h)
				}
				if r.status != http.StatusUnauthorized {
					t.Errorf("%s with %s: %s", name, c, r)
					continue
				}
				checkProblem(t, r)
				if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Errorf("%s with %s: WWW-Authenticate %q", name, c, h)
				}
			}
			if r := e.do(rt[0], rt[1], bob, nil); r.status != http.StatusForbidden {
				t.Errorf("%s with another user's key: %s", name, r)
			} else {
				checkProblem(t, r)
			}
			for c, key := range map[string]string{"own key": alice, "admin key": testAdminKey} {
				if r := e.do(rt[0], rt[1], key, nil); r.status != http.StatusOK {
					t.Errorf("%s with %s: %s", name, c, r)
				}
			}
			// The scheme is case-insensitive (RFC 9110).
			if r := e.do(rt[0], rt[1], "", nil, "Authorization", "bearer "+alice); r.status != http.StatusOK {
				t.Errorf("%s with a lower-case scheme: %s", name, r)
			}
		}

		// Public routes need no key and ignore a bad one.
		for _, p := range publicRoutes {
			for _, h := range []string{"", "Bearer nonsense", "Bearer " + revoked} {
				var r response
				if h == "" {
					r = e.get(p, "")
				} else {
					r = e.do(http.MethodGet, p, "", nil, "Authorization", h)
				}
				if r.status != http.StatusOK {
					t.Errorf("public %s with %q: %s", p, h, r)
				}
			}
		}
	})
}

func TestDevModeLoopbackIsAdmin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow, withDev())
		bob := e.userKey("bob")
		e.record(call{user: "alice", at: day(2026, 11, 2, 0)}, call{user: "bob", at: day(2026, 11, 2, 0)})
		aliceAlert := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 2, 0))
		for _, rt := range userRoutes(aliceAlert) {
			if r := e.do(rt[0], rt[1], "", nil); r.status != http.StatusOK {
				t.Errorf("dev %s %s from loopback without a key: %s", rt[0], rt[1], r)
			}
			// A key still speaks for its user.
			if r := e.do(rt[0], rt[1], bob, nil); r.status != http.StatusForbidden {
				t.Errorf("dev %s %s with bob's key: %s", rt[0], rt[1], r)
			}
		}
		// Key-less is admin: every user's logs.
		body, users, _ := e.logsOf(e.get("/api/subscription/usage-logs", ""))
		if len(users) != 2 {
			t.Errorf("dev usage-logs = %v", body)
		}
		// Not from loopback: no key is no access, even in dev mode.
		for _, remote := range []string{"192.0.2.10:40000", "[2001:db8::1]:40000", "10.0.0.1:1"} {
			req := httptest.NewRequest(http.MethodGet, "/api/subscription/usage/alice", nil)
			req.RemoteAddr = remote
			w := httptest.NewRecorder()
			e.app.Handler().ServeHTTP(w, req)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("dev request from %s without a key: %d %s", remote, w.Code, w.Body)
			}
		}
	})

	// Outside dev mode loopback is nobody special.
	e := newEnv(t, storetest.Backends()[0], defaultNow)
	e.problem(e.get("/api/subscription/usage/alice", ""), http.StatusUnauthorized)
}

// TestInternalErrorsStayInternal: with the database gone every route
// answers a 5xx that says nothing of the database, and logs the cause.
func TestInternalErrorsStayInternal(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		aliceAlert := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 2, 0))
		if err := e.app.DB.Close(); err != nil {
			t.Fatal(err)
		}
		leaks := []string{"sql", "closed", "database", "select", "subscription of", "user_subscriptions", "pgx", "sqlite", "scan", "read "}
		public := [][2]string{{"GET", "/api/subscription/plans"}, {"GET", "/api/subscription/pricing"},
			{"GET", "/api/subscription/pricing?provider=openai"}}
		paths := append(userRoutes(aliceAlert), public...)
		for _, rt := range paths {
			for _, key := range []string{testAdminKey, alice} {
				r := e.do(rt[0], rt[1], key, nil)
				// The admin key is checked in memory, and public routes
				// check none, so the route's own read fails: 500. A user's
				// key must be looked up first: the database is unavailable,
				// try again (503, Retry-After).
				status, detail := http.StatusInternalServerError, "internal error"
				if key == alice && !slices.Contains(public, rt) {
					status, detail = http.StatusServiceUnavailable, "the API key could not be checked; try again shortly"
				}
				if r.status != status {
					t.Errorf("%s %s with the database closed: %s; want %d", rt[0], rt[1], r, status)
					continue
				}
				if status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
					t.Errorf("%s %s: 503 without Retry-After", rt[0], rt[1])
				}
				p := checkProblem(t, r)
				if p["detail"] != detail {
					t.Errorf("%s %s: detail %q", rt[0], rt[1], p["detail"])
				}
				if _, ok := p["errors"]; ok {
					t.Errorf("%s %s: 5xx lists errors: %s", rt[0], rt[1], r)
				}
				low := strings.ToLower(string(r.body))
				for _, l := range leaks {
					if strings.Contains(low, l) {
						t.Errorf("%s %s: 5xx body mentions %q: %s", rt[0], rt[1], l, r.body)
					}
				}
			}
		}
		// The operator sees what went wrong.
		if !strings.Contains(e.logs.String(), "database is closed") {
			t.Errorf("the internal error is not logged")
		}
		// Health reports the database instead of failing.
		d := e.data(e.get("/api/subscription/health", ""))
		if d["status"] != "critical" || d["database"] != "unreachable" {
			t.Errorf("health with the database closed = %v", d)
		}
		if r := e.get("/readyz", ""); r.status != http.StatusServiceUnavailable || strings.Contains(string(r.body), "sql") {
			t.Errorf("/readyz with the database closed: %s", r)
		}
	})
}

// chunked hides a reader's length so the body is sent chunked.
type chunked struct{ io.Reader }

func TestOversizedBody(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		id := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 2, 0))
		path := fmt.Sprintf("/api/subscription/alerts/%d/mark-read", id)
		big := bytes.Repeat([]byte(`{"x":1}`), (4<<20)/7)
		for name, body := range map[string]io.Reader{"with length": bytes.NewReader(big), "chunked": chunked{bytes.NewReader(big)}} {
			r := e.do(http.MethodPost, path, alice, body, "Content-Type", "application/json")
			e.problem(r, http.StatusRequestEntityTooLarge)
			if d := e.data(e.get("/api/subscription/alerts/alice", alice)); num(t, d["unread_count"]) != "1" {
				t.Fatalf("an oversized request (%s) marked the alert read", name)
			}
		}
		// A small body (clients often send {}) is fine.
		e.ok(e.do(http.MethodPost, path, alice, strings.NewReader(`{}`), "Content-Type", "application/json"))
		if d := e.data(e.get("/api/subscription/alerts/alice", alice)); num(t, d["unread_count"]) != "0" {
			t.Errorf("mark-read with {} did not mark the alert read")
		}
	})
}

// TestKeysNeverLeak sends keys everywhere a careless server might echo them
// from; newEnv's cleanup then checks every body and log line for them.
func TestKeysNeverLeak(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		revoked := e.revokedKey("alice")
		for _, key := range []string{alice, bob, revoked, testAdminKey} {
			for _, rt := range userRoutes(1) {
				e.do(rt[0], rt[1], key, nil)
				e.do(rt[0], rt[1], "", nil, "Authorization", "Basic "+key)
				e.do(rt[0], rt[1], "", nil, "Authorization", "Bearer "+key+"x")
			}
		}
		e.get("/metrics", "")
		if !strings.Contains(e.logs.String(), "Billing and subscription tables created successfully") {
			t.Errorf("logs were not captured")
		}
	})
}
