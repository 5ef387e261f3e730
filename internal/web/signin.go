package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

type signInPage struct {
	page
	Next    string
	Message string
	// Dev says an empty key signs in as admin (serve --dev, loopback).
	Dev bool
}

// safeNext keeps a post-sign-in target on this site: a local path, never
// "//host", "/\\host" or a URL with a scheme. Control characters are
// refused outright: browsers drop tabs and newlines from a URL before
// resolving it, so "/\t/evil.example" would reach them as
// "//evil.example", and url.Parse, failing on them, would keep
// http.Redirect from cleaning the path.
func safeNext(next, fallback string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsRune(next, '\\') || strings.IndexFunc(next, isControl) >= 0 {
		return fallback
	}
	if u, err := url.Parse(next); err != nil || u.Scheme != "" || u.Host != "" {
		return fallback
	}
	return next
}

// isControl is an ASCII control character (C0 or DEL).
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.sess.read(r); ok {
		if _, err := h.principal(r, s); err == nil {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next"), home(s.Role)), http.StatusSeeOther)
			return
		}
	}
	h.renderSignIn(w, r, http.StatusOK, "")
}

func (h *Handler) renderSignIn(w http.ResponseWriter, r *http.Request, status int, msg string) {
	binding := h.sess.preSession(w, r)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	h.render(w, r, status, "signin", signInPage{
		page: page{Title: "Sign in", CSRF: h.sess.csrfToken(binding)}, Next: safeNext(next, ""), Message: msg,
		Dev: h.devLoopback(r),
	})
}

func home(role billing.Role) string {
	if role == billing.RoleAdmin {
		return "/admin"
	}
	return "/dashboard"
}

// signIn checks the pasted key with the API's Authenticator and, when it is
// valid, issues a session that names the key by prefix only.
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	binding := ""
	if c, err := r.Cookie(preSessionCookie); err == nil {
		binding = c.Value
	}
	if !h.sess.checkCSRF(r, binding) {
		h.renderSignIn(w, r, http.StatusForbidden, "The form expired or came from another site. Please try again.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("api_key"))
	if key == "" && h.devLoopback(r) {
		if _, err := h.sess.issue(w, r, Session{Role: billing.RoleAdmin, DevAdmin: true}); err != nil {
			h.fail(w, r, err)
			return
		}
		http.Redirect(w, r, safeNext(r.PostFormValue("next"), "/admin"), http.StatusSeeOther)
		return
	}
	if key == "" {
		h.renderSignIn(w, r, http.StatusBadRequest, "Paste your API key (it starts with alw_).")
		return
	}
	p, err := h.auth.Resolve(r.Context(), key)
	if err != nil {
		if billing.ErrorCode(err) == billing.CodeUnauthorized {
			h.renderSignIn(w, r, http.StatusUnauthorized, "That key is not valid, or it has been revoked.")
			return
		}
		h.fail(w, r, err)
		return
	}
	s := Session{Role: p.Role, UserID: p.UserID, KeyID: p.KeyID}
	if p.KeyID != 0 {
		s.KeyPrefix = key[:auth.PrefixLen]
	} else {
		// The configured admin key has no stored row.
		s.AdminFingerprint = h.sess.adminFingerprint(key)
	}
	if _, err := h.sess.issue(w, r, s); err != nil {
		h.fail(w, r, err)
		return
	}
	// The pre-session binding has served its purpose.
	http.SetCookie(w, &http.Cookie{Name: preSessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: isHTTPS(r)})
	http.Redirect(w, r, safeNext(r.PostFormValue("next"), home(p.Role)), http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	s, ok := h.sess.read(r)
	if ok && !h.sess.checkCSRF(r, s.ID) {
		h.fail(w, r, billing.Errorf(billing.CodeForbidden, "the sign-out form expired or came from another site"))
		return
	}
	h.sess.clear(w, r)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
