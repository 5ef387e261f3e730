package httpapi

import (
	"context"
	"fmt"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// userView is what every per-user answer needs: the user's plan, the
// subscription (nil on the default free plan), its period schedule and the
// known providers.
type userView struct {
	userID    string
	plan      billing.Plan
	sub       *billing.Subscription
	schedule  billing.Schedule
	providers []billing.Provider
}

func (s *Server) userView(ctx context.Context, userID string) (userView, error) {
	v := userView{userID: userID, schedule: billing.CalendarMonths()}
	var err error
	if v.sub, err = s.store.CurrentSubscription(ctx, userID); err != nil {
		return v, err
	}
	if v.sub != nil {
		v.schedule = v.sub.Schedule()
		v.plan, err = s.store.GetPlan(ctx, v.sub.PlanID)
	} else {
		v.plan, err = s.store.DefaultPlan(ctx)
	}
	if err != nil {
		return v, err
	}
	v.providers, err = s.store.ListProviders(ctx)
	return v, err
}

// limitsOf evaluates the plan's limits against a period's usage.
func (v userView) limitsOf(u billing.PeriodUsage) []billing.LimitUsage {
	return billing.EvaluateLimits(v.plan, v.providers, u)
}

func (v userView) planLimitsJSON(limits []billing.LimitUsage) PlanLimitsJSON {
	return PlanLimitsJSON{PlanName: v.plan.Name, Tier: v.plan.Tier, Limits: Limits{entries: limits}, Features: nonNil(v.plan.Features)}
}

// stats builds UsageStats for usage u; limits are evaluated against
// `basis`, the current period's usage when u is all-time.
func (s *Server) stats(v userView, u, basis billing.PeriodUsage, alerts []billing.Alert) UsageStats {
	limits := v.limitsOf(basis)
	st := UsageStats{
		BillingPeriod:     u.Period.Key,
		UsageStatus:       billing.UsageStatus(limits),
		TotalCalls:        u.Total.Calls,
		TotalTokens:       u.Total.Tokens(),
		TokensInput:       u.Total.TokensInput,
		TokensOutput:      u.Total.TokensOutput,
		TotalCost:         u.Total.Cost,
		TotalErrors:       u.Total.Errors,
		AvgResponseTime:   round(u.Total.AvgResponseTime(), 3),
		ErrorRate:         round(u.Total.ErrorRate(), 2),
		Limits:            v.planLimitsJSON(limits),
		ProviderBreakdown: map[string]ProviderUsageJSON{},
		Alerts:            briefs(alerts),
		UsagePercentages:  map[string]float64{},
		LastUpdated:       u.LastUpdated,
	}
	if u.Period.Key != billing.AllTime {
		st.PeriodStart, st.PeriodEnd = &u.Period.Start, &u.Period.End
	}
	if st.LastUpdated.IsZero() {
		st.LastUpdated = s.now().UTC()
	}
	for _, p := range v.providers {
		c := u.ByProvider[p.Name]
		st.ProviderBreakdown[p.Name] = ProviderUsageJSON{Calls: c.Calls, Tokens: c.Tokens(), Cost: c.Cost}
	}
	for _, l := range limits {
		key := l.Key
		if key == "monthly_cost" {
			key = "cost"
		}
		st.UsagePercentages[key] = l.Percentage()
	}
	return st
}

func briefs(alerts []billing.Alert) []AlertBriefJSON {
	out := make([]AlertBriefJSON, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, AlertBriefJSON{ID: a.ID, Type: a.Type, Title: a.Title, Message: a.Message, Severity: a.Severity, CreatedAt: a.CreatedAt})
	}
	return out
}

// UserPath is the {user_id} path parameter. It is exported because huma
// reads parameters only from exported fields, embedded ones included: an
// unexported embedded struct is skipped silently and user_id stays "".
type UserPath struct {
	UserID string `path:"user_id" minLength:"1" maxLength:"128" doc:"The user's id in the product (ALwrity's user id)."`
}

type usageInput struct {
	UserPath
	BillingPeriod string `query:"billing_period" pattern:"^[0-9]{4}-[0-9]{2}$" doc:"YYYY-MM; defaults to the current period."`
}

func (s *Server) getUsage(ctx context.Context, in *usageInput) (*struct{ Body Envelope[UsageStats] }, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	st, err := s.usageStats(ctx, in.UserID, in.BillingPeriod)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	return ok(st), nil
}

// periodAlerts is how many of a period's unread alerts its usage lists.
const periodAlerts = 10

func (s *Server) usageStats(ctx context.Context, userID, key string) (UsageStats, error) {
	v, err := s.userView(ctx, userID)
	if err != nil {
		return UsageStats{}, err
	}
	period := v.schedule.At(s.now())
	if key != "" {
		if err := checkPeriodKey("query.billing_period", key); err != nil {
			return UsageStats{}, err
		}
		if period, err = v.schedule.ByKey(key); err != nil {
			return UsageStats{}, err
		}
	}
	usage, err := s.store.UsageForPeriods(ctx, userID, []billing.Period{period})
	if err != nil {
		return UsageStats{}, err
	}
	alerts, err := s.unreadAlerts(ctx, userID, period, 0, periodAlerts)
	if err != nil {
		return UsageStats{}, err
	}
	return s.stats(v, usage[0], usage[0], alerts.Period), nil
}

// checkPeriodKey validates a "YYYY-MM" parameter and names it by its
// location (query.billing_period) as validation errors do, so a client sees
// which parameter was wrong.
func checkPeriodKey(location, key string) error {
	if _, _, err := billing.ParsePeriodKey(key); err != nil {
		return billing.InvalidField(location, fmt.Sprintf("%q is not a month in the form YYYY-MM", key), key)
	}
	return nil
}

type trendsInput struct {
	UserPath
	Months int `query:"months" minimum:"1" maximum:"24" default:"6" doc:"How many periods, ending with the current one."`
}

func (s *Server) getTrends(ctx context.Context, in *trendsInput) (*struct{ Body Envelope[Trends] }, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	v, err := s.userView(ctx, in.UserID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	t, _, err := s.trends(ctx, v, in.Months)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	return ok(t), nil
}

// trends returns the series of the last n periods (the current one last)
// and the current period's usage.
func (s *Server) trends(ctx context.Context, v userView, n int) (Trends, billing.PeriodUsage, error) {
	usage, err := s.store.UsageForPeriods(ctx, v.userID, v.lastPeriods(s.now(), n))
	if err != nil {
		return Trends{}, billing.PeriodUsage{}, err
	}
	return v.trendsOf(usage), usage[n-1], nil
}

// lastPeriods returns the user's n periods ending with the one at now,
// oldest first.
func (v userView) lastPeriods(now time.Time, n int) []billing.Period {
	current := v.schedule.At(now)
	periods := make([]billing.Period, n)
	for i := range n {
		periods[i] = v.schedule.Back(current, n-1-i)
	}
	return periods
}

// trendsOf builds the series of consecutive periods' usage, oldest first.
func (v userView) trendsOf(usage []billing.PeriodUsage) Trends {
	n := len(usage)
	t := Trends{
		Periods: make([]string, n), TotalCalls: make([]int64, n), TotalCost: make([]money.Amount, n),
		TotalTokens: make([]int64, n), ProviderTrends: map[string]ProviderTrendJSON{},
	}
	for _, p := range v.providers {
		t.ProviderTrends[p.Name] = ProviderTrendJSON{Calls: make([]int64, n), Cost: make([]money.Amount, n), Tokens: make([]int64, n)}
	}
	for i, u := range usage {
		t.Periods[i] = u.Period.Key
		t.TotalCalls[i], t.TotalCost[i], t.TotalTokens[i] = u.Total.Calls, u.Total.Cost, u.Total.Tokens()
		for name, pt := range t.ProviderTrends {
			c := u.ByProvider[name]
			pt.Calls[i], pt.Cost[i], pt.Tokens[i] = c.Calls, c.Cost, c.Tokens()
		}
	}
	return t
}
