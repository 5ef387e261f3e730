// Package httpapi serves the JSON API under /api/subscription in the shapes
// ALwrity's frontend reads, with an OpenAPI 3.1 document generated from the
// Go types.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// Store is what the API reads.
type Store interface {
	Ping(ctx context.Context) error
	ListProviders(ctx context.Context) ([]billing.Provider, error)
	ListPlans(ctx context.Context, activeOnly bool) ([]billing.Plan, error)
	GetPlan(ctx context.Context, id int64) (billing.Plan, error)
	DefaultPlan(ctx context.Context) (billing.Plan, error)
	ListPrices(ctx context.Context, provider string, at time.Time) ([]billing.Price, error)
	CurrentSubscription(ctx context.Context, userID string) (*billing.Subscription, error)
	UsageForPeriods(ctx context.Context, userID string, periods []billing.Period) ([]billing.PeriodUsage, error)
	// Counters are what admission counts in one period: its own usage
	// (not that of another period of the same name) and its holds.
	Counters(ctx context.Context, userID string, p billing.Period, provider string) (store.Counters, error)
	ListLogs(ctx context.Context, f billing.LogFilter) ([]billing.UsageLog, int64, error)
	ListAlerts(ctx context.Context, f billing.AlertFilter) ([]billing.Alert, int64, int64, error)
	GetAlert(ctx context.Context, id int64) (billing.Alert, error)
	MarkAlertRead(ctx context.Context, id int64, now time.Time) error
	ProviderHealth(ctx context.Context, since time.Time) (map[string]billing.ProviderHealth, error)
	LedgerMark(ctx context.Context) (int64, error)
}

// Config configures the API.
type Config struct {
	Store Store
	Meter Meter
	// Preflighter answers POST /preflight-check.
	Preflighter Preflighter
	Auth        *auth.Authenticator
	Logger      *slog.Logger
	Now         func() time.Time
	Version     string
	// HealthWindow is how far back GET /health looks (default 15 minutes).
	HealthWindow time.Duration
}

// Server registers the API's operations.
type Server struct {
	store        Store
	meter        Meter
	preflighter  Preflighter
	auth         *auth.Authenticator
	logger       *slog.Logger
	now          func() time.Time
	healthWindow time.Duration
	health       healthCache
	api          huma.API
}

// Prefix is where the subscription API lives.
const Prefix = "/api/subscription"

// OpenAPIPath is the OpenAPI document's path without extension; huma serves
// it as .json and .yaml.
const OpenAPIPath = "/api/openapi"

// New registers every operation on mux and returns the server.
func New(mux *http.ServeMux, cfg Config) *Server {
	s := &Server{store: cfg.Store, meter: cfg.Meter, preflighter: cfg.Preflighter, auth: cfg.Auth, logger: cfg.Logger, now: cfg.Now, healthWindow: cfg.HealthWindow}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.healthWindow == 0 {
		s.healthWindow = 15 * time.Minute
	}
	hc := huma.DefaultConfig("alwrity-billing API", cfg.Version)
	hc.Info.Description = "Metering, pricing, limits and billing of AI-provider calls. " +
		"Money is exact decimal USD; protected routes take 'Authorization: Bearer <key>'."
	hc.OpenAPIPath = OpenAPIPath
	hc.DocsPath = "" // our own Swagger UI and ReDoc pages are served from Go modules
	hc.SchemasPath = ""
	hc.CreateHooks = nil // no "$schema" links in bodies: clients read exact shapes
	hc.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		"bearer": {Type: "http", Scheme: "bearer", Description: "An alwrity API key (user or admin)."},
	}
	hc.Components.Schemas.RegisterTypeAlias(reflect.TypeFor[money.Amount](), reflect.TypeFor[float64]())
	// Exact numbers written as JSON numbers (limits in calls or USD).
	hc.Components.Schemas.RegisterTypeAlias(reflect.TypeFor[json.Number](), reflect.TypeFor[float64]())
	s.api = humago.New(mux, hc)
	// Middlewares apply to operations registered after them, in this
	// order, and run before huma parses and validates a request: access is
	// decided first (401, 403), then the body's size (413).
	s.api.UseMiddleware(s.authenticate, s.limitBody)
	s.register()
	return s
}

// OpenAPI returns the generated document.
func (s *Server) OpenAPI() *huma.OpenAPI { return s.api.OpenAPI() }

var bearer = []map[string][]string{{"bearer": {}}}

func (s *Server) register() {
	pub := func(id, method, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: method, Path: Prefix + path, Summary: summary, Tags: []string{"subscription"}}
	}
	sec := func(id, method, path, summary string) huma.Operation {
		op := pub(id, method, path, summary)
		op.Security = bearer
		op.Errors = []int{http.StatusUnauthorized, http.StatusForbidden}
		return op
	}
	huma.Register(s.api, pub("list-plans", http.MethodGet, "/plans", "Active subscription plans, cheapest first"), s.listPlans)
	huma.Register(s.api, pub("list-pricing", http.MethodGet, "/pricing", "Current price of every model"), s.listPricing)
	huma.Register(s.api, sec("get-usage", http.MethodGet, "/usage/{user_id}", "A user's usage in one period"), s.getUsage)
	huma.Register(s.api, sec("get-trends", http.MethodGet, "/trends/{user_id}", "A user's usage over consecutive months"), s.getTrends)
	huma.Register(s.api, sec("get-usage-trends", http.MethodGet, "/usage/{user_id}/trends", "A user's usage over consecutive months (ALwrity's path)"), s.getTrends)
	huma.Register(s.api, sec("get-dashboard", http.MethodGet, "/dashboard/{user_id}", "Everything the billing dashboard shows"), s.getDashboard)
	huma.Register(s.api, sec("list-alerts", http.MethodGet, "/alerts/{user_id}", "A user's alerts, newest first"), s.listAlerts)
	huma.Register(s.api, sec("mark-alert-read", http.MethodPost, "/alerts/{alert_id}/mark-read", "Mark an alert read"), s.markAlertRead)
	huma.Register(s.api, sec("get-user-subscription", http.MethodGet, "/user/{user_id}/subscription", "A user's subscription and plan"), s.getUserSubscription)
	huma.Register(s.api, sec("get-status", http.MethodGet, "/status/{user_id}", "Whether a user may use the API now"), s.getStatus)
	huma.Register(s.api, sec("list-usage-logs", http.MethodGet, "/usage-logs", "Usage logs of the caller (or any user, for admins)"), s.listUsageLogs)
	huma.Register(s.api, pub("get-health", http.MethodGet, "/health", "Recent error rates and latency per provider"), s.getHealth)
	s.registerAdminPricing()
	s.registerLifecycle()
	s.registerAdminPlans()
	s.registerAdminBilling()
	s.registerAdminWebhooks()
	s.registerAdminKeys()
	s.registerAdminAlerts()
	if s.meter != nil {
		s.registerMetering()
	}
	if s.preflighter != nil {
		s.registerPreflight()
	}
}
