package web

import (
	"cmp"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// adminUserLimit caps the overview's user table; beyond it the page says
// so rather than grow without bound.
const adminUserLimit = 1000

type userRow struct {
	UserID string
	Link   string
	Plan   string
	Period string
	Cost   string
	Calls  string
	Status string
	Level  string

	cost  money.Amount
	calls int64
}

type sortLink struct {
	Label string
	Href  string
	Aria  string // ascending | descending | none
}

type adminPage struct {
	page
	Users        []userRow
	Columns      []sortLink
	Truncated    bool
	Spenders     template.HTML
	HealthStatus string
	HealthLevel  string
	HealthRate   string
	HealthRows   []healthRow
	Alerts       []alertView
}

// adminSorts are the sortable columns in table order.
var adminSorts = []struct{ key, label string }{
	{"user", "User"}, {"plan", "Plan"}, {"period", "Period"}, {"cost", "Period cost"}, {"calls", "API calls"}, {"status", "Status"},
}

// currentPeriodKeys are the keys a user's current period may have at now:
// this UTC month's; last month's, for a subscription anchored later in the
// month than today or in a zone behind UTC; and next month's, for a zone
// ahead of UTC (up to UTC+14) whose month has already turned.
func currentPeriodKeys(now time.Time) []string {
	cal := billing.CalendarMonths()
	this := cal.At(now)
	keys := []string{this.Key, cal.Back(this, 1).Key}
	if ahead := cal.At(now.Add(14 * time.Hour)).Key; ahead != this.Key {
		keys = append(keys, ahead)
	}
	return keys
}

func (h *Handler) admin(w http.ResponseWriter, r *http.Request, v viewer) {
	if !v.Principal.IsAdmin() {
		h.fail(w, r, billing.Errorf(billing.CodeForbidden, "the admin overview needs an admin key; you are signed in with a user key"))
		return
	}
	ctx := r.Context()
	now := h.now()
	cal := billing.CalendarMonths()
	users, err := h.store.ListUserOverviews(ctx, currentPeriodKeys(now), adminUserLimit+1)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	plans, err := h.store.ListPlans(ctx, false)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	providers, err := h.store.ListProviders(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var free billing.Plan
	byID := map[int64]billing.Plan{}
	for _, pl := range plans {
		byID[pl.ID] = pl
	}
	if free, err = h.store.DefaultPlan(ctx); err != nil {
		h.fail(w, r, err)
		return
	}
	p := adminPage{page: v.page("Admin overview", "admin", ""), Truncated: len(users) > adminUserLimit}
	p.AutoRefresh = true
	if p.Truncated {
		users = users[:adminUserLimit]
	}
	for _, u := range users {
		plan, sched, status := free, cal, "free"
		if u.Subscription != nil {
			plan, sched, status = byID[u.Subscription.PlanID], u.Subscription.Schedule(), u.Subscription.Status
		}
		period := sched.At(now)
		use, ok := u.Usage[period.Key]
		if !ok {
			use = billing.PeriodUsage{ByProvider: map[string]billing.Counters{}}
		}
		usage := billing.UsageStatus(billing.EvaluateLimits(plan, providers, use))
		lvl := map[string]string{billing.UsageActive: "ok", billing.UsageWarning: "warn", billing.UsageLimitReached: "danger"}[usage]
		if usage != billing.UsageActive {
			status += " · " + strings.ReplaceAll(usage, "_", " ")
		}
		p.Users = append(p.Users, userRow{UserID: u.UserID, Link: "/dashboard?user_id=" + url.QueryEscape(u.UserID), Plan: plan.Name,
			Period: period.Key, Cost: Money(use.Total.Cost), Calls: Count(use.Total.Calls), Status: status, Level: lvl,
			cost: use.Total.Cost, calls: use.Total.Calls})
	}

	// Top spenders before the table is sorted as asked.
	top := slices.Clone(p.Users)
	slices.SortStableFunc(top, func(a, b userRow) int { return cmp.Compare(b.cost, a.cost) })
	var bars []Bar
	for _, u := range top[:min(5, len(top))] {
		if u.cost > 0 {
			bars = append(bars, Bar{Label: u.UserID, Value: u.cost.Float64(), Text: u.Cost})
		}
	}
	p.Spenders = BarChart(bars, "Top spenders this period")

	sortKey, desc := r.URL.Query().Get("sort"), r.URL.Query().Get("dir") == "desc"
	if !slices.ContainsFunc(adminSorts, func(s struct{ key, label string }) bool { return s.key == sortKey }) {
		sortKey, desc = "cost", true
		if r.URL.Query().Get("sort") != "" {
			desc = false
		}
	}
	sortUsers(p.Users, sortKey, desc)
	for _, s := range adminSorts {
		l := sortLink{Label: s.label, Aria: "none", Href: "?sort=" + s.key + "&dir=asc"}
		if s.key == sortKey {
			if desc {
				l.Aria = "descending"
			} else {
				l.Aria, l.Href = "ascending", "?sort="+s.key+"&dir=desc"
			}
		}
		p.Columns = append(p.Columns, l)
	}

	health, err := h.health(ctx)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.HealthStatus, p.HealthRate = health.Status, Percent(health.ErrorRate)
	p.HealthLevel = map[string]string{"healthy": "ok", "warning": "warn", "critical": "danger"}[health.Status]
	p.HealthRows = healthRows(providers, health.Providers)

	alerts, err := h.store.ListRecentAlerts(ctx, 20)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p.Alerts = withForms(viewAlerts(alerts), v, "/admin")
	h.render(w, r, http.StatusOK, "admin", p)
}

func sortUsers(rows []userRow, key string, desc bool) {
	slices.SortStableFunc(rows, func(a, b userRow) int {
		var c int
		switch key {
		case "plan":
			c = cmp.Compare(a.Plan, b.Plan)
		case "period":
			c = cmp.Compare(a.Period, b.Period)
		case "cost":
			c = cmp.Compare(a.cost, b.cost)
		case "calls":
			c = cmp.Compare(a.calls, b.calls)
		case "status":
			c = cmp.Compare(a.Status, b.Status)
		}
		if c == 0 {
			c = cmp.Compare(a.UserID, b.UserID)
			if desc {
				c = -c // keep ties in user order whatever the direction
			}
		}
		if desc {
			return -c
		}
		return c
	})
}
