package tracking_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/alwrity/alwrity-billing/internal/storetest"
	"github.com/alwrity/alwrity-billing/tracking"
)

// oddRequest is a request a client may send that the server would refuse
// as an event's endpoint or method if the middleware passed it on as it is.
type oddRequest struct {
	name, method, path string
}

var oddRequests = []oddRequest{
	{"long path", http.MethodPost, "/api/openai/" + strings.Repeat("a", 600)},
	{"long method", "POSTPOSTPOSTPOSTPOST", "/api/openai/chat"},
	{"NUL in path", http.MethodPost, "/api/openai/%00"},
	{"invalid UTF-8 in path", http.MethodPost, "/api/openai/%ff"},
}

// checkOddLogs fails unless the ledger holds one event per odd request,
// each with an endpoint and a method the server stores.
func checkOddLogs(t *testing.T, s *server) {
	t.Helper()
	logs := s.logs("u1")
	if len(logs) != len(oddRequests) {
		t.Fatalf("%d ledger events, want %d: %+v", len(logs), len(oddRequests), logs)
	}
	methods := map[string]int{}
	for _, l := range logs {
		methods[l.Method]++
		if len(l.Endpoint) > 512 || !utf8.ValidString(l.Endpoint) || strings.IndexFunc(l.Endpoint, unicode.IsControl) >= 0 ||
			!strings.HasPrefix(l.Endpoint, "/api/openai/") {
			t.Errorf("endpoint %q (%d bytes)", l.Endpoint, len(l.Endpoint))
		}
		s.settled(l.EventID)
	}
	if methods["OTHER"] != 1 || methods[http.MethodPost] != 3 {
		t.Errorf("methods %v, want one OTHER and three POST", methods)
	}
	s.consistent()
}

// TestOddRequestsRecorded: a call made for a request with an overlong path
// or method, a NUL or invalid UTF-8 in its path is still recorded, in
// process and through a remote server, rather than refused at settle
// after the handler has run.
func TestOddRequestsRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		t.Run("local", func(t *testing.T) {
			s := openApp(t, b.URL(t))
			s.user("u1")
			var runs atomic.Int64
			srv := serveMiddleware(t, localConfig(t, s), chatHandler(&runs, http.StatusOK))
			for _, r := range oddRequests {
				if a := call(t, srv.Client(), r.method, srv.URL+r.path, "u1"); a.status != http.StatusOK {
					t.Errorf("%s: %d %s", r.name, a.status, a.body)
				}
			}
			checkOddLogs(t, s)
		})
		t.Run("remote", func(t *testing.T) {
			s := serveApp(t, b.URL(t))
			s.user("u1")
			httpc := newHTTPClient(t)
			defer httpc.CloseIdleConnections()
			c := tracking.NewClient(tracking.ClientConfig{BaseURL: s.url, APIKey: adminKey, HTTP: httpc,
				OnError: func(err error) { t.Errorf("client: %v", err) }})
			cfg := tracking.Config{Meter: c, Now: newStepClock().Now, Timeout: waitLimit,
				OnError: func(err error) { t.Errorf("settle: %v", err) }}
			var runs atomic.Int64
			srv := serveMiddleware(t, cfg, chatHandler(&runs, http.StatusOK))
			for _, r := range oddRequests {
				if a := call(t, srv.Client(), r.method, srv.URL+r.path, "u1"); a.status != http.StatusOK {
					t.Errorf("%s: %d %s", r.name, a.status, a.body)
				}
			}
			srv.Client().CloseIdleConnections()
			closeClient(t, c)
			checkOddLogs(t, s)
		})
	})
}

// settledEndpoint serves one metered POST to target through the handler
// build makes around a meter, and returns the endpoint and method settled.
func settledEndpoint(t *testing.T, build func(tracking.Meter) http.Handler, method, target string) (string, string) {
	t.Helper()
	m := &fakeMeter{}
	r := httptest.NewRequest(method, target, nil)
	build(m).ServeHTTP(httptest.NewRecorder(), r.WithContext(tracking.WithUser(r.Context(), "u1")))
	got := m.settled()
	if len(got) != 1 {
		t.Fatalf("settled %+v, want one outcome", got)
	}
	return got[0].Endpoint, got[0].Method
}

// TestEndpointPrefersPattern: the endpoint is the mux's pattern, without
// its method, when the middleware can see it: with the mux inside the
// middleware or around it. Behind a middleware that replaces the request,
// which hides the pattern, and without a mux, it is the cleaned path.
func TestEndpointPrefersPattern(t *testing.T) {
	const pattern = "POST /api/{provider}/chat/{id}"
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	muxOf := func(h http.Handler) *http.ServeMux {
		mux := http.NewServeMux()
		mux.Handle(pattern, h)
		return mux
	}
	hidesRequest := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), oddRequest{}, true)))
		})
	}
	for _, tt := range []struct {
		name   string
		build  func(tracking.Meter) http.Handler
		target string
		want   string
	}{
		{"mux inside", func(m tracking.Meter) http.Handler {
			return tracking.Middleware(tracking.Config{Meter: m}, muxOf(noop))
		}, "/api/openai/chat/42", "/api/{provider}/chat/{id}"},
		{"mux outside", func(m tracking.Meter) http.Handler {
			return muxOf(tracking.Middleware(tracking.Config{Meter: m}, noop))
		}, "/api/openai/chat/42", "/api/{provider}/chat/{id}"},
		{"mux hidden", func(m tracking.Meter) http.Handler {
			return tracking.Middleware(tracking.Config{Meter: m}, hidesRequest(muxOf(noop)))
		}, "/api/openai/chat/42", "/api/openai/chat/42"},
		{"no mux", func(m tracking.Meter) http.Handler {
			return tracking.Middleware(tracking.Config{Meter: m}, noop)
		}, "/api//openai/./chat/../chat/", "/api/openai/chat/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, method := settledEndpoint(t, tt.build, http.MethodPost, tt.target)
			if got != tt.want || method != http.MethodPost {
				t.Errorf("settled %s %q, want POST %q", method, got, tt.want)
			}
		})
	}
}

// TestOddRequestsSettledClean: what the middleware settles for odd
// requests is already what the server stores.
func TestOddRequestsSettledClean(t *testing.T) {
	build := func(m tracking.Meter) http.Handler {
		return tracking.Middleware(tracking.Config{Meter: m}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	}
	for _, tt := range []struct {
		name, method, target string
		endpoint, wantMethod string
	}{
		// 13 bytes and 249 two-byte characters: the 250th would pass 512.
		{"long path", http.MethodPost, "/api/openai/x" + strings.Repeat("é", 300), "/api/openai/x" + strings.Repeat("é", 249), http.MethodPost},
		{"long method", "POSTPOSTPOSTPOSTPOST", "/api/openai/chat", "/api/openai/chat", "OTHER"},
		{"NUL", http.MethodPost, "/api/openai/%00x", "/api/openai/\uFFFDx", http.MethodPost},
		// Other control characters are stored as they are.
		{"control", http.MethodPost, "/api/openai/%1b%7f", "/api/openai/\x1b\x7f", http.MethodPost},
		// A run of invalid bytes is one replacement character.
		{"invalid UTF-8", http.MethodPost, "/api/openai/%ff%c3", "/api/openai/\uFFFD", http.MethodPost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, method := settledEndpoint(t, build, tt.method, tt.target)
			want := strings.ReplaceAll(tt.endpoint, "\\uFFFD", "\uFFFD")
			if endpoint != want || method != tt.wantMethod {
				t.Errorf("settled %s %q (%d bytes), want %s %q", method, endpoint, len(endpoint), tt.wantMethod, want)
			}
		})
	}
}
