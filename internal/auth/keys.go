// Package auth issues API keys and tells who a request acts for.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"strings"

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
	if len(s) != KeyLen || !strings.HasPrefix(s, keyScheme) {
		return "", malformed()
	}
	for _, c := range s[len(keyScheme):] {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", malformed()
		}
	}
	return s[:PrefixLen], nil
}

func malformed() error {
	return &billing.Error{
		Code:    billing.CodeUnauthorized,
		Message: "the API key in the Authorization header is malformed",
		Fields:  []billing.FieldError{{Location: "header.Authorization", Message: "not an alwrity API key"}},
	}
}
