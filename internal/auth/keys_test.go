package auth_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// keyShape is the documented key format, written independently of ParseKey.
var keyShape = regexp.MustCompile(`^alw_[a-z2-7]{40}$`)

func TestNewKey(t *testing.T) {
	keys := map[string]bool{}
	prefixes := map[string]bool{}
	for range 1000 {
		key, prefix, hash := auth.NewKey()
		if len(key) != auth.KeyLen || !keyShape.MatchString(key) {
			t.Fatalf("NewKey() = %q; want %d characters matching %s", key, auth.KeyLen, keyShape)
		}
		if prefix != key[:auth.PrefixLen] || !strings.HasPrefix(prefix, "alw_") {
			t.Fatalf("NewKey() prefix = %q; want %q", prefix, key[:auth.PrefixLen])
		}
		if hash != auth.Hash(key) {
			t.Fatalf("NewKey() hash = %q; want Hash(key) = %q", hash, auth.Hash(key))
		}
		if strings.Contains(hash, key) || strings.Contains(hash, key[auth.PrefixLen:]) {
			t.Fatalf("hash %q contains the secret", hash)
		}
		if got, err := auth.ParseKey(key); err != nil || got != prefix {
			t.Fatalf("ParseKey(NewKey()) = %q, %v; want %q", got, err, prefix)
		}
		if !auth.Matches(key, hash) {
			t.Fatalf("Matches(key, its hash) = false")
		}
		if keys[key] || prefixes[prefix] {
			t.Fatalf("NewKey repeated a key or prefix after %d keys: %q", len(keys), key)
		}
		keys[key], prefixes[prefix] = true, true
	}
}

func TestKeyLengths(t *testing.T) {
	if auth.KeyLen != 44 || auth.PrefixLen != 12 {
		t.Errorf("KeyLen, PrefixLen = %d, %d; want 44, 12", auth.KeyLen, auth.PrefixLen)
	}
	// Hash is hex SHA-256: stable, 64 lowercase hex digits.
	const known = "alw_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	if h := auth.Hash(known); len(h) != 64 || h != strings.ToLower(h) || h != auth.Hash(known) {
		t.Errorf("Hash(%q) = %q", known, h)
	}
}

func TestParseKey(t *testing.T) {
	good, _, _ := auth.NewKey()
	secret := good[4:]
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"generated", good, true},
		{"all a", "alw_" + strings.Repeat("a", 40), true},
		{"all 2-7", "alw_" + strings.Repeat("234567", 6) + "2345", true},
		{"empty", "", false},
		{"scheme only", "alw_", false},
		{"one short", good[:auth.KeyLen-1], false},
		{"one long", good + "a", false},
		{"wrong scheme", "alx_" + secret, false},
		{"upper-case scheme", "ALW_" + secret, false},
		{"no underscore", "alw-" + secret, false},
		{"upper-case secret", "alw_" + strings.ToUpper(secret), false},
		{"one upper-case char", "alw_A" + secret[1:], false},
		{"digit 1", "alw_1" + secret[1:], false},
		{"digit 8", "alw_" + secret[:39] + "8", false},
		{"digit 0", "alw_" + secret[:20] + "0" + secret[21:], false},
		{"digit 9", "alw_9" + secret[1:], false},
		{"padding", "alw_" + secret[:39] + "=", false},
		{"space", "alw_" + secret[:39] + " ", false},
		// Two bytes of UTF-8 in place of two letters keep the byte length.
		{"non-ASCII", "alw_é" + secret[2:], false},
		{"bearer included", "Bearer " + good, false},
	}
	for _, tt := range tests {
		prefix, err := auth.ParseKey(tt.key)
		switch {
		case tt.ok && (err != nil || prefix != tt.key[:auth.PrefixLen]):
			t.Errorf("%s: ParseKey(%q) = %q, %v; want %q", tt.name, tt.key, prefix, err, tt.key[:auth.PrefixLen])
		case !tt.ok && err == nil:
			t.Errorf("%s: ParseKey(%q) = %q; want an error", tt.name, tt.key, prefix)
		case !tt.ok:
			checkUnauthorized(t, tt.name, err)
			if prefix != "" {
				t.Errorf("%s: ParseKey returned prefix %q with its error", tt.name, prefix)
			}
		}
	}
}

func checkUnauthorized(t *testing.T, what string, err error) {
	t.Helper()
	if code := billing.ErrorCode(err); code != billing.CodeUnauthorized {
		t.Errorf("%s: code = %q (%v); want unauthorized", what, code, err)
	}
}

func TestMatches(t *testing.T) {
	key, _, hash := auth.NewKey()
	other, _, otherHash := auth.NewKey()
	tests := []struct {
		name       string
		key, hash  string
		wantResult bool
	}{
		{"own hash", key, hash, true},
		{"other key's hash", key, otherHash, false},
		{"other key", other, hash, false},
		{"upper-case hash", key, strings.ToUpper(hash), false},
		{"truncated hash", key, hash[:63], false},
		{"empty hash", key, "", false},
		{"key as its own hash", key, key, false},
		{"empty key", "", hash, false},
	}
	for _, tt := range tests {
		if got := auth.Matches(tt.key, tt.hash); got != tt.wantResult {
			t.Errorf("%s: Matches = %v; want %v", tt.name, got, tt.wantResult)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	good, _, _ := auth.NewKey()
	for _, s := range []string{
		good, "", "alw_", "alw_" + strings.Repeat("a", 40), "alw_" + strings.Repeat("a", 39),
		"ALW_" + good[4:], "alw_" + strings.Repeat("\xff", 40), "alw_é" + good[6:], good + "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefix, err := auth.ParseKey(s)
		if err != nil {
			checkUnauthorized(t, "ParseKey", err)
			if keyShape.MatchString(s) {
				t.Fatalf("ParseKey(%q) rejected a well-formed key: %v", s, err)
			}
			return
		}
		if len(s) != auth.KeyLen || prefix != s[:auth.PrefixLen] {
			t.Fatalf("ParseKey(%q) = %q; want a %d-byte key and its first %d bytes", s, prefix, auth.KeyLen, auth.PrefixLen)
		}
		if !keyShape.MatchString(s) {
			t.Fatalf("ParseKey(%q) accepted a key outside the documented shape", s)
		}
	})
}

func TestKeySpecProblems(t *testing.T) {
	user := func(id string) auth.KeySpec { return auth.KeySpec{Role: billing.RoleUser, UserID: id} }
	tests := []struct {
		name string
		spec auth.KeySpec
		want []string // locations
	}{
		{"user key", user("alice"), nil},
		{"longest user id", user(strings.Repeat("u", 128)), nil},
		{"unicode user id", user("zoë"), nil},
		{"admin key", auth.KeySpec{Role: billing.RoleAdmin, Name: "ops"}, nil},
		{"named", auth.KeySpec{Role: billing.RoleUser, UserID: "u", Name: strings.Repeat("n", 128)}, nil},
		{"no user", user(""), []string{"body.user_id"}},
		{"blank user", user(" \u00a0 "), []string{"body.user_id"}},
		{"long user", user(strings.Repeat("u", 129)), []string{"body.user_id"}},
		{"newline in user", user("a\nb"), []string{"body.user_id"}},
		{"NUL in user", user("a\x00b"), []string{"body.user_id"}},
		{"invalid UTF-8 user", user("a\xffb"), []string{"body.user_id"}},
		{"admin for a user", auth.KeySpec{Role: billing.RoleAdmin, UserID: "alice"}, []string{"body.user_id"}},
		{"no role", auth.KeySpec{UserID: "alice"}, []string{"body.role"}},
		{"unknown role", auth.KeySpec{Role: "root", UserID: "alice"}, []string{"body.role"}},
		{"long name", auth.KeySpec{Role: billing.RoleAdmin, Name: strings.Repeat("n", 129)}, []string{"body.name"}},
		{"everything wrong", auth.KeySpec{Role: billing.RoleUser, Name: "a\tb"}, []string{"body.user_id", "body.name"}},
	}
	for _, tt := range tests {
		var got []string
		for _, f := range tt.spec.Problems("body") {
			got = append(got, f.Location)
			if f.Message == "" {
				t.Errorf("%s: %s without a message", tt.name, f.Location)
			}
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: problems at %v; want %v", tt.name, got, tt.want)
		}
	}
	if fs := user("").Problems(""); len(fs) != 1 || fs[0].Location != "user_id" {
		t.Errorf("without a prefix: %+v", fs)
	}
}

// memKeys stores keys in memory, after refusing the first taken calls as
// if their prefix were taken.
type memKeys struct {
	taken  int   // how many next calls find their prefix taken
	fail   error // returned by every call when set
	calls  int
	stored map[string]string // prefix → hash
}

func (f *memKeys) CreateKey(_ context.Context, k billing.APIKey, hash string) (int64, error) {
	f.calls++
	if f.fail != nil {
		return 0, f.fail
	}
	if f.taken > 0 {
		f.taken--
		return 0, billing.Errorf(billing.CodeConflict, "an api key with prefix %q already exists", k.Prefix)
	}
	if f.stored == nil {
		f.stored = map[string]string{}
	}
	f.stored[k.Prefix] = hash
	return int64(len(f.stored)), nil
}

func TestIssue(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

	t.Run("stores only the hash", func(t *testing.T) {
		f := &memKeys{}
		key, k, err := auth.Issue(ctx, f, auth.KeySpec{Role: billing.RoleUser, UserID: "alice", Name: "laptop"}, now)
		if err != nil {
			t.Fatal(err)
		}
		prefix, err := auth.ParseKey(key)
		if err != nil || prefix != k.Prefix {
			t.Fatalf("key prefix %q, %v; record %q", prefix, err, k.Prefix)
		}
		want := billing.APIKey{ID: 1, Prefix: prefix, UserID: "alice", Role: billing.RoleUser, Name: "laptop", CreatedAt: now}
		if k != want {
			t.Errorf("record %+v; want %+v", k, want)
		}
		if h := f.stored[prefix]; !auth.Matches(key, h) || strings.Contains(h, key[auth.PrefixLen:]) {
			t.Errorf("stored %q for the key", h)
		}
	})
	t.Run("retries a taken prefix", func(t *testing.T) {
		f := &memKeys{taken: 2}
		key, k, err := auth.Issue(ctx, f, auth.KeySpec{Role: billing.RoleAdmin}, now)
		if err != nil || f.calls != 3 || k.Role != billing.RoleAdmin || !auth.Matches(key, f.stored[k.Prefix]) {
			t.Fatalf("after two taken prefixes: %+v, %v, %d calls", k, err, f.calls)
		}
		f = &memKeys{taken: 10}
		if _, _, err := auth.Issue(ctx, f, auth.KeySpec{Role: billing.RoleAdmin}, now); billing.ErrorCode(err) != billing.CodeConflict || f.calls != 3 {
			t.Fatalf("always taken: %v after %d calls; want conflict after 3", err, f.calls)
		}
	})
	t.Run("other store errors are not retried", func(t *testing.T) {
		boom := errors.New("disk full")
		f := &memKeys{fail: boom}
		if key, _, err := auth.Issue(ctx, f, auth.KeySpec{Role: billing.RoleAdmin}, now); !errors.Is(err, boom) || f.calls != 1 || key != "" {
			t.Fatalf("Issue = %q, %v after %d calls", key, err, f.calls)
		}
	})
	t.Run("refuses a bad spec before storing", func(t *testing.T) {
		f := &memKeys{}
		_, _, err := auth.Issue(ctx, f, auth.KeySpec{Role: billing.RoleUser}, now)
		var e *billing.Error
		if !errors.As(err, &e) || e.Code != billing.CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Location != "user_id" || f.calls != 0 {
			t.Fatalf("Issue with no user = %v (%d calls)", err, f.calls)
		}
	})
}

func TestIsPrefix(t *testing.T) {
	key, prefix, _ := auth.NewKey()
	for s, want := range map[string]bool{
		prefix: true, "alw_abcdefgh": true, "alw_22334455": true,
		key: false, "": false, "alw_": false, "alw_abcdefg": false, "alw_abcdefghi": false,
		"ALW_ABCDEFGH": false, "alw_abcdefg1": false, "alx_abcdefgh": false, "alw_abcdefg=": false,
	} {
		if got := auth.IsPrefix(s); got != want {
			t.Errorf("IsPrefix(%q) = %v; want %v", s, got, want)
		}
	}
}
