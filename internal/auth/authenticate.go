package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// KeyStore finds stored keys.
type KeyStore interface {
	KeyByPrefix(ctx context.Context, prefix string) (billing.APIKey, string, error)
	TouchKey(ctx context.Context, id int64, now time.Time) error
}

// Authenticator resolves the credentials of a request to a Principal.
type Authenticator struct {
	Keys KeyStore
	// AdminKey is the configured ALWRITY_ADMIN_KEY, "" when unset.
	AdminKey string
	// DevLoopbackAdmin lets key-less requests from loopback act as admin
	// (serve --dev only).
	DevLoopbackAdmin bool
	Now              func() time.Time

	adminOnce sync.Once
	adminSum  [sha256.Size]byte

	touchMu sync.Mutex
	touched map[int64]time.Time
}

type requestKey struct{}

// requestInfo is what Middleware keeps of a request: its credentials and,
// once Principal has resolved them, who they stand for.
type requestInfo struct {
	authorization string
	remoteAddr    string

	mu        sync.Mutex
	by        *Authenticator // the authenticator that resolved principal, nil until one has
	principal billing.Principal
}

// Middleware remembers each request's credentials so handlers can ask for
// the principal only when a route needs one; public routes never pay for a
// key lookup.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &requestInfo{authorization: r.Header.Get("Authorization"), remoteAddr: r.RemoteAddr}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, info)))
	})
}

// Principal returns who the request in ctx acts for. A request's key is
// looked up once: the principal it resolves to is remembered for the rest
// of the request, so the API's access check before validation and the
// handler's own Authorize or RequireAdmin cost one lookup together.
// Errors: unauthorized when there is no key or the key is malformed,
// unknown or revoked.
func (a *Authenticator) Principal(ctx context.Context) (billing.Principal, error) {
	info, _ := ctx.Value(requestKey{}).(*requestInfo)
	if info == nil {
		info = &requestInfo{}
	}
	info.mu.Lock()
	p, ok := info.principal, info.by == a
	info.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := a.principal(ctx, info)
	if err == nil {
		info.mu.Lock()
		info.by, info.principal = a, p
		info.mu.Unlock()
	}
	return p, err
}

func (a *Authenticator) principal(ctx context.Context, info *requestInfo) (billing.Principal, error) {
	if info.authorization == "" {
		if a.DevLoopbackAdmin && isLoopback(info.remoteAddr) {
			return billing.Principal{Role: billing.RoleAdmin}, nil
		}
		return billing.Principal{}, &billing.Error{
			Code:    billing.CodeUnauthorized,
			Message: "this route needs an API key: send 'Authorization: Bearer <key>'",
			Fields:  []billing.FieldError{{Location: "header.Authorization", Message: "missing"}},
		}
	}
	scheme, key, ok := strings.Cut(info.authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return billing.Principal{}, &billing.Error{
			Code:    billing.CodeUnauthorized,
			Message: "the Authorization header must be 'Bearer <key>'",
			Fields:  []billing.FieldError{{Location: "header.Authorization", Message: "not a bearer token"}},
		}
	}
	return a.Resolve(ctx, strings.TrimSpace(key))
}

// Resolve checks a presented key. Errors: unauthorized when the key is
// malformed, unknown or revoked; unavailable when the key could not be
// looked up (the database failed or ctx ended), which says nothing about
// the key and never contains it.
func (a *Authenticator) Resolve(ctx context.Context, key string) (billing.Principal, error) {
	if a.AdminKey != "" {
		a.adminOnce.Do(func() { a.adminSum = sha256.Sum256([]byte(a.AdminKey)) })
		sum := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(sum[:], a.adminSum[:]) == 1 {
			return billing.Principal{Role: billing.RoleAdmin}, nil
		}
	}
	prefix, err := ParseKey(key)
	if err != nil {
		return billing.Principal{}, err
	}
	k, hash, err := a.Keys.KeyByPrefix(ctx, prefix)
	if billing.ErrorCode(err) == billing.CodeNotFound || (err == nil && !Matches(key, hash)) {
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "the API key is not valid")
	}
	if err != nil {
		// Unavailable (503) to the caller, with the cause for the log.
		return billing.Principal{}, fmt.Errorf("look up api key: %w: %w",
			billing.Errorf(billing.CodeUnavailable, "the API key could not be checked; try again shortly"), err)
	}
	if k.RevokedAt != nil {
		return billing.Principal{}, billing.Errorf(billing.CodeUnauthorized, "the API key has been revoked")
	}
	a.touch(ctx, k.ID)
	return billing.Principal{Role: k.Role, UserID: k.UserID, KeyID: k.ID}, nil
}

// touch records a key's last use at most once a minute per key, so reads do
// not turn into a write each.
func (a *Authenticator) touch(ctx context.Context, id int64) {
	now := a.now()
	a.touchMu.Lock()
	if a.touched == nil {
		a.touched = map[int64]time.Time{}
	}
	last, ok := a.touched[id]
	fresh := !ok || now.Sub(last) >= time.Minute
	if fresh {
		a.touched[id] = now
	}
	a.touchMu.Unlock()
	if fresh {
		// Last-use time is informational; a failure must not fail the
		// request, nor a client that leaves cancel it. It keeps the
		// caller's deadline, though: a database that stops answering must
		// not hold the request past the bound its lookup had.
		tctx := context.WithoutCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			tctx, cancel = context.WithDeadline(tctx, d)
			defer cancel()
		}
		_ = a.Keys.TouchKey(tctx, id, now)
	}
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Authorize returns the principal when it may act for userID. Errors:
// unauthorized, forbidden.
func (a *Authenticator) Authorize(ctx context.Context, userID string) (billing.Principal, error) {
	p, err := a.Principal(ctx)
	if err != nil {
		return p, err
	}
	if !p.CanAccess(userID) {
		return p, billing.Errorf(billing.CodeForbidden, "this key may not access user %q", userID)
	}
	return p, nil
}

// RequireAdmin returns the principal when it is an admin. Errors:
// unauthorized, forbidden.
func (a *Authenticator) RequireAdmin(ctx context.Context) (billing.Principal, error) {
	p, err := a.Principal(ctx)
	if err != nil {
		return p, err
	}
	if !p.IsAdmin() {
		return p, billing.Errorf(billing.CodeForbidden, "this route needs an admin key")
	}
	return p, nil
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
