package web

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// logPageSize is how many usage-log rows one page of the table shows.
const logPageSize = 25

type providerRow struct {
	Name   string
	Calls  string
	Tokens string
	Cost   string
	Share  string
	Errors string
	AvgRT  string
}

type logRow struct {
	When     string
	Provider string
	Model    string
	Endpoint string
	Tokens   string
	Cost     string
	Status   int
	Failed   bool
	RT       string
	Error    string
}

type option struct {
	Value    string
	Label    string
	Selected bool
}

type logView struct {
	Rows      []logRow
	Providers []option
	Statuses  []option
	Periods   []option
	From, To  int
	Total     string
	Prev      string
	Next      string
}

type historyRow struct {
	Period  string
	Invoice string
	Plan    string
	Base    string
	Usage   string
	Overage string
	Credits string
	Total   string
	Calls   string
	Status  string
}

type renewalRow struct {
	Date   string
	Event  string
	Plan   string
	Cycle  string
	Period string
	Usage  string
}

type detailsPage struct {
	page
	Plan          string
	PlanTier      string
	PlanPrice     string
	Period        string
	PeriodRange   string
	Months        int
	MonthOptions  []option
	ProviderChart template.HTML
	Providers     []providerRow
	CallsChart    template.HTML
	TokensChart   template.HTML
	CostChart     template.HTML
	Limits        []limitView
	ErrorRate     string
	AvgResponse   string
	HealthRows    []healthRow
	Log           logView
	Alerts        []alertView
	AlertTotal    int64
	Unread        int64
	History       []historyRow
	Renewals      []renewalRow
	Return        string
}

type healthRow struct {
	Provider  string
	Requests  string
	ErrorRate string
	P50       string
	P95       string
}

// statusChoices are the status codes the log filter offers.
var statusChoices = []struct {
	code  int
	label string
}{{200, "200 OK"}, {400, "400 Bad request"}, {401, "401 Unauthorized"}, {403, "403 Forbidden"},
	{429, "429 Too many requests"}, {500, "500 Server error"}, {502, "502 Bad gateway"}, {503, "503 Unavailable"}}

func (h *Handler) details(w http.ResponseWriter, r *http.Request, v viewer) {
	ctx := r.Context()
	userID, err := subject(r, v)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if userID == "" {
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	q := r.URL.Query()
	months := 6
	if q.Get("months") == "12" {
		months = 12
	}
	a, err := h.account(ctx, userID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	usage, err := h.recent(ctx, a, months)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cur := usage[len(usage)-1]
	p := detailsPage{
		page: v.page("Billing details", "details", userID), Plan: a.plan.Name, PlanTier: a.plan.Tier,
		PlanPrice: Money(a.plan.PriceMonthly) + " / month", Period: cur.Period.Key,
		PeriodRange: Date(cur.Period.Start) + " – " + Date(cur.Period.End), Months: months,
		ErrorRate: Percent(cur.Total.ErrorRate()), AvgResponse: Seconds(cur.Total.AvgResponseTime()),
		Return: r.URL.RequestURI(),
	}
	for _, m := range []int{6, 12} {
		p.MonthOptions = append(p.MonthOptions, option{Value: strconv.Itoa(m), Label: strconv.Itoa(m) + " months", Selected: m == months})
	}
	if a.sub != nil && a.sub.BillingCycle == "yearly" {
		p.PlanPrice = Money(a.plan.PriceYearly) + " / year"
	}

	// Cost per provider, largest first.
	var bars []billing.Provider
	for _, pr := range a.providers {
		if cur.ByProvider[pr.Name].Calls > 0 {
			bars = append(bars, pr)
		}
	}
	slices.SortStableFunc(bars, func(x, y billing.Provider) int {
		cx, cy := cur.ByProvider[x.Name].Cost, cur.ByProvider[y.Name].Cost
		switch {
		case cx > cy:
			return -1
		case cx < cy:
			return 1
		}
		return 0
	})
	var chart []Bar
	for _, pr := range bars {
		c := cur.ByProvider[pr.Name]
		share := 0.0
		if cur.Total.Cost > 0 {
			share = c.Cost.Float64() / cur.Total.Cost.Float64() * 100
		}
		p.Providers = append(p.Providers, providerRow{Name: pr.DisplayName, Calls: Count(c.Calls), Tokens: Compact(c.Tokens()),
			Cost: Money(c.Cost), Share: Percent(share), Errors: Percent(c.ErrorRate()), AvgRT: Seconds(c.AvgResponseTime())})
		chart = append(chart, Bar{Label: pr.DisplayName, Value: c.Cost.Float64(), Text: Money(c.Cost)})
	}
	p.ProviderChart = BarChart(chart, "Cost per provider this period")

	// Trends.
	labels := make([]string, len(usage))
	calls, tokens, cost := make([]float64, len(usage)), make([]float64, len(usage)), make([]float64, len(usage))
	for i, u := range usage {
		labels[i] = u.Period.Key
		calls[i], tokens[i], cost[i] = float64(u.Total.Calls), float64(u.Total.Tokens()), u.Total.Cost.Float64()
	}
	count := func(v float64) string { return Compact(int64(v)) }
	dollars := func(v float64) string {
		a, err := money.Parse(strconv.FormatFloat(v, 'f', 6, 64))
		if err != nil {
			return "$?"
		}
		return Money(a)
	}
	p.CallsChart = LineChart(labels, []Series{{Name: "API calls", Values: calls}}, -1, "", count, "API calls per period")
	p.TokensChart = LineChart(labels, []Series{{Name: "Tokens", Values: tokens}}, -1, "", count, "Tokens per period")
	ref, refName := -1.0, ""
	if a.plan.MonthlyCostLimit != nil && *a.plan.MonthlyCostLimit > 0 {
		ref, refName = a.plan.MonthlyCostLimit.Float64(), "budget "+Money(*a.plan.MonthlyCostLimit)
	}
	p.CostChart = LineChart(labels, []Series{{Name: "Cost", Values: cost}}, ref, refName, dollars, "Cost per period")

	// The plan and its limits.
	for _, l := range billing.EvaluateLimits(a.plan, a.providers, cur) {
		p.Limits = append(p.Limits, viewLimit(a, l))
	}

	// Response times and errors per provider, system-wide.
	health, err := h.health(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.HealthRows = healthRows(a.providers, health.Providers)

	if p.Log, err = h.logView(r, a, usage, q); err != nil {
		h.fail(w, r, err)
		return
	}
	alerts, total, unread, err := h.store.ListAlerts(ctx, billing.AlertFilter{UserID: userID, Limit: 50})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Alerts, p.AlertTotal, p.Unread = withForms(viewAlerts(alerts), v, r.URL.RequestURI()+"#alerts"), total, unread

	invoices, _, err := h.store.Invoices(ctx, store.InvoiceFilter{UserID: userID, Limit: 24})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, inv := range invoices {
		p.History = append(p.History, historyRow{Period: inv.Period.Key, Invoice: orDash(inv.Number), Plan: inv.PlanName,
			Base: Money(inv.Base), Usage: Money(inv.UsageCost), Overage: Money(inv.Overage), Credits: Money(inv.Credits),
			Total: Money(inv.Total), Calls: Count(inv.Calls), Status: inv.Status})
	}
	history, err := h.store.SubscriptionHistory(ctx, userID, 24)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, e := range history {
		p.Renewals = append(p.Renewals, viewHistory(e))
	}
	h.render(w, r, http.StatusOK, "details", p)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func healthRows(providers []billing.Provider, hp map[string]httpapi.ProviderHealthJSON) []healthRow {
	var rows []healthRow
	for _, pr := range providers {
		ph, ok := hp[pr.Name]
		if !ok {
			continue
		}
		rows = append(rows, healthRow{Provider: pr.DisplayName, Requests: Count(ph.Requests), ErrorRate: Percent(ph.ErrorRate),
			P50: Millis(ph.P50Ms), P95: Millis(ph.P95Ms)})
	}
	return rows
}

// logView reads one page of the user's usage log under the filters in q.
func (h *Handler) logView(r *http.Request, a account, usage []billing.PeriodUsage, q url.Values) (logView, error) {
	var lv logView
	f := billing.LogFilter{UserID: a.userID, Limit: logPageSize}
	provider := q.Get("provider")
	lv.Providers = []option{{Value: "", Label: "All providers"}}
	for _, pr := range a.providers {
		sel := pr.Name == provider
		if sel {
			f.Provider = pr.Name
		}
		lv.Providers = append(lv.Providers, option{Value: pr.Name, Label: pr.DisplayName, Selected: sel})
	}
	status, _ := strconv.Atoi(q.Get("status"))
	lv.Statuses = []option{{Value: "", Label: "Any status"}}
	for _, s := range statusChoices {
		sel := s.code == status
		if sel {
			f.StatusCode = s.code
		}
		lv.Statuses = append(lv.Statuses, option{Value: strconv.Itoa(s.code), Label: s.label, Selected: sel})
	}
	period := q.Get("period")
	lv.Periods = []option{{Value: "", Label: "All periods"}}
	for i := len(usage) - 1; i >= 0; i-- {
		key := usage[i].Period.Key
		sel := key == period
		if sel {
			f.BillingPeriod = key
		}
		lv.Periods = append(lv.Periods, option{Value: key, Label: key, Selected: sel})
	}
	pageNo, _ := strconv.Atoi(q.Get("page"))
	pageNo = max(1, min(pageNo, 100_000))
	f.Offset = (pageNo - 1) * logPageSize
	logs, total, err := h.store.ListLogs(r.Context(), f)
	if err != nil {
		return lv, err
	}
	for _, l := range logs {
		lv.Rows = append(lv.Rows, logRow{When: DateTime(l.Timestamp), Provider: a.displayName(l.Provider), Model: orDash(l.ModelUsed),
			Endpoint: orDash(l.Endpoint), Tokens: Count(l.TokensTotal()), Cost: Money(l.CostTotal), Status: l.StatusCode,
			Failed: l.Failed(), RT: Seconds(l.ResponseTime), Error: l.ErrorMessage})
	}
	lv.Total = Count(total)
	if len(logs) > 0 {
		lv.From, lv.To = f.Offset+1, f.Offset+len(logs)
	}
	link := func(n int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(n))
		return "?" + v.Encode() + "#usage-log"
	}
	if pageNo > 1 {
		lv.Prev = link(pageNo - 1)
	}
	if int64(f.Offset+len(logs)) < total {
		lv.Next = link(pageNo + 1)
	}
	return lv, nil
}

// historyEvents names subscription history events for people.
var historyEvents = map[string]string{
	billing.HistoryNew: "Started", billing.HistoryRenewal: "Renewed", billing.HistoryUpgrade: "Upgraded",
	billing.HistoryDowngrade: "Downgraded", billing.HistoryCancel: "Cancelled", billing.HistoryExpire: "Expired",
}

func viewHistory(e billing.HistoryEntry) renewalRow {
	event := historyEvents[e.Event]
	if event == "" {
		event = e.Event
	}
	plan := e.ToPlanName
	switch {
	case plan == "":
		plan = e.FromPlanName
	case e.FromPlanName != "" && e.FromPlanName != e.ToPlanName:
		plan = e.FromPlanName + " → " + e.ToPlanName
	}
	return renewalRow{Date: Date(e.EffectiveAt), Event: event, Plan: plan, Cycle: e.BillingCycle,
		Period: Date(e.Period.Start) + " – " + Date(e.Period.End),
		Usage:  Count(e.UsageCalls) + " calls · " + Money(e.UsageCost)}
}
