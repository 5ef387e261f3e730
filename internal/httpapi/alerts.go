package httpapi

import (
	"context"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

type listAlertsInput struct {
	UserPath
	UnreadOnly bool `query:"unread_only" doc:"Only unread alerts."`
	Limit      int  `query:"limit" minimum:"1" maximum:"100" default:"50"`
}

func (s *Server) listAlerts(ctx context.Context, in *listAlertsInput) (*struct{ Body Envelope[AlertsData] }, error) {
	if _, err := s.auth.Authorize(ctx, in.UserID); err != nil {
		return nil, s.problem(ctx, err)
	}
	alerts, total, unread, err := s.store.ListAlerts(ctx, billing.AlertFilter{UserID: in.UserID, UnreadOnly: in.UnreadOnly, Limit: in.Limit})
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data := AlertsData{Alerts: make([]AlertJSON, 0, len(alerts)), Total: total, UnreadCount: unread}
	for _, a := range alerts {
		data.Alerts = append(data.Alerts, alertJSON(a))
	}
	return ok(data), nil
}

// alertJSON is an alert as the alert routes show it.
func alertJSON(a billing.Alert) AlertJSON {
	aj := AlertJSON{
		ID: a.ID, Type: a.Type, ThresholdPercentage: a.ThresholdPercentage, Title: a.Title, Message: a.Message,
		Severity: a.Severity, IsSent: a.IsSent, SentAt: a.SentAt, IsRead: a.IsRead, ReadAt: a.ReadAt,
		BillingPeriod: a.BillingPeriod, CreatedAt: a.CreatedAt,
	}
	if a.Provider != "" {
		aj.Provider = &a.Provider
	}
	return aj
}

type markReadInput struct {
	AlertID int64 `path:"alert_id" minimum:"1"`
}

func (s *Server) markAlertRead(ctx context.Context, in *markReadInput) (*struct{ Body MessageBody }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	a, err := s.store.GetAlert(ctx, in.AlertID)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	if !p.CanAccess(a.UserID) {
		return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "alert %d belongs to another user", in.AlertID))
	}
	if err := s.store.MarkAlertRead(ctx, in.AlertID, s.now()); err != nil {
		return nil, s.problem(ctx, err)
	}
	return &struct{ Body MessageBody }{Body: MessageBody{Success: true, Message: "Alert marked as read"}}, nil
}
