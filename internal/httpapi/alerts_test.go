package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var alertSpec = Obj{
	"id": "int", "type": "string", "threshold_percentage": "int", "provider": Nullable{"string"},
	"title": "string", "message": "string", "severity": Enum{"info", "warning", "error"},
	"is_sent": "bool", "sent_at": Nullable{"time"}, "is_read": "bool", "read_at": Nullable{"time"},
	"billing_period": "period", "created_at": "time",
}

var alertsDataSpec = Obj{"alerts": Arr{alertSpec}, "total": "int", "unread_count": "int"}

func ids(t *testing.T, alerts []any) []int64 {
	t.Helper()
	var out []int64
	for _, a := range alerts {
		out = append(out, integer(t, obj(t, a)["id"]))
	}
	return out
}

func TestAlerts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice, bob := e.userKey("alice"), e.userKey("bob")
		a1 := e.alert("alice", "2026-11", "total_calls", day(2026, 11, 3, 0))
		a2 := e.alert("alice", "2026-11", "monthly_cost", day(2026, 11, 5, 0))
		a3, _, err := e.app.DB.CreateAlert(e.ctx, billing.Alert{UserID: "alice", Type: billing.AlertLimitReached,
			LimitKey: "gemini_calls", ThresholdPercentage: 100, Provider: "gemini", Title: "Limit reached",
			Message: "gemini calls used up", Severity: "error", BillingPeriod: "2026-11"}, day(2026, 11, 7, 0))
		if err != nil {
			t.Fatal(err)
		}
		a0 := e.alert("alice", "2026-10", "total_calls", day(2026, 10, 28, 0))
		bobs := e.alert("bob", "2026-11", "total_calls", day(2026, 11, 8, 0))

		d := e.data(e.get("/api/subscription/alerts/alice", alice))
		check(t, "alerts", d, alertsDataSpec)
		alerts := arr(t, d["alerts"])
		if got := fmt.Sprint(ids(t, alerts)); got != fmt.Sprint([]int64{a3, a2, a1, a0}) {
			t.Errorf("alerts = %v, want newest first %v", got, []int64{a3, a2, a1, a0})
		}
		if num(t, d["total"]) != "4" || num(t, d["unread_count"]) != "4" {
			t.Errorf("total %v unread %v", d["total"], d["unread_count"])
		}
		first := obj(t, alerts[0])
		if first["provider"] != "gemini" || first["type"] != "limit_reached" || num(t, first["threshold_percentage"]) != "100" ||
			first["severity"] != "error" || first["is_read"] != false || first["read_at"] != nil || first["is_sent"] != false ||
			first["billing_period"] != "2026-11" || first["created_at"] != "2026-11-07T00:00:00Z" {
			t.Errorf("alert = %v", first)
		}
		if obj(t, alerts[1])["provider"] != nil {
			t.Errorf("an alert about no provider has provider %v", obj(t, alerts[1])["provider"])
		}

		// Mark one read: the count drops, the alert says when.
		e.setNow(defaultNow.Add(90 * 60e9))
		r := e.post(fmt.Sprintf("/api/subscription/alerts/%d/mark-read", a2), alice)
		m := e.ok(r)
		check(t, "mark-read", m, Obj{"success": "bool", "message": "string"})
		if m["success"] != true || m["message"] != "Alert marked as read" {
			t.Errorf("mark-read = %v", m)
		}
		d = e.data(e.get("/api/subscription/alerts/alice", alice))
		if num(t, d["total"]) != "4" || num(t, d["unread_count"]) != "3" {
			t.Errorf("after mark-read: total %v unread %v", d["total"], d["unread_count"])
		}
		read := obj(t, arr(t, d["alerts"])[1])
		if integer(t, read["id"]) != a2 || read["is_read"] != true || read["read_at"] != "2026-11-15T13:30:00Z" {
			t.Errorf("read alert = %v", read)
		}
		// Marking again changes nothing, not even read_at.
		e.setNow(defaultNow.Add(3 * 3600e9))
		e.ok(e.post(fmt.Sprintf("/api/subscription/alerts/%d/mark-read", a2), testAdminKey))
		d = e.data(e.get("/api/subscription/alerts/alice", alice))
		if read := obj(t, arr(t, d["alerts"])[1]); read["read_at"] != "2026-11-15T13:30:00Z" || num(t, d["unread_count"]) != "3" {
			t.Errorf("after marking twice: %v", read)
		}

		d = e.data(e.get("/api/subscription/alerts/alice?unread_only=true", alice))
		check(t, "alerts", d, alertsDataSpec)
		if got := fmt.Sprint(ids(t, arr(t, d["alerts"]))); got != fmt.Sprint([]int64{a3, a1, a0}) || num(t, d["total"]) != "3" ||
			num(t, d["unread_count"]) != "3" {
			t.Errorf("unread_only: %v total %v unread %v", got, d["total"], d["unread_count"])
		}
		d = e.data(e.get("/api/subscription/alerts/alice?unread_only=false&limit=2", alice))
		if got := fmt.Sprint(ids(t, arr(t, d["alerts"]))); got != fmt.Sprint([]int64{a3, a2}) || num(t, d["total"]) != "4" {
			t.Errorf("limit=2: %v total %v", got, d["total"])
		}
		for _, l := range []string{"1", "100"} {
			e.data(e.get("/api/subscription/alerts/alice?limit="+l, alice))
		}
		for _, bad := range []string{"0", "101", "-5", "x"} {
			e.problem4xx(e.get("/api/subscription/alerts/alice?limit="+bad, alice), "query.limit")
		}
		e.problem4xx(e.get("/api/subscription/alerts/alice?unread_only=maybe", alice), "query.unread_only")

		// Errors of mark-read.
		for _, bad := range []string{"abc", "0", "-1", "1.5"} {
			e.problem4xx(e.post("/api/subscription/alerts/"+bad+"/mark-read", alice), "path.alert_id")
		}
		e.problem(e.post("/api/subscription/alerts/999999/mark-read", alice), http.StatusNotFound)
		e.problem(e.post("/api/subscription/alerts/999999/mark-read", testAdminKey), http.StatusNotFound)
		e.problem(e.post(fmt.Sprintf("/api/subscription/alerts/%d/mark-read", bobs), alice), http.StatusForbidden)
		d = e.data(e.get("/api/subscription/alerts/bob", bob))
		if got := fmt.Sprint(ids(t, arr(t, d["alerts"]))); got != fmt.Sprint([]int64{bobs}) || num(t, d["unread_count"]) != "1" {
			t.Errorf("bob's alerts after alice tried to mark one: %v unread %v", got, d["unread_count"])
		}
		e.ok(e.post(fmt.Sprintf("/api/subscription/alerts/%d/mark-read", bobs), bob))
		if d := e.data(e.get("/api/subscription/alerts/bob", bob)); num(t, d["unread_count"]) != "0" {
			t.Errorf("bob unread = %v", d["unread_count"])
		}

		// A user without alerts.
		d = e.data(e.get("/api/subscription/alerts/carol", testAdminKey))
		check(t, "alerts", d, alertsDataSpec)
		if len(arr(t, d["alerts"])) != 0 || num(t, d["total"]) != "0" || num(t, d["unread_count"]) != "0" {
			t.Errorf("carol = %v", d)
		}
	})
}
