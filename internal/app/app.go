package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/docsui"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/httpmetrics"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/web"
	"github.com/alwrity/alwrity-billing/internal/webhook"
)

// SweepInterval is how often expired reservations are released.
var SweepInterval = 15 * time.Second

// Version is the build's version, set with -ldflags "-X …app.Version=…".
var Version = "dev"

// App is the running service.
type App struct {
	Config Config
	Logger *slog.Logger
	// Out receives the one-time printout of a generated admin key.
	Out io.Writer
	// Now is the clock; tests inject their own.
	Now func() time.Time

	DB       *store.DB
	Metrics  *httpmetrics.Metrics
	Meter    *metering.Meter
	Gateway  *gateway.Gateway // the LLM gateway under /gateway/
	unlock   func()           // releases the SQLite server lock
	handler  http.Handler
	server   *http.Server
	listener net.Listener
}

// New returns an App that Open will start.
func New(cfg Config, logger *slog.Logger, out io.Writer) *App {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if out == nil {
		out = io.Discard
	}
	return &App{Config: cfg, Logger: logger, Out: out, Now: time.Now}
}

// Open does what the seed's start script did: it connects to the database,
// creates or upgrades the tables, seeds the default plans and prices, makes
// sure an admin key exists, builds the handlers and checks itself.
func (a *App) Open(ctx context.Context) error {
	if err := a.Config.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	db, err := store.Open(ctx, a.Config.DatabaseURL, a.Logger)
	if err != nil {
		return err
	}
	a.DB = db
	db.InvoiceReview = a.Config.InvoiceReview
	// On SQLite the meter admits calls against counters in its memory,
	// which is right only while one server process uses the file.
	if a.unlock, err = db.LockServer(); err != nil {
		return err
	}
	if err := Migrate(ctx, db, a.Logger); err != nil {
		return err
	}
	seeded, err := db.Seed(ctx, billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), a.Now())
	if err != nil {
		return fmt.Errorf("seed defaults: %w", err)
	}
	if seeded != (store.SeedResult{}) {
		a.Logger.Info("default plans and prices seeded", "providers", seeded.Providers, "plans", seeded.Plans, "prices", seeded.Prices)
	}
	if err := a.ensureAdminKey(ctx); err != nil {
		return err
	}
	a.Metrics = httpmetrics.New()
	a.Meter = metering.New(db, a.Now, a.Logger)
	a.Meter.Health = metering.HealthPolicy{Window: a.Config.HealthWindow, ErrorRate: float64(a.Config.HealthErrorRate),
		MinCalls: a.Config.HealthMinCalls}
	if err := a.Meter.RegisterMetrics(a.Metrics.Registerer()); err != nil {
		return fmt.Errorf("meter metrics: %w", err)
	}
	a.handler = a.routes()
	a.Logger.Info("usage tracking middleware active", "metrics", "/metrics")
	if err := a.SelfCheck(ctx); err != nil {
		return fmt.Errorf("self-check failed: %w", err)
	}
	return nil
}

// Migrate applies pending migrations and says what it did in the seed's
// words.
func Migrate(ctx context.Context, db *store.DB, logger *slog.Logger) error {
	res, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	switch {
	case res.Created:
		logger.Info("Billing and subscription tables created successfully", "database", string(db.Dialect()), "schema_version", res.Version)
	case len(res.Applied) > 0:
		logger.Info("Billing and subscription tables upgraded", "applied", strings.Join(res.Applied, ", "), "schema_version", res.Version)
	default:
		logger.Info("Billing and subscription tables up to date", "database", string(db.Dialect()), "schema_version", res.Version)
	}
	return nil
}

// ensureAdminKey generates an admin key at first start when none is
// configured, prints it once to Out and stores only its hash.
func (a *App) ensureAdminKey(ctx context.Context) error {
	if a.Config.AdminKey != "" || a.Config.Dev {
		return nil
	}
	has, err := a.DB.HasActiveAdminKey(ctx)
	if err != nil {
		return fmt.Errorf("look for an admin key: %w", err)
	}
	if has {
		return nil
	}
	key, prefix, hash := auth.NewKey()
	if _, err := a.DB.CreateKey(ctx, billing.APIKey{Prefix: prefix, Role: billing.RoleAdmin, Name: "generated at first start", CreatedAt: a.Now()}, hash); err != nil {
		return err
	}
	fmt.Fprintf(a.Out, "\n"+
		"================================================================\n"+
		" No ALWRITY_ADMIN_KEY is set, so an admin key was generated.\n"+
		" It is shown only this once; only its hash is stored:\n\n"+
		"   %s\n\n"+
		" Revoke it with: alwrity-billing keys revoke %s\n"+
		"================================================================\n\n", key, prefix)
	a.Logger.Warn("generated an admin key and printed it once to standard output", "key_prefix", prefix)
	return nil
}

// SelfCheck verifies that the database answers and holds every table and a
// plan for users without a subscription.
func (a *App) SelfCheck(ctx context.Context) error {
	if err := a.DB.Ping(ctx); err != nil {
		return err
	}
	missing, err := a.DB.MissingTables(ctx)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return fmt.Errorf("tables missing: %s", strings.Join(missing, ", "))
	}
	if _, err := a.DB.DefaultPlan(ctx); err != nil {
		return fmt.Errorf("default plan: %w", err)
	}
	absent, err := a.DB.MissingDefaults(ctx, billing.DefaultPlans(), billing.DefaultPrices())
	if err != nil {
		return err
	}
	if len(absent) > 0 {
		a.Logger.Warn("some default plans or prices are absent (removed by an admin?)", "missing", strings.Join(absent, ", "))
	}
	return nil
}

// Handler returns the whole HTTP handler (after Open).
func (a *App) Handler() http.Handler { return a.handler }

// sqliteBackgroundSettles is the gateway's bound on calls recorded after
// their answer when the database is SQLite.
const sqliteBackgroundSettles = 1024

func (a *App) routes() http.Handler {
	mux := http.NewServeMux()
	authn := &auth.Authenticator{Keys: a.DB, AdminKey: a.Config.AdminKey, DevLoopbackAdmin: a.Config.Dev, Now: a.Now}
	httpapi.New(mux, httpapi.Config{Store: a.DB, Meter: a.Meter, Preflighter: a.Meter, Auth: authn, Logger: a.Logger, Now: a.Now, Version: Version})
	// The gateway reads each SDK's key from the request itself, so it does
	// not depend on auth.Middleware's place below.
	gw := a.Config.GatewayConfig(a.Logger, a.Now)
	if a.DB.Dialect() == store.SQLite {
		// SQLite commits keep up with a deeper backlog of records, and
		// serve a few per cent more calls with it; PostgreSQL needs the
		// gateway's default bound (docs/BENCHMARKS.md, fourth session).
		gw.MaxBackgroundSettles = sqliteBackgroundSettles
	}
	a.Gateway = gateway.New(gw, a.Meter, authn)
	a.Gateway.Register(mux)
	docs := docsui.Handler(httpapi.OpenAPIPath+".json", "alwrity-billing API")
	mux.Handle("GET "+docsui.DocsPath, docs)
	mux.Handle("GET "+docsui.DocsPath+"/", docs)
	mux.Handle("GET "+docsui.RedocPath, docs)
	mux.Handle("GET /metrics", a.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	// The dashboard pages read system health from the API in process (mux).
	web.New(web.Config{Store: a.DB, Auth: authn, API: mux, AdminKey: a.Config.AdminKey,
		SessionSecret: []byte(a.Config.SessionSecret), Logger: a.Logger, Now: a.Now}).Mount(mux)
	mux.HandleFunc("GET /{$}", a.index)
	// The mux records the matched pattern on the very request it is given,
	// and the metrics middleware reads it from its own: only wrappers that
	// pass the request on unchanged may sit between them. auth.Middleware
	// derives a new request (WithContext), so it goes outside; had it sat
	// inside, every request would be labelled "unmatched". Panics are
	// recovered inside the metrics so they count as the 500s they become.
	var h http.Handler = mux
	h = apiProblems(mux, h)
	h = recoverPanics(a.Logger, h)
	h = a.Metrics.Middleware(h)
	return allowOrigins(a.Config.CORSOrigins, auth.Middleware(h))
}

// apiProblems answers a request under /api/ that matches no route (404) or
// no method of its route (405, with Allow) with problem+json like every
// other API error, instead of the mux's plain text that JSON clients cannot
// read.
func apiProblems(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		// An empty pattern means the mux would answer 404 or 405 itself;
		// redirects and matches have a pattern.
		h, pattern := mux.Handler(r)
		if pattern != "" {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusOnly{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if allow := rec.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if rec.status == 0 {
			rec.status = http.StatusNotFound
		}
		detail := fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)
		if rec.status == http.StatusMethodNotAllowed {
			detail = fmt.Sprintf("%s does not answer %s", r.URL.Path, r.Method)
		}
		writeProblem(w, rec.status, detail)
	})
}

// statusOnly is a ResponseWriter that keeps the status and headers and
// drops the body.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header { return s.header }

func (s *statusOnly) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}

func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

// readyz answers 200 only when the database answers and holds every table.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.DB.Ping(ctx); err != nil {
		a.Logger.Warn("not ready", "error", err)
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	missing, err := a.DB.MissingTables(ctx)
	if err != nil {
		a.Logger.Warn("not ready", "error", err)
		http.Error(w, "database schema unreadable", http.StatusServiceUnavailable)
		return
	}
	if len(missing) > 0 {
		// Table names are what an operator needs to act on; they are not
		// internal error text.
		a.Logger.Warn("not ready", "missing_tables", missing)
		http.Error(w, "database schema incomplete: missing "+strings.Join(missing, ", "), http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

func (a *App) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>alwrity-billing</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}</style></head>
<body><h1>alwrity-billing</h1><p>Metering, pricing, limits and billing of AI-provider calls.</p><ul>
<li><a href="/dashboard">Billing dashboard</a> (sign in with your API key) · <a href="/admin">Admin overview</a></li>
<li><a href="/api/docs">API documentation (Swagger UI)</a></li><li><a href="/api/redoc">API reference (ReDoc)</a></li>
<li><a href="/api/openapi.json">OpenAPI 3.1 document</a></li><li><a href="/api/subscription/plans">Plans</a> · <a href="/api/subscription/pricing">Pricing</a> · <a href="/api/subscription/health">Health</a></li>
<li><a href="/metrics">Prometheus metrics</a></li></ul></body></html>`)
}

// Listen binds the configured address; with port 0 the system picks one.
func (a *App) Listen() error {
	l, err := net.Listen("tcp", a.Config.Addr())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Addr(), err)
	}
	a.listener = l
	return nil
}

// Addr returns the address the server listens on (after Listen).
func (a *App) Addr() string { return a.listener.Addr().String() }

// BaseURL returns an http URL for the listening address that a local
// client can reach.
func (a *App) BaseURL() string {
	host, port, _ := net.SplitHostPort(a.Addr())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Run serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting, lets requests in flight finish (up to ShutdownTimeout) and
// returns.
func (a *App) Run(ctx context.Context) error {
	if a.handler == nil {
		// A nil Handler would make http.Server serve http.DefaultServeMux.
		return errors.New("app: Run called before Open")
	}
	if a.listener == nil {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	a.server = &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.Logger.Handler(), slog.LevelWarn),
	}
	base := a.BaseURL()
	a.Logger.Info("serving", "addr", a.Addr(), "api", base+httpapi.Prefix, "docs", base+docsui.DocsPath,
		"redoc", base+docsui.RedocPath, "home", base+"/", "metrics", base+"/metrics")
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.listener) }()
	sweepCtx, stopSweeper := context.WithCancel(ctx)
	sweeperDone := make(chan struct{})
	go func() {
		defer close(sweeperDone)
		a.Meter.RunSweeper(sweepCtx, SweepInterval)
	}()
	defer func() { stopSweeper(); <-sweeperDone }()
	closeCtx, stopClosing := context.WithCancel(ctx)
	closingDone := make(chan struct{})
	go func() {
		defer close(closingDone)
		a.runPeriodClose(closeCtx, CloseInterval)
	}()
	defer func() { stopClosing(); <-closingDone }()
	// Webhook deliveries go out from every replica; leases keep any two
	// from sending the same one.
	hooks := webhook.New(webhook.Config{Store: a.DB, Now: a.Now, Interval: a.Config.WebhookInterval,
		Timeout: a.Config.WebhookTimeout, Logger: a.Logger})
	hooksCtx, stopHooks := context.WithCancel(ctx)
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		hooks.Run(hooksCtx)
	}()
	defer func() { stopHooks(); <-hooksDone }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
	defer cancel()
	err := a.server.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// Close releases the database. The gateway goes first: calls it answered
// are recorded in the background, and it waits for them (up to
// ShutdownTimeout) before its pending records' last attempt and before the
// meter journals its holds.
func (a *App) Close() error {
	var errs []error
	if a.Gateway != nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.Config.ShutdownTimeout)
		if err := a.Gateway.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("record the gateway's last calls: %w", err))
		}
		cancel()
	}
	if a.DB == nil {
		return errors.Join(errs...)
	}
	if a.Meter != nil {
		// Holds still only in memory go to the journal, so they outlive
		// the process.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.Meter.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("journal held reservations: %w", err))
		}
		cancel()
	}
	errs = append(errs, a.DB.Close())
	if a.unlock != nil {
		a.unlock()
	}
	return errors.Join(errs...)
}
