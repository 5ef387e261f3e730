package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// Preflighter checks planned operations against a user's limits.
type Preflighter interface {
	Preflight(ctx context.Context, userID string, ops []metering.PreflightOp) (metering.Preflight, error)
}

// PreflightOpJSON is one planned operation.
type PreflightOpJSON struct {
	Provider        string `json:"provider" maxLength:"64"`
	Model           string `json:"model,omitempty" maxLength:"128"`
	TokensRequested int64  `json:"tokens_requested,omitempty" minimum:"0"`
	OperationType   string `json:"operation_type,omitempty" maxLength:"64"`
}

// PreflightJSON is the body of POST /preflight-check.
type PreflightJSON struct {
	UserID     string            `json:"user_id,omitempty" maxLength:"128" doc:"Defaults to the key's user; admins must give it."`
	Operations []PreflightOpJSON `json:"operations" minItems:"1" maxItems:"100"`
}

// LimitInfoJSON is the limit that decides an operation. An operation no
// finite limit applies to reports its provider's calls with limit and
// remaining null (ALwrity's clients read remaining; its server produced an
// unserialisable infinity there).
type LimitInfoJSON struct {
	Type         string       `json:"type" doc:"The limit: total_calls, <provider>_calls, <provider>_tokens or monthly_cost."`
	CurrentUsage json.Number  `json:"current_usage" doc:"Used and held this period before this operation, in the limit's unit (USD for monthly_cost)."`
	Limit        *json.Number `json:"limit" nullable:"true" doc:"null when the operation is unlimited."`
	Remaining    *json.Number `json:"remaining" nullable:"true" doc:"null when the operation is unlimited."`
}

// PreflightOpResultJSON is the verdict on one operation.
type PreflightOpResultJSON struct {
	Provider      string         `json:"provider"`
	OperationType string         `json:"operation_type"`
	Cost          money.Amount   `json:"cost"`
	Allowed       bool           `json:"allowed"`
	LimitInfo     *LimitInfoJSON `json:"limit_info" doc:"Always given by this server (null is ALwrity's shape for no limit to report)."`
	Message       string         `json:"message"`
}

// PreflightUsageJSON summarises the period the check ran against.
type PreflightUsageJSON struct {
	BillingPeriod string       `json:"billing_period"`
	TotalCalls    int64        `json:"total_calls"`
	TotalCost     money.Amount `json:"total_cost"`
	ReservedCalls int64        `json:"reserved_calls"`
	ReservedCost  money.Amount `json:"reserved_cost"`
}

// PreflightData is POST /preflight-check's answer.
type PreflightData struct {
	CanProceed    bool                    `json:"can_proceed"`
	EstimatedCost money.Amount            `json:"estimated_cost"`
	TotalCost     money.Amount            `json:"total_cost"`
	Operations    []PreflightOpResultJSON `json:"operations"`
	UsageSummary  PreflightUsageJSON      `json:"usage_summary"`
	Cached        bool                    `json:"cached"`
}

func (s *Server) registerPreflight() {
	huma.Register(s.api, huma.Operation{OperationID: "preflight-check", Method: http.MethodPost, Path: Prefix + "/preflight-check",
		Summary: "Would these operations fit the user's limits now? (advisory; reserves nothing)", Tags: []string{"metering"},
		Security: bearer, Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden}}, s.preflight)
}

func (s *Server) preflight(ctx context.Context, in *struct{ Body PreflightJSON }) (*struct{ Body Envelope[PreflightData] }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	userID := in.Body.UserID
	switch {
	case p.IsAdmin() && userID == "":
		return nil, s.problem(ctx, billing.InvalidField("body.user_id", "admins must name the user", ""))
	case p.IsAdmin():
	case userID == "":
		userID = p.UserID
	case userID != p.UserID:
		return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "this key may check only user %q", p.UserID))
	}
	ops := make([]metering.PreflightOp, len(in.Body.Operations))
	for i, o := range in.Body.Operations {
		ops[i] = metering.PreflightOp{Provider: o.Provider, Model: o.Model, Tokens: o.TokensRequested, OperationType: o.OperationType}
	}
	pf, err := s.preflighter.Preflight(ctx, userID, ops)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data := PreflightData{CanProceed: pf.CanProceed, EstimatedCost: pf.TotalCost, TotalCost: pf.TotalCost,
		UsageSummary: PreflightUsageJSON{BillingPeriod: pf.Period.Key, TotalCalls: pf.Usage.Calls, TotalCost: pf.Usage.Cost,
			ReservedCalls: pf.Reserved.Calls, ReservedCost: pf.Reserved.Cost}}
	for _, c := range pf.Checks {
		r := PreflightOpResultJSON{Provider: c.Op.Provider, OperationType: c.Op.OperationType, Cost: c.Cost, Allowed: c.Allowed, Message: c.Message}
		if b := c.Binding; b != nil {
			num := func(v int64) json.Number {
				if b.Money {
					return json.Number(money.Amount(v).String())
				}
				return json.Number(strconv.FormatInt(v, 10))
			}
			r.LimitInfo = &LimitInfoJSON{Type: b.Key, CurrentUsage: num(b.Used)}
			if b.Limit != nil {
				limit, remaining := num(*b.Limit), num(*b.Remaining())
				r.LimitInfo.Limit, r.LimitInfo.Remaining = &limit, &remaining
			}
		}
		data.Operations = append(data.Operations, r)
	}
	return ok(data), nil
}
