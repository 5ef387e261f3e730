// Package web serves the billing dashboards as pages of the binary itself:
// html/template pages embedded in the binary, charts drawn as SVG on the
// server, and one small script of ours for refresh. It signs people in with
// their API key into a signed session cookie and reads through the same
// store calls and billing rules as the JSON API.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Store is what the pages read.
type Store interface {
	KeyByPrefix(ctx context.Context, prefix string) (billing.APIKey, string, error)
	ListProviders(ctx context.Context) ([]billing.Provider, error)
	ListPlans(ctx context.Context, activeOnly bool) ([]billing.Plan, error)
	GetPlan(ctx context.Context, id int64) (billing.Plan, error)
	DefaultPlan(ctx context.Context) (billing.Plan, error)
	CurrentSubscription(ctx context.Context, userID string) (*billing.Subscription, error)
	UsageForPeriods(ctx context.Context, userID string, periods []billing.Period) ([]billing.PeriodUsage, error)
	ListLogs(ctx context.Context, f billing.LogFilter) ([]billing.UsageLog, int64, error)
	ListAlerts(ctx context.Context, f billing.AlertFilter) ([]billing.Alert, int64, int64, error)
	GetAlert(ctx context.Context, id int64) (billing.Alert, error)
	MarkAlertRead(ctx context.Context, id int64, now time.Time) error
	ListUserOverviews(ctx context.Context, periodKeys []string, limit int) ([]store.UserOverview, error)
	ListRecentAlerts(ctx context.Context, limit int) ([]billing.Alert, error)
	Invoices(ctx context.Context, f store.InvoiceFilter) ([]billing.Invoice, int, error)
	SubscriptionHistory(ctx context.Context, userID string, limit int) ([]billing.HistoryEntry, error)
}

// Config configures the pages.
type Config struct {
	Store Store
	// Auth checks keys at sign-in (the same Authenticator as the API).
	Auth *auth.Authenticator
	// API is the JSON API's handler; the pages read public figures that
	// the API computes (system health) from it in process, so both show
	// the same numbers by the same rules.
	API http.Handler
	// AdminKey is the configured ALWRITY_ADMIN_KEY ("" when unset).
	AdminKey string
	// SessionSecret signs cookies; nil draws a random one (see session.go).
	SessionSecret []byte
	SessionTTL    time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// Handler serves the pages.
type Handler struct {
	store    Store
	auth     *auth.Authenticator
	api      http.Handler
	adminKey string
	sess     *sessions
	logger   *slog.Logger
	now      func() time.Time
	tmpl     map[string]*template.Template
}

// New returns the pages' handler. The templates are embedded, so a
// template that does not parse is a programming error: New panics, like
// template.Must, and the package's tests parse them all.
func New(cfg Config) *Handler {
	h := &Handler{store: cfg.Store, auth: cfg.Auth, api: cfg.API, adminKey: cfg.AdminKey, logger: cfg.Logger, now: cfg.Now}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	secret := cfg.SessionSecret
	if len(secret) == 0 {
		secret = NewSecret()
		h.logger.Info("dashboard sessions are signed with a random per-process secret: they end on restart and " +
			"are not shared by replicas (set ALWRITY_SESSION_SECRET to keep them)")
	}
	ttl := cfg.SessionTTL
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	// Sessions expire by the wall clock even when tests inject a fixed
	// clock for billing periods; h.now is only for business figures.
	h.sess = &sessions{secret: secret, ttl: ttl, now: time.Now}
	var err error
	if h.tmpl, err = parseTemplates(); err != nil {
		panic(err)
	}
	return h
}

// Mount registers the pages on mux.
func (h *Handler) Mount(mux *http.ServeMux) {
	assets, _ := fs.Sub(assetFS, "assets")
	static := http.StripPrefix("/assets/", http.FileServerFS(assets))
	mux.Handle("GET /assets/", secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=300")
		static.ServeHTTP(w, r)
	})))
	mux.Handle("GET /signin", secure(http.HandlerFunc(h.signInPage)))
	mux.Handle("POST /signin", secure(http.HandlerFunc(h.signIn)))
	mux.Handle("POST /signout", secure(http.HandlerFunc(h.signOut)))
	mux.Handle("GET /dashboard", secure(h.signedIn(h.compact)))
	mux.Handle("GET /dashboard/details", secure(h.signedIn(h.details)))
	mux.Handle("POST /dashboard/alerts/{alert_id}/read", secure(h.signedIn(h.markRead)))
	mux.Handle("GET /admin", secure(h.signedIn(h.admin)))
}

// secure sets the headers every page carries: a strict Content-Security-
// Policy (our own script and styles only, no inline code), no framing, no
// sniffing, and no caching of per-user pages.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		// Assets replace this with their own caching.
		hd.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// viewer is the signed-in person a page is for.
type viewer struct {
	Session   Session
	Principal billing.Principal
	CSRF      string
}

type pageFunc func(w http.ResponseWriter, r *http.Request, v viewer)

// signedIn runs fn for a request with a valid session whose key is still
// valid; anyone else is sent to the sign-in page.
func (h *Handler) signedIn(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := h.sess.read(r)
		if !ok {
			h.toSignIn(w, r)
			return
		}
		p, err := h.principal(r, s)
		if err != nil {
			if billing.ErrorCode(err) == billing.CodeUnauthorized {
				h.sess.clear(w, r)
				h.toSignIn(w, r)
				return
			}
			h.fail(w, r, err)
			return
		}
		fn(w, r, viewer{Session: s, Principal: p, CSRF: h.sess.csrfToken(s.ID)})
	})
}

func (h *Handler) toSignIn(w http.ResponseWriter, r *http.Request) {
	target := "/signin"
	if r.Method == http.MethodGet {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// principal checks a session against the keys as they are now: a revoked
// or replaced key, or a changed admin key, ends the session. Errors:
// unauthorized.
func (h *Handler) principal(r *http.Request, s Session) (billing.Principal, error) {
	ctx := r.Context()
	if s.DevAdmin {
		if s.Role == billing.RoleAdmin && h.devLoopback(r) {
			return billing.Principal{Role: billing.RoleAdmin}, nil
		}
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "session no longer valid")
	}
	if s.KeyPrefix == "" {
		if s.Role == billing.RoleAdmin && h.adminKey != "" && s.AdminFingerprint != "" &&
			s.AdminFingerprint == h.sess.adminFingerprint(h.adminKey) {
			return billing.Principal{Role: billing.RoleAdmin}, nil
		}
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "session no longer valid")
	}
	k, _, err := h.store.KeyByPrefix(ctx, s.KeyPrefix)
	if billing.ErrorCode(err) == billing.CodeNotFound {
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "session key no longer exists")
	}
	if err != nil {
		return billing.Principal{}, err
	}
	if k.RevokedAt != nil || k.ID != s.KeyID || k.Role != s.Role || k.UserID != s.UserID {
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "session key revoked")
	}
	return billing.Principal{Role: k.Role, UserID: k.UserID, KeyID: k.ID}, nil
}

// render executes a page template into a buffer first, so a template error
// becomes a clean 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		h.fail(w, r, fmt.Errorf("render %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail answers an error as a short page; only uncoded (internal) errors
// are logged, and their text is never shown.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "Something went wrong on our side. Please try again."
	switch billing.ErrorCode(err) {
	case billing.CodeForbidden:
		status, msg = http.StatusForbidden, billing.ErrorMessage(err)
	case billing.CodeNotFound:
		status, msg = http.StatusNotFound, billing.ErrorMessage(err)
	case billing.CodeInvalid:
		status, msg = http.StatusBadRequest, billing.ErrorMessage(err)
	default:
		h.logger.ErrorContext(r.Context(), "page failed", "path", r.URL.Path, "error", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	data := errorPage{page: page{Title: http.StatusText(status)}, Status: status, Message: msg}
	if err := h.tmpl["error"].ExecuteTemplate(w, "layout", data); err != nil {
		h.logger.ErrorContext(r.Context(), "render error page", "error", err)
	}
}

// devLoopback reports whether r may act as admin without a key: only under
// serve --dev, and only from loopback, as the API allows.
func (h *Handler) devLoopback(r *http.Request) bool {
	if h.auth == nil || !h.auth.DevLoopbackAdmin {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// health reads GET /api/subscription/health from the API in process.
func (h *Handler) health(ctx context.Context) (httpapi.HealthData, error) {
	var env httpapi.Envelope[httpapi.HealthData]
	if h.api == nil {
		return env.Data, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpapi.Prefix+"/health", nil)
	if err != nil {
		return env.Data, err
	}
	rec := &recorder{header: http.Header{}}
	h.api.ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != http.StatusOK {
		return env.Data, fmt.Errorf("health answered %d: %s", rec.status, rec.body.String())
	}
	if err := json.Unmarshal(rec.body.Bytes(), &env); err != nil {
		return env.Data, fmt.Errorf("decode health: %w", err)
	}
	return env.Data, nil
}

// recorder is a minimal in-memory ResponseWriter for in-process calls.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
