package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// PlansAdmin is what the admin plan routes need of the store beyond Store.
type PlansAdmin interface {
	CreatePlan(ctx context.Context, p billing.Plan, now time.Time) (int64, error)
	EditPlan(ctx context.Context, id int64, p billing.Plan, moveNow bool, now time.Time) (store.EditResult, error)
	SetPlanActive(ctx context.Context, id int64, active bool, now time.Time) (billing.Plan, error)
}

// adminPlans serves the admin plan routes.
type adminPlans struct {
	*Server
	admin PlansAdmin
}

func (s *Server) registerAdminPlans() {
	admin, ok := s.store.(PlansAdmin)
	if !ok {
		s.logger.Warn("the store cannot administer plans; the admin plan routes are off")
		return
	}
	a := &adminPlans{Server: s, admin: admin}
	op := func(id, method, path, summary, desc string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: AdminPrefix + path, Summary: summary, Description: desc,
			Tags: []string{"admin"}, Security: bearer, Errors: append([]int{http.StatusUnauthorized, http.StatusForbidden}, errs...)}
	}
	huma.Register(s.api, op("list-all-plans", http.MethodGet, "/plans", "Every plan, retired versions too (admin)",
		"All plans by ascending monthly price, with whether each is offered and which version replaced it."), a.listPlans)
	create := op("create-plan", http.MethodPost, "/plans", "Create a plan (admin)",
		"A null limit is unlimited; 0 means not allowed. Plans with soft_limits admit calls above the call and token "+
			"limits and bill them at the overage prices instead (the monthly cost limit stays hard).",
		http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity)
	create.DefaultStatus = http.StatusCreated
	huma.Register(s.api, create, a.createPlan)
	huma.Register(s.api, op("edit-plan", http.MethodPut, "/plans/{plan_id}", "Edit a plan: a new version (admin)",
		"Replaces the plan with a new version holding the body (a plan is never rewritten: invoices name the version "+
			"they billed). The new version takes the plan's name (or the body's); the old one is renamed \"<name> "+
			"(version N)\", no longer offered and points at the new one. Subscribers move to the new version at their "+
			"next renewal, or at once with move_subscribers_now. Only the newest version can be edited.",
		http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity), a.editPlan)
	huma.Register(s.api, op("deactivate-plan", http.MethodPost, "/plans/{plan_id}/deactivate", "Stop offering a plan (admin)",
		"New subscriptions cannot choose it; its subscribers keep it. The last active free plan (the plan of users "+
			"without a subscription) cannot be deactivated.", http.StatusNotFound, http.StatusConflict), a.deactivatePlan)
	huma.Register(s.api, op("activate-plan", http.MethodPost, "/plans/{plan_id}/activate", "Offer a plan again (admin)",
		"A retired version cannot be offered again: edit the newest one.", http.StatusNotFound, http.StatusConflict), a.activatePlan)
}

// ProviderLimitJSON is a plan's limit on one provider; null is unlimited.
type ProviderLimitJSON struct {
	Calls  *int64 `json:"calls" required:"false" minimum:"0" nullable:"true" doc:"Calls per usage period; null is unlimited, 0 not allowed."`
	Tokens *int64 `json:"tokens" required:"false" minimum:"0" nullable:"true" doc:"Tokens per usage period (token-metered providers only); null is unlimited, 0 not allowed."`
}

// PlanLimitSettingsJSON are a plan's limits as set: null is unlimited and
// 0 not allowed (no ambiguous zero).
type PlanLimitSettingsJSON struct {
	TotalCalls  *int64                       `json:"total_calls" required:"false" minimum:"0" nullable:"true" doc:"Calls per usage period."`
	MonthlyCost *money.Amount                `json:"monthly_cost" required:"false" nullable:"true" doc:"USD per usage period (a hard limit)."`
	Providers   map[string]ProviderLimitJSON `json:"providers" required:"false" doc:"Limits per provider; a provider left out is unlimited."`
}

// PlanBody is a plan as an admin creates or edits it.
type PlanBody struct {
	Name               string                `json:"name,omitempty" maxLength:"100" doc:"Required when creating; an edit keeps the name when empty."`
	Tier               string                `json:"tier" enum:"free,basic,pro,enterprise" doc:"ALwrity's tier vocabulary."`
	PriceMonthly       money.Amount          `json:"price_monthly" doc:"USD per monthly cycle."`
	PriceYearly        money.Amount          `json:"price_yearly" doc:"USD per yearly cycle."`
	Description        string                `json:"description,omitempty" maxLength:"2000"`
	Features           []string              `json:"features,omitempty" maxItems:"100"`
	Limits             PlanLimitSettingsJSON `json:"limits,omitempty"`
	SoftLimits         bool                  `json:"soft_limits,omitempty" doc:"Admit calls above the call and token limits and bill them as overage."`
	OveragePerCall     *money.Amount         `json:"overage_per_call,omitempty" nullable:"true" doc:"USD per call above total_calls (soft limits)."`
	OveragePer1KTokens *money.Amount         `json:"overage_per_1k_tokens,omitempty" nullable:"true" doc:"USD per 1,000 tokens above a provider's token limit (soft limits)."`
	IsActive           *bool                 `json:"is_active,omitempty" doc:"Offered to new subscribers (default true)."`
}

// plan checks the body and turns it into a plan. Errors: invalid, naming
// every bad field.
func (a *adminPlans) plan(ctx context.Context, b PlanBody, creating bool) (billing.Plan, error) {
	var bad []billing.FieldError
	badf := func(loc, msg string, v any) {
		bad = append(bad, billing.FieldError{Location: "body." + loc, Message: msg, Value: v})
	}
	if creating && b.Name == "" {
		badf("name", "a plan needs a name", b.Name)
	}
	for _, f := range []struct {
		loc string
		v   *money.Amount
	}{{"price_monthly", &b.PriceMonthly}, {"price_yearly", &b.PriceYearly}, {"limits.monthly_cost", b.Limits.MonthlyCost},
		{"overage_per_call", b.OveragePerCall}, {"overage_per_1k_tokens", b.OveragePer1KTokens}} {
		if f.v != nil && *f.v < 0 {
			badf(f.loc, "must not be negative", f.v.String())
		}
	}
	if !b.SoftLimits && (b.OveragePerCall != nil || b.OveragePer1KTokens != nil) {
		badf("soft_limits", "overage prices apply only to a plan with soft_limits", b.SoftLimits)
	}
	providers, err := a.store.ListProviders(ctx)
	if err != nil {
		return billing.Plan{}, err
	}
	p := billing.Plan{Name: b.Name, Tier: b.Tier, PriceMonthly: b.PriceMonthly, PriceYearly: b.PriceYearly,
		Description: b.Description, Features: nonNil(b.Features), IsActive: b.IsActive == nil || *b.IsActive,
		TotalCallsLimit: b.Limits.TotalCalls, MonthlyCostLimit: b.Limits.MonthlyCost, ProviderLimits: map[string]billing.ProviderLimit{},
		SoftLimits: b.SoftLimits, OveragePerCall: b.OveragePerCall, OveragePer1KTokens: b.OveragePer1KTokens}
	names := make([]string, 0, len(b.Limits.Providers))
	for n := range b.Limits.Providers {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l := b.Limits.Providers[n]
		i := slices.IndexFunc(providers, func(p billing.Provider) bool { return p.Name == n })
		switch {
		case i < 0:
			badf("limits.providers."+n, fmt.Sprintf("unknown provider %q", n), n)
			continue
		case l.Tokens != nil && !providers[i].MetersTokens:
			badf("limits.providers."+n+".tokens", fmt.Sprintf("%s is not metered in tokens", n), *l.Tokens)
		}
		p.ProviderLimits[n] = billing.ProviderLimit{Calls: l.Calls, Tokens: l.Tokens}
	}
	if len(bad) > 0 {
		return billing.Plan{}, &billing.Error{Code: billing.CodeInvalid, Message: "invalid plan", Fields: bad}
	}
	return p, nil
}

// AdminPlanJSON is a plan as an admin sees it: the public shape, its
// limits as set, and its versioning.
type AdminPlanJSON struct {
	PlanJSON
	LimitSettings PlanLimitSettingsJSON `json:"limit_settings" doc:"The limits as set: null is unlimited, 0 not allowed."`
	IsActive      bool                  `json:"is_active"`
	ReplacedBy    *int64                `json:"replaced_by" doc:"The newer version of a retired plan."`
	CreatedAt     time.Time             `json:"created_at"`
	UpdatedAt     time.Time             `json:"updated_at"`
}

// publicPlan is a plan as GET /plans shows it.
func publicPlan(p billing.Plan, providers []billing.Provider) PlanJSON {
	return PlanJSON{
		ID: p.ID, Name: p.Name, Tier: p.Tier, PriceMonthly: p.PriceMonthly, PriceYearly: p.PriceYearly,
		Description: p.Description, Features: nonNil(p.Features), Limits: planLimits(p, providers),
		Version: max(p.Version, 1), SoftLimits: p.SoftLimits, OveragePerCall: p.OveragePerCall, OveragePer1KTokens: p.OveragePer1KTokens,
	}
}

func adminPlan(p billing.Plan, providers []billing.Provider) AdminPlanJSON {
	out := AdminPlanJSON{PlanJSON: publicPlan(p, providers), IsActive: p.IsActive, ReplacedBy: p.ReplacedBy,
		CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
		LimitSettings: PlanLimitSettingsJSON{TotalCalls: p.TotalCallsLimit, MonthlyCost: p.MonthlyCostLimit,
			Providers: map[string]ProviderLimitJSON{}}}
	for n, l := range p.ProviderLimits {
		out.LimitSettings.Providers[n] = ProviderLimitJSON{Calls: l.Calls, Tokens: l.Tokens}
	}
	return out
}

// AdminPlansJSON lists plans.
type AdminPlansJSON struct {
	Plans []AdminPlanJSON `json:"plans"`
	Total int             `json:"total"`
}

func (a *adminPlans) listPlans(ctx context.Context, _ *struct{}) (*struct{ Body AdminPlansJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	plans, err := a.store.ListPlans(ctx, false)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	providers, err := a.store.ListProviders(ctx)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := AdminPlansJSON{Plans: make([]AdminPlanJSON, 0, len(plans)), Total: len(plans)}
	for _, p := range plans {
		out.Plans = append(out.Plans, adminPlan(p, providers))
	}
	return &struct{ Body AdminPlansJSON }{out}, nil
}

// answer reads plan id back and shows it.
func (a *adminPlans) answer(ctx context.Context, id int64) (AdminPlanJSON, error) {
	p, err := a.store.GetPlan(ctx, id)
	if err != nil {
		return AdminPlanJSON{}, err
	}
	providers, err := a.store.ListProviders(ctx)
	if err != nil {
		return AdminPlanJSON{}, err
	}
	return adminPlan(p, providers), nil
}

func (a *adminPlans) createPlan(ctx context.Context, in *struct{ Body PlanBody }) (*struct{ Body AdminPlanJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	p, err := a.plan(ctx, in.Body, true)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	id, err := a.admin.CreatePlan(ctx, p, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out, err := a.answer(ctx, id)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AdminPlanJSON }{out}, nil
}

// PlanIDPath is the {plan_id} path parameter.
type PlanIDPath struct {
	PlanID int64 `path:"plan_id" minimum:"1" doc:"The plan's id."`
}

type editPlanInput struct {
	PlanIDPath
	Body struct {
		PlanBody
		MoveSubscribersNow bool `json:"move_subscribers_now,omitempty" doc:"Move the plan's subscribers to the new version now instead of at their next renewal."`
	}
}

// PlanEditJSON is an edit's outcome.
type PlanEditJSON struct {
	Plan     AdminPlanJSON `json:"plan" doc:"The new version."`
	Previous AdminPlanJSON `json:"previous" doc:"The retired version."`
	Moved    int           `json:"moved" doc:"Subscriptions moved to the new version now."`
}

func (a *adminPlans) editPlan(ctx context.Context, in *editPlanInput) (*struct{ Body PlanEditJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	p, err := a.plan(ctx, in.Body.PlanBody, false)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	res, err := a.admin.EditPlan(ctx, in.PlanID, p, in.Body.MoveSubscribersNow, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	providers, err := a.store.ListProviders(ctx)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body PlanEditJSON }{PlanEditJSON{Plan: adminPlan(res.Plan, providers),
		Previous: adminPlan(res.Previous, providers), Moved: res.Moved}}, nil
}

func (a *adminPlans) setActive(ctx context.Context, id int64, active bool) (*struct{ Body AdminPlanJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	if _, err := a.admin.SetPlanActive(ctx, id, active, a.now()); err != nil {
		return nil, a.problem(ctx, err)
	}
	out, err := a.answer(ctx, id)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body AdminPlanJSON }{out}, nil
}

func (a *adminPlans) deactivatePlan(ctx context.Context, in *PlanIDPath) (*struct{ Body AdminPlanJSON }, error) {
	return a.setActive(ctx, in.PlanID, false)
}

func (a *adminPlans) activatePlan(ctx context.Context, in *PlanIDPath) (*struct{ Body AdminPlanJSON }, error) {
	return a.setActive(ctx, in.PlanID, true)
}
