package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// keyRoutes are the admin key and all-users alert operations.
var keyRoutes = []route{
	{"POST", "/api/admin/keys", false},
	{"GET", "/api/admin/keys", false},
	{"DELETE", "/api/admin/keys/{prefix}", false},
	{"GET", "/api/admin/alerts", false},
}

// The paths join ops_test.go's API-wide checks, each once.
func init() {
	seen := map[string]bool{}
	for _, r := range keyRoutes {
		if !seen[r.path] {
			seen[r.path] = true
			routes = append(routes, r)
		}
	}
}

// keySpec is a key as the admin key routes show it: never its secret.
var keySpec = Obj{"prefix": "string", "user_id": "string", "role": Enum{"user", "admin"}, "name": "string",
	"created_at": "time", "last_used_at": Nullable{"time"}, "revoked_at": Nullable{"time"}}

// withoutAdminKey starts the app with no configured admin key, as a
// production server without ALWRITY_ADMIN_KEY: it generates one at first
// start (printed to a discarded output) and has no other admin credential.
func withoutAdminKey() envOption {
	return func(c *app.Config) { c.AdminKey = "" }
}

// sendJSON sends a JSON body with a bearer key.
func (e *env) sendJSON(method, path, key, body string) response {
	e.t.Helper()
	return e.do(method, path, key, strings.NewReader(body), "Content-Type", "application/json")
}

// issueKey creates a key through the API with adminKey and returns the
// decoded answer. The answer is the one body allowed to carry the key: it
// is dropped from the bodies the env checks, and the key and its hash join
// the secrets that must appear in no other body and no log.
func (e *env) issueKey(adminKey, body string) map[string]any {
	e.t.Helper()
	r := e.sendJSON(http.MethodPost, "/api/admin/keys", adminKey, body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create key %s: %s", body, r)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("Cache-Control %q on an answer carrying a key", cc)
	}
	m := decode(e.t, r.body)
	spec := Obj{"key": "string"}
	for k, v := range keySpec {
		spec[k] = v
	}
	check(e.t, "created key", m, spec)
	key := m["key"].(string)
	if prefix, err := auth.ParseKey(key); err != nil || prefix != m["prefix"] {
		e.t.Fatalf("key %q…: prefix %v, %v; answer says %v", key[:8], prefix, err, m["prefix"])
	}
	if m["last_used_at"] != nil || m["revoked_at"] != nil {
		e.t.Errorf("a new key used or revoked: %v", m)
	}
	e.mu.Lock()
	e.bodies = slices.DeleteFunc(e.bodies, func(b []byte) bool { return bytes.Equal(b, r.body) })
	e.mu.Unlock()
	e.secret(key)
	e.secret(auth.Hash(key))
	return m
}

// listKeys lists keys through the API and returns them by prefix.
func (e *env) listKeys(adminKey, query string) map[string]map[string]any {
	e.t.Helper()
	m := e.ok(e.get("/api/admin/keys"+query, adminKey))
	check(e.t, "keys", m, Obj{"keys": Arr{keySpec}, "total": "int"})
	out := map[string]map[string]any{}
	var order []string
	for _, k := range arr(e.t, m["keys"]) {
		k := obj(e.t, k)
		out[k["prefix"].(string)] = k
		order = append(order, k["created_at"].(string))
	}
	if integer(e.t, m["total"]) != int64(len(out)) {
		e.t.Fatalf("total %v for %d keys", m["total"], len(out))
	}
	if !slices.IsSortedFunc(order, func(a, b string) int { return strings.Compare(b, a) }) {
		e.t.Errorf("keys not newest first: %v", order)
	}
	return out
}

func TestAdminKeyRoutesAreAdminOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		prefix, _ := auth.ParseKey(alice)
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/api/admin/keys", `{"user_id": "alice"}`},
			{"POST", "/api/admin/keys", `{"role": "admin"}`},
			{"GET", "/api/admin/keys", ""},
			{"GET", "/api/admin/keys?user_id=alice", ""},
			{"DELETE", "/api/admin/keys/" + prefix, ""},
			{"GET", "/api/admin/alerts", ""},
			{"GET", "/api/admin/alerts?user_id=alice", ""},
		} {
			if r := e.sendJSON(rt.method, rt.path, alice, rt.body); r.status != http.StatusForbidden {
				t.Errorf("%s %s with a user key: %s", rt.method, rt.path, r)
			} else {
				checkProblem(t, r)
			}
			if r := e.sendJSON(rt.method, rt.path, "", rt.body); r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with no key: %s", rt.method, rt.path, r)
			}
		}
		// Nothing was issued or revoked.
		keys := e.listKeys(testAdminKey, "")
		if len(keys) != 1 || keys[prefix]["revoked_at"] != nil {
			t.Fatalf("keys after refused requests: %v", keys)
		}
		e.ok(e.get("/api/subscription/usage/alice", alice))
	})
}

// TestAdminKeys issues, lists and revokes keys over HTTP: an issued user
// key works for its user alone, an issued admin key administers, listings
// never carry a secret, and a revoked key is refused on its next request.
func TestAdminKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)

		created := e.issueKey(testAdminKey, `{"user_id": "alice", "name": "laptop"}`)
		alice := created["key"].(string)
		if created["role"] != "user" || created["user_id"] != "alice" || created["name"] != "laptop" ||
			created["created_at"] != "2026-11-15T12:00:00Z" {
			t.Errorf("created %v", created)
		}
		e.ok(e.get("/api/subscription/usage/alice", alice))
		e.problem(e.get("/api/subscription/usage/bob", alice), http.StatusForbidden)
		e.problem(e.get("/api/admin/keys", alice), http.StatusForbidden)

		admin := e.issueKey(testAdminKey, `{"role": "admin", "name": "ops"}`)
		adminKey := admin["key"].(string)
		if admin["role"] != "admin" || admin["user_id"] != "" {
			t.Errorf("admin key %v", admin)
		}
		bob := e.issueKey(adminKey, `{"user_id": "bob", "role": "user"}`) // an issued admin key administers
		e.ok(e.get("/api/subscription/usage/bob", bob["key"].(string)))

		// Listings: by prefix, newest first, never a key or a hash.
		before := len(e.bodies)
		all := e.listKeys(adminKey, "")
		if len(all) != 3 {
			t.Fatalf("%d keys listed, want 3: %v", len(all), all)
		}
		if got := all[created["prefix"].(string)]; got["last_used_at"] == nil || got["name"] != "laptop" || got["revoked_at"] != nil {
			t.Errorf("alice's key after use: %v", got)
		}
		if mine := e.listKeys(adminKey, "?user_id=alice"); len(mine) != 1 || mine[created["prefix"].(string)] == nil {
			t.Errorf("alice's keys: %v", mine)
		}
		if admins := e.listKeys(adminKey, "?role=admin"); len(admins) != 1 || admins[admin["prefix"].(string)] == nil {
			t.Errorf("admin keys: %v", admins)
		}
		if none := e.listKeys(adminKey, "?user_id=nobody"); len(none) != 0 {
			t.Errorf("keys of nobody: %v", none)
		}
		for _, body := range e.bodies[before:] {
			for _, secret := range []string{alice, auth.Hash(alice), adminKey, auth.Hash(adminKey)} {
				if bytes.Contains(body, []byte(secret)) {
					t.Fatalf("a listing carries a secret: %s", clip(body))
				}
			}
			if bytes.Contains(body, []byte(`"key"`)) || bytes.Contains(body, []byte("hash")) {
				t.Fatalf("a listing has a key or hash field: %s", clip(body))
			}
		}

		// Revocation takes effect on the next request, and again is a no-op.
		e.ok(e.get("/api/subscription/usage/alice", alice))
		e.setNow(defaultNow.Add(time.Hour))
		path := "/api/admin/keys/" + created["prefix"].(string)
		revoked := e.ok(e.do(http.MethodDelete, path, adminKey, nil))
		check(t, "revoked key", revoked, keySpec)
		if revoked["revoked_at"] != "2026-11-15T13:00:00Z" || revoked["prefix"] != created["prefix"] {
			t.Errorf("revoked %v", revoked)
		}
		r := e.get("/api/subscription/usage/alice", alice)
		e.problem(r, http.StatusUnauthorized)
		if !strings.Contains(string(r.body), "revoked") {
			t.Errorf("401 does not say the key is revoked: %s", r)
		}
		e.setNow(defaultNow.Add(2 * time.Hour))
		if again := e.ok(e.do(http.MethodDelete, path, adminKey, nil)); again["revoked_at"] != revoked["revoked_at"] {
			t.Errorf("revoking again moved revoked_at: %v, then %v", revoked["revoked_at"], again["revoked_at"])
		}
		if got := e.listKeys(adminKey, "?user_id=alice")[created["prefix"].(string)]; got["revoked_at"] != revoked["revoked_at"] {
			t.Errorf("listed as %v", got)
		}
		e.ok(e.get("/api/subscription/usage/bob", bob["key"].(string))) // other keys keep working

		// An admin key revoked by another admin is refused at once too.
		e.ok(e.do(http.MethodDelete, "/api/admin/keys/"+admin["prefix"].(string), testAdminKey, nil))
		e.problem(e.get("/api/admin/keys", adminKey), http.StatusUnauthorized)

		e.problem(e.do(http.MethodDelete, "/api/admin/keys/alw_zzzzzzzz", testAdminKey, nil), http.StatusNotFound)
		for _, bad := range []string{"alw_", "ak_u1", "ALW_ZZZZZZZZ", "alw_zzzzzzz1", bob["key"].(string)} {
			e.problem4xx(e.do(http.MethodDelete, "/api/admin/keys/"+bad, testAdminKey, nil), "path.prefix")
		}
		e.ok(e.get("/api/subscription/usage/bob", bob["key"].(string))) // its whole key in the path revoked nothing
	})
}

func TestAdminCreateKeyValidation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		for body, field := range map[string]string{
			`{}`:                      "body.user_id",
			`{"role": "user"}`:        "body.user_id",
			`{"user_id": "   "}`:      "body.user_id",
			`{"user_id": "a\nb"}`:     "body.user_id",
			`{"user_id": "a\u0000b"}`: "body.user_id",
			`{"user_id": "` + strings.Repeat("u", 129) + `"}`:                  "body.user_id",
			`{"role": "admin", "user_id": "alice"}`:                            "body.user_id",
			`{"role": "root", "user_id": "alice"}`:                             "body.role",
			`{"user_id": "alice", "name": "` + strings.Repeat("n", 129) + `"}`: "body.name",
			`{"user_id": "alice", "name": "tab\there"}`:                        "body.name",
			`{"user_id": 7}`: "body.user_id",
		} {
			e.problem4xx(e.sendJSON(http.MethodPost, "/api/admin/keys", testAdminKey, body), field)
		}
		if keys := e.listKeys(testAdminKey, ""); len(keys) != 0 {
			t.Fatalf("refused bodies issued keys: %v", keys)
		}
		// The longest user id is fine.
		long := strings.Repeat("u", 128)
		k := e.issueKey(testAdminKey, `{"user_id": "`+long+`"}`)
		e.ok(e.get("/api/subscription/usage/"+long, k["key"].(string)))
	})
}

// TestRevokeLastAdminKey: a server without ALWRITY_ADMIN_KEY keeps one
// active admin key, so no request can lock every admin out; with a
// configured key (or dev-mode loopback) any key may go.
func TestRevokeLastAdminKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow, withoutAdminKey())
		// The key generated at first start was printed, not kept: issue a
		// second one through the store, as `keys create --admin` does.
		first, _, err := auth.Issue(e.ctx, e.app.DB, auth.KeySpec{Role: billing.RoleAdmin, Name: "cli"}, e.now())
		if err != nil {
			t.Fatal(err)
		}
		e.secret(first)
		e.secret(auth.Hash(first))
		admins := e.listKeys(first, "?role=admin")
		if len(admins) != 2 {
			t.Fatalf("admin keys: %v", admins)
		}
		firstPrefix, _ := auth.ParseKey(first)
		for p := range admins {
			if p != firstPrefix {
				e.ok(e.do(http.MethodDelete, "/api/admin/keys/"+p, first, nil)) // the generated one
			}
		}

		r := e.do(http.MethodDelete, "/api/admin/keys/"+firstPrefix, first, nil)
		e.problem(r, http.StatusConflict)
		if !strings.Contains(string(r.body), "last active admin key") {
			t.Errorf("409 does not say why: %s", r)
		}
		e.ok(e.get("/api/admin/keys", first)) // still works

		second := e.issueKey(first, `{"role": "admin"}`)
		e.ok(e.do(http.MethodDelete, "/api/admin/keys/"+firstPrefix, second["key"].(string), nil))
		e.problem(e.get("/api/admin/keys", first), http.StatusUnauthorized)
		e.problem(e.do(http.MethodDelete, "/api/admin/keys/"+second["prefix"].(string), second["key"].(string), nil), http.StatusConflict)
		// A revoked admin key is not the last active one: revoking it again is fine.
		e.ok(e.do(http.MethodDelete, "/api/admin/keys/"+firstPrefix, second["key"].(string), nil))

		// Two admins revoking the last two admin keys at once: one wins,
		// the other is refused, and an admin key is left.
		for round := range 5 {
			third := e.issueKey(second["key"].(string), `{"role": "admin"}`)
			keys := []map[string]any{second, third}
			status := make([]int, 2)
			var wg sync.WaitGroup
			for i, k := range keys {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status[i] = rawDelete(t, e.srv.URL+"/api/admin/keys/"+k["prefix"].(string), k["key"].(string))
				}()
			}
			wg.Wait()
			slices.Sort(status)
			if status[0] != http.StatusOK || status[1] != http.StatusConflict {
				t.Fatalf("round %d: concurrent revocations answered %v, want one 200 and one 409", round, status)
			}
			second = workingKey(e, keys)
			if active := activeAdmins(e.listKeys(second["key"].(string), "?role=admin")); active != 1 {
				t.Fatalf("round %d: %d active admin keys", round, active)
			}
		}
	})
}

func TestRevokeLastAdminKeyWithOtherWayIn(t *testing.T) {
	for name, opt := range map[string]envOption{"configured admin key": func(*app.Config) {}, "dev loopback": withDev()} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, storetest.Backends()[0], defaultNow, opt)
			issuer := testAdminKey
			if e.app.Config.Dev {
				issuer = "" // dev mode has no configured key: key-less loopback requests are admin
			}
			only := e.issueKey(issuer, `{"role": "admin"}`)
			e.ok(e.do(http.MethodDelete, "/api/admin/keys/"+only["prefix"].(string), only["key"].(string), nil))
			e.problem(e.get("/api/admin/keys", only["key"].(string)), http.StatusUnauthorized)
		})
	}
}

// workingKey returns the key among keys that still administers.
func workingKey(e *env, keys []map[string]any) map[string]any {
	e.t.Helper()
	for _, k := range keys {
		if e.get("/api/admin/keys", k["key"].(string)).status == http.StatusOK {
			return k
		}
	}
	e.t.Fatal("no admin key works")
	return nil
}

func activeAdmins(keys map[string]map[string]any) int {
	n := 0
	for _, k := range keys {
		if k["revoked_at"] == nil {
			n++
		}
	}
	return n
}

// rawDelete sends DELETE with a bearer key from any goroutine, returning
// the status (0 on a transport error, reported).
func rawDelete(t *testing.T, url, key string) int {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodDelete, url, nil)
	if err != nil {
		t.Error(err)
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(fmt.Errorf("DELETE %s: %w", url, err))
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}
