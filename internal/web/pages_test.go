package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/web"
)

// These tests drive the pages over HTTP without a browser: sessions, CSRF,
// access rules and that every page renders. browser_test.go drives them in
// Chromium.

func TestPagesOverHTTP(t *testing.T) {
	e := start(t)

	t.Run("signed out is sent to sign in", func(t *testing.T) {
		c := e.browserless()
		for _, path := range []string{"/dashboard", "/dashboard/details", "/admin"} {
			status, loc, _ := e.get(c, path)
			if status != http.StatusSeeOther || loc != "/signin?next="+url.QueryEscape(path) {
				t.Errorf("GET %s: %d → %q", path, status, loc)
			}
		}
	})

	t.Run("sign in needs the form's CSRF token", func(t *testing.T) {
		c := e.browserless()
		e.get(c, "/signin")
		status, _, body := e.post(c, "/signin", e.base, url.Values{"api_key": {e.demoKey}})
		if status != http.StatusForbidden || !strings.Contains(body, "expired or came from another site") {
			t.Fatalf("without token: %d", status)
		}
		_, _, page := e.get(c, "/signin")
		status, _, _ = e.post(c, "/signin", "http://evil.example", url.Values{"api_key": {e.demoKey}, "csrf_token": {token(t, page)}})
		if status != http.StatusForbidden {
			t.Fatalf("from another origin: %d", status)
		}
		// A token from another browser (another pre-session) is refused.
		other := e.browserless()
		_, _, otherPage := e.get(other, "/signin")
		status, _, _ = e.post(c, "/signin", e.base, url.Values{"api_key": {e.demoKey}, "csrf_token": {token(t, otherPage)}})
		if status != http.StatusForbidden {
			t.Fatalf("with another browser's token: %d", status)
		}
	})

	t.Run("a bad key is refused", func(t *testing.T) {
		c := e.browserless()
		_, _, page := e.get(c, "/signin")
		status, _, body := e.post(c, "/signin", e.base, url.Values{"api_key": {"alw_" + strings.Repeat("a", 40)}, "csrf_token": {token(t, page)}})
		if status != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
			t.Fatalf("bad key: %d", status)
		}
	})

	t.Run("session cookie", func(t *testing.T) {
		c := e.browserless()
		_, _, page := e.get(c, "/signin")
		req, _ := http.NewRequest(http.MethodPost, e.base+"/signin", strings.NewReader(url.Values{"api_key": {e.demoKey}, "csrf_token": {token(t, page)}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		var session *http.Cookie
		for _, ck := range res.Cookies() {
			if ck.Name == web.SessionCookie {
				session = ck
			}
		}
		if session == nil || !session.HttpOnly || session.MaxAge <= 0 || session.Expires.IsZero() || session.SameSite != http.SameSiteLaxMode {
			t.Fatalf("session cookie = %+v", session)
		}
		secret := e.demoKey[auth.PrefixLen:]
		if strings.Contains(session.Value, secret) || strings.Contains(session.Value, e.demoKey) {
			t.Fatal("the cookie carries the key")
		}
		// A tampered cookie is not a session.
		jar := e.browserless()
		u, _ := url.Parse(e.base)
		tampered := *session
		tampered.Value = strings.Replace(session.Value, ".", "x.", 1)
		jar.Jar.SetCookies(u, []*http.Cookie{&tampered})
		if status, loc, _ := e.get(jar, "/dashboard"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
			t.Errorf("tampered cookie: %d %q", status, loc)
		}
	})

	t.Run("user pages", func(t *testing.T) {
		c := e.browserless()
		e.signIn(c, e.demoKey)
		for _, path := range []string{"/dashboard", "/dashboard/details", "/dashboard/details?months=12&provider=gemini&status=500&period=2026-11&page=1"} {
			status, _, body := e.get(c, path)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
			if strings.Contains(body, "NaN") || strings.Contains(body, "ZgotmplZ") {
				t.Errorf("GET %s renders a bad value", path)
			}
		}
		if status, _, body := e.get(c, "/admin"); status != http.StatusForbidden || !strings.Contains(body, "needs an admin key") {
			t.Errorf("a user key opened /admin: %d", status)
		}
		if status, _, _ := e.get(c, "/dashboard?user_id=acme"); status != http.StatusForbidden {
			t.Errorf("a user key opened another user's dashboard: %d", status)
		}
	})

	t.Run("mark read checks CSRF and owner", func(t *testing.T) {
		demo := e.browserless()
		e.signIn(demo, e.demoKey)
		_, _, page := e.get(demo, "/dashboard")
		id := regexp.MustCompile(`action="/dashboard/alerts/(\d+)/read"`).FindStringSubmatch(page)
		if id == nil {
			t.Fatal("no alert to mark read on demo's dashboard")
		}
		path := "/dashboard/alerts/" + id[1] + "/read"
		if status, _, _ := e.post(demo, path, e.base, url.Values{}); status != http.StatusForbidden {
			t.Errorf("without token: %d", status)
		}
		acme := e.browserless()
		e.signIn(acme, e.otherKey)
		_, _, acmePage := e.get(acme, "/dashboard")
		if status, _, _ := e.post(acme, path, e.base, url.Values{"csrf_token": {token(t, acmePage)}}); status != http.StatusForbidden {
			t.Errorf("another user's alert: %d", status)
		}
		status, loc, _ := e.post(demo, path, e.base, url.Values{"csrf_token": {token(t, page)}, "return": {"//evil.example/"}})
		if status != http.StatusSeeOther || loc != "/dashboard" {
			t.Errorf("mark read: %d → %q (an off-site return must not be followed)", status, loc)
		}
		if _, _, after := e.get(demo, "/dashboard"); strings.Contains(after, path) {
			t.Error("the alert is still listed as unread")
		}
	})

	t.Run("revoking the key ends the session", func(t *testing.T) {
		key := e.userKey("temp")
		c := e.browserless()
		e.signIn(c, key)
		if status, _, _ := e.get(c, "/dashboard"); status != http.StatusOK {
			t.Fatalf("before revoking: %d", status)
		}
		if err := e.app.DB.RevokeKey(context.Background(), key[:auth.PrefixLen], now); err != nil {
			t.Fatal(err)
		}
		if status, loc, _ := e.get(c, "/dashboard"); status != http.StatusSeeOther || !strings.HasPrefix(loc, "/signin") {
			t.Errorf("after revoking: %d %q", status, loc)
		}
	})

	t.Run("admin pages and sign out", func(t *testing.T) {
		c := e.browserless()
		e.signIn(c, adminKey)
		for _, path := range []string{"/admin", "/admin?sort=calls&dir=asc", "/admin?sort=bogus", "/dashboard?user_id=demo", "/dashboard/details?user_id=globex"} {
			if status, _, body := e.get(c, path); status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, status, body)
			}
		}
		if status, loc, _ := e.get(c, "/dashboard"); status != http.StatusSeeOther || loc != "/admin" {
			t.Errorf("admin without a user: %d %q", status, loc)
		}
		_, _, page := e.get(c, "/admin")
		if status, _, _ := e.post(c, "/signout", e.base, url.Values{}); status != http.StatusForbidden {
			t.Errorf("sign out without token: %d", status)
		}
		if status, loc, _ := e.post(c, "/signout", e.base, url.Values{"csrf_token": {token(t, page)}}); status != http.StatusSeeOther || loc != "/signin" {
			t.Fatalf("sign out: %d %q", status, loc)
		}
		if status, _, _ := e.get(c, "/admin"); status != http.StatusSeeOther {
			t.Errorf("still signed in after sign out: %d", status)
		}
	})

	t.Run("security headers and assets", func(t *testing.T) {
		res, err := http.Get(e.base + "/signin")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP = %q", csp)
		}
		for _, asset := range []string{"/assets/app.css", "/assets/app.js"} {
			res, err := http.Get(e.base + asset)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %d", asset, res.StatusCode)
			}
		}
	})
}

// TestDevSignIn: under serve --dev a key-less sign-in from loopback is an
// admin session, as the API lets key-less loopback requests act as admin;
// without --dev an empty key is refused.
func TestDevSignIn(t *testing.T) {
	for _, dev := range []bool{false, true} {
		t.Run(fmt.Sprintf("dev=%v", dev), func(t *testing.T) {
			e := start(t, func(c *app.Config) { c.Dev = dev })
			c := e.browserless()
			_, _, page := e.get(c, "/signin")
			if got := strings.Contains(page, "leave the key empty"); got != dev {
				t.Errorf("dev hint shown = %v", got)
			}
			status, loc, _ := e.post(c, "/signin", e.base, url.Values{"csrf_token": {token(t, page)}})
			if !dev {
				if status != http.StatusBadRequest {
					t.Errorf("empty key without --dev: %d", status)
				}
				return
			}
			if status != http.StatusSeeOther || loc != "/admin" {
				t.Fatalf("dev sign-in: %d %q", status, loc)
			}
			if status, _, body := e.get(c, "/admin"); status != http.StatusOK {
				t.Errorf("dev admin: %d %s", status, body)
			}
		})
	}
}
