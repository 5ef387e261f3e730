package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/internal/testlog"
)

// now is the server's clock in these tests: the middle of November 2026.
var now = time.Date(2026, time.November, 15, 12, 0, 0, 0, time.UTC)

const adminKey = "dashboards-test-admin-key-0123456789"

// env is a whole server started on 127.0.0.1:0 with seeded usage.
type env struct {
	t        *testing.T
	app      *app.App
	base     string
	demoKey  string // user "demo", on the Team plan with alerts
	otherKey string // user "acme"
}

// start runs the whole app, as the binary does, on a temporary SQLite
// database and seeds it (see seed).
func start(t *testing.T, edit ...func(*app.Config)) *env {
	t.Helper()
	dbURL := storetest.SQLiteURL(t)
	cfg := app.DefaultConfig()
	cfg.DatabaseURL, cfg.Port, cfg.Host, cfg.AdminKey = dbURL, 0, "127.0.0.1", adminKey
	for _, f := range edit {
		f(&cfg)
	}
	logs := &testlog.Buffer{}
	a := app.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})), nil)
	t.Cleanup(func() {
		if t.Failed() && logs.Len() > 0 {
			t.Logf("server logs:\n%s", logs.String())
		}
	})
	a.Now = func() time.Time { return now }
	if err := a.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := a.Listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	e := &env{t: t, app: a, base: a.BaseURL()}
	// History first, so the server's period-close job finds it closed.
	e.seedHistory()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	e.seedCurrent()
	return e
}

// seedHistory gives the server a realistic history: user demo subscribed
// on June 1 to a small Team plan (limits low enough to raise alerts and to
// show the budget bar), five earlier periods of calls, and those periods
// closed by the billing lifecycle (invoices and renewals). Those calls are
// older than the usage API accepts, so they are written to the ledger
// directly.
func (e *env) seedHistory() {
	t, ctx, db := e.t, context.Background(), e.app.DB
	t.Helper()
	usd := money.MustParse
	planID, err := db.CreatePlan(ctx, billing.Plan{
		Name: "Team", Tier: "basic", PriceMonthly: usd("49"), PriceYearly: usd("490"), IsActive: true,
		Description: "A small team plan.", Features: []string{"40 API calls a month"},
		TotalCallsLimit: billing.Ptr[int64](40), MonthlyCostLimit: billing.Ptr(usd("0.5")),
		ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: billing.Ptr[int64](25)}, "gemini": {Tokens: billing.Ptr[int64](60_000)}},
	}, now)
	if err != nil {
		t.Fatalf("create plan: %v", err)
	}
	june := time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.Subscribe(ctx, "demo", planID, "monthly", store.SubscribeOptions{}, june); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	e.demoKey = e.userKey("demo")
	e.otherKey = e.userKey("acme")
	e.userKey("globex")
	e.userKey("initech")

	var old []billing.UsageLog
	for m, calls := range []int{8, 14, 11, 22, 18} {
		for i := range calls {
			ts := time.Date(2026, time.June+time.Month(m), 3+i, 10, 0, 0, 0, time.UTC)
			l := storetest.Log("demo", fmt.Sprintf("old-%d-%d", m, i), ts)
			l.ModelUsed, l.TokensInput, l.TokensOutput = "gpt-4o", int64(900+100*i), int64(300+20*i)
			l.CostTotal = money.Amount(int64(usd("0.004")) + int64(i)*int64(usd("0.0011")))
			if i%3 == 1 {
				l.Provider, l.ModelUsed = "gemini", "gemini-2.5-flash"
			}
			old = append(old, l)
		}
	}
	storetest.Record(t, db, old...)
	if n, err := db.CloseDue(ctx, now, 1000); err != nil || n == 0 {
		t.Fatalf("close June to October: %d, %v", n, err)
	}
}

// seedCurrent records this period's calls through POST
// /api/subscription/usage, so they are priced and alerted as in
// production: demo nears its limits, three other users spend, and every
// call is in the last ten minutes, so system health has figures.
func (e *env) seedCurrent() {
	t := e.t
	t.Helper()
	// This period, through the API.
	type ev = map[string]any
	var events []ev
	add := func(user string, n int, f func(i int, e ev)) {
		for i := range n {
			e := ev{"event_id": fmt.Sprintf("%s-%d", user, i), "user_id": user, "method": "POST",
				"timestamp": now.Add(-10*time.Minute + time.Duration(i)*7*time.Second).Format(time.RFC3339Nano)}
			f(i, e)
			events = append(events, e)
		}
	}
	add("demo", 33, func(i int, e ev) {
		switch {
		case i < 20:
			e["provider"], e["model"], e["endpoint"] = "openai", "gpt-4o", "/v1/chat/completions"
			e["tokens_input"], e["tokens_output"] = 1200+37*i, 350+11*i
		case i < 29:
			e["provider"], e["model"], e["endpoint"] = "gemini", "gemini-2.5-flash", "/v1beta/models/gemini-2.5-flash:generateContent"
			e["tokens_input"], e["tokens_output"] = 4000+200*i, 900
		default:
			e["provider"], e["model"], e["endpoint"] = "anthropic", "claude-3.5-sonnet", "/v1/messages"
			e["tokens_input"], e["tokens_output"] = 2500, 700
		}
		e["response_time"] = 0.35 + float64(i%7)*0.21
		switch i {
		case 5, 17:
			e["status_code"], e["error_message"] = 500, "upstream error"
		case 23:
			e["status_code"], e["error_message"] = 429, "rate limited"
		}
	})
	add("acme", 12, func(i int, e ev) {
		e["provider"], e["model"], e["tokens_input"], e["tokens_output"] = "openai", "gpt-4o-mini", 3000, 800
		e["response_time"] = 0.8
		if i%4 == 0 {
			e["status_code"] = 502
		}
	})
	add("globex", 5, func(i int, e ev) {
		e["provider"], e["model"], e["tokens_input"], e["tokens_output"] = "anthropic", "claude-3.5-sonnet", 12000, 2500
		e["response_time"] = 2.4
	})
	add("initech", 20, func(i int, e ev) {
		e["provider"], e["model"], e["tokens_input"], e["tokens_output"] = "gemini", "gemini-2.5-pro", 30000, 4000
		e["response_time"] = 1.6
	})
	status, body := e.do(http.MethodPost, "/api/subscription/usage", adminKey, map[string]any{"events": events})
	if status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("record usage: %d %s", status, body)
	}
}

// userKey creates a user key as `alwrity-billing keys create` does.
func (e *env) userKey(user string) string {
	e.t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := e.app.DB.CreateKey(context.Background(), billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser,
		Name: "dashboard test", CreatedAt: now}, hash); err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	return key
}

// do sends a JSON request with a bearer key and returns status and body.
func (e *env) do(method, path, key string, body any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// apiData returns the "data" of a JSON API answer, numbers kept exact.
func (e *env) apiData(path, key string) map[string]any {
	e.t.Helper()
	status, body := e.do(http.MethodGet, path, key, nil)
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	if d, ok := v["data"].(map[string]any); ok {
		return d
	}
	return v
}

// browserless is an HTTP client with a cookie jar that does not follow
// redirects, for the page tests that need no browser.
func (e *env) browserless() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// get fetches a page and returns status, Location and body.
func (e *env) get(c *http.Client, path string) (int, string, string) {
	e.t.Helper()
	res, err := c.Get(e.base + path)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

// post submits a form from the given origin ("" sends none).
func (e *env) post(c *http.Client, path, origin string, form url.Values) (int, string, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

// signIn signs c in with key through the sign-in form and returns the CSRF
// token of the session's pages.
func (e *env) signIn(c *http.Client, key string) {
	e.t.Helper()
	_, _, page := e.get(c, "/signin")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		e.t.Fatalf("no CSRF token on the sign-in page:\n%s", page)
	}
	status, loc, body := e.post(c, "/signin", e.base, url.Values{"csrf_token": {m[1]}, "api_key": {key}})
	if status != http.StatusSeeOther {
		e.t.Fatalf("sign in: %d %s", status, body)
	}
	if loc != "/dashboard" && loc != "/admin" {
		e.t.Fatalf("sign in went to %q", loc)
	}
}

// token returns the CSRF token on a page.
func token(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page")
	}
	return m[1]
}
