package httpapi

import (
	"context"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// UnreadAlertsReader reads a user's unread alerts as the usage routes list
// them in one round trip (store.DB.UnreadAlerts); a Store without it is
// served by two ListAlerts calls, with the same answer.
type UnreadAlertsReader interface {
	UnreadAlerts(ctx context.Context, userID string, p billing.Period, recent, ofPeriod int) (store.UnreadAlerts, error)
}

// The dashboard shows the trends of dashboardMonths periods and the
// dashboardAlerts newest unread alerts of any period.
const (
	dashboardMonths = 6
	dashboardAlerts = 5
)

func (s *Server) getDashboard(ctx context.Context, in *UserPath) (*struct{ Body Envelope[Dashboard] }, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	d, err := s.dashboard(ctx, in.UserID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	return ok(d), nil
}

// dashboard reads what the user's view needs (userView), then the usage of
// the trend's periods and of all time in one read, and the unread alerts in
// another; everything else derives from those.
func (s *Server) dashboard(ctx context.Context, userID string) (Dashboard, error) {
	v, err := s.userView(ctx, userID)
	if err != nil {
		return Dashboard{}, err
	}
	now := s.now()
	// The trend's periods end with the current one; all time comes last.
	usage, err := s.store.UsageForPeriods(ctx, userID, append(v.lastPeriods(now, dashboardMonths), billing.Period{Key: billing.AllTime}))
	if err != nil {
		return Dashboard{}, err
	}
	current, all := usage[dashboardMonths-1], usage[dashboardMonths]
	alerts, err := s.unreadAlerts(ctx, userID, current.Period, dashboardAlerts, periodAlerts)
	if err != nil {
		return Dashboard{}, err
	}
	cur := s.stats(v, current, current, alerts.Period)
	proj := projection(v.plan, current, now)
	return Dashboard{
		CurrentUsage: cur, CurrentPeriodUsage: cur,
		TotalUsage:  s.stats(v, all, current, alerts.Recent),
		Trends:      v.trendsOf(usage[:dashboardMonths]),
		Limits:      cur.Limits,
		Alerts:      briefs(alerts.Recent),
		Projections: proj,
		Summary: DashboardSummary{
			TotalAPICallsThisMonth: current.Total.Calls, TotalCostThisMonth: current.Total.Cost,
			UsageStatus: cur.UsageStatus, UnreadAlerts: alerts.Count,
		},
	}, nil
}

// unreadAlerts returns the user's newest unread alerts: up to recent of any
// period and up to ofPeriod of the period p, and how many are unread in
// all.
func (s *Server) unreadAlerts(ctx context.Context, userID string, p billing.Period, recent, ofPeriod int) (store.UnreadAlerts, error) {
	if r, ok := s.store.(UnreadAlertsReader); ok {
		return r.UnreadAlerts(ctx, userID, p, recent, ofPeriod)
	}
	period, _, _, err := s.store.ListAlerts(ctx, billing.AlertFilter{UserID: userID, UnreadOnly: true, BillingPeriod: p.Key, Limit: ofPeriod})
	if err != nil {
		return store.UnreadAlerts{}, err
	}
	latest, _, unread, err := s.store.ListAlerts(ctx, billing.AlertFilter{UserID: userID, UnreadOnly: true, Limit: recent})
	if err != nil {
		return store.UnreadAlerts{}, err
	}
	return store.UnreadAlerts{Recent: latest, Period: period, Count: unread}, nil
}

// projection extrapolates the period's cost to its end
// (billing.PeriodUsage.ProjectedCost) and compares it with the cost limit.
func projection(plan billing.Plan, u billing.PeriodUsage, now time.Time) Projections {
	p := Projections{ProjectedMonthlyCost: u.ProjectedCost(now)}
	if plan.MonthlyCostLimit != nil {
		p.CostLimit = *plan.MonthlyCostLimit
		l := billing.LimitUsage{Limit: billing.Ptr(int64(p.CostLimit)), Used: int64(p.ProjectedMonthlyCost)}
		p.ProjectedUsagePercentage = l.Percentage()
	}
	return p
}
