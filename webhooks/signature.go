package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Alwrity-Signature"
	// EventIDHeader carries the event id, the key to de-duplicate by.
	EventIDHeader = "Alwrity-Event-Id"
	// EventTypeHeader carries the event type.
	EventTypeHeader = "Alwrity-Event-Type"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock, in either direction, for Verify to accept it.
const DefaultTolerance = 5 * time.Minute

// maxHeaderLen bounds the header a receiver parses: a sender signs with at
// most a few secrets, so anything longer is not ours.
const maxHeaderLen = 4096

// Verification errors. Verify wraps them, so test with errors.Is.
var (
	// ErrMalformedHeader means the signature header is missing or does not
	// parse.
	ErrMalformedHeader = errors.New("webhooks: malformed signature header")
	// ErrTimestamp means the signed timestamp is outside the tolerance.
	ErrTimestamp = errors.New("webhooks: signature timestamp outside the tolerance")
	// ErrNoMatch means no signature in the header matches the body.
	ErrNoMatch = errors.New("webhooks: no signature matches")
)

// Signature is a parsed signature header.
type Signature struct {
	// Timestamp is the signing time in Unix seconds.
	Timestamp int64
	// V1 are the HMAC-SHA256 values (32 bytes each), one per signing secret.
	V1 [][]byte
}

// Sign returns the signature header value for body, signed at t with each
// of secrets (normally one; two while a rotated secret is in its grace
// period).
func Sign(t time.Time, body []byte, secrets ...string) string {
	var b strings.Builder
	ts := t.Unix()
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(ts, 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

// mac is HMAC-SHA256(secret, "<ts>.<body>").
func mac(secret string, ts int64, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(strconv.AppendInt(nil, ts, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// ParseSignature parses a signature header: comma-separated key=value
// pairs with exactly one t (a non-negative decimal) and at least one v1
// (64 hex digits). Spaces around pairs are ignored and unknown keys are
// skipped, so that a later scheme (v2=…) can be added beside v1.
func ParseSignature(header string) (Signature, error) {
	var sig Signature
	if header == "" {
		return sig, fmt.Errorf("%w: empty", ErrMalformedHeader)
	}
	if len(header) > maxHeaderLen {
		return sig, fmt.Errorf("%w: longer than %d bytes", ErrMalformedHeader, maxHeaderLen)
	}
	haveT := false
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Signature{}, fmt.Errorf("%w: %q is not key=value", ErrMalformedHeader, clip(part))
		}
		switch k {
		case "t":
			if haveT {
				return Signature{}, fmt.Errorf("%w: more than one t", ErrMalformedHeader)
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || v == "" || v[0] == '+' {
				return Signature{}, fmt.Errorf("%w: t=%q is not a Unix time", ErrMalformedHeader, clip(v))
			}
			sig.Timestamp, haveT = n, true
		case "v1":
			if len(v) != 2*sha256.Size {
				return Signature{}, fmt.Errorf("%w: v1 is not %d hex digits", ErrMalformedHeader, 2*sha256.Size)
			}
			d, err := hex.DecodeString(v)
			if err != nil {
				return Signature{}, fmt.Errorf("%w: v1 is not hex", ErrMalformedHeader)
			}
			sig.V1 = append(sig.V1, d)
		}
	}
	if !haveT {
		return Signature{}, fmt.Errorf("%w: no t", ErrMalformedHeader)
	}
	if len(sig.V1) == 0 {
		return Signature{}, fmt.Errorf("%w: no v1", ErrMalformedHeader)
	}
	return sig, nil
}

// Verify checks that header (the Alwrity-Signature value) signs body with
// secret, at a time within tolerance of now. It returns nil for a genuine
// delivery and otherwise an error wrapping ErrMalformedHeader,
// ErrTimestamp or ErrNoMatch. body must be the raw request body, before
// any decoding. A tolerance of 0 means DefaultTolerance.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	sig, err := ParseSignature(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compared in seconds, so that no product overflows.
	skew := now.Unix() - sig.Timestamp
	if skew < 0 {
		skew = -skew
	}
	if skew < 0 || skew > int64(tolerance/time.Second) {
		return fmt.Errorf("%w: signed at %d, now %d", ErrTimestamp, sig.Timestamp, now.Unix())
	}
	want := mac(secret, sig.Timestamp, body)
	for _, got := range sig.V1 {
		if hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrNoMatch
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
