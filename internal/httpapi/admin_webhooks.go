package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/alwrity/alwrity-billing/internal/webhook"
)

// WebhookAdmin is what the admin webhook routes need of the store.
type WebhookAdmin interface {
	CreateWebhookEndpoint(ctx context.Context, e webhook.Endpoint, now time.Time) (webhook.Endpoint, error)
	ListWebhookEndpoints(ctx context.Context) ([]webhook.Endpoint, error)
	GetWebhookEndpoint(ctx context.Context, id int64) (webhook.Endpoint, error)
	DeactivateWebhookEndpoint(ctx context.Context, id int64, now time.Time) (webhook.Endpoint, error)
	RotateWebhookSecret(ctx context.Context, id int64, secret string, grace time.Duration, now time.Time) (webhook.Endpoint, error)
	SendWebhookPing(ctx context.Context, id int64, now time.Time) (string, error)
	ListWebhookDeliveries(ctx context.Context, f webhook.DeliveryFilter) ([]webhook.Delivery, int64, error)
}

// adminWebhooks serves the admin webhook routes.
type adminWebhooks struct {
	*Server
	admin WebhookAdmin
}

// registerAdminWebhooks registers the routes that manage webhook
// endpoints and show their deliveries, when the store keeps webhooks.
func (s *Server) registerAdminWebhooks() {
	admin, ok := s.store.(WebhookAdmin)
	if !ok {
		s.logger.Warn("the store keeps no webhooks; the admin webhook routes are off")
		return
	}
	a := &adminWebhooks{Server: s, admin: admin}
	op := func(id, method, path, summary, desc string, errs ...int) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: AdminPrefix + path, Summary: summary, Description: desc,
			Tags: []string{"admin"}, Security: bearer,
			Errors: append([]int{http.StatusUnauthorized, http.StatusForbidden}, errs...)}
	}
	create := op("create-webhook", http.MethodPost, "/webhooks", "Register a webhook endpoint (admin)",
		"Registers an http(s) URL to receive the chosen events: alert.created, subscription.changed, invoice.issued, "+
			"usage.limit_reached. The answer carries the endpoint's signing secret, shown only this once: deliveries "+
			"carry Alwrity-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")> (see docs/WEBHOOKS.md).",
		http.StatusBadRequest)
	create.DefaultStatus = http.StatusCreated
	huma.Register(s.api, create, a.create)
	huma.Register(s.api, op("list-webhooks", http.MethodGet, "/webhooks", "Webhook endpoints (admin)",
		"Every registered endpoint, active or deactivated, oldest first. Secrets are never listed."), a.list)
	huma.Register(s.api, op("get-webhook", http.MethodGet, "/webhooks/{id}", "One webhook endpoint (admin)", "",
		http.StatusNotFound), a.get)
	huma.Register(s.api, op("deactivate-webhook", http.MethodDelete, "/webhooks/{id}", "Deactivate a webhook endpoint (admin)",
		"The endpoint receives no new events and its pending deliveries fail; it and its delivery history are kept. "+
			"Deactivating it again changes nothing.", http.StatusNotFound), a.deactivate)
	huma.Register(s.api, op("rotate-webhook-secret", http.MethodPost, "/webhooks/{id}/rotate-secret", "Rotate a webhook endpoint's secret (admin)",
		"Generates a new signing secret, shown only in this answer. For grace_seconds the old secret keeps signing too "+
			"(a second v1 in the header), so the receiver can switch without refusing deliveries.",
		http.StatusNotFound, http.StatusConflict), a.rotate)
	huma.Register(s.api, op("list-webhook-deliveries", http.MethodGet, "/webhooks/{id}/deliveries", "A webhook endpoint's deliveries (admin)",
		"Deliveries to the endpoint, newest first, each with every attempt made: when, the HTTP status, the error and "+
			"how long it took.", http.StatusNotFound), a.deliveries)
	ping := op("test-webhook", http.MethodPost, "/webhooks/{id}/test", "Send a test event to a webhook endpoint (admin)",
		"Queues a ping event for the endpoint alone, delivered, signed and retried like any other.",
		http.StatusNotFound, http.StatusConflict)
	ping.DefaultStatus = http.StatusAccepted
	huma.Register(s.api, ping, a.ping)
}

// WebhookEndpointJSON is a registered endpoint, without its secret.
type WebhookEndpointJSON struct {
	ID              int64      `json:"id"`
	URL             string     `json:"url"`
	Events          []string   `json:"events"`
	Description     string     `json:"description"`
	Active          bool       `json:"active"`
	CreatedAt       time.Time  `json:"created_at"`
	DeactivatedAt   *time.Time `json:"deactivated_at"`
	SecretRotatedAt *time.Time `json:"secret_rotated_at"`
}

// WebhookSecretJSON is an endpoint with its new signing secret.
type WebhookSecretJSON struct {
	WebhookEndpointJSON
	Secret string `json:"secret" doc:"The signing secret. Shown only in this answer: store it now."`
}

func endpointJSON(e webhook.Endpoint) WebhookEndpointJSON {
	return WebhookEndpointJSON{ID: e.ID, URL: e.URL, Events: e.Events, Description: e.Description, Active: e.Active,
		CreatedAt: e.CreatedAt, DeactivatedAt: e.DeactivatedAt, SecretRotatedAt: e.SecretRotatedAt}
}

// CreateWebhookBody registers an endpoint.
type CreateWebhookBody struct {
	URL         string   `json:"url" minLength:"1" maxLength:"2048" doc:"Where to POST events: an http:// or https:// URL without user name or password." example:"https://example.com/alwrity/webhooks"`
	Events      []string `json:"events" minItems:"1" maxItems:"4" uniqueItems:"true" enum:"alert.created,subscription.changed,invoice.issued,usage.limit_reached" doc:"The event types to receive."`
	Description string   `json:"description,omitempty" maxLength:"500" doc:"What the endpoint is for."`
}

func (a *adminWebhooks) create(ctx context.Context, in *struct{ Body CreateWebhookBody }) (*struct{ Body WebhookSecretJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	events, err := webhook.ValidateEndpoint(in.Body.URL, in.Body.Events)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	e, err := a.admin.CreateWebhookEndpoint(ctx, webhook.Endpoint{URL: in.Body.URL, Events: events,
		Description: in.Body.Description, Secret: webhook.NewSecret()}, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body WebhookSecretJSON }{WebhookSecretJSON{WebhookEndpointJSON: endpointJSON(e), Secret: e.Secret}}, nil
}

// WebhookListJSON lists endpoints.
type WebhookListJSON struct {
	Webhooks []WebhookEndpointJSON `json:"webhooks"`
	Total    int                   `json:"total"`
}

func (a *adminWebhooks) list(ctx context.Context, _ *struct{}) (*struct{ Body WebhookListJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	eps, err := a.admin.ListWebhookEndpoints(ctx)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := WebhookListJSON{Webhooks: make([]WebhookEndpointJSON, len(eps)), Total: len(eps)}
	for i, e := range eps {
		out.Webhooks[i] = endpointJSON(e)
	}
	return &struct{ Body WebhookListJSON }{out}, nil
}

type webhookIDInput struct {
	ID int64 `path:"id" minimum:"1" doc:"The endpoint's id."`
}

func (a *adminWebhooks) get(ctx context.Context, in *webhookIDInput) (*struct{ Body WebhookEndpointJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	e, err := a.admin.GetWebhookEndpoint(ctx, in.ID)
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body WebhookEndpointJSON }{endpointJSON(e)}, nil
}

func (a *adminWebhooks) deactivate(ctx context.Context, in *webhookIDInput) (*struct{ Body WebhookEndpointJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	e, err := a.admin.DeactivateWebhookEndpoint(ctx, in.ID, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body WebhookEndpointJSON }{endpointJSON(e)}, nil
}

type rotateInput struct {
	ID           int64 `path:"id" minimum:"1" doc:"The endpoint's id."`
	GraceSeconds int64 `query:"grace_seconds" minimum:"0" maximum:"604800" default:"86400" doc:"How long the old secret keeps signing beside the new one (0 retires it at once; at most 7 days)."`
}

func (a *adminWebhooks) rotate(ctx context.Context, in *rotateInput) (*struct{ Body WebhookSecretJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	e, err := a.admin.RotateWebhookSecret(ctx, in.ID, webhook.NewSecret(), time.Duration(in.GraceSeconds)*time.Second, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body WebhookSecretJSON }{WebhookSecretJSON{WebhookEndpointJSON: endpointJSON(e), Secret: e.Secret}}, nil
}

type deliveriesInput struct {
	ID     int64  `path:"id" minimum:"1" doc:"The endpoint's id."`
	Status string `query:"status" enum:"pending,delivered,failed" doc:"Only deliveries in this state."`
	Limit  int    `query:"limit" minimum:"1" maximum:"500" default:"50"`
	Offset int    `query:"offset" minimum:"0" maximum:"1000000" default:"0"`
}

// WebhookDeliveriesJSON is a page of deliveries.
type WebhookDeliveriesJSON struct {
	Deliveries []WebhookDeliveryJSON `json:"deliveries"`
	TotalCount int64                 `json:"total_count"`
	Limit      int                   `json:"limit"`
	Offset     int                   `json:"offset"`
	HasMore    bool                  `json:"has_more"`
}

// WebhookDeliveryJSON is one event's delivery to the endpoint.
type WebhookDeliveryJSON struct {
	ID             int64                `json:"id"`
	EventID        string               `json:"event_id" doc:"The id receivers de-duplicate by (the Alwrity-Event-Id header)."`
	EventType      string               `json:"event_type"`
	EventCreatedAt time.Time            `json:"event_created_at"`
	Status         string               `json:"status" enum:"pending,delivered,failed"`
	Attempts       int                  `json:"attempts"`
	NextAttemptAt  *time.Time           `json:"next_attempt_at" doc:"When it is tried next; null unless pending."`
	LastStatus     *int                 `json:"last_status" doc:"The HTTP status of the last attempt; null when no response came."`
	LastError      string               `json:"last_error"`
	DeliveredAt    *time.Time           `json:"delivered_at"`
	CreatedAt      time.Time            `json:"created_at"`
	AttemptLog     []WebhookAttemptJSON `json:"attempt_log" doc:"Every attempt, first first."`
}

// WebhookAttemptJSON is one HTTP request made for a delivery.
type WebhookAttemptJSON struct {
	Attempt     int       `json:"attempt"`
	AttemptedAt time.Time `json:"attempted_at"`
	StatusCode  *int      `json:"status_code" doc:"null when no response came."`
	Error       string    `json:"error"`
	DurationMS  int64     `json:"duration_ms"`
}

func (a *adminWebhooks) deliveries(ctx context.Context, in *deliveriesInput) (*struct{ Body WebhookDeliveriesJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	ds, total, err := a.admin.ListWebhookDeliveries(ctx, webhook.DeliveryFilter{EndpointID: in.ID, Status: in.Status,
		Limit: in.Limit, Offset: in.Offset})
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	out := WebhookDeliveriesJSON{Deliveries: make([]WebhookDeliveryJSON, len(ds)), TotalCount: total, Limit: in.Limit,
		Offset: in.Offset, HasMore: int64(in.Offset+len(ds)) < total}
	for i, d := range ds {
		j := WebhookDeliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, EventCreatedAt: d.EventCreatedAt,
			Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, DeliveredAt: d.DeliveredAt,
			CreatedAt: d.CreatedAt, AttemptLog: make([]WebhookAttemptJSON, len(d.AttemptLog))}
		if d.Status == webhook.StatusPending {
			j.NextAttemptAt = &d.NextAttemptAt
		}
		for k, at := range d.AttemptLog {
			j.AttemptLog[k] = WebhookAttemptJSON{Attempt: at.Number, AttemptedAt: at.AttemptedAt, Error: at.Error,
				DurationMS: at.Duration.Milliseconds()}
			if at.StatusCode != 0 {
				j.AttemptLog[k].StatusCode = &at.StatusCode
			}
		}
		out.Deliveries[i] = j
	}
	return &struct{ Body WebhookDeliveriesJSON }{out}, nil
}

// WebhookPingJSON names the queued test event.
type WebhookPingJSON struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
}

func (a *adminWebhooks) ping(ctx context.Context, in *webhookIDInput) (*struct{ Body WebhookPingJSON }, error) {
	if _, err := a.auth.RequireAdmin(ctx); err != nil {
		return nil, a.problem(ctx, err)
	}
	id, err := a.admin.SendWebhookPing(ctx, in.ID, a.now())
	if err != nil {
		return nil, a.problem(ctx, err)
	}
	return &struct{ Body WebhookPingJSON }{WebhookPingJSON{EventID: id, Type: "ping"}}, nil
}
