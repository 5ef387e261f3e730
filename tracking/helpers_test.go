package tracking_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/tracking"
)

// adminKey is the configured admin key of every test server.
const adminKey = "test-admin-key-0123456789"

// base is the servers' fixed clock: mid-November 2026, so every call of a
// test falls in the period 2026-11 and no reservation ever expires.
var base = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// waitLimit bounds every wait of these tests; reaching it is a failure, not
// a measurement.
const waitLimit = 30 * time.Second

// server is an opened app and, when served, its HTTP listener.
type server struct {
	t       *testing.T
	app     *app.App
	url     string // base URL, when served
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// openApp opens a whole app on the database at dbURL (migrated, seeded,
// with the fixed clock) without serving it; Close runs when the test ends.
func openApp(t *testing.T, dbURL string) *server {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.Host, cfg.Port, cfg.AdminKey = dbURL, "127.0.0.1", 0, adminKey
	a := app.New(cfg, nil, nil)
	a.Now = func() time.Time { return base }
	if err := a.Open(context.Background()); err != nil {
		t.Fatalf("open app: %v", err)
	}
	s := &server{t: t, app: a}
	t.Cleanup(func() { s.stop() })
	return s
}

// serveApp opens an app and serves it on 127.0.0.1:0 until stop.
func serveApp(t *testing.T, dbURL string) *server {
	t.Helper()
	s := openApp(t, dbURL)
	if err := s.app.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.url = s.app.BaseURL()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.app.Run(ctx) }()
	return s
}

// stop ends Run (if served) and closes the database; it is idempotent, so
// a test may stop the server before checking for leaked goroutines.
func (s *server) stop() {
	s.t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	if s.cancel != nil {
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				s.t.Errorf("run: %v", err)
			}
		case <-time.After(waitLimit):
			s.t.Errorf("the server did not shut down")
		}
	}
	if err := s.app.Close(); err != nil {
		s.t.Errorf("close app: %v", err)
	}
}

// user makes userID known to the server by giving it an API key.
func (s *server) user(userID string) {
	s.t.Helper()
	_, prefix, hash := auth.NewKey()
	if _, err := s.app.DB.CreateKey(context.Background(), billing.APIKey{Prefix: prefix, UserID: userID,
		Role: billing.RoleUser, Name: "test", CreatedAt: base}, hash); err != nil {
		s.t.Fatalf("create key: %v", err)
	}
}

// limitCalls subscribes a known user to a new plan allowing totalCalls
// calls a month.
func (s *server) limitCalls(userID string, totalCalls int64) {
	s.t.Helper()
	ctx := context.Background()
	s.user(userID)
	id, err := s.app.DB.CreatePlan(ctx, billing.Plan{Name: "Tiny " + userID, Tier: "free", IsActive: true,
		Features: []string{"test"}, TotalCallsLimit: billing.Ptr(totalCalls)}, base)
	if err != nil {
		s.t.Fatalf("create plan: %v", err)
	}
	p := billing.CalendarMonths().At(base)
	if _, err := s.app.DB.CreateSubscription(ctx, billing.Subscription{UserID: userID, PlanID: id, BillingCycle: "monthly",
		Status: billing.StatusActive, AutoRenew: true, Anchor: p.Start, CurrentPeriodStart: p.Start,
		CurrentPeriodEnd: p.End}, base); err != nil {
		s.t.Fatalf("create subscription: %v", err)
	}
}

// logs returns every ledger row of userID, newest first.
func (s *server) logs(userID string) []billing.UsageLog {
	s.t.Helper()
	logs, _, err := s.app.DB.ListLogs(context.Background(), billing.LogFilter{UserID: userID, Limit: 10_000})
	if err != nil {
		s.t.Fatalf("list logs: %v", err)
	}
	return logs
}

// usage returns userID's summary of the current period.
func (s *server) usage(userID string) billing.PeriodUsage {
	s.t.Helper()
	u, err := s.app.DB.UsageForPeriods(context.Background(), userID, []billing.Period{billing.CalendarMonths().At(base)})
	if err != nil {
		s.t.Fatalf("usage: %v", err)
	}
	return u[0]
}

// consistent asserts that the summaries equal the ledger and the reserved
// counters equal what held reservations hold.
func (s *server) consistent() {
	s.t.Helper()
	ctx := context.Background()
	if m, err := s.app.DB.Reconcile(ctx); err != nil || len(m) > 0 {
		s.t.Errorf("reconcile: %v %+v", err, m)
	}
	if n, err := s.app.DB.HeldReservationsMismatch(ctx); err != nil || n != 0 {
		s.t.Errorf("held reservations differ from the reserved counters in %d rows (%v)", n, err)
	}
}

// settled fails unless reservation id is settled.
func (s *server) settled(id string) {
	s.t.Helper()
	r, err := s.app.Meter.GetReservation(context.Background(), id)
	if err != nil {
		s.t.Fatalf("reservation %s: %v", id, err)
	}
	if r.Status != billing.ReservationSettled {
		s.t.Errorf("reservation %s is %s, want settled", id, r.Status)
	}
}

// stepClock is the middleware's clock: each reading is step later than the
// one before, so a request (two readings) takes exactly step.
type stepClock struct {
	mu   sync.Mutex
	next time.Time
	step time.Duration
}

func newStepClock() *stepClock { return &stepClock{next: base, step: 250 * time.Millisecond} }

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.next
	c.next = c.next.Add(c.step)
	return t
}

// withUser stands for a service's own authentication: it names the user
// of the X-User header, if any.
func withUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("X-User"); u != "" {
			r = r.WithContext(tracking.WithUser(r.Context(), u))
		}
		next.ServeHTTP(w, r)
	})
}

// answer is one HTTP response, body read.
type answer struct {
	status int
	header http.Header
	body   string
}

// call sends one request as user ("" for none) through client.
func call(t *testing.T, client *http.Client, method, url, user string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return answer{}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Errorf("%s %s: read: %v", method, url, err)
	}
	return answer{status: res.StatusCode, header: res.Header, body: string(b)}
}

// serveMiddleware serves h behind the middleware and withUser; the
// server is closed when the test ends.
func serveMiddleware(t *testing.T, cfg tracking.Config, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(withUser(tracking.Middleware(cfg, h)))
	t.Cleanup(srv.Close)
	return srv
}

// decodeJSON decodes a JSON object keeping numbers as their text.
func decodeJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return m
}
