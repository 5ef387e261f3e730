package web

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// page is what every page's layout reads.
type page struct {
	Title string
	Nav   string
	CSRF  string
	// Role and Who are the signed-in person ("" on the sign-in page).
	Role billing.Role
	Who  string
	// Subject is the user whose dashboard this is; Q is the query string
	// that keeps an admin on that user across the dashboard pages.
	Subject     string
	Q           string
	Refreshed   time.Time
	AutoRefresh bool
}

// page fills the layout's fields. Refreshed is the wall-clock time of the
// render (not the business clock), since it tells when the figures were read.
func (v viewer) page(title, nav, subject string) page {
	p := page{Title: title, Nav: nav, CSRF: v.CSRF, Role: v.Principal.Role, Subject: subject, Refreshed: time.Now().UTC()}
	p.Who = v.Principal.UserID
	if v.Principal.IsAdmin() {
		p.Who = "admin"
		if subject != "" {
			p.Q = "?user_id=" + url.QueryEscape(subject)
		}
	}
	return p
}

func (p page) IsAdmin() bool { return p.Role == billing.RoleAdmin }

// RefreshedISO is the refresh time for a <time datetime>.
func (p page) RefreshedISO() string { return p.Refreshed.Format(time.RFC3339) }

// RefreshedText is the refresh time as people read it.
func (p page) RefreshedText() string { return p.Refreshed.Format("15:04:05 UTC") }

// subject returns whose dashboard a request asks for: a user sees only
// themself; an admin names the user with ?user_id=. Errors: forbidden,
// invalid.
func subject(r *http.Request, v viewer) (string, error) {
	q := strings.TrimSpace(r.URL.Query().Get("user_id"))
	switch {
	case v.Principal.IsAdmin():
		if q == "" {
			return "", nil
		}
		if len(q) > 128 {
			return "", billing.InvalidField("query.user_id", "a user id has at most 128 characters", q)
		}
		return q, nil
	case q != "" && q != v.Principal.UserID:
		return "", billing.Errorf(billing.CodeForbidden, "this key may not see the dashboard of user %q", q)
	}
	return v.Principal.UserID, nil
}

// account is a user's plan, subscription, period schedule and the known
// providers, read as the API reads them.
type account struct {
	userID    string
	plan      billing.Plan
	sub       *billing.Subscription
	schedule  billing.Schedule
	providers []billing.Provider
}

func (h *Handler) account(ctx context.Context, userID string) (account, error) {
	a := account{userID: userID, schedule: billing.CalendarMonths()}
	var err error
	if a.sub, err = h.store.CurrentSubscription(ctx, userID); err != nil {
		return a, err
	}
	if a.sub != nil {
		a.schedule = a.sub.Schedule()
		a.plan, err = h.store.GetPlan(ctx, a.sub.PlanID)
	} else {
		a.plan, err = h.store.DefaultPlan(ctx)
	}
	if err != nil {
		return a, err
	}
	a.providers, err = h.store.ListProviders(ctx)
	return a, err
}

// recent returns the usage of the last n periods, oldest first, the
// current one last.
func (h *Handler) recent(ctx context.Context, a account, n int) ([]billing.PeriodUsage, error) {
	current := a.schedule.At(h.now())
	periods := make([]billing.Period, n)
	for i := range n {
		periods[i] = a.schedule.Back(current, n-1-i)
	}
	return h.store.UsageForPeriods(ctx, a.userID, periods)
}

func (a account) displayName(provider string) string {
	for _, p := range a.providers {
		if p.Name == provider {
			return p.DisplayName
		}
	}
	return provider
}

// limitView is one plan limit as the pages show it.
type limitView struct {
	Key       string
	Label     string
	Used      string
	Limit     string
	Remaining string
	Pct       float64
	PctText   string
	Unlimited bool
	Disabled  bool
	Level     string
	Ring      template.HTML
}

func limitLabel(a account, l billing.LimitUsage) string {
	switch {
	case l.Key == "total_calls":
		return "API calls"
	case l.Key == "monthly_cost":
		return "Monthly cost"
	case strings.HasSuffix(l.Key, "_tokens"):
		return a.displayName(l.Provider) + " tokens"
	}
	return a.displayName(l.Provider) + " calls"
}

func limitValue(l billing.LimitUsage, v int64) string {
	if l.Money {
		return Money(money.Amount(v))
	}
	if strings.HasSuffix(l.Key, "_tokens") {
		return Compact(v)
	}
	return Count(v)
}

func viewLimit(a account, l billing.LimitUsage) limitView {
	v := limitView{Key: l.Key, Label: limitLabel(a, l), Used: limitValue(l, l.Used), Pct: l.Percentage()}
	switch {
	case l.Limit == nil:
		v.Unlimited, v.Limit, v.Remaining, v.PctText = true, "Unlimited", "Unlimited", "—"
	case *l.Limit == 0:
		v.Disabled, v.Limit, v.Remaining, v.PctText = true, "Not included", "—", "—"
	default:
		v.Limit = limitValue(l, *l.Limit)
		v.Remaining = limitValue(l, *l.Remaining())
		v.PctText = Percent(v.Pct)
	}
	v.Level = level(v.Pct)
	return v
}

// alertView is an alert as the pages list it.
type alertView struct {
	ID       int64
	User     string
	Title    string
	Message  string
	Severity string
	Type     string
	Period   string
	When     string
	Read     bool
	// CSRF and Return make the mark-read form; empty CSRF shows none.
	CSRF   string
	Return string
}

// withForms lets the alerts be marked read from the page at ret.
func withForms(alerts []alertView, v viewer, ret string) []alertView {
	for i := range alerts {
		alerts[i].CSRF, alerts[i].Return = v.CSRF, ret
	}
	return alerts
}

func viewAlerts(alerts []billing.Alert) []alertView {
	out := make([]alertView, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, alertView{ID: a.ID, User: a.UserID, Title: a.Title, Message: a.Message, Severity: a.Severity,
			Type: a.Type, Period: a.BillingPeriod, When: DateTime(a.CreatedAt), Read: a.IsRead})
	}
	return out
}

// markRead marks an alert read for its owner (or an admin) and returns to
// the page the form was on.
func (h *Handler) markRead(w http.ResponseWriter, r *http.Request, v viewer) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !h.sess.checkCSRF(r, v.Session.ID) {
		h.fail(w, r, billing.Errorf(billing.CodeForbidden, "the form expired or came from another site; reload the page and try again"))
		return
	}
	id, err := parseID(r.PathValue("alert_id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.store.GetAlert(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !v.Principal.CanAccess(a.UserID) {
		h.fail(w, r, billing.Errorf(billing.CodeForbidden, "alert %d belongs to another user", id))
		return
	}
	if err := h.store.MarkAlertRead(r.Context(), id, h.now()); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("return"), home(v.Principal.Role)), http.StatusSeeOther)
}
