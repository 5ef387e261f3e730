package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestMain fails the package when a test leaves goroutines behind: a relay
// that never ends, a drain that is never bounded, a retry loop never
// stopped.
func TestMain(m *testing.M) {
	// The Gemini SDK's dependencies start one metrics worker at init.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

// serverKeys are the server-held provider keys the fakes expect. Tests
// assert they never reach a client or a log.
var serverKeys = map[string]string{
	"openai":    "sk-server-openai-7f3a9c1e5d",
	"anthropic": "sk-ant-server-2b8d4f6a0c",
	"gemini":    "AIzaServerGemini9e7c5a3b1d",
	"mistral":   "server-mistral-4c6e8a0b2d",
}

const adminKey = "admin-key-0123456789abcdef"

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fake is a local upstream speaking one provider's wire format.
type fake struct {
	provider string
	srv      *httptest.Server
	calls    atomic.Int64

	mu      sync.Mutex
	headers []http.Header
	queries []string
	bodies  [][]byte
	// handle answers a call; nil means the provider's normal answer.
	handle func(w http.ResponseWriter, r *http.Request, body []byte)
}

func newFake(t testing.TB, provider string) *fake {
	f := &fake{provider: provider}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.headers = append(f.headers, r.Header.Clone())
		f.queries = append(f.queries, r.URL.RawQuery)
		f.bodies = append(f.bodies, body)
		handle := f.handle
		f.mu.Unlock()
		if !f.authorized(r) {
			// Like real providers, the fake names (part of) the key it got.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","type":"invalid_request_error"}}`, presentedKey(r))
			return
		}
		if handle != nil {
			handle(w, r, body)
			return
		}
		serveProvider(w, r, provider, body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func presentedKey(r *http.Request) string {
	for _, h := range []string{"X-Api-Key", "X-Goog-Api-Key"} {
		if v := r.Header.Get(h); v != "" {
			return v
		}
	}
	if v := r.URL.Query().Get("key"); v != "" {
		return v
	}
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// authorized checks that the call carries the server's key where the
// provider reads it, and nothing of the client's.
func (f *fake) authorized(r *http.Request) bool {
	key := serverKeys[f.provider]
	switch f.provider {
	case "anthropic":
		return r.Header.Get("X-Api-Key") == key
	case "gemini":
		return r.Header.Get("X-Goog-Api-Key") == key
	default:
		return r.Header.Get("Authorization") == "Bearer "+key
	}
}

func (f *fake) setHandler(h func(w http.ResponseWriter, r *http.Request, body []byte)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handle = h
}

func (f *fake) lastBody() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bodies) == 0 {
		return nil
	}
	return f.bodies[len(f.bodies)-1]
}

func (f *fake) seen() ([]http.Header, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]http.Header(nil), f.headers...), append([]string(nil), f.queries...)
}

// harness is a gateway over a real database with a fake upstream per
// provider.
type harness struct {
	t     testing.TB
	ctx   context.Context
	db    *store.DB
	meter *metering.Meter
	gw    *gateway.Gateway
	url   string // the gateway server
	key   string // user alice's alwrity key
	user  string
	fakes map[string]*fake
	logs  *syncBuffer
	http  *http.Client
}

func newHarness(t testing.TB, b storetest.Backend, tweak func(*gateway.Config)) *harness {
	t.Helper()
	h := &harness{t: t, ctx: context.Background(), user: "alice", fakes: map[string]*fake{}, logs: &syncBuffer{}}
	for _, p := range []string{"openai", "anthropic", "gemini", "mistral"} {
		h.fakes[p] = newFake(t, p)
	}
	h.db = storetest.Open(t, b)
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.meter = metering.New(h.db, time.Now, logger)
	// Cleanups run last first: the meter closes after the gateway.
	t.Cleanup(func() { _ = h.meter.Close(context.Background()) })
	key, prefix, hash := auth.NewKey()
	if _, err := h.db.CreateKey(h.ctx, billing.APIKey{Prefix: prefix, UserID: h.user, Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
		t.Fatalf("create key: %v", err)
	}
	h.key = key
	cfg := gateway.Config{
		Upstreams: map[string]gateway.Upstream{
			"openai":    {BaseURL: h.fakes["openai"].srv.URL + "/v1", Key: serverKeys["openai"]},
			"anthropic": {BaseURL: h.fakes["anthropic"].srv.URL, Key: serverKeys["anthropic"]},
			"gemini":    {BaseURL: h.fakes["gemini"].srv.URL, Key: serverKeys["gemini"]},
			"mistral":   {BaseURL: h.fakes["mistral"].srv.URL + "/v1", Key: serverKeys["mistral"]},
		},
		Logger: logger,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.gw = gateway.New(cfg, h.meter, &auth.Authenticator{Keys: h.db, AdminKey: adminKey})
	t.Cleanup(h.gw.Close)
	mux := http.NewServeMux()
	h.gw.Register(mux)
	srv := httptest.NewServer(auth.Middleware(mux))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	tr := &http.Transport{MaxIdleConnsPerHost: 128}
	h.http = &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return h
}

// with returns the harness reporting to t (a subtest).
func (h *harness) with(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

// ledger returns the ledger rows of the harness's user, oldest first.
func (h *harness) ledger() []billing.UsageLog {
	h.t.Helper()
	logs, _, err := h.db.ListLogs(h.ctx, billing.LogFilter{UserID: h.user, Limit: 1000})
	if err != nil {
		h.t.Fatalf("list logs: %v", err)
	}
	for i, j := 0, len(logs)-1; i < j; i, j = i+1, j-1 {
		logs[i], logs[j] = logs[j], logs[i]
	}
	return logs
}

// settled waits until every call the gateway admitted is recorded: calls
// are recorded after their client is answered (and a relay whose client
// left may still be draining).
func (h *harness) settled() {
	h.t.Helper()
	if err := h.gw.Wait(h.ctx); err != nil {
		h.t.Fatalf("wait for the gateway's records: %v", err)
	}
}

// waitLedger waits until every call is recorded and returns the user's
// ledger rows, failing unless there are n.
func (h *harness) waitLedger(n int) []billing.UsageLog {
	h.t.Helper()
	h.settled()
	logs := h.ledger()
	if len(logs) != n {
		h.t.Fatalf("ledger has %d rows, want %d", len(logs), n)
	}
	return logs
}

// post sends a raw request to the gateway with the user's key as Bearer.
func (h *harness) post(path, body string, header map[string]string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.key)
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

// readAll reads and closes a response body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// planUser puts the harness user on a new plan.
func (h *harness) planUser(plan billing.Plan) {
	h.t.Helper()
	plan.Tier, plan.IsActive = "pro", true
	id, err := h.db.CreatePlan(h.ctx, plan, time.Now())
	if err != nil {
		h.t.Fatalf("create plan: %v", err)
	}
	// The gateway and the meter run on the real clock: calls that straddle
	// the change of a UTC month fall in two periods, and the plan's limits
	// start again in the second. Start well clear of a month's end.
	now := time.Now().UTC()
	if left := billing.CalendarMonths().At(now).End.Sub(now); left < 30*time.Second {
		time.Sleep(left + time.Second)
		now = time.Now().UTC()
	}
	anchor := billing.CalendarMonths().At(now).Start
	p := billing.Schedule{Anchor: anchor, Location: time.UTC}.At(now)
	if _, err := h.db.CreateSubscription(h.ctx, billing.Subscription{UserID: h.user, PlanID: id, BillingCycle: "monthly",
		Status: billing.StatusActive, AutoRenew: true, Anchor: anchor, CurrentPeriodStart: p.Start, CurrentPeriodEnd: p.End}, now); err != nil {
		h.t.Fatalf("subscribe: %v", err)
	}
}

// sameUsage reports whether two ledger rows record the same usage and cost.
func sameUsage(a, b billing.UsageLog) bool {
	return a.ModelUsed == b.ModelUsed && a.TokensInput == b.TokensInput && a.TokensOutput == b.TokensOutput &&
		a.TokensCachedInput == b.TokensCachedInput && a.TokensCacheWrite5m == b.TokensCacheWrite5m &&
		a.TokensCacheWrite1h == b.TokensCacheWrite1h && a.TokensReasoning == b.TokensReasoning &&
		a.SearchCount == b.SearchCount && a.CostTotal == b.CostTotal && a.StatusCode == b.StatusCode && a.Partial == b.Partial
}

func describe(l billing.UsageLog) string {
	return fmt.Sprintf("{model %s in %d out %d cached %d w5m %d w1h %d reasoning %d searches %d cost %s status %d partial %v err %q meta %s}",
		l.ModelUsed, l.TokensInput, l.TokensOutput, l.TokensCachedInput, l.TokensCacheWrite5m, l.TokensCacheWrite1h,
		l.TokensReasoning, l.SearchCount, l.CostTotal, l.StatusCode, l.Partial, l.ErrorMessage, l.Metadata)
}

// sse writes server-sent events one by one, flushing each as a provider
// does.
func sse(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for _, e := range events {
		io.WriteString(w, e)
		rc.Flush()
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// newServer serves h on a local test server closed when the test ends.
func newServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(auth.Middleware(h))
	t.Cleanup(srv.Close)
	return srv.URL
}
