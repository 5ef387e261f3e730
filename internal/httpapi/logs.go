package httpapi

import (
	"context"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

type listLogsInput struct {
	Limit         int    `query:"limit" minimum:"1" maximum:"5000" default:"50"`
	Offset        int    `query:"offset" minimum:"0" default:"0"`
	Provider      string `query:"provider" maxLength:"64"`
	StatusCode    int    `query:"status_code" minimum:"0" maximum:"599"`
	BillingPeriod string `query:"billing_period" pattern:"^[0-9]{4}-[0-9]{2}$"`
	UserID        string `query:"user_id" maxLength:"128" doc:"Admins only: another user's logs (all users when omitted)."`
}

func (s *Server) listUsageLogs(ctx context.Context, in *listLogsInput) (*struct{ Body LogsBody }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	f := billing.LogFilter{UserID: p.UserID, Provider: in.Provider, StatusCode: in.StatusCode,
		BillingPeriod: in.BillingPeriod, Limit: in.Limit, Offset: in.Offset}
	switch {
	case p.IsAdmin():
		f.UserID = in.UserID
	case in.UserID != "" && in.UserID != p.UserID:
		return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "this key may not read the logs of user %q", in.UserID))
	}
	if in.Provider != "" {
		if err := s.checkProvider(ctx, "query.provider", in.Provider); err != nil {
			return nil, s.problem(ctx, err)
		}
	}
	if in.BillingPeriod != "" {
		if err := checkPeriodKey("query.billing_period", in.BillingPeriod); err != nil {
			return nil, s.problem(ctx, err)
		}
	}
	logs, total, err := s.store.ListLogs(ctx, f)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	body := LogsBody{Logs: make([]LogJSON, 0, len(logs)), TotalCount: total, Limit: in.Limit, Offset: in.Offset,
		HasMore: int64(in.Offset+len(logs)) < total}
	for _, l := range logs {
		lj := LogJSON{
			ID: l.ID, EventID: l.EventID, UserID: l.UserID, Timestamp: l.Timestamp, Provider: l.Provider,
			ModelUsed: l.ModelUsed, Endpoint: l.Endpoint, Method: l.Method,
			TokensInput: l.TokensInput, TokensOutput: l.TokensOutput, TokensTotal: l.TokensTotal(),
			TokensCachedInput: l.TokensCachedInput, TokensCacheWrite5m: l.TokensCacheWrite5m,
			TokensCacheWrite1h: l.TokensCacheWrite1h, TokensReasoning: l.TokensReasoning,
			CostInput: l.CostInput, CostOutput: l.CostOutput, CostTotal: l.CostTotal,
			ResponseTime: l.ResponseTime, StatusCode: l.StatusCode, Status: "success",
			BillingPeriod: l.BillingPeriod, RetryCount: l.RetryCount, Unpriced: l.Unpriced, Partial: l.Partial,
		}
		if l.Failed() {
			lj.Status = "failed"
		}
		if l.ErrorMessage != "" {
			lj.ErrorMessage = &l.ErrorMessage
		}
		body.Logs = append(body.Logs, lj)
	}
	return &struct{ Body LogsBody }{Body: body}, nil
}
