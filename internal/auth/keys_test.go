package auth_test

import (
	"regexp"
	"strings"
	"testing"

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
