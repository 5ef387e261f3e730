package billing

import (
	"strings"
	"unicode/utf8"
)

// Text limits of an event's free-form fields, in bytes.
const (
	MaxEndpointBytes     = 512
	MaxMethodBytes       = 16
	MaxErrorMessageBytes = 4096
)

// CleanText returns s as both databases can store it: valid UTF-8 (invalid
// bytes become U+FFFD), no NUL (PostgreSQL text cannot hold one; each
// becomes U+FFFD too), at most maxBytes bytes, cut between characters.
// Code that builds events from what it did not write itself (a request's
// path, a provider's error) cleans them with it, so that a call already
// made is never refused at settle for its bytes.
func CleanText(s string, maxBytes int) string {
	if !isText(s) {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	return Truncate(s, maxBytes)
}

// IdentProblem says what is wrong with v as an identifier (an event,
// user, provider, model or reservation id): "" when it is 1–128 bytes of
// printable UTF-8, or empty and not required.
func IdentProblem(v string, required bool) string {
	switch {
	case v == "" && required:
		return "is required"
	case len(v) > 128:
		return "must be at most 128 characters"
	case !utf8.ValidString(v) || strings.ContainsAny(v, "\x00\r\n\t"):
		return "must be printable text"
	}
	return ""
}

// CleanMethod returns method when it is a short HTTP token, else "OTHER".
func CleanMethod(method string) string {
	if method == "" || len(method) > MaxMethodBytes || strings.IndexFunc(method, notTokenChar) >= 0 {
		return "OTHER"
	}
	return method
}

// Truncate shortens s to at most n bytes without splitting a character.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// isText reports whether s is what CleanText returns: valid UTF-8 without
// NUL.
func isText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// notTokenChar reports a rune that may not appear in an HTTP method (RFC
// 9110 token).
func notTokenChar(r rune) bool {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
		return false
	}
	return !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}
