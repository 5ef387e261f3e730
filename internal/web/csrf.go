package web

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"net/url"
	"time"
)

// CSRF protection: every form carries a token that is an HMAC of the
// session's random id, and every POST must present it (form field
// csrf_token, or the X-CSRF-Token header for scripts). Before sign-in there
// is no session, so the sign-in page sets a short-lived random pre-session
// cookie and binds its token to that instead. A cross-site page can neither
// read the token nor forge it without the secret. As a second, independent
// check, a POST whose Origin (or Sec-Fetch-Site) says it came from another
// site is refused whatever it carries.

const (
	csrfField        = "csrf_token"
	csrfHeader       = "X-CSRF-Token"
	preSessionCookie = "alw_presession"
	preSessionTTL    = time.Hour
)

// csrfToken returns the token for a binding (a session id or a
// pre-session value).
func (m *sessions) csrfToken(binding string) string {
	return base64.RawURLEncoding.EncodeToString(m.mac("csrf", binding))
}

// preSession returns the request's pre-session binding, setting a new
// cookie when there is none.
func (m *sessions) preSession(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preSessionCookie); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	v := randomID()
	http.SetCookie(w, &http.Cookie{Name: preSessionCookie, Value: v, Path: "/", MaxAge: int(preSessionTTL.Seconds()),
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteStrictMode})
	return v
}

// checkCSRF reports whether a POST carries the token for binding and does
// not come from another site.
func (m *sessions) checkCSRF(r *http.Request, binding string) bool {
	if binding == "" || !sameOrigin(r) {
		return false
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	return got != "" && hmac.Equal([]byte(got), []byte(m.csrfToken(binding)))
}

// sameOrigin rejects requests a browser marks as cross-site. Browsers send
// Origin on every POST; a request without it (a non-browser client) is left
// to the token check.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}
