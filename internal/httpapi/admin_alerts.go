package httpapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// AlertsAdmin is what the admin alert route needs of the store.
type AlertsAdmin interface {
	ListAllAlerts(ctx context.Context, f store.AllAlertsFilter) ([]billing.Alert, int64, int64, error)
}

// registerAdminAlerts registers the route that lists the alerts of every
// user and the admin alerts (unpriced models, system health).
func (s *Server) registerAdminAlerts() {
	admin, ok := s.store.(AlertsAdmin)
	if !ok {
		s.logger.Warn("the store cannot list the alerts of all users; the admin alert route is off")
		return
	}
	huma.Register(s.api, huma.Operation{OperationID: "list-all-alerts", Method: http.MethodGet, Path: AdminPrefix + "/alerts",
		Summary: "Alerts of every user, newest first (admin)",
		Description: "Every user's alerts and the admin alerts, which belong to no user (user_id \"\": unpriced models, " +
			"system health). total counts what the filters select; unread_count how many of those are unread.",
		Tags: []string{"admin"}, Security: bearer, Errors: []int{http.StatusUnauthorized, http.StatusForbidden}},
		func(ctx context.Context, in *listAllAlertsInput) (*struct{ Body Envelope[AdminAlertsData] }, error) {
			return s.listAllAlerts(ctx, admin, in)
		})
}

type listAllAlertsInput struct {
	UserID        string `query:"user_id" maxLength:"128" doc:"Only this user's alerts."`
	Type          string `query:"type" enum:"usage_warning,limit_reached,cost_warning,cost_overrun,system_health,unpriced_model" doc:"Only alerts of this type."`
	UnreadOnly    bool   `query:"unread_only" doc:"Only unread alerts."`
	BillingPeriod string `query:"billing_period" pattern:"^[0-9]{4}-[0-9]{2}$" doc:"Only alerts about this usage period (YYYY-MM)."`
	Limit         int    `query:"limit" minimum:"1" maximum:"100" default:"50"`
	Offset        int    `query:"offset" minimum:"0" maximum:"1000000" default:"0"`
}

// AdminAlertJSON is an alert with the user it is about.
type AdminAlertJSON struct {
	UserID string `json:"user_id" doc:"The user the alert is about; empty for an admin alert."`
	AlertJSON
}

// AdminAlertsData is GET /api/admin/alerts: AlertsData with its page.
type AdminAlertsData struct {
	Alerts      []AdminAlertJSON `json:"alerts"`
	Total       int64            `json:"total"`
	UnreadCount int64            `json:"unread_count"`
	Limit       int              `json:"limit"`
	Offset      int              `json:"offset"`
	HasMore     bool             `json:"has_more"`
}

func (s *Server) listAllAlerts(ctx context.Context, admin AlertsAdmin, in *listAllAlertsInput) (*struct{ Body Envelope[AdminAlertsData] }, error) {
	if _, err := s.auth.RequireAdmin(ctx); err != nil {
		return nil, s.problem(ctx, err)
	}
	alerts, total, unread, err := admin.ListAllAlerts(ctx, store.AllAlertsFilter{UserID: in.UserID, Type: in.Type,
		UnreadOnly: in.UnreadOnly, BillingPeriod: in.BillingPeriod, Limit: in.Limit, Offset: in.Offset})
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	data := AdminAlertsData{Alerts: make([]AdminAlertJSON, 0, len(alerts)), Total: total, UnreadCount: unread,
		Limit: in.Limit, Offset: in.Offset, HasMore: int64(in.Offset+len(alerts)) < total}
	for _, a := range alerts {
		data.Alerts = append(data.Alerts, AdminAlertJSON{UserID: a.UserID, AlertJSON: alertJSON(a)})
	}
	return ok(data), nil
}
