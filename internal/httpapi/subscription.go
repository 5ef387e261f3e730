package httpapi

import (
	"context"
	"fmt"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func (s *Server) getUserSubscription(ctx context.Context, in *UserPath) (*struct {
	Body Envelope[UserSubscriptionData]
}, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	v, err := s.userView(ctx, in.UserID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	period := v.schedule.At(s.now())
	data := UserSubscriptionData{
		Plan: SubscriptionPlanJSON{
			ID: v.plan.ID, Name: v.plan.Name, Tier: v.plan.Tier, PriceMonthly: v.plan.PriceMonthly,
			PriceYearly: v.plan.PriceYearly, Description: v.plan.Description, IsFree: v.plan.IsFree(),
		},
		Status:      "free",
		Limits:      planLimits(v.plan, v.providers),
		UsagePeriod: PeriodJSON{BillingPeriod: period.Key, Start: period.Start, End: period.End},
	}
	if v.sub != nil {
		data.Status = v.sub.Status
		data.Subscription = &SubscriptionJSON{
			ID: v.sub.ID, BillingCycle: v.sub.BillingCycle, CurrentPeriodStart: v.sub.CurrentPeriodStart,
			CurrentPeriodEnd: v.sub.CurrentPeriodEnd, Status: v.sub.Status, AutoRenew: v.sub.AutoRenew,
			TimeZone: v.sub.TimeZone, CreatedAt: v.sub.CreatedAt,
		}
	}
	return ok(data), nil
}

func (s *Server) getStatus(ctx context.Context, in *UserPath) (*struct{ Body Envelope[StatusData] }, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	v, err := s.userView(ctx, in.UserID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	// Whether calls can be made is what admission decides: the usage of
	// this very period, not of another period of the same month (a
	// subscription cancelled at once mid-month).
	period := v.schedule.At(s.now())
	c, err := s.store.Counters(ctx, in.UserID, period, "")
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	usage := []billing.PeriodUsage{{Period: period, Total: c.Total, ByProvider: map[string]billing.Counters{}}}
	data := StatusData{Active: true, Plan: v.plan.Name, Tier: v.plan.Tier, CanUseAPI: true, Limits: planLimits(v.plan, v.providers)}
	switch {
	case v.sub != nil && v.sub.Status != billing.StatusActive:
		data.Active, data.CanUseAPI = false, false
		data.Reason = fmt.Sprintf("subscription is %s", v.sub.Status)
	case !v.plan.IsActive:
		data.Active, data.CanUseAPI = false, false
		data.Reason = fmt.Sprintf("plan %s is no longer offered", v.plan.Name)
	default:
		// Only the limits that bind every call stop all use; a per-provider
		// limit stops that provider alone.
		for _, l := range v.limitsOf(usage[0]) {
			if l.Provider == "" && l.Limit != nil && l.Used >= *l.Limit {
				data.CanUseAPI = false
				data.UsageReason = fmt.Sprintf("%s limit reached for period %s", l.Key, usage[0].Period.Key)
				break
			}
		}
	}
	return ok(data), nil
}
