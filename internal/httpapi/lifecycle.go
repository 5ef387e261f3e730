package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Lifecycle is what the subscription routes need of the store beyond
// Store: changing subscriptions and reading their invoices and history.
type Lifecycle interface {
	Subscribe(ctx context.Context, userID string, planID int64, cycle string, opts store.SubscribeOptions, now time.Time) (store.ChangeResult, error)
	Cancel(ctx context.Context, userID string, immediate bool, now time.Time) (store.ChangeResult, error)
	Invoices(ctx context.Context, f store.InvoiceFilter) ([]billing.Invoice, int, error)
	SubscriptionHistory(ctx context.Context, userID string, limit int) ([]billing.HistoryEntry, error)
}

// lifecycleAPI serves the subscription lifecycle routes.
type lifecycleAPI struct {
	*Server
	lc Lifecycle
}

// registerLifecycle registers subscribe, cancel, the renewal history and
// the billing history. They exist only when the store keeps subscriptions
// (a test's small fake store need not).
func (s *Server) registerLifecycle() {
	lc, ok := s.store.(Lifecycle)
	if !ok {
		s.logger.Warn("the store cannot change subscriptions; the subscription lifecycle routes are off")
		return
	}
	a := &lifecycleAPI{Server: s, lc: lc}
	op := func(id, method, path, summary, desc string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: Prefix + path, Summary: summary, Description: desc,
			Tags: []string{"subscription"}, Security: bearer,
			Errors: append([]int{http.StatusUnauthorized, http.StatusForbidden}, errs...)}
	}
	huma.Register(s.api, op("subscribe", http.MethodPost, "/subscribe/{user_id}", "Start or change a user's subscription",
		"Starts a subscription to plan_id, or changes the current one. A dearer plan in the same billing cycle is an "+
			"upgrade that takes effect at once, the price difference for the rest of the cycle prorated to the second "+
			"on the next invoice. A cheaper plan, or a change of cycle, waits for the end of the current cycle "+
			"(change = scheduled, effective_at says when) unless immediate is true, which switches a cheaper plan at "+
			"once and credits the unused difference. Asking for the current plan again undoes a scheduled change or "+
			"cancellation. A user key may act only for its own user and only choose a free plan (price 0 in both "+
			"cycles); a paid plan needs an admin key.",
		http.StatusBadRequest, http.StatusUnprocessableEntity), a.subscribe)
	huma.Register(s.api, op("cancel-subscription", http.MethodPost, "/cancel/{user_id}", "Cancel a user's subscription",
		"Cancels at the end of the current billing cycle by default (the subscription stays active until then; "+
			"subscribing to the same plan again undoes it), or at once with immediate=true, crediting the unused part "+
			"of the cycle's price on the next invoice; the user is then on the free plan.",
		http.StatusNotFound, http.StatusUnprocessableEntity), a.cancel)
	huma.Register(s.api, op("get-renewal-history", http.MethodGet, "/renewal-history/{user_id}", "A user's subscription changes and renewals",
		"Every start, renewal, upgrade, downgrade, cancellation and expiry of the user's subscriptions, newest first, "+
			"each with the usage of its period at that moment."), a.renewalHistory)
	huma.Register(s.api, op("get-billing-history", http.MethodGet, "/billing-history/{user_id}", "A user's invoices",
		"One invoice per subscription and usage period, newest period first, written when the period closes: its "+
			"base fees and plan changes, credits, overage and the period's usage. Money is exact decimal USD."), a.billingHistory)
}

// subscribeBody is ALwrity's subscribe request plus our options. Other
// fields are ignored, as ALwrity's server ignored them.
type subscribeBody struct {
	_            struct{} `additionalProperties:"true"`
	PlanID       int64    `json:"plan_id" minimum:"1" doc:"The plan to subscribe to (see GET /plans)."`
	BillingCycle string   `json:"billing_cycle,omitempty" enum:"monthly,yearly" default:"monthly"`
	Immediate    bool     `json:"immediate,omitempty" doc:"Switch to a cheaper plan at once, crediting the unused difference, instead of at the end of the cycle."`
	TimeZone     string   `json:"time_zone,omitempty" maxLength:"64" doc:"IANA time zone of a new subscription's periods (default UTC); ignored when changing one, and for a free plan, which keeps the calendar months in UTC of users without a subscription."`
}

type subscribeInput struct {
	UserPath
	Body subscribeBody
}

// SubscriptionChangeJSON is a subscription after subscribe or cancel:
// ALwrity's subscribe answer plus what changed and when it takes effect.
type SubscriptionChangeJSON struct {
	SubscriptionID      int64      `json:"subscription_id"`
	PlanID              int64      `json:"plan_id"`
	PlanName            string     `json:"plan_name" doc:"The plan in effect now."`
	BillingCycle        string     `json:"billing_cycle" enum:"monthly,yearly"`
	CurrentPeriodStart  time.Time  `json:"current_period_start" doc:"The current billing cycle."`
	CurrentPeriodEnd    time.Time  `json:"current_period_end"`
	Status              string     `json:"status" enum:"active,past_due,cancelled,expired"`
	AutoRenew           bool       `json:"auto_renew"`
	Limits              Limits     `json:"limits" doc:"The limits of the plan in effect now."`
	Change              string     `json:"change" enum:"created,upgraded,changed,scheduled,unchanged,cancelled" doc:"What the request did: scheduled changes and cancellations take effect at effective_at."`
	EffectiveAt         *time.Time `json:"effective_at" doc:"When the change takes (or took) effect; null when nothing changed."`
	PendingPlanID       *int64     `json:"pending_plan_id" doc:"The plan the subscription moves to at the end of the cycle."`
	PendingBillingCycle *string    `json:"pending_billing_cycle" doc:"The cycle the subscription moves to at the end of the cycle."`
	CancelAtPeriodEnd   bool       `json:"cancel_at_period_end"`
	CancelledAt         *time.Time `json:"cancelled_at"`
}

func (a *lifecycleAPI) changeJSON(ctx context.Context, r store.ChangeResult, change string, effective *time.Time) (SubscriptionChangeJSON, error) {
	providers, err := a.store.ListProviders(ctx)
	if err != nil {
		return SubscriptionChangeJSON{}, err
	}
	s := r.Subscription
	out := SubscriptionChangeJSON{
		SubscriptionID: s.ID, PlanID: r.Plan.ID, PlanName: r.Plan.Name, BillingCycle: s.BillingCycle,
		CurrentPeriodStart: s.CurrentPeriodStart.UTC(), CurrentPeriodEnd: s.CurrentPeriodEnd.UTC(), Status: s.Status,
		AutoRenew: s.AutoRenew, Limits: planLimits(r.Plan, providers), Change: change, EffectiveAt: utcPtr(effective),
		PendingPlanID: s.PendingPlanID, CancelAtPeriodEnd: s.CancelAtPeriodEnd, CancelledAt: utcPtr(s.CancelledAt),
	}
	if s.PendingCycle != "" {
		out.PendingBillingCycle = &s.PendingCycle
	}
	return out, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (a *lifecycleAPI) subscribe(ctx context.Context, in *subscribeInput) (*struct {
	Body Envelope[SubscriptionChangeJSON]
}, error) {
	p, err := a.auth.Authorize(ctx, in.UserID)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	cycle := in.Body.BillingCycle
	if cycle == "" {
		cycle = billing.CycleMonthly
	}
	plan, err := a.store.GetPlan(ctx, in.Body.PlanID)
	if billing.ErrorCode(err) == billing.CodeNotFound {
		err = billing.InvalidField("body.plan_id", fmt.Sprintf("no plan %d (see GET %s/plans)", in.Body.PlanID, Prefix), in.Body.PlanID)
	}
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	// ALwrity let any user give itself any paid plan without paying; here
	// only an admin assigns a plan that costs money.
	if !p.IsAdmin() && !plan.IsFree() {
		return nil, a.problem(ctx, billing.Errorf(billing.CodeForbidden,
			"plan %s costs %s a month and %s a year: only an admin key may assign a paid plan; a user key may choose a free plan",
			plan.Name, plan.PriceMonthly, plan.PriceYearly))
	}
	now := a.now()
	r, err := a.lc.Subscribe(ctx, in.UserID, plan.ID, cycle, store.SubscribeOptions{Immediate: in.Body.Immediate, TimeZone: in.Body.TimeZone}, now)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	var effective *time.Time
	switch r.Outcome {
	case store.ChangeScheduled:
		effective = &r.EffectiveAt
	case store.ChangeUnchanged:
	default:
		// The store acts at the whole second.
		t := now.Truncate(time.Second)
		effective = &t
	}
	data, err := a.changeJSON(ctx, r, string(r.Outcome), effective)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return ok(data), nil
}

type cancelInput struct {
	UserPath
	Body *struct {
		Immediate bool `json:"immediate,omitempty" doc:"Cancel now and credit the unused part of the cycle, instead of at the cycle's end."`
	}
}

func (a *lifecycleAPI) cancel(ctx context.Context, in *cancelInput) (*struct {
	Body Envelope[SubscriptionChangeJSON]
}, error) {
	if _, err := a.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, a.problem(ctx, err)
	}
	immediate := in.Body != nil && in.Body.Immediate
	r, err := a.lc.Cancel(ctx, in.UserID, immediate, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	change, effective := "scheduled", &r.EffectiveAt
	if immediate {
		change, effective = "cancelled", r.Subscription.CancelledAt
	}
	data, err := a.changeJSON(ctx, r, change, effective)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return ok(data), nil
}

// PlanRefJSON names a plan.
type PlanRefJSON struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// UsageSnapshotJSON is the usage of a period at the moment of a change.
type UsageSnapshotJSON struct {
	Calls  int64        `json:"calls"`
	Tokens int64        `json:"tokens"`
	Cost   money.Amount `json:"cost"`
}

// RenewalJSON is one change or renewal of a subscription.
type RenewalJSON struct {
	ID             int64             `json:"id"`
	SubscriptionID int64             `json:"subscription_id"`
	RenewalType    string            `json:"renewal_type" enum:"new,renewal,upgrade,downgrade,cancel,expire"`
	PreviousPlan   *PlanRefJSON      `json:"previous_plan" doc:"Null for a new subscription."`
	NewPlan        *PlanRefJSON      `json:"new_plan" doc:"Null for a cancellation or expiry."`
	BillingCycle   string            `json:"billing_cycle" enum:"monthly,yearly"`
	PeriodStart    time.Time         `json:"period_start" doc:"The billing cycle at the change."`
	PeriodEnd      time.Time         `json:"period_end"`
	UsageSnapshot  UsageSnapshotJSON `json:"usage_snapshot" doc:"The usage of the usage period the change fell in (the one that ended, at a cycle's end)."`
	EffectiveAt    time.Time         `json:"effective_at"`
	CreatedAt      time.Time         `json:"created_at"`
}

// RenewalHistoryData is GET /renewal-history/{user_id}.
type RenewalHistoryData struct {
	RenewalHistory []RenewalJSON `json:"renewal_history"`
	Total          int           `json:"total" doc:"How many entries are listed."`
}

type renewalHistoryInput struct {
	UserPath
	Limit int `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"At most this many entries, newest first."`
}

func (a *lifecycleAPI) renewalHistory(ctx context.Context, in *renewalHistoryInput) (*struct {
	Body Envelope[RenewalHistoryData]
}, error) {
	if _, err := a.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, a.problem(ctx, err)
	}
	hist, err := a.lc.SubscriptionHistory(ctx, in.UserID, in.Limit)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	data := RenewalHistoryData{RenewalHistory: make([]RenewalJSON, 0, len(hist)), Total: len(hist)}
	for _, h := range hist {
		r := RenewalJSON{ID: h.ID, SubscriptionID: h.SubscriptionID, RenewalType: h.Event, BillingCycle: h.BillingCycle,
			PeriodStart: h.Period.Start.UTC(), PeriodEnd: h.Period.End.UTC(),
			UsageSnapshot: UsageSnapshotJSON{Calls: h.UsageCalls, Tokens: h.UsageTokens, Cost: h.UsageCost},
			EffectiveAt:   h.EffectiveAt.UTC(), CreatedAt: h.CreatedAt.UTC()}
		if h.FromPlanID != nil {
			r.PreviousPlan = &PlanRefJSON{ID: *h.FromPlanID, Name: h.FromPlanName}
		}
		if h.ToPlanID != nil {
			r.NewPlan = &PlanRefJSON{ID: *h.ToPlanID, Name: h.ToPlanName}
		}
		data.RenewalHistory = append(data.RenewalHistory, r)
	}
	return ok(data), nil
}

// InvoiceLineJSON is one explained amount of an invoice.
type InvoiceLineJSON struct {
	Type        string        `json:"type" enum:"base,upgrade,downgrade,credit,overage,adjustment" doc:"adjustment: usage of an earlier period reported after its invoice (its overage, or 0)."`
	Description string        `json:"description"`
	PeriodStart time.Time     `json:"period_start"`
	PeriodEnd   time.Time     `json:"period_end"`
	Quantity    *int64        `json:"quantity" doc:"Units billed (cycles, calls or tokens); null for prorated amounts and credits."`
	UnitPrice   *money.Amount `json:"unit_price" doc:"USD per unit (per 1,000 tokens for token overage); null when quantity is."`
	Amount      money.Amount  `json:"amount" doc:"USD; negative for credits."`
}

// InvoiceJSON is one billing_history row.
type InvoiceJSON struct {
	ID            int64             `json:"id"`
	InvoiceNumber string            `json:"invoice_number"`
	BillingPeriod string            `json:"billing_period"`
	PeriodStart   time.Time         `json:"period_start"`
	PeriodEnd     time.Time         `json:"period_end"`
	PlanName      string            `json:"plan_name"`
	BaseCost      money.Amount      `json:"base_cost" doc:"Base fees and plan changes."`
	UsageCost     money.Amount      `json:"usage_cost" doc:"What the period's calls cost at provider prices (information; not billed)."`
	OverageCost   money.Amount      `json:"overage_cost"`
	Credits       money.Amount      `json:"credits" doc:"Credits, as a positive amount."`
	TotalAmount   money.Amount      `json:"total_amount" doc:"Exactly the sum of the line items."`
	TotalAPICalls int64             `json:"total_api_calls"`
	TotalTokens   int64             `json:"total_tokens"`
	LineItems     []InvoiceLineJSON `json:"line_items"`
	Status        string            `json:"status" enum:"draft,issued,paid,void"`
	IssuedAt      *time.Time        `json:"issued_at"`
	PaymentDate   *time.Time        `json:"payment_date"`
	VoidedAt      *time.Time        `json:"voided_at"`
}

func invoiceJSON(inv billing.Invoice) InvoiceJSON {
	out := InvoiceJSON{ID: inv.ID, InvoiceNumber: inv.Number, BillingPeriod: inv.Period.Key,
		PeriodStart: inv.Period.Start.UTC(), PeriodEnd: inv.Period.End.UTC(), PlanName: inv.PlanName,
		BaseCost: inv.Base, UsageCost: inv.UsageCost, OverageCost: inv.Overage, Credits: inv.Credits, TotalAmount: inv.Total,
		TotalAPICalls: inv.Calls, TotalTokens: inv.Tokens, LineItems: make([]InvoiceLineJSON, 0, len(inv.Lines)),
		Status: inv.Status, IssuedAt: utcPtr(inv.IssuedAt), PaymentDate: utcPtr(inv.PaidAt), VoidedAt: utcPtr(inv.VoidedAt)}
	for _, l := range inv.Lines {
		lj := InvoiceLineJSON{Type: l.Type, Description: l.Description, PeriodStart: l.PeriodStart.UTC(),
			PeriodEnd: l.PeriodEnd.UTC(), Amount: l.Amount}
		if l.Quantity != 0 {
			q, p := l.Quantity, l.UnitPrice
			lj.Quantity, lj.UnitPrice = &q, &p
		}
		out.LineItems = append(out.LineItems, lj)
	}
	return out
}

// BillingHistoryData is GET /billing-history/{user_id}.
type BillingHistoryData struct {
	BillingHistory []InvoiceJSON `json:"billing_history"`
	Total          int           `json:"total" doc:"How many invoices the user has."`
	Limit          int           `json:"limit"`
	Offset         int           `json:"offset"`
}

type billingHistoryInput struct {
	UserPath
	Limit  int `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"At most this many invoices, newest period first."`
	Offset int `query:"offset" minimum:"0" default:"0" doc:"Skip this many invoices."`
}

func (a *lifecycleAPI) billingHistory(ctx context.Context, in *billingHistoryInput) (*struct {
	Body Envelope[BillingHistoryData]
}, error) {
	if _, err := a.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, a.problem(ctx, err)
	}
	invs, total, err := a.lc.Invoices(ctx, store.InvoiceFilter{UserID: in.UserID, Limit: in.Limit, Offset: in.Offset})
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	data := BillingHistoryData{BillingHistory: make([]InvoiceJSON, 0, len(invs)), Total: total, Limit: in.Limit, Offset: in.Offset}
	for _, inv := range invs {
		data.BillingHistory = append(data.BillingHistory, invoiceJSON(inv))
	}
	return ok(data), nil
}
