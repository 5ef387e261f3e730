package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// logSpec is a usage-log row: the contract's fields plus our token buckets,
// ids and flags.
var logSpec = Obj{
	"id": "int", "timestamp": "time", "provider": "string", "model_used": "string", "endpoint": "string",
	"method": "string", "tokens_input": "int", "tokens_output": "int", "tokens_total": "int",
	"cost_input": "number", "cost_output": "number", "cost_total": "number", "response_time": "float",
	"status_code": "int", "status": Enum{"success", "failed"}, "error_message": Nullable{"string"},
	"billing_period": "period", "retry_count": "int",
	// Ours.
	"event_id": "string", "user_id": "string", "tokens_cached_input": "int", "tokens_cache_write_5m": "int",
	"tokens_cache_write_1h": "int", "tokens_reasoning": "int", "unpriced": "bool", "partial": "bool",
}

var logsBodySpec = Obj{"logs": Arr{logSpec}, "total_count": "int", "limit": "int", "offset": "int", "has_more": "bool",
	"next_cursor": Nullable{"string"}}

// logsOf asserts a logs body (no envelope) and returns it with the users
// and timestamps of its rows.
func (e *env) logsOf(r response) (body map[string]any, users, times []string) {
	e.t.Helper()
	body = e.ok(r)
	check(e.t, "usage-logs", body, logsBodySpec)
	for _, l := range arr(e.t, body["logs"]) {
		users = append(users, obj(e.t, l)["user_id"].(string))
		times = append(times, obj(e.t, l)["timestamp"].(string))
	}
	return body, users, times
}

func TestUsageLogs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		e.record(
			call{user: "alice", provider: "openai", model: "gpt-4", at: day(2026, 11, 10, 0), in: 1000, out: 500, cost: "0.06", rt: 0.25},
			call{user: "alice", provider: "gemini", model: "gemini-pro", at: day(2026, 11, 11, 0), in: 10, out: 10, cost: "0.00002"},
			call{user: "alice", provider: "openai", model: "gpt-4", at: day(2026, 11, 12, 0), status: 429, errMsg: "rate limited"},
			call{user: "alice", provider: "openai", model: "gpt-4", at: day(2026, 10, 5, 0), in: 1, out: 1, cost: "0.00009"},
			call{user: "bob", provider: "mistral", model: "mistral-7b", at: day(2026, 11, 13, 0), in: 5, out: 5},
		)

		// A user key reads its own logs, newest first.
		body, users, times := e.logsOf(e.get("/api/subscription/usage-logs", alice))
		if len(users) != 4 || num(t, body["total_count"]) != "4" || body["has_more"] != false ||
			num(t, body["limit"]) != "50" || num(t, body["offset"]) != "0" {
			t.Fatalf("alice's logs = %v", body)
		}
		for _, u := range users {
			if u != "alice" {
				t.Errorf("alice reads a log of %s", u)
			}
		}
		if want := []string{"2026-11-12T00:00:00Z", "2026-11-11T00:00:00Z", "2026-11-10T00:00:00Z", "2026-10-05T00:00:00Z"}; !equal(times, want) {
			t.Errorf("timestamps = %v, want %v", times, want)
		}
		logs := arr(t, body["logs"])
		failed, first := obj(t, logs[0]), obj(t, logs[2])
		if failed["status"] != "failed" || num(t, failed["status_code"]) != "429" || failed["error_message"] != "rate limited" {
			t.Errorf("failed log = %v", failed)
		}
		if first["status"] != "success" || first["error_message"] != nil || num(t, first["tokens_total"]) != "1500" ||
			num(t, first["cost_total"]) != "0.06" || float(t, first["response_time"]) != 0.25 || first["billing_period"] != "2026-11" ||
			first["model_used"] != "gpt-4" || first["provider"] != "openai" || first["method"] != "POST" {
			t.Errorf("log = %v", first)
		}

		// Its own user_id is allowed, another's is not.
		if _, users, _ := e.logsOf(e.get("/api/subscription/usage-logs?user_id=alice", alice)); len(users) != 4 {
			t.Errorf("alice with user_id=alice: %v", users)
		}
		e.problem(e.get("/api/subscription/usage-logs?user_id=bob", alice), http.StatusForbidden)
		if _, users, _ := e.logsOf(e.get("/api/subscription/usage-logs", bob)); !equal(users, []string{"bob"}) {
			t.Errorf("bob's logs: %v", users)
		}

		// An admin reads everyone's, or one user's.
		if body, users, _ := e.logsOf(e.get("/api/subscription/usage-logs", testAdminKey)); len(users) != 5 || num(t, body["total_count"]) != "5" {
			t.Errorf("admin reads %v", users)
		}
		if _, users, _ := e.logsOf(e.get("/api/subscription/usage-logs?user_id=bob", testAdminKey)); !equal(users, []string{"bob"}) {
			t.Errorf("admin with user_id=bob: %v", users)
		}

		// Paging.
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?limit=2", alice))
		if !equal(times, []string{"2026-11-12T00:00:00Z", "2026-11-11T00:00:00Z"}) || body["has_more"] != true ||
			num(t, body["total_count"]) != "4" || num(t, body["limit"]) != "2" {
			t.Errorf("page 1 = %v", body)
		}
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?limit=2&offset=2", alice))
		if !equal(times, []string{"2026-11-10T00:00:00Z", "2026-10-05T00:00:00Z"}) || body["has_more"] != false ||
			num(t, body["offset"]) != "2" {
			t.Errorf("page 2 = %v", body)
		}
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?limit=3&offset=1", alice))
		if len(times) != 3 || body["has_more"] != false {
			t.Errorf("limit=3&offset=1 = %v", body)
		}
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?offset=10", alice))
		if len(times) != 0 || body["has_more"] != false || num(t, body["total_count"]) != "4" {
			t.Errorf("past the end = %v", body)
		}
		for _, l := range []string{"1", "5000"} {
			e.logsOf(e.get("/api/subscription/usage-logs?limit="+l, alice))
		}
		for _, bad := range []string{"0", "5001", "-1", "ten"} {
			e.problem4xx(e.get("/api/subscription/usage-logs?limit="+bad, alice), "query.limit")
		}
		e.problem4xx(e.get("/api/subscription/usage-logs?offset=-1", alice), "query.offset")

		// Filters.
		body, _, _ = e.logsOf(e.get("/api/subscription/usage-logs?provider=gemini", alice))
		if l := arr(t, body["logs"]); len(l) != 1 || obj(t, l[0])["provider"] != "gemini" || num(t, body["total_count"]) != "1" {
			t.Errorf("provider=gemini = %v", body)
		}
		body, _, _ = e.logsOf(e.get("/api/subscription/usage-logs?status_code=429", alice))
		if l := arr(t, body["logs"]); len(l) != 1 || num(t, obj(t, l[0])["status_code"]) != "429" {
			t.Errorf("status_code=429 = %v", body)
		}
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?billing_period=2026-10", alice))
		if !equal(times, []string{"2026-10-05T00:00:00Z"}) || num(t, body["total_count"]) != "1" {
			t.Errorf("billing_period=2026-10 = %v", body)
		}
		body, _, times = e.logsOf(e.get("/api/subscription/usage-logs?provider=openai&billing_period=2026-11&status_code=200", alice))
		if !equal(times, []string{"2026-11-10T00:00:00Z"}) {
			t.Errorf("combined filters = %v", body)
		}
		if body, _, _ := e.logsOf(e.get("/api/subscription/usage-logs?provider=stability", alice)); len(arr(t, body["logs"])) != 0 {
			t.Errorf("provider=stability = %v", body)
		}
		e.problem4xx(e.get("/api/subscription/usage-logs?provider=nope", alice), "query.provider")
		for _, bad := range []string{"2026-13", "nov", "2026-1"} {
			e.problem4xx(e.get("/api/subscription/usage-logs?billing_period="+bad, alice), "query.billing_period")
		}
		e.problem4xx(e.get("/api/subscription/usage-logs?status_code=600", alice), "query.status_code")

		// A user without a key is refused.
		e.problem(e.get("/api/subscription/usage-logs", ""), http.StatusUnauthorized)
	})
}

// TestUsageLogsCursor pages by next_cursor and checks each page against
// offset paging, the counts of status filters, and that anything but a
// returned cursor is a clear 422 naming query.cursor.
func TestUsageLogsCursor(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		carol := e.userKey("carol")
		var calls []call
		for i := range 23 {
			c := call{user: "carol", provider: "openai", at: day(2026, 11, 1+i%12, 0), rt: 0.1}
			if i%3 == 0 {
				c.provider = "gemini"
			}
			switch i % 5 {
			case 1:
				c.status = 429
			case 2:
				c.status = 500
			}
			calls = append(calls, c) // equal timestamps: ties are broken by id
		}
		calls = append(calls, call{user: "dave", provider: "openai", at: day(2026, 11, 5, 0)})
		e.record(calls...)

		for _, q := range []string{"", "&provider=gemini", "&status_code=200", "&status_code=429", "&status_code=500&provider=openai",
			"&status_code=404", "&billing_period=2026-11&status_code=500"} {
			_, _, want := e.logsOf(e.get("/api/subscription/usage-logs?limit=100"+q, carol))
			var got []string
			path := "/api/subscription/usage-logs?limit=4" + q
			for page := 0; ; page++ {
				body, users, times := e.logsOf(e.get(path, carol))
				if n := num(t, body["total_count"]); n != fmt.Sprint(len(want)) {
					t.Fatalf("%s: total_count %s, want %d", path, n, len(want))
				}
				for _, u := range users {
					if u != "carol" {
						t.Fatalf("%s: a log of %s", path, u)
					}
				}
				// The same page by offset.
				_, _, byOffset := e.logsOf(e.get(fmt.Sprintf("/api/subscription/usage-logs?limit=4&offset=%d%s", 4*page, q), carol))
				if !equal(times, byOffset) {
					t.Fatalf("%s: page %d by cursor %v, by offset %v", q, page, times, byOffset)
				}
				got = append(got, times...)
				next, _ := body["next_cursor"].(string)
				if more := body["has_more"] == true; more != (next != "") || more != (len(got) < len(want)) {
					t.Fatalf("%s: has_more %v with next_cursor %q after %d of %d", path, body["has_more"], next, len(got), len(want))
				}
				if next == "" {
					break
				}
				path = "/api/subscription/usage-logs?limit=4" + q + "&cursor=" + next
			}
			if !equal(got, want) {
				t.Fatalf("%s: pages %v, want %v", q, got, want)
			}
		}
		// Counts of status filters, from the calls above.
		for q, want := range map[string]string{"200": "13", "429": "5", "500": "5", "404": "0"} {
			body, _, _ := e.logsOf(e.get("/api/subscription/usage-logs?status_code="+q, testAdminKey))
			if num(t, body["total_count"]) != map[bool]string{true: "14", false: want}[q == "200"] {
				t.Errorf("all users, status_code=%s: total_count %v", q, body["total_count"])
			}
			body, _, _ = e.logsOf(e.get("/api/subscription/usage-logs?status_code="+q, carol))
			if num(t, body["total_count"]) != want {
				t.Errorf("carol, status_code=%s: total_count %v, want %s", q, body["total_count"], want)
			}
		}

		// A cursor names a position, not a user: another user's cursor
		// still reads only the caller's logs.
		body, _, _ := e.logsOf(e.get("/api/subscription/usage-logs?limit=1", testAdminKey))
		next := body["next_cursor"].(string)
		if _, users, _ := e.logsOf(e.get("/api/subscription/usage-logs?cursor="+next, carol)); len(users) == 0 {
			t.Errorf("carol with the admin's cursor read nothing")
		}

		valid := encodeCursorText("v1:1700000000000000:5")
		if _, _, times := e.logsOf(e.get("/api/subscription/usage-logs?cursor="+valid, carol)); len(times) != 0 {
			t.Errorf("a cursor before every log returns %v", times)
		}
		for _, bad := range []string{
			"x", "!!!!", "djE6", valid + "=", valid + "A",
			encodeCursorText("v2:1700000000000000:5"), encodeCursorText("v1:1700000000000000"),
			encodeCursorText("v1:1700000000000000:0"), encodeCursorText("v1:1700000000000000:-3"),
			encodeCursorText("v1:+1700000000000000:5"), encodeCursorText("v1:01700000000000000:5"),
			encodeCursorText("v1:99999999999999999999:5"), encodeCursorText("v1:1700000000000000:5:6"),
			strings.Repeat("A", 65), strings.Repeat("djE6", 1000),
		} {
			p := e.problem4xx(e.get("/api/subscription/usage-logs?cursor="+url.QueryEscape(bad), carol), "query.cursor")
			if num(t, p["status"]) != "422" {
				t.Errorf("cursor %q: status %v", bad, p["status"])
			}
		}
		p := e.problem4xx(e.get("/api/subscription/usage-logs?offset=4&cursor="+valid, carol), "query.offset")
		if num(t, p["status"]) != "422" {
			t.Errorf("cursor with offset: status %v", p["status"])
		}
	})
}

// encodeCursorText writes cursor text the way the API encodes it, so tests
// can build valid and almost-valid cursors.
func encodeCursorText(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
