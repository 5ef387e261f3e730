package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/testlog"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// testAdminKey is the configured admin key of every test app.
const testAdminKey = "test-admin-key-0123456789"

// defaultNow is the injected clock of the tests: mid-November 2026, so the
// current period is 2026-11 and the one before it 2026-10.
var defaultNow = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

// env is one running app with its database, an HTTP server in front of its
// handler, and everything the tests need to check that no secret leaks.
type env struct {
	t     *testing.T
	url   string // DATABASE_URL
	app   *app.App
	srv   *httptest.Server
	clock atomic.Int64 // the app's clock, in Unix nanoseconds
	logs  *testlog.Buffer
	ctx   context.Context

	mu      sync.Mutex
	bodies  [][]byte // every response body read through the env
	secrets []string // keys that must never appear in a body or a log
}

type envOption func(*app.Config)

// withDev turns on dev mode (key-less loopback requests are admin).
func withDev() envOption {
	return func(c *app.Config) { c.Dev, c.AdminKey = true, "" }
}

// newEnv opens a fresh app on backend b with the clock fixed at now and
// serves it over real HTTP. When the test ends it checks that no key ever
// appeared in a response body or a log line.
func newEnv(t *testing.T, b storetest.Backend, now time.Time, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, url: b.URL(t), logs: &testlog.Buffer{}, ctx: context.Background()}
	e.setNow(now)
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = e.url
	cfg.Port = 0
	cfg.Host = "127.0.0.1"
	cfg.AdminKey = testAdminKey
	for _, o := range opts {
		o(&cfg)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.app = app.New(cfg, logger, io.Discard)
	e.app.Now = e.now
	if err := e.app.Open(e.ctx); err != nil {
		t.Fatalf("open app: %v", err)
	}
	t.Cleanup(func() { e.app.Close() })
	e.srv = httptest.NewServer(e.app.Handler())
	t.Cleanup(e.srv.Close)
	if cfg.AdminKey != "" {
		e.secret(cfg.AdminKey)
	}
	t.Cleanup(e.checkNoSecretLeaked)
	return e
}

// now is the app's clock.
func (e *env) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

// setNow moves the app's clock.
func (e *env) setNow(t time.Time) { e.clock.Store(t.UnixNano()) }

func (e *env) checkNoSecretLeaked() {
	e.mu.Lock()
	defer e.mu.Unlock()
	logs := e.logs.String()
	for _, s := range e.secrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("a key appears in the logs: %q", s[:8]+"…")
		}
		for _, b := range e.bodies {
			if bytes.Contains(b, []byte(s)) {
				e.t.Errorf("a key appears in a response body: %q in %s", s[:8]+"…", clip(b))
			}
		}
	}
}

// secret adds s to what must never appear in a body or a log.
func (e *env) secret(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, s)
}

// userKey creates a user key for userID and returns it.
func (e *env) userKey(userID string) string {
	e.t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := e.app.DB.CreateKey(e.ctx, billing.APIKey{Prefix: prefix, UserID: userID, Role: billing.RoleUser,
		Name: "test", CreatedAt: e.now()}, hash); err != nil {
		e.t.Fatalf("create key: %v", err)
	}
	e.secret(key)
	return key
}

// revokedKey creates a user key for userID and revokes it.
func (e *env) revokedKey(userID string) string {
	e.t.Helper()
	key := e.userKey(userID)
	prefix, err := auth.ParseKey(key)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.app.DB.RevokeKey(e.ctx, prefix, e.now()); err != nil {
		e.t.Fatalf("revoke key: %v", err)
	}
	return key
}

// response is one HTTP answer, body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, clip(r.body)) }

// do sends a request with an optional bearer key ("" sends none) and extra
// headers given as name, value pairs.
func (e *env) do(method, path, key string, body io.Reader, headers ...string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	e.mu.Lock()
	e.bodies = append(e.bodies, b)
	e.mu.Unlock()
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) get(path, key string) response {
	e.t.Helper()
	return e.do(http.MethodGet, path, key, nil)
}

func (e *env) post(path, key string) response {
	e.t.Helper()
	return e.do(http.MethodPost, path, key, nil)
}

// ok asserts a 200 answer with a JSON body and returns the decoded object.
func (e *env) ok(r response) map[string]any {
	e.t.Helper()
	if r.status != http.StatusOK {
		e.t.Fatalf("want 200, got %s", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("content type %q", ct)
	}
	return decode(e.t, r.body)
}

// data asserts a 200 {"success": true, "data": {...}} answer and returns data.
func (e *env) data(r response) map[string]any {
	e.t.Helper()
	m := e.ok(r)
	check(e.t, "body", m, Obj{"success": "bool", "data": Any{}})
	if m["success"] != true {
		e.t.Fatalf("success = %v", m["success"])
	}
	d, ok := m["data"].(map[string]any)
	if !ok {
		e.t.Fatalf("data is %T", m["data"])
	}
	return d
}

// problem asserts an RFC 9457 problem answer with the given status and
// returns it decoded.
func (e *env) problem(r response, status int) map[string]any {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("want %d, got %s", status, r)
	}
	return checkProblem(e.t, r)
}

// problem4xx asserts a client-error problem whose detail names location.
func (e *env) problem4xx(r response, location string) map[string]any {
	e.t.Helper()
	if r.status < 400 || r.status > 499 {
		e.t.Fatalf("want 4xx, got %s", r)
	}
	p := checkProblem(e.t, r)
	if !strings.Contains(p["detail"].(string), location) {
		e.t.Fatalf("detail %q does not name %s", p["detail"], location)
	}
	return p
}

func checkProblem(t *testing.T, r response) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("content type %q for %s", ct, r)
	}
	p := decode(t, r.body)
	for k, want := range map[string]string{"status": "int", "title": "string", "detail": "string"} {
		if _, ok := p[k]; !ok {
			t.Fatalf("problem lacks %q: %s", k, r)
		}
		check(t, "problem."+k, p[k], want)
	}
	if n, _ := p["status"].(json.Number).Int64(); int(n) != r.status {
		t.Fatalf("problem status %d, HTTP status %d", n, r.status)
	}
	if p["detail"] == "" {
		t.Fatalf("empty detail: %s", r)
	}
	return p
}

// decode reads a JSON object keeping numbers as their text, so tests can
// tell integers from decimals and check money digit for digit.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", clip(b), err)
	}
	return m
}

func clip(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// Shape specs for check. A string names a scalar kind: "string", "int",
// "number" (a JSON number in plain decimal notation, as money is written),
// "float" (any JSON number), "bool", "null", "time" (RFC 3339 UTC), "period"
// (YYYY-MM); Obj demands exactly its keys; Arr, MapOf and Nullable nest.
type (
	// Obj is an object with exactly these keys.
	Obj map[string]any
	// Arr is an array whose every element has shape Elem.
	Arr struct{ Elem any }
	// MapOf is an object with any keys whose values have shape Elem.
	MapOf struct{ Elem any }
	// Nullable is null or Inner.
	Nullable struct{ Inner any }
	// Enum is a string among the listed values.
	Enum []string
	// Any is anything.
	Any struct{}
)

var (
	plainDecimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?$`)
	periodKey    = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)
)

// check asserts that v has the shape spec; path names v in messages.
func check(t *testing.T, path string, v any, spec any) {
	t.Helper()
	switch s := spec.(type) {
	case Any:
	case string:
		checkScalar(t, path, v, s)
	case Enum:
		str, ok := v.(string)
		if !ok || !contains(s, str) {
			t.Errorf("%s = %v, want one of %v", path, v, s)
		}
	case Nullable:
		if v != nil {
			check(t, path, v, s.Inner)
		}
	case Arr:
		a, ok := v.([]any)
		if !ok {
			t.Errorf("%s is %T, want an array", path, v)
			return
		}
		for i, x := range a {
			check(t, fmt.Sprintf("%s[%d]", path, i), x, s.Elem)
		}
	case MapOf:
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s is %T, want an object", path, v)
			return
		}
		for k, x := range m {
			check(t, path+"."+k, x, s.Elem)
		}
	case Obj:
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s is %T, want an object", path, v)
			return
		}
		if got, want := sortedKeys(m), sortedKeys(s); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s keys:\n got %v\nwant %v", path, got, want)
		}
		for k, sub := range s {
			if x, ok := m[k]; ok {
				check(t, path+"."+k, x, sub)
			}
		}
	default:
		t.Fatalf("bad spec %T at %s", spec, path)
	}
}

func checkScalar(t *testing.T, path string, v any, kind string) {
	t.Helper()
	bad := func() { t.Errorf("%s = %#v, want %s", path, v, kind) }
	switch kind {
	case "string":
		if _, ok := v.(string); !ok {
			bad()
		}
	case "bool":
		if _, ok := v.(bool); !ok {
			bad()
		}
	case "null":
		if v != nil {
			bad()
		}
	case "int":
		n, ok := v.(json.Number)
		if _, err := n.Int64(); !ok || err != nil {
			bad()
		}
	case "number":
		n, ok := v.(json.Number)
		if !ok || !plainDecimal.MatchString(string(n)) {
			bad()
		}
	case "float":
		n, ok := v.(json.Number)
		if _, err := n.Float64(); !ok || err != nil {
			bad()
		}
	case "time":
		s, ok := v.(string)
		tm, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil || !strings.HasSuffix(s, "Z") || tm.Location() != time.UTC {
			bad()
		}
	case "period":
		s, ok := v.(string)
		if !ok || !periodKey.MatchString(s) {
			bad()
		}
	default:
		t.Fatalf("bad kind %q at %s", kind, path)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Accessors for decoded JSON; each fails the test on a wrong type.

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is %T, want an object", v, v)
	}
	return m
}

func arr(t *testing.T, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is %T, want an array", v, v)
	}
	return a
}

func num(t *testing.T, v any) string {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v is %T, want a number", v, v)
	}
	return string(n)
}

func integer(t *testing.T, v any) int64 {
	t.Helper()
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", v)
	}
	return n
}

// Known providers in display order and the limit keys every Limits object
// carries.
var (
	providers      = []string{"gemini", "openai", "anthropic", "mistral", "tavily", "serper", "metaphor", "firecrawl", "stability"}
	tokenProviders = []string{"gemini", "openai", "anthropic", "mistral"}
)

func limitKeys() []string {
	keys := []string{"total_calls"}
	for _, p := range providers {
		keys = append(keys, p+"_calls")
	}
	for _, p := range tokenProviders {
		keys = append(keys, p+"_tokens")
	}
	return append(keys, "monthly_cost")
}

// limitsSpec is the shape of a Limits object.
func limitsSpec() Obj {
	o, zero := Obj{}, Obj{}
	for _, k := range limitKeys() {
		o[k] = "int"
		zero[k] = Enum{"unlimited", "disabled", "limited"}
	}
	o["monthly_cost"] = "number"
	o["_zero_means"] = zero
	return o
}

var (
	planLimitsSpec = Obj{"plan_name": "string", "tier": Enum{"free", "basic", "pro", "enterprise"},
		"limits": limitsSpec(), "features": Arr{"string"}}
	providerUsageSpec = Obj{"calls": "int", "tokens": "int", "cost": "number"}
	alertBriefSpec    = Obj{"id": "int", "type": "string", "title": "string", "message": "string",
		"severity": Enum{"info", "warning", "error"}, "created_at": "time"}
)

func usagePercentagesSpec() Obj {
	o := Obj{}
	for _, k := range limitKeys() {
		o[k] = "float"
	}
	delete(o, "monthly_cost")
	o["cost"] = "float"
	return o
}

func providerMapSpec(elem any) Obj {
	o := Obj{}
	for _, p := range providers {
		o[p] = elem
	}
	return o
}

// usageStatsSpec is UsageStats; period bounds are null for all-time stats.
func usageStatsSpec(allTime bool) Obj {
	bound := any("time")
	if allTime {
		bound = "null"
	}
	return Obj{
		"billing_period": "string", "period_start": bound, "period_end": bound,
		"usage_status": Enum{"active", "warning", "limit_reached"},
		"total_calls":  "int", "total_tokens": "int", "tokens_input": "int", "tokens_output": "int",
		"total_cost": "number", "total_errors": "int", "avg_response_time": "float", "error_rate": "float",
		"limits": planLimitsSpec, "provider_breakdown": providerMapSpec(providerUsageSpec),
		"alerts": Arr{alertBriefSpec}, "usage_percentages": usagePercentagesSpec(), "last_updated": "time",
	}
}

func trendsSpec() Obj {
	return Obj{
		"periods": Arr{"period"}, "total_calls": Arr{"int"}, "total_cost": Arr{"number"}, "total_tokens": Arr{"int"},
		"provider_trends": providerMapSpec(Obj{"calls": Arr{"int"}, "cost": Arr{"number"}, "tokens": Arr{"int"}}),
	}
}

// call is a builder for one usage log.
type call struct {
	user, provider, model string
	at                    time.Time
	in, out               int64
	cost                  string // total cost in USD, booked as input cost
	status                int
	rt                    float64
	errMsg                string
}

var eventSeq struct {
	sync.Mutex
	n int
}

func nextEventID() string {
	eventSeq.Lock()
	defer eventSeq.Unlock()
	eventSeq.n++
	return fmt.Sprintf("ev-%d", eventSeq.n)
}

func (c call) log() billing.UsageLog {
	l := storetest.Log(c.user, nextEventID(), c.at)
	if c.provider != "" {
		l.Provider = c.provider
	}
	if c.model != "" {
		l.ModelUsed = c.model
	}
	l.TokensInput, l.TokensOutput = c.in, c.out
	if c.cost != "" {
		l.CostTotal = money.MustParse(c.cost)
		l.CostInput = l.CostTotal
	}
	if c.status != 0 {
		l.StatusCode = c.status
	}
	if c.rt != 0 {
		l.ResponseTime = c.rt
	}
	l.ErrorMessage = c.errMsg
	return l
}

// record writes calls through the store in one RecordUsage batch, each in
// its user's period as the meter would file it: the current subscription's
// schedule, else calendar months.
func (e *env) record(calls ...call) {
	e.t.Helper()
	logs := make([]billing.UsageLog, len(calls))
	ends := map[string]time.Time{}
	for i, c := range calls {
		logs[i] = c.log()
		schedule := billing.CalendarMonths()
		sub, err := e.app.DB.CurrentSubscription(e.ctx, c.user)
		if err != nil {
			e.t.Fatal(err)
		}
		if sub != nil {
			schedule = sub.Schedule()
		}
		p := schedule.At(c.at)
		logs[i].BillingPeriod, logs[i].PeriodStart = p.Key, p.Start
		ends[p.Key] = p.End
	}
	if err := e.app.DB.RecordUsage(e.ctx, logs, ends, e.now()); err != nil {
		e.t.Fatalf("record usage: %v", err)
	}
}

// many returns n copies of c a second apart.
func many(n int, c call) []call {
	out := make([]call, n)
	for i := range out {
		out[i] = c
		out[i].at = c.at.Add(time.Duration(i) * time.Second)
	}
	return out
}

// alert stores an unread alert and returns its id.
func (e *env) alert(user, period, limitKey string, at time.Time) int64 {
	e.t.Helper()
	id, created, err := e.app.DB.CreateAlert(e.ctx, billing.Alert{UserID: user, Type: billing.AlertUsageWarning,
		LimitKey: limitKey, ThresholdPercentage: 80, Title: "Usage warning", Message: "80% of " + limitKey + " used",
		Severity: "warning", BillingPeriod: period}, at)
	if err != nil || !created {
		e.t.Fatalf("create alert: %v %v", created, err)
	}
	return id
}

// planID returns the id of the plan named name.
func (e *env) planID(name string) int64 {
	e.t.Helper()
	plans, err := e.app.DB.ListPlans(e.ctx, false)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range plans {
		if p.Name == name {
			return p.ID
		}
	}
	e.t.Fatalf("no plan %q", name)
	return 0
}

// rawDB opens a second connection to the app's database, for doing what the
// app never would (dropping a table).
func (e *env) rawDB() *sql.DB {
	e.t.Helper()
	driver, dsn := "pgx", e.url
	if strings.HasPrefix(e.url, "sqlite://") {
		driver, dsn = "sqlite", strings.TrimPrefix(strings.TrimPrefix(e.url, "sqlite://"), "/")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}
