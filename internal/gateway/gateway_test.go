package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

const chatBody = `{"model":"gpt-4o","max_tokens":300,"messages":[{"role":"user","content":"Hello"}]}`

// TestConcurrentCallsAgainstRemainingLimit: 100 concurrent calls against
// 10 remaining admit exactly 10, and the provider sees exactly those; the
// same for 600 against 300, which on PostgreSQL the gateway admits from
// leases until the last few calls.
func TestConcurrentCallsAgainstRemainingLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		for _, c := range []struct{ limit, n int64 }{{10, 100}, {300, 600}} {
			t.Run(fmt.Sprintf("%d of %d", c.limit, c.n), func(t *testing.T) {
				concurrentCallsAgainst(t, b, c.limit, c.n)
			})
		}
	})
}

func concurrentCallsAgainst(t *testing.T, b storetest.Backend, limit, n int64) {
	h := newHarness(t, b, nil)
	h.planUser(billing.Plan{Name: "capped", TotalCallsLimit: billing.Ptr(limit)})
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+h.key)
			resp, err := h.http.Do(req)
			if err != nil {
				t.Errorf("call: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				refused.Add(1)
				var p struct {
					Error     string `json:"error"`
					Provider  string `json:"provider"`
					UsageInfo struct {
						Type  string      `json:"type"`
						Limit json.Number `json:"limit"`
					} `json:"usage_info"`
				}
				if err := json.Unmarshal(body, &p); err != nil || p.Error != "Usage limit exceeded" || p.Provider != "openai" ||
					p.UsageInfo.Type != "total_calls" || p.UsageInfo.Limit != json.Number(fmt.Sprint(limit)) {
					t.Errorf("429 body = %s", body)
				}
			default:
				t.Errorf("unexpected %d %s", resp.StatusCode, body)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != limit || refused.Load() != n-limit {
		t.Errorf("admitted %d and refused %d of %d calls against %d remaining; want %d and %d", ok.Load(), refused.Load(), n, limit, limit, n-limit)
	}
	if got := h.fakes["openai"].calls.Load(); got != limit {
		t.Errorf("the provider saw %d calls; want exactly %d", got, limit)
	}
	if b.Name == "postgres" && limit >= 100 && h.meter.LeasesGranted() == 0 {
		t.Error("no lease served calls far from the limit")
	}
	rows := h.waitLedger(int(limit))
	for _, l := range rows {
		h.checkRow(l, openaiWant)
	}
	h.consistent()
}

// flakyMeter is the real meter behind a switch that makes every call fail
// as an unreachable database does.
type flakyMeter struct {
	gateway.Meter
	down       atomic.Bool
	settleDown atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")

func (f *flakyMeter) Reserve(ctx context.Context, r billing.ReserveRequest) (billing.Reservation, error) {
	if f.down.Load() {
		return billing.Reservation{}, errDown
	}
	return f.Meter.Reserve(ctx, r)
}

// Quote needs the price catalog from the database, so it fails while the
// database is down; a settle that fails alone leaves it working.
func (f *flakyMeter) Quote(ctx context.Context, e billing.UsageEvent) (money.Amount, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Meter.Quote(ctx, e)
}

func (f *flakyMeter) Settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error) {
	if f.down.Load() || f.settleDown.Load() {
		return billing.EventResult{}, errDown
	}
	return f.Meter.Settle(ctx, id, e)
}

func (f *flakyMeter) Record(ctx context.Context, es []billing.UsageEvent) ([]billing.EventResult, error) {
	if f.down.Load() || f.settleDown.Load() {
		return nil, errDown
	}
	return f.Meter.Record(ctx, es)
}

// flakyGateway returns a harness whose gateway meters through a flakyMeter.
// Its pending records are retried only when a test says so
// (gateway.RetryPending).
func flakyGateway(t *testing.T, failOpen bool) (*harness, *flakyMeter) {
	h := newHarness(t, storetest.Backends()[0], nil)
	fm := &flakyMeter{Meter: h.meter}
	gw := gateway.New(gateway.Config{
		Upstreams: map[string]gateway.Upstream{"openai": {BaseURL: h.fakes["openai"].srv.URL + "/v1", Key: serverKeys["openai"]}},
		FailOpen:  failOpen, RetryEvery: time.Hour,
	}, fm, &auth.Authenticator{Keys: h.db, AdminKey: adminKey})
	t.Cleanup(gw.Close)
	mux := http.NewServeMux()
	gw.Register(mux)
	h.gw = gw
	srv := newServer(t, mux)
	h.url = srv
	return h, fm
}

// checkPending waits for every call to be recorded or queued and checks
// how many wait for the database.
func (h *harness) checkPending(n int) {
	h.t.Helper()
	h.settled()
	if got := h.gw.Pending(); got != n {
		h.t.Fatalf("pending = %d, want %d", got, n)
	}
}

func TestDatabaseUnreachableRefusesWith503(t *testing.T) {
	h, fm := flakyGateway(t, false)
	fm.down.Store(true)
	resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || strings.Contains(body, "5432") {
		t.Errorf("database down: %d Retry-After %q body %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := h.fakes["openai"].calls.Load(); n != 0 {
		t.Errorf("the provider was called %d times while metering was down", n)
	}
}

func TestFailOpenRecordsWhenTheDatabaseReturns(t *testing.T) {
	h, fm := flakyGateway(t, true)
	fm.down.Store(true)
	resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("fail-open call: %d %s", resp.StatusCode, body)
	}
	if cost := resp.Header.Get(gateway.CostHeader); cost != "" {
		t.Errorf("a call rated without the price catalog: cost %q", cost)
	}
	h.checkPending(1)
	if rows := h.ledger(); len(rows) != 0 {
		t.Fatalf("recorded while the database was down: %d rows", len(rows))
	}
	fm.down.Store(false)
	gateway.RetryPending(h.gw)
	h.checkPending(0)
	l := h.waitLedger(1)[0]
	h.checkRow(l, openaiWant)
	if !strings.Contains(l.Metadata, `"fail_open":true`) {
		t.Errorf("a fail-open call is not marked so: %s", l.Metadata)
	}

	// A reservation whose settle fails waits and is settled later, with
	// the cost the client was told.
	fm.settleDown.Store(true)
	resp = h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.CostHeader) != openaiWant.cost {
		t.Fatalf("call with settle down: %d cost %q %s", resp.StatusCode, resp.Header.Get(gateway.CostHeader), body)
	}
	h.checkPending(1)
	fm.settleDown.Store(false)
	gateway.RetryPending(h.gw)
	h.checkPending(0)
	h.checkRow(h.waitLedger(2)[1], openaiWant)
	h.consistent()
}

func TestAuthentication(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
	}{
		{"no key", map[string]string{"Authorization": ""}, http.StatusUnauthorized},
		{"unknown key", map[string]string{"Authorization": "Bearer alw_notakey_0000000000000000"}, http.StatusUnauthorized},
		{"x-api-key", map[string]string{"Authorization": "", "X-Api-Key": h.key}, http.StatusOK},
		{"x-goog-api-key", map[string]string{"Authorization": "", "X-Goog-Api-Key": h.key}, http.StatusOK},
		{"admin without user", map[string]string{"Authorization": "Bearer " + adminKey}, http.StatusBadRequest},
		{"admin naming a user", map[string]string{"Authorization": "Bearer " + adminKey, gateway.UserHeader: "alice"}, http.StatusOK},
	} {
		resp := h.post("/gateway/openai/v1/chat/completions", chatBody, tc.header)
		body := readAll(t, resp)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s; want %d", tc.name, resp.StatusCode, body, tc.status)
		}
		if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: a 401 without WWW-Authenticate", tc.name)
		}
	}
	if got := h.fakes["openai"].calls.Load(); got != 3 {
		t.Errorf("the provider saw %d calls; want 3 (only the authenticated ones)", got)
	}
	h.waitLedger(3)
	headers, _ := h.fakes["openai"].seen()
	for _, hd := range headers {
		if hd.Get(gateway.UserHeader) != "" || hd.Get("X-Api-Key") != "" || hd.Get("X-Goog-Api-Key") != "" {
			t.Errorf("client credentials reached the provider: %v", hd)
		}
	}
}

func TestRequestBodyLimitAndBadRequests(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) { c.MaxBodyBytes = 1024 })
	big := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("x", 2048) + `"}]}`
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/gateway/openai/v1/chat/completions", big, http.StatusRequestEntityTooLarge},
		{"/gateway/openai/v1/chat/completions", `not json`, http.StatusBadRequest},
		{"/gateway/gemini/v1beta/models/gemini-2.5-flash:countTokens", `{}`, http.StatusNotFound},
		{"/gateway/openai/v1/images/generations", `{}`, http.StatusNotFound},
	} {
		resp := h.post(tc.path, tc.body, nil)
		body := readAll(t, resp)
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d %s; want %d problem+json", tc.path, resp.StatusCode, body, tc.status)
		}
	}
	for p, f := range h.fakes {
		if n := f.calls.Load(); n != 0 {
			t.Errorf("%s saw %d calls", p, n)
		}
	}
	if rows := h.ledger(); len(rows) != 0 {
		t.Errorf("refused requests were recorded: %d rows", len(rows))
	}
}

func TestGeminiKeyParamVersionsAndJSONStream(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	content := `{"contents":[{"parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":1000}}`
	for _, path := range []string{
		"/gateway/gemini/v1/models/gemini-2.5-flash:generateContent?key=" + h.key,
		"/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?key=" + h.key,
	} {
		resp := h.post(path, content, map[string]string{"Authorization": ""})
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "usageMetadata") {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
	rows := h.waitLedger(2)
	for _, l := range rows {
		h.checkRow(l, geminiWant)
	}
	if rows[0].Endpoint != "/v1/models/gemini-2.5-flash:generateContent" {
		t.Errorf("endpoint = %q", rows[0].Endpoint)
	}
	_, queries := h.fakes["gemini"].seen()
	for _, q := range queries {
		if strings.Contains(q, "key=") {
			t.Errorf("the client's key reached Gemini in the query %q", q)
		}
	}
}

func TestCostAndOverheadHeaders(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	readAll(t, resp)
	if resp.Header.Get(gateway.CostHeader) != "0.00472" || resp.Header.Get(gateway.OverheadHeader) == "" {
		t.Errorf("non-streaming headers: cost %q overhead %q", resp.Header.Get(gateway.CostHeader), resp.Header.Get(gateway.OverheadHeader))
	}
	resp = h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
	readAll(t, resp)
	if resp.Header.Get(gateway.OverheadHeader) == "" {
		t.Errorf("a stream's headers carry no overhead")
	}
	if resp.Trailer.Get(gateway.CostHeader) != "0.00472" || resp.Trailer.Get(gateway.OverheadHeader) == "" {
		t.Errorf("stream trailers: %v", resp.Trailer)
	}
}

func TestKeyCacheAndRevocation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ttl    time.Duration
		status int
	}{
		{"cache off: a revoked key is refused at once", -1, http.StatusUnauthorized},
		{"cached: a revoked key works until its entry expires", time.Hour, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) { c.KeyCacheTTL = tc.ttl })
			if resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("first call: %d %s", resp.StatusCode, readAll(t, resp))
			} else {
				readAll(t, resp)
			}
			prefix, err := auth.ParseKey(h.key)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.db.RevokeKey(h.ctx, prefix, time.Now()); err != nil {
				t.Fatal(err)
			}
			resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
			if body := readAll(t, resp); resp.StatusCode != tc.status {
				t.Errorf("after revocation: %d %s; want %d", resp.StatusCode, body, tc.status)
			}
		})
	}
}

func TestAdmissionReservesTheRequestsOutputLimit(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) { c.DefaultMaxTokens = 5000 })
	h.planUser(billing.Plan{Name: "openai-tokens-3000",
		ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](3000)}}})
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"max_tokens beyond the limit", `{"model":"gpt-4o","max_tokens":4000,"messages":[]}`, http.StatusTooManyRequests},
		{"max_completion_tokens beyond the limit", `{"model":"gpt-4o","max_completion_tokens":3500,"messages":[]}`, http.StatusTooManyRequests},
		{"no maximum: the configured default (5000) is beyond the limit", `{"model":"gpt-4o","messages":[]}`, http.StatusTooManyRequests},
		{"max_tokens within the limit", `{"model":"gpt-4o","max_tokens":300,"messages":[]}`, http.StatusOK},
	} {
		resp := h.post("/gateway/openai/v1/chat/completions", tc.body, nil)
		if body := readAll(t, resp); resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s; want %d", tc.name, resp.StatusCode, body, tc.status)
		} else if tc.status == http.StatusTooManyRequests && !strings.Contains(body, `"type":"openai_tokens"`) {
			t.Errorf("%s: 429 body %s names another limit", tc.name, body)
		}
	}
	if n := h.fakes["openai"].calls.Load(); n != 1 {
		t.Errorf("the provider saw %d calls; want only the admitted one", n)
	}
}
