package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/testlog"

	"go.uber.org/goleak"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var now = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// server is one started app: Open, Listen and Run on 127.0.0.1:0.
type server struct {
	t      *testing.T
	app    *app.App
	out    *testlog.Buffer // what the app printed
	logs   *testlog.Buffer
	base   string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// start opens the app on the database at url and serves it until stop.
func start(t *testing.T, url string, edit ...func(*app.Config)) *server {
	t.Helper()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.Port, cfg.Host = url, 0, "127.0.0.1"
	for _, f := range edit {
		f(&cfg)
	}
	s := &server{t: t, out: &testlog.Buffer{}, logs: &testlog.Buffer{}, done: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{}}}
	s.app = app.New(cfg, slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), s.out)
	s.app.Now = func() time.Time { return now }
	if err := s.app.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := s.app.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.base = s.app.BaseURL()
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	go func() { s.done <- s.app.Run(ctx) }()
	return s
}

// stop cancels Run, waits for it to return and closes the app.
func (s *server) stop() {
	s.t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("Run returned %v after cancel, want nil (graceful shutdown)", err)
	}
	if err := s.app.Close(); err != nil {
		s.t.Errorf("close: %v", err)
	}
	s.client.CloseIdleConnections()
}

// get returns status and body of GET path with an optional key.
func (s *server) get(path, key string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// data decodes {"success": true, "data": …} from a 200 answer.
func (s *server) data(path, key string) map[string]any {
	s.t.Helper()
	status, body := s.get(path, key)
	if status != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var env struct {
		Success bool           `json:"success"`
		Data    map[string]any `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil || !env.Success {
		s.t.Fatalf("GET %s: %v %s", path, err, body)
	}
	return env.Data
}

var keyPattern = regexp.MustCompile(`alw_[a-z2-7]{40}`)

// TestServe starts the whole service twice on one database, as an operator
// would: the first start creates the tables and prints a generated admin
// key once, the second finds everything in place and prints nothing.
func TestServe(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

		s := start(t, url)
		keys := keyPattern.FindAllString(s.out.String(), -1)
		if len(keys) != 1 {
			t.Fatalf("first start printed %d keys, want 1:\n%s", len(keys), s.out)
		}
		admin := keys[0]
		logs := s.logs.String()
		if !strings.Contains(logs, "Billing and subscription tables created successfully") || strings.Contains(logs, "up to date") {
			t.Errorf("first start logs:\n%s", logs)
		}

		if status, body := s.get("/healthz", ""); status != http.StatusOK || body != "ok\n" {
			t.Errorf("/healthz: %d %q", status, body)
		}
		if status, _ := s.get("/readyz", ""); status != http.StatusOK {
			t.Errorf("/readyz: %d", status)
		}
		if d := s.data("/api/subscription/plans", ""); fmt.Sprint(d["total"]) != "4" {
			t.Errorf("plans: %v", d)
		}
		if status, _ := s.get("/api/subscription/usage/u1", ""); status != http.StatusUnauthorized {
			t.Errorf("usage without a key: %d", status)
		}
		if d := s.data("/api/subscription/usage/u1", admin); fmt.Sprint(d["total_calls"]) != "0" {
			t.Errorf("usage with the generated admin key: %v", d)
		}

		// A user key and some usage, through the production store.
		key, prefix, hash := auth.NewKey()
		if _, err := s.app.DB.CreateKey(context.Background(), billing.APIKey{Prefix: prefix, UserID: "u1",
			Role: billing.RoleUser, CreatedAt: now}, hash); err != nil {
			t.Fatal(err)
		}
		l := storetest.Log("u1", "e2e-1", now.Add(-time.Hour))
		l.TokensInput, l.TokensOutput = 100, 50
		storetest.Record(t, s.app.DB, l)
		if d := s.data("/api/subscription/usage/u1", key); fmt.Sprint(d["total_calls"]) != "1" || fmt.Sprint(d["total_tokens"]) != "150" {
			t.Errorf("usage with the user's key: %v", d)
		}
		if status, _ := s.get("/api/subscription/usage/u2", key); status != http.StatusForbidden {
			t.Errorf("another user's usage: %d", status)
		}
		if _, body := s.get("/metrics", ""); !strings.Contains(body, `route="GET /api/subscription/usage/{user_id}"`) {
			t.Errorf("/metrics does not count the usage route")
		}
		s.stop()
		if _, err := http.Get(s.base + "/healthz"); err == nil {
			t.Errorf("the server still answers after shutdown")
		}
		if !strings.Contains(s.logs.String(), "shutting down") {
			t.Errorf("no shutdown logged")
		}

		// Second start on the same database.
		s2 := start(t, url)
		if s2.out.Len() != 0 {
			t.Errorf("second start printed:\n%s", s2.out)
		}
		logs2 := s2.logs.String()
		if !strings.Contains(logs2, "Billing and subscription tables up to date") || strings.Contains(logs2, "created successfully") {
			t.Errorf("second start logs:\n%s", logs2)
		}
		if d := s2.data("/api/subscription/usage/u1", admin); fmt.Sprint(d["total_calls"]) != "1" {
			t.Errorf("the generated admin key or the data did not survive a restart: %v", d)
		}
		if d := s2.data("/api/subscription/usage/u1", key); fmt.Sprint(d["total_calls"]) != "1" {
			t.Errorf("the user key did not survive a restart: %v", d)
		}
		s2.stop()

		for i, l := range []string{s.logs.String(), s2.logs.String()} {
			if strings.Contains(l, admin) || strings.Contains(l, key) {
				t.Errorf("start %d logged a key", i+1)
			}
		}
		if !strings.Contains(logs, admin[:auth.PrefixLen]) {
			t.Errorf("the generated key's prefix is not logged (operators need it to revoke the key)")
		}
	})
}

// TestGracefulShutdown checks that cancelling Run stops new connections at
// once but lets a request in flight finish with its answer.
func TestGracefulShutdown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		s := start(t, url, func(c *app.Config) { c.AdminKey = "test-admin-key-0123456789" })
		id, _, err := s.app.DB.CreateAlert(context.Background(), billing.Alert{UserID: "u1", Type: billing.AlertUsageWarning,
			LimitKey: "total_calls", ThresholdPercentage: 80, Title: "t", Message: "m", Severity: "warning", BillingPeriod: "2026-11"}, now)
		if err != nil {
			t.Fatal(err)
		}

		// Send a request whose body is not complete: its handler is running,
		// waiting for the rest.
		conn, err := net.Dial("tcp", s.app.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /api/subscription/alerts/%d/mark-read HTTP/1.1\r\nHost: x\r\n"+
			"Authorization: Bearer test-admin-key-0123456789\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{", id)
		// The in-flight gauge counts it beside the /metrics request itself.
		for {
			if _, body := s.get("/metrics", ""); strings.Contains(body, "\nalwrity_http_requests_in_flight 2\n") {
				break
			}
		}
		s.client.CloseIdleConnections()

		s.cancel()
		// Shutdown closes the listener first: wait until new connections fail.
		for {
			c, err := net.Dial("tcp", s.app.Addr())
			if err != nil {
				break
			}
			c.Close()
		}
		select {
		case err := <-s.done:
			t.Fatalf("Run returned (%v) while a request was in flight", err)
		default:
		}

		// The request in flight still completes.
		if _, err := io.WriteString(conn, "}"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("the request in flight got no answer: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("Alert marked as read")) {
			t.Errorf("in-flight request: %d %s", res.StatusCode, body)
		}
		if err := <-s.done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
		s.done <- nil // for stop
		s.stop()
	})
}

// TestRunBeforeOpen: Run without Open must not serve http.DefaultServeMux.
func TestRunBeforeOpen(t *testing.T) {
	cfg := app.DefaultConfig()
	cfg.Port, cfg.Host = 0, "127.0.0.1"
	a := app.New(cfg, nil, nil)
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run before Open returned nil")
	}
}

// TestHealthPolicyFromConfig: the system_health settings of the
// configuration reach the meter that raises the alerts.
func TestHealthPolicyFromConfig(t *testing.T) {
	s := start(t, storetest.Backends()[0].URL(t), func(c *app.Config) {
		c.HealthErrorRate, c.HealthWindow, c.HealthMinCalls = 35, 10*time.Minute, 50
	})
	defer s.stop()
	want := metering.HealthPolicy{Window: 10 * time.Minute, ErrorRate: 35, MinCalls: 50}
	if got := s.app.Meter.Health; got != want {
		t.Errorf("meter health policy = %+v, want %+v", got, want)
	}
}
