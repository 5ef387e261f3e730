package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

func testSessions(now *time.Time) *sessions {
	return &sessions{secret: []byte("0123456789abcdef0123456789abcdef"), ttl: time.Hour, now: func() time.Time { return *now }}
}

func TestSessionRoundTripTamperAndExpiry(t *testing.T) {
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	m := testSessions(&now)
	rec := httptest.NewRecorder()
	s, err := m.issue(rec, httptest.NewRequest(http.MethodPost, "/signin", nil),
		Session{Role: billing.RoleUser, UserID: "demo", KeyPrefix: "alw_abcdefgh", KeyID: 7})
	if err != nil {
		t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	if c.Name != SessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure {
		t.Fatalf("cookie = %+v", c)
	}
	req := httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	req.AddCookie(c)
	got, ok := m.read(req)
	if !ok || got != s || got.UserID != "demo" || got.KeyID != 7 || !got.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("read = %+v, %v; issued %+v", got, ok, s)
	}

	payload, sig, _ := strings.Cut(c.Value, ".")
	forged, _ := m.encode(Session{ID: "x", Role: billing.RoleAdmin, Expires: now.Add(time.Hour)})
	fpayload, _, _ := strings.Cut(forged, ".")
	for name, v := range map[string]string{
		"other payload":  fpayload + "." + sig,
		"other key":      mustEncode(t, &sessions{secret: []byte("another secret of 32 characters!"), ttl: time.Hour, now: m.now}, s),
		"no signature":   payload,
		"bad base64":     "!!!." + sig,
		"empty":          "",
		"signature only": "." + sig,
	} {
		if _, err := m.decode(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	now = now.Add(time.Hour)
	if _, ok := m.read(req); ok {
		t.Error("an expired session was accepted")
	}
}

func mustEncode(t *testing.T, m *sessions, s Session) string {
	t.Helper()
	v, err := m.encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSecureCookieBehindTLS(t *testing.T) {
	now := time.Now()
	m := testSessions(&now)
	req := httptest.NewRequest(http.MethodPost, "/signin", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	rec := httptest.NewRecorder()
	if _, err := m.issue(rec, req, Session{Role: billing.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	if !rec.Result().Cookies()[0].Secure {
		t.Error("cookie set over HTTPS is not Secure")
	}
}

func TestCSRF(t *testing.T) {
	now := time.Now()
	m := testSessions(&now)
	tok := m.csrfToken("session-1")
	if tok == m.csrfToken("session-2") || tok == "" {
		t.Fatal("tokens must differ per binding")
	}
	post := func(token, origin, site string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "http://billing.example/dashboard/alerts/1/read",
			strings.NewReader(url.Values{"csrf_token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		if site != "" {
			r.Header.Set("Sec-Fetch-Site", site)
		}
		return r
	}
	for _, tt := range []struct {
		name    string
		r       *http.Request
		binding string
		ok      bool
	}{
		{"right token, same origin", post(tok, "http://billing.example", "same-origin"), "session-1", true},
		{"right token, no origin", post(tok, "", ""), "session-1", true},
		{"other session's token", post(m.csrfToken("session-2"), "", ""), "session-1", false},
		{"no token", post("", "", ""), "session-1", false},
		{"no binding", post(tok, "", ""), "", false},
		{"cross-site origin", post(tok, "http://evil.example", ""), "session-1", false},
		{"cross-site fetch", post(tok, "", "cross-site"), "session-1", false},
		{"null origin", post(tok, "null", ""), "session-1", false},
	} {
		if got := m.checkCSRF(tt.r, tt.binding); got != tt.ok {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.ok)
		}
	}
	r := post("", "", "")
	r.Header.Set(csrfHeader, tok)
	if !m.checkCSRF(r, "session-1") {
		t.Error("the X-CSRF-Token header is not accepted")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/dashboard?x=1": "/dashboard?x=1", "": "/f", "//evil.example": "/f", "/\\evil.example": "/f",
		"https://evil.example": "/f", "dashboard": "/f", "/a\r\nSet-Cookie: x": "/f",
		// Browsers drop tabs and newlines before resolving a URL.
		"/\t/evil.example": "/f", "/\n/evil.example": "/f", "/\x7f": "/f", "/a\\b": "/f",
		"/usage?period=2026-11#top": "/usage?period=2026-11#top",
	} {
		if got := safeNext(in, "/f"); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTemplatesParse(t *testing.T) {
	tm, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range pageNames {
		if tm[name] == nil || tm[name].Lookup("layout") == nil || tm[name].Lookup("content") == nil {
			t.Errorf("template %s is incomplete", name)
		}
	}
}

// TestCurrentPeriodKeys: the admin overview reads the periods a user's
// current one may be: last, this and, once a zone ahead of UTC has turned
// the month, next month's (a subscription in UTC+14 read as $0 on the
// last day of a UTC month).
func TestCurrentPeriodKeys(t *testing.T) {
	for at, want := range map[time.Time][]string{
		time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC): {"2026-11", "2026-10"},
		time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC): {"2026-11", "2026-10", "2026-12"},
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC): {"2026-12", "2026-11", "2027-01"},
	} {
		if got := currentPeriodKeys(at); !slices.Equal(got, want) {
			t.Errorf("currentPeriodKeys(%s) = %v, want %v", at, got, want)
		}
	}
}
