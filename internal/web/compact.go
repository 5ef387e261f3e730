package web

import (
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// sparkPeriods is how many periods the cards' sparklines cover.
const sparkPeriods = 6

// card is one metric card of the compact dashboard.
type card struct {
	ID    string
	Label string
	Value string
	Sub   string
	Help  string
	Spark template.HTML
	Level string
}

type budgetView struct {
	Has       bool
	Used      string
	Limit     string
	Projected string
	PctText   string
	Level     string
	Bar       template.HTML
}

type compactPage struct {
	page
	Plan         string
	Period       string
	PeriodRange  string
	UsageStatus  string
	Cards        []card
	CostPerCall  string
	CostPer1K    string
	Limits       []limitView
	Budget       budgetView
	Alerts       []alertView
	UnreadAlerts int64
}

func (h *Handler) compact(w http.ResponseWriter, r *http.Request, v viewer) {
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
	a, err := h.account(ctx, userID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	usage, err := h.recent(ctx, a, sparkPeriods)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	alerts, _, unread, err := h.store.ListAlerts(ctx, billing.AlertFilter{UserID: userID, UnreadOnly: true, Limit: 5})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	health, err := h.health(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.now()
	cur := usage[len(usage)-1]
	limits := billing.EvaluateLimits(a.plan, a.providers, cur)
	p := compactPage{
		page: v.page("Billing dashboard", "dashboard", userID), Plan: a.plan.Name, Period: cur.Period.Key,
		PeriodRange: Date(cur.Period.Start) + " – " + Date(cur.Period.End),
		UsageStatus: billing.UsageStatus(limits), Alerts: withForms(viewAlerts(alerts), v, r.URL.RequestURI()), UnreadAlerts: unread,
	}
	p.AutoRefresh = true
	p.Cards = cards(usage, health, cur.ProjectedCost(now))
	p.CostPerCall, p.CostPer1K = unitCosts(cur.Total)
	for _, l := range limits {
		// Every finite limit gets a ring; of the unlimited ones only the
		// plan-wide ones are shown, as "Unlimited", so a plan without
		// per-provider limits does not fill the page with empty rings.
		if l.Limit == nil && l.Provider != "" {
			continue
		}
		lv := viewLimit(a, l)
		center := ringText(lv.Pct)
		if lv.Unlimited {
			center = "∞"
		}
		lv.Ring = Ring(lv.Pct, center, lv.Label+": "+lv.Used+" of "+lv.Limit)
		p.Limits = append(p.Limits, lv)
	}
	p.Budget = budget(a.plan, cur, cur.ProjectedCost(now))
	h.render(w, r, http.StatusOK, "dashboard", p)
}

func cards(usage []billing.PeriodUsage, health httpapi.HealthData, proj money.Amount) []card {
	cur := usage[len(usage)-1]
	n := len(usage)
	cost, calls, tokens, errRate := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i, u := range usage {
		cost[i] = u.Total.Cost.Float64()
		calls[i] = float64(u.Total.Calls)
		tokens[i] = float64(u.Total.Tokens())
		errRate[i] = u.Total.ErrorRate()
	}
	span := strconv.Itoa(n) + " periods"
	status := health.Status
	if status == "" {
		status = "unknown"
	}
	healthLevel := map[string]string{"healthy": "ok", "warning": "warn", "critical": "danger"}[status]
	return []card{
		{ID: "cost", Label: "Cost this period", Value: Money(cur.Total.Cost),
			Sub:   "Projected " + Money(proj) + " by period end",
			Help:  "What your calls in this billing period cost, priced exactly per token and per request. The projection extends today's pace to the end of the period.",
			Spark: Sparkline(cost, "Cost over the last "+span)},
		{ID: "calls", Label: "API calls", Value: Count(cur.Total.Calls),
			Sub:   Count(cur.Total.Errors) + " failed (" + Percent(cur.Total.ErrorRate()) + ")",
			Help:  "Provider calls metered in this billing period, successful and failed.",
			Spark: Sparkline(calls, "API calls over the last "+span)},
		{ID: "tokens", Label: "Tokens", Value: Compact(cur.Total.Tokens()) + " tokens",
			Sub:   Compact(cur.Total.TokensInput) + " in · " + Compact(cur.Total.TokensOutput) + " out",
			Help:  "Input plus output tokens counted by the providers in this period (cached and reasoning tokens included).",
			Spark: Sparkline(tokens, "Tokens over the last "+span)},
		{ID: "health", Label: "System health", Value: strings.ToUpper(status[:1]) + status[1:],
			Sub:   Percent(health.ErrorRate) + " errors in the last " + strconv.Itoa(health.WindowSeconds/60) + " min",
			Help:  "Health of the providers across all users: the share of calls in the recent window that failed by the provider's fault (server errors, rate limits, timeouts, refused keys; not malformed requests) (warning from 5 %, critical from 20 %). The sparkline is your own error rate per period.",
			Spark: Sparkline(errRate, "Your error rate over the last "+span), Level: healthLevel},
	}
}

// unitCosts returns the cost per call and per 1,000 tokens, or "—" when
// there is nothing to divide by.
func unitCosts(c billing.Counters) (perCall, per1K string) {
	perCall, per1K = "—", "—"
	if c.Calls > 0 {
		if v, err := c.Cost.MulRatio(1, c.Calls); err == nil {
			perCall = Money(v)
		}
	}
	if t := c.Tokens(); t > 0 {
		if v, err := c.Cost.MulRatio(1000, t); err == nil {
			per1K = Money(v)
		}
	}
	return perCall, per1K
}

// budget is the plan's monthly cost limit as a bar, with the projection of
// the period's cost marked; a plan without one has no bar.
func budget(plan billing.Plan, cur billing.PeriodUsage, proj money.Amount) budgetView {
	var b budgetView
	if plan.MonthlyCostLimit == nil || *plan.MonthlyCostLimit == 0 {
		return b
	}
	limit := *plan.MonthlyCostLimit
	l := billing.LimitUsage{Limit: billing.Ptr(int64(limit)), Used: int64(cur.Total.Cost), Money: true}
	pct := l.Percentage()
	projPct := billing.LimitUsage{Limit: l.Limit, Used: int64(proj), Money: true}.Percentage()
	b = budgetView{Has: true, Used: Money(cur.Total.Cost), Limit: Money(limit), Projected: Money(proj), PctText: Percent(pct), Level: budgetLevel(pct)}
	b.Bar = BudgetBar(pct, projPct, "Budget used: "+b.Used+" of "+b.Limit+" ("+b.PctText+"), projected "+b.Projected+" by period end")
	return b
}

// budgetLevel names the band of the budget bar a share falls in.
func budgetLevel(pct float64) string {
	switch {
	case pct >= 95:
		return "danger"
	case pct >= 80:
		return "warn"
	case pct >= 50:
		return "notice"
	}
	return "ok"
}

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, billing.InvalidField("path.alert_id", "not an alert id", s)
	}
	return id, nil
}
