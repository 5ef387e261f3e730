package httpapi_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// adminOnly are the admin billing and plan operations with a harmless
// body, for the auth checks.
func adminOnly(planID int64) [][3]string {
	return [][3]string{
		{"GET", "/api/admin/billing-history/export", ""},
		{"GET", "/api/admin/billing-history/export?billing_period=2026-11&user_id=alice", ""},
		{"POST", "/api/admin/invoices/1/status", `{"status": "paid"}`},
		{"POST", "/api/admin/billing/close", ""},
		{"PATCH", "/api/admin/subscriptions/alice", `{"auto_renew": false}`},
		{"GET", "/api/admin/plans", ""},
		{"POST", "/api/admin/plans", `{"name": "Sneaky", "tier": "free", "price_monthly": 0, "price_yearly": 0}`},
		{"PUT", fmt.Sprintf("/api/admin/plans/%d", planID), `{"tier": "free", "price_monthly": 0, "price_yearly": 0}`},
		{"POST", fmt.Sprintf("/api/admin/plans/%d/deactivate", planID), ""},
		{"POST", fmt.Sprintf("/api/admin/plans/%d/activate", planID), ""},
	}
}

func TestAdminRoutesNeedTheAdminKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Starter")))
		e.setNow(defaultNow.AddDate(0, 2, 0))
		before := e.accountOf("alice") + string(e.get("/api/admin/plans", testAdminKey).body)
		for _, r := range adminOnly(e.planID("Starter")) {
			e.problem(e.send(r[0], r[1], "", r[2]), http.StatusUnauthorized)
			p := e.problem(e.send(r[0], r[1], alice, r[2]), http.StatusForbidden)
			if !strings.Contains(p["detail"].(string), "admin") {
				t.Errorf("%s %s with a user key: %v", r[0], r[1], p["detail"])
			}
		}
		if after := e.accountOf("alice") + string(e.get("/api/admin/plans", testAdminKey).body); after != before {
			t.Fatalf("refused admin requests changed something:\n%s\n%s", before, after)
		}
	})
}

// billingFixture subscribes three users, records usage, and closes two
// months of periods. One plan's name needs CSV quoting.
func billingFixture(t *testing.T, e *env) {
	t.Helper()
	r := e.send("POST", "/api/admin/plans", testAdminKey, `{"name": "Team \"Plus\", annual\nedition", "tier": "pro",
		"price_monthly": 12.345678901234, "price_yearly": 120, "features": ["a, b"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create plan: %s", r)
	}
	team := integer(t, decode(t, r.body)["id"])
	e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Starter")))
	e.subscribeAPI("bob", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, team))
	e.subscribeAPI("carol,\"the\" user", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Free")))
	e.record(many(4, call{user: "alice", at: day(2026, 11, 20, 0), in: 1000, out: 10, cost: "0.000000000001"})...)
	e.record(call{user: "bob", at: day(2026, 11, 21, 0), in: 7, out: 3, cost: "1.5"})
	e.setNow(time.Date(2027, 1, 20, 0, 0, 0, 0, time.UTC))
	if c := e.ok(e.send("POST", "/api/admin/billing/close", testAdminKey, "")); integer(t, c["closed"]) != 6 {
		t.Fatalf("close: %v", c)
	}
}

// csvRows reads an export back with encoding/csv.
func csvRows(t *testing.T, r response) [][]string {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("export: %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("export content type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment; filename=") {
		t.Errorf("export content disposition %q", cd)
	}
	if !bytes.HasSuffix(r.body, []byte("\r\n")) {
		t.Errorf("export lines do not end in CRLF")
	}
	rows, err := csv.NewReader(bytes.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("export does not parse: %v\n%s", err, r.body)
	}
	want := "id,invoice_number,user_id,subscription_id,billing_period,period_start,period_end,plan_name,base_cost,usage_cost," +
		"overage_cost,credits,total_amount,total_api_calls,total_tokens,status,issued_at,payment_date,voided_at"
	if len(rows) == 0 || strings.Join(rows[0], ",") != want {
		t.Fatalf("export header %v", rows)
	}
	return rows[1:]
}

// jsonText is a decoded JSON value as the CSV writes it: numbers and
// strings as their text, null as empty.
func jsonText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return string(x)
	}
	return fmt.Sprint(v)
}

// TestInvoiceExportMatchesJSON: every CSV row, parsed back with
// encoding/csv, equals the invoice the JSON billing history shows, field
// for field and digit for digit.
func TestInvoiceExportMatchesJSON(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		billingFixture(t, e)
		users := []string{"alice", "bob", "carol,\"the\" user"}
		byID := map[string]map[string]any{}
		owner := map[string]string{}
		for _, u := range users {
			d := e.invoices(u, testAdminKey, "")
			for _, inv := range arr(t, d["billing_history"]) {
				m := obj(t, inv)
				byID[num(t, m["id"])] = m
				owner[num(t, m["id"])] = u
			}
		}
		rows := csvRows(t, e.get("/api/admin/billing-history/export", testAdminKey))
		if len(rows) != 6 || len(byID) != 6 {
			t.Fatalf("export has %d rows, JSON %d invoices", len(rows), len(byID))
		}
		fields := []string{"id", "invoice_number", "", "", "billing_period", "period_start", "period_end", "plan_name", "base_cost",
			"usage_cost", "overage_cost", "credits", "total_amount", "total_api_calls", "total_tokens", "status", "issued_at",
			"payment_date", "voided_at"}
		sawQuoted := false
		for _, row := range rows {
			inv := byID[row[0]]
			if inv == nil {
				t.Fatalf("row %v is not in the JSON", row)
			}
			if row[2] != owner[row[0]] {
				t.Errorf("row %s user %q; want %q", row[0], row[2], owner[row[0]])
			}
			if _, err := strconv.ParseInt(row[3], 10, 64); err != nil {
				t.Errorf("row %s subscription id %q", row[0], row[3])
			}
			for i, f := range fields {
				if f != "" && row[i] != jsonText(inv[f]) {
					t.Errorf("invoice %s %s: CSV %q, JSON %q", row[0], f, row[i], jsonText(inv[f]))
				}
			}
			sawQuoted = sawQuoted || strings.Contains(row[7], "\"Plus\", annual\n")
		}
		if !sawQuoted {
			t.Errorf("no row kept the plan name that needs quoting")
		}
		// Money is exact in both: bob's fee has twelve decimals.
		if !strings.Contains(string(e.get("/api/admin/billing-history/export", testAdminKey).body), ",12.345678901234,") {
			t.Errorf("bob's fee is not exact in the export")
		}

		// Filters: a period, a user, both.
		for q, want := range map[string]int{
			"?billing_period=2026-11":                      3,
			"?billing_period=2026-12":                      3,
			"?billing_period=2025-01":                      0,
			"?user_id=alice":                               2,
			"?user_id=carol%2C%22the%22%20user":            2,
			"?user_id=alice&billing_period=2026-12":        1,
			"?user_id=nobody":                              0,
			"?billing_period=2026-11&user_id=bob&unused=1": 1,
		} {
			rows := csvRows(t, e.get("/api/admin/billing-history/export"+q, testAdminKey))
			if len(rows) != want {
				t.Errorf("export%s: %d rows; want %d", q, len(rows), want)
			}
		}
		if cd := e.get("/api/admin/billing-history/export?billing_period=2026-11", testAdminKey).header.Get("Content-Disposition"); cd != `attachment; filename="invoices-2026-11.csv"` {
			t.Errorf("content disposition %q", cd)
		}
		for _, q := range []string{"?billing_period=2026-13", "?billing_period=11-2026", "?billing_period=2026-1", "?billing_period=abcdefgh"} {
			e.problem4xx(e.get("/api/admin/billing-history/export"+q, testAdminKey), "billing_period")
		}
	})
}

func TestInvoiceStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		billingFixture(t, e)
		list := arr(t, e.invoices("alice", testAdminKey, "")["billing_history"])
		paid, void := num(t, obj(t, list[0])["id"]), num(t, obj(t, list[1])["id"])
		path := func(id string) string { return "/api/admin/invoices/" + id + "/status" }
		adminInvoice := Obj{"user_id": "string", "subscription_id": "int"}
		for k, v := range invoiceSpec {
			adminInvoice[k] = v
		}
		e.setNow(time.Date(2027, 1, 21, 9, 30, 0, 0, time.UTC))
		m := e.ok(e.send("POST", path(paid), testAdminKey, `{"status": "paid"}`))
		check(t, "paid", m, adminInvoice)
		if m["status"] != "paid" || m["payment_date"] != "2027-01-21T09:30:00Z" || m["voided_at"] != nil || m["user_id"] != "alice" {
			t.Errorf("paid: %v", m)
		}
		// Again: nothing changes.
		e.setNow(time.Date(2027, 1, 22, 0, 0, 0, 0, time.UTC))
		if m := e.ok(e.send("POST", path(paid), testAdminKey, `{"status": "paid"}`)); m["payment_date"] != "2027-01-21T09:30:00Z" {
			t.Errorf("paid again: %v", m)
		}
		m = e.ok(e.send("POST", path(void), testAdminKey, `{"status": "void"}`))
		if m["status"] != "void" || m["voided_at"] != "2027-01-22T00:00:00Z" || m["payment_date"] != nil {
			t.Errorf("void: %v", m)
		}
		before := e.accountOf("alice")
		e.problem(e.send("POST", path(void), testAdminKey, `{"status": "paid"}`), http.StatusConflict)
		e.problem(e.send("POST", path(paid), testAdminKey, `{"status": "void"}`), http.StatusConflict)
		e.problem(e.send("POST", path("999999"), testAdminKey, `{"status": "paid"}`), http.StatusNotFound)
		for _, tc := range [][2]string{
			{path(paid), `{"status": "refunded"}`}, {path(paid), `{"status": "issued"}`}, {path(paid), `{}`},
			{path(paid), `{"status": "paid", "amount": 3}`}, {path("0"), `{"status": "paid"}`}, {path("x"), `{"status": "paid"}`},
		} {
			e.problem4xx(e.send("POST", tc[0], testAdminKey, tc[1]), "")
		}
		if after := e.accountOf("alice"); after != before {
			t.Fatalf("refused status changes changed something:\n%s\n%s", before, after)
		}
		// The JSON and the CSV show the new statuses.
		got := map[string]string{}
		for _, inv := range arr(t, e.invoices("alice", testAdminKey, "")["billing_history"]) {
			got[num(t, obj(t, inv)["id"])] = obj(t, inv)["status"].(string)
		}
		if got[paid] != "paid" || got[void] != "void" {
			t.Errorf("statuses after marking: %v", got)
		}
		for _, row := range csvRows(t, e.get("/api/admin/billing-history/export?user_id=alice", testAdminKey)) {
			if row[15] != got[row[0]] || (row[15] == "paid") != (row[17] != "") || (row[15] == "void") != (row[18] != "") {
				t.Errorf("export row %v", row)
			}
		}
	})
}

func TestAdminSubscriptionState(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		e.subscribeAPI("alice", testAdminKey, fmt.Sprintf(`{"plan_id": %d}`, e.planID("Starter")))
		spec := Obj{"user_id": "string", "plan_id": "int", "id": "int", "billing_cycle": Enum{"monthly", "yearly"},
			"current_period_start": "time", "current_period_end": "time", "status": Enum{"active", "past_due"},
			"auto_renew": "bool", "time_zone": "string", "created_at": "time", "pending_plan_id": Nullable{"int"},
			"pending_billing_cycle": Nullable{"string"}, "cancel_at_period_end": "bool", "cancelled_at": Nullable{"time"}}
		m := e.ok(e.send("PATCH", "/api/admin/subscriptions/alice", testAdminKey, `{"status": "past_due"}`))
		check(t, "patch", m, spec)
		if m["status"] != "past_due" || m["auto_renew"] != true || m["user_id"] != "alice" {
			t.Errorf("past due: %v", m)
		}
		if s := e.data(e.get("/api/subscription/status/alice", alice)); s["can_use_api"] != false || !strings.Contains(s["reason"].(string), "past_due") {
			t.Errorf("status of a past-due user: %v", s)
		}
		m = e.ok(e.send("PATCH", "/api/admin/subscriptions/alice", testAdminKey, `{"status": "active", "auto_renew": false}`))
		if m["status"] != "active" || m["auto_renew"] != false {
			t.Errorf("active again: %v", m)
		}
		before := e.accountOf("alice")
		for _, body := range []string{`{}`, `{"status": "cancelled"}`, `{"status": "expired"}`, `{"auto_renew": "no"}`, `{"plan_id": 1}`, `null`} {
			e.problem4xx(e.send("PATCH", "/api/admin/subscriptions/alice", testAdminKey, body), "")
		}
		e.problem(e.send("PATCH", "/api/admin/subscriptions/nobody", testAdminKey, `{"auto_renew": true}`), http.StatusNotFound)
		if after := e.accountOf("alice"); after != before {
			t.Fatalf("refused changes changed alice:\n%s\n%s", before, after)
		}
		// Without auto-renewal the subscription expires at its cycle's end.
		e.setNow(defaultNow.AddDate(0, 1, 1))
		e.ok(e.send("POST", "/api/admin/billing/close", testAdminKey, ""))
		if h := e.renewals("alice", alice); len(h) == 0 || h[0]["renewal_type"] != "expire" {
			t.Errorf("history after expiry: %v", h)
		}
	})
}

// FuzzInvoicesCSV: whatever the text in an invoice (plan names and user ids
// come from outside), the export parses back with encoding/csv to exactly
// the values written, one record per invoice.
func FuzzInvoicesCSV(f *testing.F) {
	f.Add("Team \"Plus\", annual\nedition", "carol,\"the\" user", int64(12345678901234), int64(-5))
	f.Add("", "", int64(0), int64(0))
	f.Add("=SUM(A1)", "\r\n", int64(1), int64(1<<62))
	f.Fuzz(func(t *testing.T, plan, user string, total, calls int64) {
		at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		inv := billing.Invoice{ID: 7, Number: "ALW-202611-000001", UserID: user, SubscriptionID: 1,
			Period: billing.Period{Key: "2026-11", Start: at, End: at.AddDate(0, 1, 0)}, PlanName: plan,
			Total: money.Amount(total), Base: money.Amount(total), Calls: calls, Status: billing.InvoiceIssued, IssuedAt: &at}
		var buf bytes.Buffer
		if err := httpapi.WriteInvoicesCSV(&buf, []billing.Invoice{inv, inv}); err != nil {
			// encoding/csv refuses nothing; a writer error is a bug.
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatalf("export does not parse: %v", err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d records for 2 invoices", len(rows))
		}
		// encoding/csv reads \r\n inside a quoted field as \n; text a
		// spreadsheet would read as a formula comes back behind an
		// apostrophe.
		norm := func(s string) string {
			if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
				s = "'" + s
			}
			return strings.ReplaceAll(s, "\r\n", "\n")
		}
		for _, row := range rows[1:] {
			if row[7] != norm(plan) || row[2] != norm(user) || row[12] != money.Amount(total).String() ||
				row[13] != strconv.FormatInt(calls, 10) {
				t.Fatalf("row %q; want plan %q user %q total %s", row, plan, user, money.Amount(total))
			}
			if _, err := money.Parse(row[12]); err != nil {
				t.Fatalf("total %q does not parse back: %v", row[12], err)
			}
			for _, cell := range []string{row[1], row[2], row[7]} {
				if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
					t.Fatalf("cell %q would be read as a formula", cell)
				}
			}
		}
	})
}
