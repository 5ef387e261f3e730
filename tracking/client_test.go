package tracking_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/tracking"
)

// errorLog collects what a client tells OnError.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// newHTTPClient returns a client with its own transport, so that a test
// can close its idle connections before looking for leaked goroutines.
func newHTTPClient(t *testing.T) *http.Client {
	t.Helper()
	return &http.Client{Transport: &http.Transport{}}
}

// closeClient closes c, bounded, and fails on an error.
func closeClient(t *testing.T, c *tracking.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

// runRequests sends n metered chat requests as user through the middleware
// over m and returns the answers' statuses.
func runRequests(t *testing.T, m tracking.Meter, n int, user string) map[int]int {
	t.Helper()
	var runs atomic.Int64
	srv := httptest.NewServer(withUser(tracking.Middleware(tracking.Config{Meter: m, Now: newStepClock().Now, Timeout: waitLimit,
		OnError: func(err error) { t.Errorf("settle: %v", err) }}, chatHandler(&runs, http.StatusOK))))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()
	statuses := map[int]int{}
	for range n {
		statuses[call(t, srv.Client(), http.MethodPost, srv.URL+"/api/openai/chat", user).status]++
	}
	if int(runs.Load()) != statuses[http.StatusOK] {
		t.Errorf("handler ran %d times for %d admitted requests", runs.Load(), statuses[http.StatusOK])
	}
	return statuses
}

// TestClientRecordsOncePerRequest: through a remote server, each request
// is reserved, run and settled, and lands in the ledger exactly once.
func TestClientRecordsOncePerRequest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		s := serveApp(t, url)
		defer s.stop()
		s.user("u1")
		httpc := newHTTPClient(t)
		defer httpc.CloseIdleConnections()
		var errs errorLog
		c := tracking.NewClient(tracking.ClientConfig{BaseURL: s.url + "/", APIKey: adminKey, HTTP: httpc, BatchSize: 2, OnError: errs.add})

		if st := runRequests(t, c, 5, "u1"); st[http.StatusOK] != 5 {
			t.Fatalf("answers %v", st)
		}
		closeClient(t, c)
		if e := errs.all(); len(e) != 0 {
			t.Errorf("client errors: %v", e)
		}
		logs := s.logs("u1")
		if len(logs) != 5 {
			t.Fatalf("%d ledger events, want 5", len(logs))
		}
		for _, l := range logs {
			if l.CostTotal != money.MustParse("0.06") || l.StatusCode != 200 || l.Endpoint != "/api/openai/chat" ||
				l.Method != "POST" || l.ResponseTime != 0.25 {
				t.Errorf("event %+v", l)
			}
			s.settled(l.EventID) // the event id is the reservation's
		}
		if u := s.usage("u1"); u.Total.Calls != 5 || u.Total.Cost != money.MustParse("0.3") {
			t.Errorf("summary %d calls %s USD, want 5 and 0.3", u.Total.Calls, u.Total.Cost)
		}
		s.consistent()
	})
}

// flakyProxy stands between a client and a real server and answers 500 to
// the first `fail` POST /usage requests. With reachServer, the failed
// requests reach the server first (the answer is lost on the way back, so
// the resend is a true duplicate); without, they never do.
type flakyProxy struct {
	target      string
	fail        int
	reachServer bool
	http        *http.Client

	mu           sync.Mutex
	usagePosts   int
	sentIDs      []map[string]bool // event ids of each POST /usage
	reservations []string          // reservation ids the server handed out
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	isUsage := r.Method == http.MethodPost && r.URL.Path == "/api/subscription/usage"
	fail := false
	if isUsage {
		var batch struct {
			Events []struct {
				EventID       string `json:"event_id"`
				ReservationID string `json:"reservation_id"`
			} `json:"events"`
		}
		ids := map[string]bool{}
		if err := json.Unmarshal(body, &batch); err == nil {
			for _, e := range batch.Events {
				ids[e.EventID] = true
				if e.ReservationID != e.EventID {
					ids["mismatch:"+e.EventID] = true
				}
			}
		}
		p.mu.Lock()
		p.usagePosts++
		fail = p.usagePosts <= p.fail
		p.sentIDs = append(p.sentIDs, ids)
		p.mu.Unlock()
	}
	if fail && !p.reachServer {
		http.Error(w, "upstream unavailable", http.StatusInternalServerError)
		return
	}
	status, header, resp, err := p.forward(r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if fail {
		http.Error(w, "answer lost", http.StatusInternalServerError)
		return
	}
	if r.URL.Path == "/api/subscription/reserve" && status == http.StatusCreated {
		var ok struct {
			Data struct {
				ReservationID string `json:"reservation_id"`
			} `json:"data"`
		}
		if json.Unmarshal(resp, &ok) == nil {
			p.mu.Lock()
			p.reservations = append(p.reservations, ok.Data.ReservationID)
			p.mu.Unlock()
		}
	}
	w.Header().Set("Content-Type", header.Get("Content-Type"))
	w.WriteHeader(status)
	w.Write(resp)
}

func (p *flakyProxy) forward(r *http.Request, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = r.Header.Clone()
	res, err := p.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b, err
}

// TestClientRetriesWithSameIDs: settlements refused by a flaky network are
// retried with the same event ids until they land, and each is counted
// once, also when a failed attempt had in fact been committed.
func TestClientRetriesWithSameIDs(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		for _, reach := range []bool{false, true} {
			t.Run(fmt.Sprintf("failed_attempts_reach_server=%v", reach), func(t *testing.T) {
				url := b.URL(t)
				defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
				s := serveApp(t, url)
				defer s.stop()
				s.user("u1")
				proxyHTTP := newHTTPClient(t)
				defer proxyHTTP.CloseIdleConnections()
				p := &flakyProxy{target: s.url, fail: 3, reachServer: reach, http: proxyHTTP}
				proxy := httptest.NewServer(p)
				defer proxy.Close()
				httpc := newHTTPClient(t)
				defer httpc.CloseIdleConnections()
				var errs errorLog
				c := tracking.NewClient(tracking.ClientConfig{BaseURL: proxy.URL, APIKey: adminKey, HTTP: httpc, BatchSize: 2, OnError: errs.add})

				const n = 7
				if st := runRequests(t, c, n, "u1"); st[http.StatusOK] != n {
					t.Fatalf("answers %v", st)
				}
				closeClient(t, c)
				if e := errs.all(); len(e) != 0 {
					t.Errorf("client errors: %v", e)
				}

				p.mu.Lock()
				posts, sent, reserved := p.usagePosts, p.sentIDs, slices.Clone(p.reservations)
				p.mu.Unlock()
				if posts < p.fail+1 {
					t.Errorf("%d POST /usage, want at least %d (3 failures and a success)", posts, p.fail+1)
				}
				want := map[string]bool{}
				for _, id := range reserved {
					want[id] = true
				}
				if len(want) != n {
					t.Fatalf("%d reservations, want %d", len(want), n)
				}
				for i, ids := range sent {
					for id := range ids {
						if !want[id] {
							t.Errorf("POST /usage %d carried event %s, which is no reservation's id", i+1, id)
						}
					}
				}
				logs := s.logs("u1")
				got := map[string]int{}
				for _, l := range logs {
					got[l.EventID]++
				}
				if len(logs) != n || len(got) != n {
					t.Errorf("%d ledger events with %d distinct ids, want %d each", len(logs), len(got), n)
				}
				for id := range want {
					if got[id] != 1 {
						t.Errorf("event %s recorded %d times", id, got[id])
					}
					s.settled(id)
				}
				if u := s.usage("u1"); u.Total.Calls != n || u.Total.Cost != money.MustParse("0.42") {
					t.Errorf("summary %d calls %s USD, want %d and 0.42", u.Total.Calls, u.Total.Cost, n)
				}
				s.consistent()
			})
		}
	})
}

// TestClientLimitError: the server's 429 becomes a *LimitError naming the
// limit, which the middleware answers as ALwrity's 429.
func TestClientLimitError(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		s := serveApp(t, url)
		defer s.stop()
		s.limitCalls("u1", 1)
		httpc := newHTTPClient(t)
		defer httpc.CloseIdleConnections()
		c := tracking.NewClient(tracking.ClientConfig{BaseURL: s.url, APIKey: adminKey, HTTP: httpc})
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()

		id, err := c.Reserve(ctx, tracking.Call{UserID: "u1", Provider: "openai"})
		if err != nil {
			t.Fatalf("first reservation: %v", err)
		}
		_, err = c.Reserve(ctx, tracking.Call{UserID: "u1", Provider: "openai"})
		var le *tracking.LimitError
		if !errors.As(err, &le) {
			t.Fatalf("second reservation: %v (%T), want a *LimitError", err, err)
		}
		if le.Limit != "total_calls" || le.Max != "1" || le.Used != "1" || le.Provider != "openai" || le.Message == "" {
			t.Errorf("limit error %+v", *le)
		}
		if errors.Is(err, tracking.ErrUnavailable) {
			t.Errorf("a refusal is not unavailability")
		}
		if st := runRequests(t, c, 1, "u1"); st[http.StatusTooManyRequests] != 1 {
			t.Errorf("through the middleware: %v, want one 429", st)
		}
		if err := c.Settle(ctx, id, tracking.Outcome{UserID: "u1", Provider: "openai", EventID: id, StatusCode: 200,
			Timestamp: base, Usage: tracking.Usage{Model: "gpt-4", TokensInput: 1000}}); err != nil {
			t.Fatal(err)
		}
		closeClient(t, c)
		s.settled(id)
		s.consistent()
	})
}

// TestClientUnavailable: a server error or an unreachable server is
// ErrUnavailable, which the middleware answers with 503.
func TestClientUnavailable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database down", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()
	for name, url := range map[string]string{"5xx": failing.URL, "unreachable": gone.URL} {
		t.Run(name, func(t *testing.T) {
			c := tracking.NewClient(tracking.ClientConfig{BaseURL: url, APIKey: adminKey, HTTP: httpc})
			defer closeClient(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if _, err := c.Reserve(ctx, tracking.Call{UserID: "u1", Provider: "openai"}); !errors.Is(err, tracking.ErrUnavailable) {
				t.Errorf("reserve: %v, want ErrUnavailable", err)
			}
			if st := runRequests(t, c, 1, "u1"); st[http.StatusServiceUnavailable] != 1 {
				t.Errorf("through the middleware: %v, want one 503", st)
			}
		})
	}
}

// blockedServer accepts POST /usage requests and holds each until release
// is closed (or the client gives up), telling arrived about each.
type blockedServer struct {
	*httptest.Server
	arrived chan []string
	release chan struct{}
}

func newBlockedServer() *blockedServer {
	b := &blockedServer{arrived: make(chan []string, 100), release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		_ = json.NewDecoder(r.Body).Decode(&batch)
		var ids []string
		for _, e := range batch.Events {
			ids = append(ids, e.EventID)
		}
		b.arrived <- ids
		select {
		case <-b.release:
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"success":true,"data":{}}`))
		case <-r.Context().Done():
		}
	}))
	return b
}

// await returns the event ids of the next POST /usage.
func (b *blockedServer) await(t *testing.T) []string {
	t.Helper()
	select {
	case ids := <-b.arrived:
		return ids
	case <-time.After(waitLimit):
		t.Fatalf("no POST /usage arrived")
		return nil
	}
}

func outcome(id string) tracking.Outcome {
	return tracking.Outcome{UserID: "u1", Provider: "openai", EventID: id, StatusCode: 200, Timestamp: base}
}

// bounded runs f and fails the test if it has not returned by waitLimit.
func bounded[T any](t *testing.T, what string, f func() T) T {
	t.Helper()
	c := make(chan T, 1)
	go func() { c <- f() }()
	select {
	case v := <-c:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("%s did not return", what)
		var zero T
		return zero
	}
}

// TestClientFullBuffer: with the buffer full and the server stuck, Settle
// returns an error when its context ends instead of blocking the request,
// and Close gives up when its context ends, leaving no goroutine behind.
func TestClientFullBuffer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := newBlockedServer()
	defer srv.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()
	var errs errorLog
	c := tracking.NewClient(tracking.ClientConfig{BaseURL: srv.URL, APIKey: adminKey, HTTP: httpc, Buffer: 1, BatchSize: 1, OnError: errs.add})
	bg := context.Background()

	if err := c.Settle(bg, "e1", outcome("e1")); err != nil {
		t.Fatal(err)
	}
	if ids := srv.await(t); !slices.Equal(ids, []string{"e1"}) {
		t.Fatalf("sent %v", ids)
	}
	// e1 is stuck on the wire; e2 fills the buffer.
	if err := c.Settle(bg, "e2", outcome("e2")); err != nil {
		t.Fatal(err)
	}
	err := bounded(t, "Settle on a full buffer", func() error {
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		defer cancel()
		return c.Settle(ctx, "e3", outcome("e3"))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Settle on a full buffer: %v, want a deadline error", err)
	}

	err = bounded(t, "Close", func() error {
		ctx, cancel := context.WithTimeout(bg, 20*time.Millisecond)
		defer cancel()
		return c.Close(ctx)
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close with the server stuck: %v, want a deadline error", err)
	}
	// Both settlements it could not send are reported, none silently lost.
	if e := errs.all(); len(e) != 2 {
		t.Errorf("reported %v, want e1 and e2 given up", e)
	}
	if err := c.Settle(bg, "e4", outcome("e4")); err == nil {
		t.Errorf("Settle after Close succeeded")
	}
	close(srv.release)
}

// TestClientCloseFlushes: Close waits for the queued settlements to be
// sent once the server answers again.
func TestClientCloseFlushes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := newBlockedServer()
	defer srv.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()
	var errs errorLog
	c := tracking.NewClient(tracking.ClientConfig{BaseURL: srv.URL, APIKey: adminKey, HTTP: httpc, Buffer: 1, BatchSize: 1, OnError: errs.add})
	bg := context.Background()
	for _, id := range []string{"e1", "e2"} {
		if err := c.Settle(bg, id, outcome(id)); err != nil {
			t.Fatal(err)
		}
		if id == "e1" {
			srv.await(t)
		}
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(bg, waitLimit)
		defer cancel()
		closed <- c.Close(ctx)
	}()
	close(srv.release)
	if ids := srv.await(t); !slices.Equal(ids, []string{"e2"}) {
		t.Errorf("sent %v, want e2", ids)
	}
	if err := bounded(t, "Close", func() error { return <-closed }); err != nil {
		t.Errorf("close: %v", err)
	}
	if e := errs.all(); len(e) != 0 {
		t.Errorf("client errors: %v", e)
	}
}

// TestClientSettleRacingClose: every settlement Settle accepted while
// Close runs is sent; none is left behind in the queue.
func TestClientSettleRacingClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var mu sync.Mutex
	received := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		_ = json.NewDecoder(r.Body).Decode(&batch)
		mu.Lock()
		for _, e := range batch.Events {
			received[e.EventID]++
		}
		mu.Unlock()
		w.Write([]byte(`{"success":true,"data":{}}`))
	}))
	defer srv.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()

	for round := range 20 {
		c := tracking.NewClient(tracking.ClientConfig{BaseURL: srv.URL, APIKey: adminKey, HTTP: httpc, Buffer: 8, BatchSize: 4})
		var accepted sync.Map
		var count atomic.Int64
		started := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 500 {
					id := fmt.Sprintf("r%d-g%d-%d", round, g, i)
					ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
					err := c.Settle(ctx, id, outcome(id))
					cancel()
					if err != nil {
						return
					}
					accepted.Store(id, true)
					if count.Add(1) == 20 {
						once.Do(func() { close(started) })
					}
				}
			})
		}
		select {
		case <-started:
		case <-time.After(waitLimit):
			t.Fatal("no settlement accepted")
		}
		closeClient(t, c)
		wg.Wait()
		mu.Lock()
		accepted.Range(func(k, _ any) bool {
			if received[k.(string)] != 1 {
				t.Errorf("round %d: accepted settlement %s was sent %d times", round, k, received[k.(string)])
			}
			return true
		})
		mu.Unlock()
	}
}

// TestClientBadEventSpared: the server refuses a whole batch for one bad
// event; the client then sends the rest on their own, so a settlement it
// cannot record (impossible token counts) costs no other user their events.
func TestClientBadEventSpared(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
		s := serveApp(t, url)
		defer s.stop()
		s.user("u1")
		s.user("u2")
		s.user("u3")
		httpc := newHTTPClient(t)
		defer httpc.CloseIdleConnections()
		var errs errorLog
		// One batch: nothing is sent until Close.
		c := tracking.NewClient(tracking.ClientConfig{BaseURL: s.url, APIKey: adminKey, HTTP: httpc, FlushEvery: time.Hour, OnError: errs.add})
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		ids := map[string]string{}
		for _, u := range []string{"u1", "u3", "u2"} {
			id, err := c.Reserve(ctx, tracking.Call{UserID: u, Provider: "openai"})
			if err != nil {
				t.Fatalf("reserve for %s: %v", u, err)
			}
			ids[u] = id
			o := outcome(id)
			o.UserID, o.Usage = u, tracking.Usage{Model: "gpt-4", TokensInput: 1000, TokensOutput: 500}
			if u == "u3" {
				// Reasoning is part of output: more reasoning than output is refused.
				o.Usage = tracking.Usage{Model: "gpt-4", TokensOutput: 5, TokensReasoning: 10}
			}
			if err := c.Settle(ctx, id, o); err != nil {
				t.Fatal(err)
			}
		}
		closeClient(t, c)
		for _, u := range []string{"u1", "u2"} {
			if logs := s.logs(u); len(logs) != 1 || logs[0].EventID != ids[u] {
				t.Errorf("%s's ledger: %+v", u, logs)
			}
			s.settled(ids[u])
		}
		if e := errs.all(); len(e) != 1 {
			t.Errorf("reported %v, want u3's event refused", e)
		}
		s.consistent()
	})
}
