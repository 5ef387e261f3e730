package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// fakeKeys is an in-memory KeyStore: keys by prefix with their hashes, and a
// log of TouchKey calls.
type fakeKeys struct {
	mu      sync.Mutex
	byPfx   map[string]storedKey
	touches []touch
	failGet error
}

type storedKey struct {
	key  billing.APIKey
	hash string
}

type touch struct {
	id  int64
	now time.Time
}

func newFakeKeys() *fakeKeys { return &fakeKeys{byPfx: map[string]storedKey{}} }

// add stores a new key for userID with role and returns the secret.
func (f *fakeKeys) add(id int64, role billing.Role, userID string, revoked bool) string {
	key, prefix, hash := auth.NewKey()
	k := billing.APIKey{ID: id, Prefix: prefix, UserID: userID, Role: role}
	if revoked {
		k.RevokedAt = billing.Ptr(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	}
	f.mu.Lock()
	f.byPfx[prefix] = storedKey{k, hash}
	f.mu.Unlock()
	return key
}

func (f *fakeKeys) KeyByPrefix(_ context.Context, prefix string) (billing.APIKey, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failGet != nil {
		return billing.APIKey{}, "", f.failGet
	}
	s, ok := f.byPfx[prefix]
	if !ok {
		return billing.APIKey{}, "", billing.Errorf(billing.CodeNotFound, "no key %s", prefix)
	}
	return s.key, s.hash, nil
}

func (f *fakeKeys) TouchKey(_ context.Context, id int64, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.touches = append(f.touches, touch{id, now})
	return errors.New("touch failed") // must not fail the request
}

func (f *fakeKeys) touchCount(id int64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.touches {
		if t.id == id {
			n++
		}
	}
	return n
}

var _ auth.KeyStore = (*fakeKeys)(nil)

// requestCtx returns the context a handler behind auth.Middleware sees for
// a request with the given Authorization header ("" for none) and remote
// address ("" for httptest's default).
func requestCtx(t testing.TB, authorization, remoteAddr string) context.Context {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api/subscription/usage/u1", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if remoteAddr != "" {
		r.RemoteAddr = remoteAddr
	}
	var ctx context.Context
	auth.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx = r.Context()
	})).ServeHTTP(httptest.NewRecorder(), r)
	if ctx == nil {
		t.Fatal("Middleware did not call the next handler")
	}
	return ctx
}

const testAdminKey = "correct-horse-battery-staple-admin"

func TestPrincipal(t *testing.T) {
	keys := newFakeKeys()
	userKey := keys.add(1, billing.RoleUser, "u1", false)
	revokedKey := keys.add(2, billing.RoleUser, "u1", true)
	storedAdminKey := keys.add(3, billing.RoleAdmin, "", false)
	unknownKey, _, _ := auth.NewKey()
	// A key whose prefix is stored but whose secret differs.
	forged := userKey[:auth.PrefixLen] + strings.Repeat("a", auth.KeyLen-auth.PrefixLen)
	if forged == userKey {
		forged = userKey[:auth.PrefixLen] + strings.Repeat("b", auth.KeyLen-auth.PrefixLen)
	}

	admin := billing.Principal{Role: billing.RoleAdmin}
	tests := []struct {
		name       string
		adminKey   string
		devLoop    bool
		header     string
		remoteAddr string
		want       billing.Principal
		wantCode   billing.Code
		wantField  string // a FieldError location the error must carry
	}{
		{name: "no header", wantCode: billing.CodeUnauthorized, wantField: "header.Authorization"},
		{name: "basic auth", header: "Basic dXNlcjpwYXNz", wantCode: billing.CodeUnauthorized, wantField: "header.Authorization"},
		{name: "basic with a real key", header: "Basic " + userKey, wantCode: billing.CodeUnauthorized},
		{name: "key without scheme", header: userKey, wantCode: billing.CodeUnauthorized},
		{name: "bearer without key", header: "Bearer ", wantCode: billing.CodeUnauthorized},
		{name: "bearer with blanks", header: "Bearer    ", wantCode: billing.CodeUnauthorized},
		{name: "malformed key", header: "Bearer not-a-key", wantCode: billing.CodeUnauthorized, wantField: "header.Authorization"},
		{name: "unknown key", header: "Bearer " + unknownKey, wantCode: billing.CodeUnauthorized},
		{name: "known prefix, wrong secret", header: "Bearer " + forged, wantCode: billing.CodeUnauthorized},
		{name: "revoked key", header: "Bearer " + revokedKey, wantCode: billing.CodeUnauthorized},
		{name: "user key", header: "Bearer " + userKey, want: billing.Principal{Role: billing.RoleUser, UserID: "u1", KeyID: 1}},
		// RFC 9110 makes the scheme case-insensitive and allows several
		// spaces before the credentials.
		{name: "lower-case scheme", header: "bearer " + userKey, want: billing.Principal{Role: billing.RoleUser, UserID: "u1", KeyID: 1}},
		{name: "extra spaces", header: "Bearer   " + userKey, want: billing.Principal{Role: billing.RoleUser, UserID: "u1", KeyID: 1}},
		{name: "stored admin key", header: "Bearer " + storedAdminKey, want: billing.Principal{Role: billing.RoleAdmin, KeyID: 3}},
		{name: "admin key from env", adminKey: testAdminKey, header: "Bearer " + testAdminKey, want: admin},
		{name: "wrong admin key", adminKey: testAdminKey, header: "Bearer " + testAdminKey + "x", wantCode: billing.CodeUnauthorized},
		{name: "admin key prefix", adminKey: testAdminKey, header: "Bearer " + testAdminKey[:10], wantCode: billing.CodeUnauthorized},
		{name: "user key with admin key set", adminKey: testAdminKey, header: "Bearer " + userKey, want: billing.Principal{Role: billing.RoleUser, UserID: "u1", KeyID: 1}},
		{name: "admin key unset, empty bearer", header: "Bearer", wantCode: billing.CodeUnauthorized},
		{name: "dev loopback IPv4", devLoop: true, remoteAddr: "127.0.0.1:1234", want: admin},
		{name: "dev loopback IPv6", devLoop: true, remoteAddr: "[::1]:5", want: admin},
		{name: "dev loopback other 127/8", devLoop: true, remoteAddr: "127.8.9.10:80", want: admin},
		{name: "dev loopback private address", devLoop: true, remoteAddr: "10.0.0.1:5", wantCode: billing.CodeUnauthorized},
		{name: "dev loopback public IPv6", devLoop: true, remoteAddr: "[2001:db8::1]:5", wantCode: billing.CodeUnauthorized},
		{name: "dev loopback IPv4-mapped private", devLoop: true, remoteAddr: "[::ffff:10.0.0.1]:5", wantCode: billing.CodeUnauthorized},
		{name: "dev loopback garbage address", devLoop: true, remoteAddr: "localhost:5", wantCode: billing.CodeUnauthorized},
		{name: "loopback without dev", remoteAddr: "127.0.0.1:1234", wantCode: billing.CodeUnauthorized},
		// A key that is sent is checked even from loopback in dev mode.
		{name: "dev loopback with a bad key", devLoop: true, remoteAddr: "127.0.0.1:1234", header: "Bearer nope", wantCode: billing.CodeUnauthorized},
		{name: "dev loopback with a user key", devLoop: true, remoteAddr: "127.0.0.1:1234", header: "Bearer " + userKey, want: billing.Principal{Role: billing.RoleUser, UserID: "u1", KeyID: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &auth.Authenticator{Keys: keys, AdminKey: tt.adminKey, DevLoopbackAdmin: tt.devLoop}
			got, err := a.Principal(requestCtx(t, tt.header, tt.remoteAddr))
			if tt.wantCode != "" {
				if err == nil {
					t.Fatalf("Principal = %+v; want a %s error", got, tt.wantCode)
				}
				if code := billing.ErrorCode(err); code != tt.wantCode {
					t.Fatalf("Principal error %v has code %s; want %s", err, code, tt.wantCode)
				}
				if got.IsAdmin() || got.CanAccess("u1") {
					t.Errorf("Principal returned a usable principal %+v with its error", got)
				}
				if tt.wantField != "" {
					var e *billing.Error
					if !errors.As(err, &e) || len(e.Fields) == 0 || e.Fields[0].Location != tt.wantField {
						t.Errorf("Principal error %#v does not name %s", err, tt.wantField)
					}
				}
				if strings.Contains(billing.ErrorMessage(err), testAdminKey) || strings.Contains(err.Error(), userKey) {
					t.Errorf("error %q repeats a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Principal: %v", err)
			}
			if got != tt.want {
				t.Fatalf("Principal = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestPrincipalWithoutMiddleware(t *testing.T) {
	a := &auth.Authenticator{Keys: newFakeKeys(), DevLoopbackAdmin: true}
	_, err := a.Principal(context.Background())
	checkUnauthorized(t, "Principal(no request info)", err)
}

// TestResolveStoreFailure pins that a store outage is not reported as a bad
// key: the client should retry (unavailable, a 503), not discard its key,
// and reads nothing of the store's error.
func TestResolveStoreFailure(t *testing.T) {
	keys := newFakeKeys()
	key := keys.add(1, billing.RoleUser, "u1", false)
	keys.failGet = errors.New("database is locked")
	a := &auth.Authenticator{Keys: keys}
	_, err := a.Resolve(context.Background(), key)
	if code := billing.ErrorCode(err); code != billing.CodeUnavailable {
		t.Errorf("Resolve with a failing store: code %s (%v); want unavailable", code, err)
	}
	if msg := billing.ErrorMessage(err); strings.Contains(msg, "locked") {
		t.Errorf("ErrorMessage = %q leaks detail", msg)
	}
}

func TestAuthorizeAndRequireAdmin(t *testing.T) {
	keys := newFakeKeys()
	u1 := keys.add(1, billing.RoleUser, "u1", false)
	a := &auth.Authenticator{Keys: keys, AdminKey: testAdminKey}
	tests := []struct {
		name         string
		header       string
		userID       string
		wantAuthz    billing.Code // "" for allowed
		wantRequireA billing.Code
	}{
		{"own user", "Bearer " + u1, "u1", "", billing.CodeForbidden},
		{"another user", "Bearer " + u1, "u2", billing.CodeForbidden, billing.CodeForbidden},
		{"user id differing in case", "Bearer " + u1, "U1", billing.CodeForbidden, billing.CodeForbidden},
		{"admin, any user", "Bearer " + testAdminKey, "u2", "", ""},
		{"no key", "", "u1", billing.CodeUnauthorized, billing.CodeUnauthorized},
		{"bad key", "Bearer alw_x", "u1", billing.CodeUnauthorized, billing.CodeUnauthorized},
	}
	for _, tt := range tests {
		ctx := requestCtx(t, tt.header, "")
		p, err := a.Authorize(ctx, tt.userID)
		if code := billing.ErrorCode(err); code != tt.wantAuthz {
			t.Errorf("%s: Authorize(%q) = %+v, %v; want code %q", tt.name, tt.userID, p, err, tt.wantAuthz)
		}
		if err == nil && !p.CanAccess(tt.userID) {
			t.Errorf("%s: Authorize allowed %+v, which cannot access %q", tt.name, p, tt.userID)
		}
		p, err = a.RequireAdmin(ctx)
		if code := billing.ErrorCode(err); code != tt.wantRequireA {
			t.Errorf("%s: RequireAdmin = %+v, %v; want code %q", tt.name, p, err, tt.wantRequireA)
		}
		if err == nil && !p.IsAdmin() {
			t.Errorf("%s: RequireAdmin passed a non-admin %+v", tt.name, p)
		}
	}
}

// TestTouchThrottled pins that a key's last use is written at most once a
// minute per key, measured with the injected clock.
func TestTouchThrottled(t *testing.T) {
	keys := newFakeKeys()
	k1 := keys.add(1, billing.RoleUser, "u1", false)
	k2 := keys.add(2, billing.RoleUser, "u2", false)
	now := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	a := &auth.Authenticator{Keys: keys, Now: func() time.Time { return now }}
	resolve := func(key string) {
		t.Helper()
		if _, err := a.Resolve(context.Background(), key); err != nil {
			t.Fatalf("Resolve: %v", err) // a failing TouchKey must not fail it
		}
	}
	steps := []struct {
		advance time.Duration
		key     string
		want1   int
		want2   int
	}{
		{0, k1, 1, 0},
		{0, k1, 1, 0},
		{30 * time.Second, k1, 1, 0},
		{0, k2, 1, 1}, // another key is touched on its own schedule
		{29 * time.Second, k1, 1, 1},
		{time.Second, k1, 2, 1}, // a minute after the first touch
		{time.Second, k1, 2, 1},
		{time.Hour, k1, 3, 1},
		{0, k2, 3, 2},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		resolve(s.key)
		if got1, got2 := keys.touchCount(1), keys.touchCount(2); got1 != s.want1 || got2 != s.want2 {
			t.Fatalf("step %d: touches = %d, %d; want %d, %d", i, got1, got2, s.want1, s.want2)
		}
	}
	if last := keys.touches[len(keys.touches)-1]; !last.now.Equal(now) {
		t.Errorf("TouchKey got time %s; want the injected clock's %s", last.now, now)
	}
	// Failed resolutions touch nothing.
	before := len(keys.touches)
	now = now.Add(time.Hour)
	_, _ = a.Resolve(context.Background(), k1[:auth.PrefixLen]+strings.Repeat("a", auth.KeyLen-auth.PrefixLen))
	if len(keys.touches) != before {
		t.Errorf("a failed resolution touched the key")
	}
}

// TestResolveConcurrent runs resolutions from many goroutines, for the race
// detector: the admin hash and the touch map are shared.
func TestResolveConcurrent(t *testing.T) {
	keys := newFakeKeys()
	k := keys.add(1, billing.RoleUser, "u1", false)
	fixed := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	a := &auth.Authenticator{Keys: keys, AdminKey: testAdminKey, Now: func() time.Time { return fixed }}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := k
			if i%2 == 0 {
				key = testAdminKey
			}
			for range 50 {
				if _, err := a.Resolve(context.Background(), key); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := keys.touchCount(1); n != 1 {
		t.Errorf("TouchKey called %d times at one instant; want 1", n)
	}
}

// adminHeader reports whether a header carries AdminKey as RFC 9110 reads
// it: a case-insensitive "Bearer" scheme, spaces, then exactly the key.
func adminHeader(h, adminKey string) bool {
	scheme, rest, ok := strings.Cut(h, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == adminKey
}

func FuzzPrincipal(f *testing.F) {
	keys := newFakeKeys()
	userKey := keys.add(1, billing.RoleUser, "u1", false)
	revokedAdmin := keys.add(2, billing.RoleAdmin, "", true)
	for _, s := range []string{
		"", "Bearer", "Bearer ", "Bearer " + testAdminKey, "bearer " + testAdminKey, "Bearer  " + testAdminKey + " ",
		"Bearer " + testAdminKey + "\x00", "Bearer " + userKey, "Bearer " + revokedAdmin, "Basic " + testAdminKey,
		testAdminKey, "Bearer\t" + testAdminKey, "Bearer " + strings.ToUpper(testAdminKey), " Bearer " + testAdminKey,
		"Bearer alw_", "Bearer " + userKey[:auth.PrefixLen] + strings.Repeat("z", 32),
	} {
		f.Add(s)
	}
	a := &auth.Authenticator{Keys: keys, AdminKey: testAdminKey, Now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, h string) {
		// A loopback peer: without DevLoopbackAdmin it must not matter.
		p, err := a.Principal(requestCtx(t, h, "127.0.0.1:1234"))
		if err != nil {
			if code := billing.ErrorCode(err); code != billing.CodeUnauthorized {
				t.Fatalf("Principal(%q) error code %s (%v); want unauthorized", h, code, err)
			}
			if h == "Bearer "+testAdminKey {
				t.Fatalf("Principal(%q) rejected the admin key: %v", h, err)
			}
			return
		}
		if p.IsAdmin() && !adminHeader(h, testAdminKey) {
			t.Fatalf("Principal(%q) = admin for a header that does not carry the admin key", h)
		}
		if !p.IsAdmin() && (p.Role != billing.RoleUser || p.UserID != "u1" || p.KeyID != 1) {
			t.Fatalf("Principal(%q) = %+v; only the stored user key may succeed as a user", h, p)
		}
	})
}

// TestPrincipalResolvedOncePerRequest pins that a request's key is looked
// up once: the API checks access before it parses a request, and the
// handler's Principal, Authorize and RequireAdmin then answer from what
// that check found; another request looks its key up again.
func TestPrincipalResolvedOncePerRequest(t *testing.T) {
	keys := newFakeKeys()
	u1 := keys.add(1, billing.RoleUser, "u1", false)
	a := &auth.Authenticator{Keys: keys, AdminKey: testAdminKey}
	ctx := requestCtx(t, "Bearer "+u1, "")
	p, err := a.Principal(ctx)
	if err != nil || p.UserID != "u1" {
		t.Fatalf("Principal = %+v, %v", p, err)
	}
	// The store fails from now on: only a remembered principal answers.
	keys.mu.Lock()
	keys.failGet = errors.New("database gone")
	keys.mu.Unlock()
	type derived struct{}
	if got, err := a.Principal(context.WithValue(ctx, derived{}, 1)); err != nil || got != p {
		t.Errorf("Principal again in the same request = %+v, %v; want %+v", got, err, p)
	}
	if _, err := a.Authorize(ctx, "u1"); err != nil {
		t.Errorf("Authorize(own user) = %v", err)
	}
	if _, err := a.Authorize(ctx, "u2"); billing.ErrorCode(err) != billing.CodeForbidden {
		t.Errorf("Authorize(another user) = %v; want forbidden", err)
	}
	if _, err := a.RequireAdmin(ctx); billing.ErrorCode(err) != billing.CodeForbidden {
		t.Errorf("RequireAdmin(user) = %v; want forbidden", err)
	}
	if n := keys.touchCount(1); n != 1 {
		t.Errorf("key touched %d times; want once, by the one lookup", n)
	}
	// Another request, or another authenticator, looks the key up.
	if _, err := a.Principal(requestCtx(t, "Bearer "+u1, "")); billing.ErrorCode(err) != billing.CodeUnavailable {
		t.Errorf("Principal in a new request = %v; want a lookup (unavailable)", err)
	}
	other := &auth.Authenticator{Keys: keys}
	if _, err := other.Principal(ctx); billing.ErrorCode(err) != billing.CodeUnavailable {
		t.Errorf("another authenticator's Principal = %v; want its own lookup (unavailable)", err)
	}
}
