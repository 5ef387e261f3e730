package tracking_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/tracking"
)

// fakeMeter answers Reserve with reserve and remembers what was settled.
type fakeMeter struct {
	reserve   func(ctx context.Context, c tracking.Call) (string, error)
	settleErr error

	mu       sync.Mutex
	calls    []tracking.Call
	outcomes []tracking.Outcome
}

func (f *fakeMeter) Reserve(ctx context.Context, c tracking.Call) (string, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.reserve == nil {
		return "rsv_1", nil
	}
	return f.reserve(ctx, c)
}

func (f *fakeMeter) Settle(_ context.Context, id string, o tracking.Outcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != o.EventID {
		return fmt.Errorf("settled %s with event %s", id, o.EventID)
	}
	f.outcomes = append(f.outcomes, o)
	return f.settleErr
}

func (f *fakeMeter) settled() []tracking.Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tracking.Outcome(nil), f.outcomes...)
}

// serveOne runs one request as user u1 to path through the middleware,
// bounded by waitLimit, and reports whether the handler ran.
func serveOne(t *testing.T, cfg tracking.Config, path string, h http.HandlerFunc) (*httptest.ResponseRecorder, bool) {
	t.Helper()
	ran := false
	handler := tracking.Middleware(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran = true
		if h != nil {
			h(w, r)
		}
	}))
	r := httptest.NewRequest(http.MethodPost, path, nil)
	r = r.WithContext(tracking.WithUser(r.Context(), "u1"))
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		handler.ServeHTTP(w, r)
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("the middleware did not answer")
	}
	return w, ran
}

func unavailable(context.Context, tracking.Call) (string, error) {
	return "", fmt.Errorf("%w: dial tcp 10.0.0.1:8000: connection refused", tracking.ErrUnavailable)
}

// TestFailClosed: by default a meter that cannot be reached refuses the
// request with 503 and Retry-After, and the handler never runs.
func TestFailClosed(t *testing.T) {
	m := &fakeMeter{reserve: unavailable}
	w, ran := serveOne(t, tracking.Config{Meter: m}, "/api/openai/chat", nil)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
		w.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("answer: %d Retry-After %q %q %s", w.Code, w.Header().Get("Retry-After"), w.Header().Get("Content-Type"), w.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p["status"] != float64(503) || p["detail"] == "" {
		t.Errorf("problem %v (%v)", p, err)
	}
	if ran || len(m.settled()) != 0 {
		t.Errorf("handler ran: %v; settled: %v", ran, m.settled())
	}
}

// TestFailOpen: with FailOpen the handler runs when the meter cannot be
// reached, and nothing is settled since nothing was reserved.
func TestFailOpen(t *testing.T) {
	m := &fakeMeter{reserve: unavailable}
	w, ran := serveOne(t, tracking.Config{Meter: m, FailOpen: true}, "/api/openai/chat", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("made the call"))
	})
	if !ran || w.Code != http.StatusOK || w.Body.String() != "made the call" {
		t.Errorf("ran %v: %d %s", ran, w.Code, w.Body)
	}
	if len(m.settled()) != 0 {
		t.Errorf("settled without a reservation: %+v", m.settled())
	}
}

// TestFailOpenStillEnforcesLimits: failing open is for an unreachable
// meter, never for a refusal.
func TestFailOpenStillEnforcesLimits(t *testing.T) {
	m := &fakeMeter{reserve: func(context.Context, tracking.Call) (string, error) {
		return "", &tracking.LimitError{Provider: "openai", Limit: "openai_calls", Message: "openai calls limit reached", Used: "5", Max: "5"}
	}}
	w, ran := serveOne(t, tracking.Config{Meter: m, FailOpen: true}, "/api/openai/chat", nil)
	if ran || w.Code != http.StatusTooManyRequests {
		t.Fatalf("ran %v: %d %s", ran, w.Code, w.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	info, _ := p["usage_info"].(map[string]any)
	if p["error"] != "Usage limit exceeded" || p["provider"] != "openai" || info["type"] != "openai_calls" ||
		info["limit"] != float64(5) || info["current_calls"] != float64(5) {
		t.Errorf("429 body %s", w.Body)
	}
}

// TestLimitNamesCallProvider: a refusal by a limit of no provider (total
// calls) names the provider of the refused call, as the server does.
func TestLimitNamesCallProvider(t *testing.T) {
	m := &fakeMeter{reserve: func(context.Context, tracking.Call) (string, error) {
		return "", &tracking.LimitError{Limit: "monthly_cost", Message: "Monthly cost limit reached.", Used: "0.49", Max: "0.50"}
	}}
	w, ran := serveOne(t, tracking.Config{Meter: m}, "/api/tavily/search", nil)
	if ran || w.Code != http.StatusTooManyRequests {
		t.Fatalf("ran %v: %d %s", ran, w.Code, w.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	info, _ := p["usage_info"].(map[string]any)
	if p["provider"] != "tavily" || info["type"] != "monthly_cost" || info["limit"] != 0.5 {
		t.Errorf("429 body %s", w.Body)
	}
}

// TestAdmissionTimeout: a meter that never answers is given up after
// Timeout, and the request refused rather than held.
func TestAdmissionTimeout(t *testing.T) {
	m := &fakeMeter{reserve: func(ctx context.Context, _ tracking.Call) (string, error) {
		<-ctx.Done()
		return "", fmt.Errorf("%w: %v", tracking.ErrUnavailable, ctx.Err())
	}}
	w, ran := serveOne(t, tracking.Config{Meter: m, Timeout: 10 * time.Millisecond}, "/api/openai/chat", nil)
	if ran || w.Code != http.StatusServiceUnavailable {
		t.Errorf("ran %v: %d %s", ran, w.Code, w.Body)
	}
}

// TestSettledOutcome: what the middleware settles — the reservation's
// call, the last usage the handler reported, the final status (not an
// informational one), the request and its duration.
func TestSettledOutcome(t *testing.T) {
	clock := newStepClock()
	m := &fakeMeter{}
	serveOne(t, tracking.Config{Meter: m, Now: clock.Now}, "/v1/exa/search", func(w http.ResponseWriter, r *http.Request) {
		tracking.Report(r.Context(), tracking.Usage{Searches: 1})
		tracking.Report(r.Context(), tracking.Usage{Searches: 2, Requests: 1}) // replaces: totals are cumulative
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	})
	if len(m.calls) != 1 || m.calls[0] != (tracking.Call{UserID: "u1", Provider: "metaphor"}) {
		t.Errorf("reserved %+v", m.calls)
	}
	want := tracking.Outcome{UserID: "u1", Provider: "metaphor", EventID: "rsv_1", Endpoint: "/v1/exa/search", Method: "POST",
		StatusCode: http.StatusAccepted, ResponseTime: 250 * time.Millisecond, Timestamp: base,
		Usage: tracking.Usage{Searches: 2, Requests: 1}}
	if got := m.settled(); len(got) != 1 || got[0] != want {
		t.Errorf("settled %+v\nwant %+v", got, want)
	}
}

// TestSettleErrorsReported: a failed settlement does not change the answer
// and is told to OnError, naming the reservation.
func TestSettleErrorsReported(t *testing.T) {
	boom := errors.New("ledger unreachable")
	var reported []error
	m := &fakeMeter{settleErr: boom}
	w, _ := serveOne(t, tracking.Config{Meter: m, OnError: func(err error) { reported = append(reported, err) }}, "/api/openai/chat",
		func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	if w.Code != http.StatusOK || w.Body.String() != "ok" {
		t.Errorf("answer %d %s", w.Code, w.Body)
	}
	if len(reported) != 1 || !errors.Is(reported[0], boom) {
		t.Errorf("reported %v", reported)
	}
}

// TestCustomIdentify: a service names users and providers its own way.
func TestCustomIdentify(t *testing.T) {
	m := &fakeMeter{}
	identify := func(r *http.Request) (string, string, bool) {
		return r.Header.Get("X-Tenant"), r.Header.Get("X-Provider"), r.Header.Get("X-Tenant") != ""
	}
	h := tracking.Middleware(tracking.Config{Meter: m, Identify: identify}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest(http.MethodGet, "/anything", nil)
	r.Header.Set("X-Tenant", "t9")
	r.Header.Set("X-Provider", "serper")
	h.ServeHTTP(httptest.NewRecorder(), r)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/openai", nil))
	if len(m.calls) != 1 || m.calls[0].UserID != "t9" || m.calls[0].Provider != "serper" || len(m.settled()) != 1 {
		t.Errorf("reserved %+v, settled %+v", m.calls, m.settled())
	}
}

// TestReportOutsideMiddleware is a no-op, not a panic.
func TestReportOutsideMiddleware(t *testing.T) {
	tracking.Report(context.Background(), tracking.Usage{TokensInput: 1})
}

// TestMiddlewareNeedsMeter: a middleware without a meter is refused when it
// is built, with a message that says what is missing, not on the first
// metered request with a nil dereference.
func TestMiddlewareNeedsMeter(t *testing.T) {
	defer func() {
		if msg, _ := recover().(string); !strings.Contains(msg, "Meter") {
			t.Errorf("panic %q, want one naming Config.Meter", msg)
		}
	}()
	tracking.Middleware(tracking.Config{}, http.NotFoundHandler())
}

// TestNegativeTimeout: a negative Timeout means the default, not an
// admission deadline already past that refuses every request.
func TestNegativeTimeout(t *testing.T) {
	m := &fakeMeter{reserve: func(ctx context.Context, _ tracking.Call) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("%w: %v", tracking.ErrUnavailable, err)
		}
		return "rsv_1", nil
	}}
	w, ran := serveOne(t, tracking.Config{Meter: m, Timeout: -time.Second}, "/api/openai/chat", nil)
	if !ran || w.Code != http.StatusOK || len(m.settled()) != 1 {
		t.Errorf("ran %v: %d %s; settled %+v", ran, w.Code, w.Body, m.settled())
	}
}
