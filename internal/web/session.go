package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Sessions are stateless: the cookie carries who signed in and until when,
// signed with HMAC-SHA256 under the session secret. The API key itself is
// never put in the cookie. A stored key is remembered by its public prefix
// and id, and every request looks the key up again (see Handler.principal),
// so revoking a key ends its sessions at once. The configured admin key
// (ALWRITY_ADMIN_KEY) is not stored anywhere, so its session carries an
// HMAC fingerprint of it instead, and changing that setting ends them.
//
// The secret comes from ALWRITY_SESSION_SECRET. Without it each process
// draws a random one at start: sessions then end when the process restarts,
// and replicas behind a load balancer do not accept each other's cookies,
// so set it when running more than one copy.

// SessionCookie is the name of the session cookie.
const SessionCookie = "alw_session"

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 12 * time.Hour

// Session is what the signed cookie says.
type Session struct {
	// ID is random per sign-in; CSRF tokens are bound to it.
	ID     string       `json:"id"`
	Role   billing.Role `json:"role"`
	UserID string       `json:"user,omitempty"`
	// KeyPrefix and KeyID name the stored key that signed in; both are
	// empty for the configured admin key.
	KeyPrefix string `json:"prefix,omitempty"`
	KeyID     int64  `json:"key_id,omitempty"`
	// AdminFingerprint identifies the configured admin key that signed in.
	AdminFingerprint string `json:"admin_fp,omitempty"`
	// DevAdmin marks a key-less admin sign-in from loopback under
	// serve --dev; it is honoured only while the server runs so.
	DevAdmin bool      `json:"dev,omitempty"`
	Expires  time.Time `json:"exp"`
}

// sessions issues and checks session cookies.
type sessions struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewSecret returns a random 32-byte secret, for a process without a
// configured one.
func NewSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return b
}

func randomID() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// mac signs msg in a named domain, so a signature made for one purpose
// (a session) is never valid for another (a CSRF token).
func (m *sessions) mac(domain, msg string) []byte {
	h := hmac.New(sha256.New, m.secret)
	h.Write([]byte(domain))
	h.Write([]byte{0})
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// encode returns the cookie value of s: payload "." signature.
func (m *sessions) encode(s Session) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.mac("session", payload)), nil
}

var errBadSession = errors.New("invalid session")

// decode checks a cookie value's signature and expiry.
func (m *sessions) decode(v string) (Session, error) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return Session{}, errBadSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, m.mac("session", payload)) {
		return Session{}, errBadSession
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Session{}, errBadSession
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil || s.ID == "" {
		return Session{}, errBadSession
	}
	if !m.now().Before(s.Expires) {
		return Session{}, errors.New("session expired")
	}
	return s, nil
}

// issue sets a new session cookie for s (its ID and expiry are filled in).
func (m *sessions) issue(w http.ResponseWriter, r *http.Request, s Session) (Session, error) {
	s.ID = randomID()
	s.Expires = m.now().Add(m.ttl).UTC().Truncate(time.Second)
	v, err := m.encode(s)
	if err != nil {
		return s, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: v, Path: "/", Expires: s.Expires, MaxAge: int(m.ttl.Seconds()),
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteLaxMode,
	})
	return s, nil
}

// read returns the request's valid session, if any.
func (m *sessions) read(r *http.Request) (Session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return Session{}, false
	}
	s, err := m.decode(c.Value)
	return s, err == nil
}

// clear removes the session cookie.
func (m *sessions) clear(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: isHTTPS(r), SameSite: http.SameSiteLaxMode})
}

// adminFingerprint identifies the configured admin key without revealing
// it: an HMAC under the session secret, so the cookie holds nothing that
// helps guess the key.
func (m *sessions) adminFingerprint(key string) string {
	return base64.RawURLEncoding.EncodeToString(m.mac("admin-key", key)[:16])
}

// isHTTPS reports whether the client reached us over TLS, directly or
// through a proxy that says so; cookies are then marked Secure.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
