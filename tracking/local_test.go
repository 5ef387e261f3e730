package tracking_test

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/tracking"
)

// chatHandler stands for a service's route that calls a model: it reports
// the seed's gpt-4 call (1,000 tokens in, 500 out = 0.06 USD) and answers
// status.
func chatHandler(runs *atomic.Int64, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		tracking.Report(r.Context(), tracking.Usage{Model: "gpt-4", TokensInput: 1000, TokensOutput: 500})
		w.WriteHeader(status)
		w.Write([]byte(`{"ok":true}`))
	})
}

// localConfig meters in-process against s's store. The admission timeout
// is generous so that a slow test machine never turns an admission into a
// 503: the tests count admissions exactly.
func localConfig(t *testing.T, s *server) tracking.Config {
	return tracking.Config{Meter: tracking.NewLocalMeter(s.app.Meter), Now: newStepClock().Now, Timeout: waitLimit,
		OnError: func(err error) { t.Errorf("settle failed: %v", err) }}
}

// TestLocalMeterRecordsACall: one metered request becomes one ledger event
// priced exactly, with the request's status, endpoint, method and response
// time, and its reservation settled.
func TestLocalMeterRecordsACall(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.user("u1")
		var runs atomic.Int64
		srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusOK))

		if a := call(t, srv.Client(), http.MethodPost, srv.URL+"/api/openai/chat", "u1"); a.status != http.StatusOK || a.body != `{"ok":true}` {
			t.Fatalf("answer: %d %s", a.status, a.body)
		}
		logs := s.logs("u1")
		if len(logs) != 1 {
			t.Fatalf("%d ledger events, want 1: %+v", len(logs), logs)
		}
		l := logs[0]
		if l.CostTotal != money.MustParse("0.06") || l.CostInput != money.MustParse("0.03") || l.CostOutput != money.MustParse("0.03") {
			t.Errorf("cost %s (in %s, out %s), want 0.06 (0.03 + 0.03)", l.CostTotal, l.CostInput, l.CostOutput)
		}
		if l.Provider != "openai" || l.ModelUsed != "gpt-4" || l.TokensInput != 1000 || l.TokensOutput != 500 {
			t.Errorf("call: %s/%s %d in %d out", l.Provider, l.ModelUsed, l.TokensInput, l.TokensOutput)
		}
		if l.StatusCode != 200 || l.Endpoint != "/api/openai/chat" || l.Method != "POST" {
			t.Errorf("request: %d %s %s", l.StatusCode, l.Method, l.Endpoint)
		}
		// The middleware's clock advances 250 ms a reading: the call took
		// exactly that, and is dated when it started.
		if l.ResponseTime != 0.25 || !l.Timestamp.Equal(base) {
			t.Errorf("response time %v s at %v, want 0.25 s at %v", l.ResponseTime, l.Timestamp, base)
		}
		s.settled(l.EventID)
		u := s.usage("u1")
		if u.Total.Calls != 1 || u.Total.Errors != 0 || u.Total.Cost != money.MustParse("0.06") ||
			u.ByProvider["openai"].Calls != 1 || u.Total.ResponseTimeSum != 0.25 {
			t.Errorf("summary: %+v", u)
		}
		if runs.Load() != 1 {
			t.Errorf("handler ran %d times", runs.Load())
		}
		s.consistent()
	})
}

// TestLocalMeterRecordsFailures: a handler's 5xx is recorded as a failed
// call, still with the usage it reported.
func TestLocalMeterRecordsFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.user("u1")
		var runs atomic.Int64
		srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusInternalServerError))

		if a := call(t, srv.Client(), http.MethodPost, srv.URL+"/api/gemini/generate", "u1"); a.status != http.StatusInternalServerError {
			t.Fatalf("answer: %d %s", a.status, a.body)
		}
		logs := s.logs("u1")
		if len(logs) != 1 || logs[0].StatusCode != 500 || logs[0].Provider != "gemini" {
			t.Fatalf("ledger: %+v", logs)
		}
		s.settled(logs[0].EventID)
		u := s.usage("u1")
		if u.Total.Calls != 1 || u.Total.Errors != 1 || u.ByProvider["gemini"].Errors != 1 {
			t.Errorf("summary counts %d calls, %d errors (gemini %d); want 1 and 1", u.Total.Calls, u.Total.Errors, u.ByProvider["gemini"].Errors)
		}
		s.consistent()
	})
}

// TestLocalMeterPassesUnidentified: requests without a user, or whose path
// names no provider, run unmetered.
func TestLocalMeterPassesUnidentified(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.user("u1")
		var runs atomic.Int64
		srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusOK))

		for _, c := range []struct{ path, user string }{
			{"/api/openai/chat", ""},    // no user
			{"/api/example", "u1"},      // "exa" only as a substring
			{"/api/openai-proxy", "u1"}, // "openai" only as a substring
			{"/healthz", "u1"},
		} {
			if a := call(t, srv.Client(), http.MethodPost, srv.URL+c.path, c.user); a.status != http.StatusOK {
				t.Errorf("%s as %q: %d %s", c.path, c.user, a.status, a.body)
			}
		}
		if runs.Load() != 4 {
			t.Errorf("handler ran %d times, want 4", runs.Load())
		}
		if logs := s.logs(""); len(logs) != 0 {
			t.Errorf("unmetered requests reached the ledger: %+v", logs)
		}
		if u := s.usage("u1"); u.Total.Calls != 0 {
			t.Errorf("summary: %+v", u.Total)
		}
		s.consistent()
	})
}

// TestLocalMeterEnforcesLimit: with 3 calls a month, the 4th request is
// refused with ALwrity's 429 problem and never reaches the handler.
func TestLocalMeterEnforcesLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.limitCalls("u1", 3)
		var runs atomic.Int64
		srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusOK))

		for i := range 3 {
			if a := call(t, srv.Client(), http.MethodPost, srv.URL+"/api/openai/chat", "u1"); a.status != http.StatusOK {
				t.Fatalf("request %d: %d %s", i+1, a.status, a.body)
			}
		}
		a := call(t, srv.Client(), http.MethodPost, srv.URL+"/api/openai/chat", "u1")
		if a.status != http.StatusTooManyRequests || a.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("4th request: %d %q %s", a.status, a.header.Get("Content-Type"), a.body)
		}
		p := decodeJSON(t, a.body)
		info, _ := p["usage_info"].(map[string]any)
		if p["error"] != "Usage limit exceeded" || p["status"] != json.Number("429") || p["provider"] != "openai" ||
			p["message"] == "" || p["detail"] != p["message"] || info == nil || info["type"] != "total_calls" ||
			info["limit"] != json.Number("3") || info["current_calls"] != json.Number("3") {
			t.Errorf("429 body: %s", a.body)
		}
		if runs.Load() != 3 {
			t.Errorf("handler ran %d times, want 3", runs.Load())
		}
		if logs := s.logs("u1"); len(logs) != 3 {
			t.Errorf("%d ledger events, want 3", len(logs))
		}
		s.consistent()
	})
}

// TestLocalMeterConcurrentAdmission: 50 concurrent requests against 10
// remaining calls run the handler exactly 10 times; the rest are refused.
func TestLocalMeterConcurrentAdmission(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.limitCalls("u1", 10)
		var runs atomic.Int64
		srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusOK))
		srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 50

		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		start := make(chan struct{})
		for range 50 {
			wg.Go(func() {
				<-start
				a := call(t, srv.Client(), http.MethodPost, srv.URL+"/api/openai/chat", "u1")
				mu.Lock()
				statuses[a.status]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		if runs.Load() != 10 || statuses[http.StatusOK] != 10 || statuses[http.StatusTooManyRequests] != 40 {
			t.Errorf("handler ran %d times; answers %v; want 10 runs, 10 × 200 and 40 × 429", runs.Load(), statuses)
		}
		logs := s.logs("u1")
		if len(logs) != 10 {
			t.Errorf("%d ledger events, want 10", len(logs))
		}
		ids := map[string]bool{}
		for _, l := range logs {
			ids[l.EventID] = true
		}
		if len(ids) != len(logs) {
			t.Errorf("%d distinct event ids among %d events", len(ids), len(logs))
		}
		if u := s.usage("u1"); u.Total.Calls != 10 || u.Total.Cost != money.MustParse("0.6") {
			t.Errorf("summary: %d calls, %s USD; want 10, 0.6", u.Total.Calls, u.Total.Cost)
		}
		s.consistent()
	})
}

// TestLocalMeterSettlesPanics: a handler that panics still has its call
// recorded, as failed, and its hold released at once rather than at expiry.
func TestLocalMeterSettlesPanics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		s := openApp(t, b.URL(t))
		s.limitCalls("u1", 1)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tracking.Report(r.Context(), tracking.Usage{Model: "gpt-4", TokensInput: 1000})
			panic(http.ErrAbortHandler) // quiet in the server's log
		})
		srv := serveMiddleware(t, localConfig(t, s), h)
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/api/openai/chat", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-User", "u1")
		if res, err := srv.Client().Do(req); err == nil { // the server aborts the connection
			res.Body.Close()
			t.Errorf("a panicking handler answered %d", res.StatusCode)
		}
		logs := s.logs("u1")
		if len(logs) != 1 || logs[0].StatusCode != 500 || logs[0].CostTotal != money.MustParse("0.03") {
			t.Fatalf("ledger: %+v", logs)
		}
		s.settled(logs[0].EventID)
		s.consistent()
	})
}
