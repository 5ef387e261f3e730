// Package auth issues API keys and tells who a request acts for.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Keys look like "alw_" followed by 40 lowercase base32 characters (200
// random bits). The first PrefixLen characters are the key's public id:
// stored in clear to find the key, and shown in listings.
const (
	keyScheme = "alw_"
	secretLen = 40
	PrefixLen = len(keyScheme) + 8
	KeyLen    = len(keyScheme) + secretLen
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKey returns a new random key, its public prefix and the hash to store.
func NewKey() (key, prefix, hash string) {
	buf := make([]byte, secretLen*5/8)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails on supported platforms.
	key = keyScheme + strings.ToLower(b32.EncodeToString(buf))
	return key, key[:PrefixLen], Hash(key)
}

// Hash returns the stored form of a key. The keys carry 200 random bits, so
// a fast hash is enough: there is nothing to guess that a slow hash would
// protect.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Matches compares a presented key with a stored hash in constant time.
func Matches(key, storedHash string) bool {
	got := Hash(key)
	return subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}

// ParseKey checks that s has the shape of one of our keys and returns its
// prefix. Errors: unauthorized (a malformed key is never looked up).
func ParseKey(s string) (prefix string, err error) {
	if len(s) != KeyLen || !strings.HasPrefix(s, keyScheme) || !isSecretText(s[len(keyScheme):]) {
		return "", malformed()
	}
	return s[:PrefixLen], nil
}

// IsPrefix reports whether s has the shape of a key's public prefix.
func IsPrefix(s string) bool {
	return len(s) == PrefixLen && strings.HasPrefix(s, keyScheme) && isSecretText(s[len(keyScheme):])
}

func isSecretText(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func malformed() error {
	return &billing.Error{
		Code:    billing.CodeUnauthorized,
		Message: "the API key in the Authorization header is malformed",
		Fields:  []billing.FieldError{{Location: "header.Authorization", Message: "not an alwrity API key"}},
	}
}

// KeySpec says whom a new key acts for.
type KeySpec struct {
	Role   billing.Role // billing.RoleUser or billing.RoleAdmin
	UserID string       // the user a user key acts for; "" for an admin key
	Name   string       // an optional label to recognise the key by
}

// Problems names every field of s that keeps a key from being issued,
// each located under prefix ("body" gives "body.user_id"; "" gives
// "user_id"). It is nil when s is fine.
func (s KeySpec) Problems(prefix string) []billing.FieldError {
	var fs []billing.FieldError
	bad := func(field, msg string, v any) {
		if prefix != "" {
			field = prefix + "." + field
		}
		fs = append(fs, billing.FieldError{Location: field, Message: msg, Value: v})
	}
	switch s.Role {
	case billing.RoleUser:
		// A blank id would name no one anybody could ask about.
		if strings.TrimSpace(s.UserID) == "" {
			bad("user_id", "is required for a user key", s.UserID)
		} else if msg := billing.IdentProblem(s.UserID, true); msg != "" {
			bad("user_id", msg, s.UserID)
		}
	case billing.RoleAdmin:
		if s.UserID != "" {
			bad("user_id", "must be empty for an admin key, which acts for every user", s.UserID)
		}
	default:
		bad("role", "must be user or admin", string(s.Role))
	}
	if msg := billing.IdentProblem(s.Name, false); msg != "" {
		bad("name", msg, s.Name)
	}
	return fs
}

// KeyCreator stores new keys.
type KeyCreator interface {
	// CreateKey stores a key's record and hash. Errors: conflict when the
	// prefix is taken.
	CreateKey(ctx context.Context, k billing.APIKey, hash string) (int64, error)
}

// issueAttempts bounds the retries of a taken prefix. A prefix has 40
// random bits, so even one retry is a rarity.
const issueAttempts = 3

// Issue makes a new key for s, stores its prefix and hash (never the key)
// and returns the key, which is shown only this once, with its stored
// record. Errors: invalid, naming each bad field of s without a location
// prefix (callers that want one check Problems first); those of
// CreateKey.
func Issue(ctx context.Context, store KeyCreator, s KeySpec, now time.Time) (string, billing.APIKey, error) {
	if fs := s.Problems(""); len(fs) > 0 {
		return "", billing.APIKey{}, &billing.Error{Code: billing.CodeInvalid, Message: "the key cannot be issued", Fields: fs}
	}
	k := billing.APIKey{UserID: s.UserID, Role: s.Role, Name: s.Name, CreatedAt: now}
	var err error
	for range issueAttempts {
		key, prefix, hash := NewKey()
		k.Prefix = prefix
		if k.ID, err = store.CreateKey(ctx, k, hash); err == nil {
			return key, k, nil
		}
		if billing.ErrorCode(err) != billing.CodeConflict {
			break
		}
	}
	return "", billing.APIKey{}, fmt.Errorf("issue %s key: %w", s.Role, err)
}
