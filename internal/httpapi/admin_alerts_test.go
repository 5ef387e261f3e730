package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// adminAlertsDataSpec is GET /api/admin/alerts's data: the user route's
// alerts, each with its user, and the page.
func adminAlertsDataSpec() Obj {
	alert := Obj{"user_id": "string"}
	for k, v := range alertSpec {
		alert[k] = v
	}
	return Obj{"alerts": Arr{alert}, "total": "int", "unread_count": "int", "limit": "int", "offset": "int", "has_more": "bool"}
}

// TestAdminAlerts lists the alerts of every user and the admin alerts,
// newest first, through each filter and page.
func TestAdminAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		a1 := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 3, 0))
		b1 := e.alert("bob", "2026-11", "total_calls", day(2026, 11, 4, 0))
		a0 := e.alert("alice", "2026-10", "monthly_cost", day(2026, 10, 20, 0))
		unpriced, _, err := e.app.DB.CreateAlert(e.ctx, billing.Alert{Type: billing.AlertUnpricedModel, LimitKey: "gpt-9",
			Provider: "openai", Title: "Unpriced model", Message: "openai/gpt-9 has no price", Severity: "warning",
			BillingPeriod: "2026-11"}, day(2026, 11, 6, 0))
		if err != nil {
			t.Fatal(err)
		}

		list := func(query string) map[string]any {
			t.Helper()
			d := e.data(e.get("/api/admin/alerts"+query, testAdminKey))
			check(t, "admin alerts"+query, d, adminAlertsDataSpec())
			return d
		}
		expect := func(query string, want []int64, total, unread int64, hasMore bool) {
			t.Helper()
			d := list(query)
			if got := fmt.Sprint(ids(t, arr(t, d["alerts"]))); got != fmt.Sprint(want) {
				t.Errorf("%s: alerts %v, want %v", query, got, want)
			}
			if integer(t, d["total"]) != total || integer(t, d["unread_count"]) != unread || d["has_more"] != hasMore {
				t.Errorf("%s: total %v unread %v has_more %v; want %d %d %v", query, d["total"], d["unread_count"],
					d["has_more"], total, unread, hasMore)
			}
		}

		d := list("")
		alerts := arr(t, d["alerts"])
		if got := fmt.Sprint(ids(t, alerts)); got != fmt.Sprint([]int64{unpriced, b1, a1, a0}) {
			t.Fatalf("alerts %v, want newest first %v", got, []int64{unpriced, b1, a1, a0})
		}
		users := []any{}
		for _, a := range alerts {
			users = append(users, obj(t, a)["user_id"])
		}
		if fmt.Sprint(users) != "[ bob alice alice]" {
			t.Errorf("users %q", users)
		}
		if admin := obj(t, alerts[0]); admin["type"] != "unpriced_model" || admin["provider"] != "openai" {
			t.Errorf("admin alert %v", admin)
		}
		if integer(t, d["limit"]) != 50 || integer(t, d["offset"]) != 0 {
			t.Errorf("page %v %v", d["limit"], d["offset"])
		}

		expect("?user_id=alice", []int64{a1, a0}, 2, 2, false)
		expect("?user_id=bob", []int64{b1}, 1, 1, false)
		expect("?user_id=carol", []int64{}, 0, 0, false)
		expect("?type=unpriced_model", []int64{unpriced}, 1, 1, false)
		expect("?type=usage_warning&user_id=alice", []int64{a1, a0}, 2, 2, false)
		expect("?type=limit_reached", []int64{}, 0, 0, false)
		expect("?billing_period=2026-10", []int64{a0}, 1, 1, false)
		expect("?limit=2", []int64{unpriced, b1}, 4, 4, true)
		expect("?limit=2&offset=2", []int64{a1, a0}, 4, 4, false)
		expect("?limit=2&offset=8", []int64{}, 4, 4, false)

		// Reading one of alice's alerts: unread filters and counts follow.
		e.ok(e.post(fmt.Sprintf("/api/subscription/alerts/%d/mark-read", a1), alice))
		expect("", []int64{unpriced, b1, a1, a0}, 4, 3, false)
		expect("?unread_only=true", []int64{unpriced, b1, a0}, 3, 3, false)
		expect("?unread_only=true&user_id=alice", []int64{a0}, 1, 1, false)

		for _, bad := range []string{"?type=nope", "?billing_period=11-2026", "?limit=0", "?limit=101", "?offset=-1"} {
			r := e.get("/api/admin/alerts"+bad, testAdminKey)
			if r.status < 400 || r.status > 499 {
				t.Errorf("%s: %s", bad, r)
			}
		}
		// Only admins: a user key is refused even for its own alerts.
		e.problem(e.get("/api/admin/alerts?user_id=alice", alice), http.StatusForbidden)
		e.problem(e.get("/api/admin/alerts", ""), http.StatusUnauthorized)
	})
}
