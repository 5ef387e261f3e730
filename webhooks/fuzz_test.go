package webhooks_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/webhooks"
)

// FuzzParseSignature feeds the header parser arbitrary text: it must not
// panic, and whatever it accepts has a timestamp and 32-byte signatures.
func FuzzParseSignature(f *testing.F) {
	f.Add(webhooks.Sign(signedAt, body, secret))
	f.Add(webhooks.Sign(signedAt, body, secret, "whsec_other"))
	f.Add("t=1,v1=")
	f.Add("t=,v1=00")
	f.Add(" t = 1 , v1 = ab ")
	f.Add("t=9223372036854775807,v1=" + string(bytes.Repeat([]byte("a"), 64)))
	f.Add(",,,=,=")
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := webhooks.ParseSignature(header)
		if err != nil {
			return
		}
		if sig.Timestamp < 0 || len(sig.V1) == 0 {
			t.Fatalf("accepted %q as %+v", header, sig)
		}
		for _, v := range sig.V1 {
			if len(v) != 32 {
				t.Fatalf("accepted a %d-byte signature from %q", len(v), header)
			}
		}
		// Verify never panics on what the parser accepts, at any clock.
		_ = webhooks.Verify(secret, header, body, time.Minute, time.Unix(sig.Timestamp, 0))
	})
}

// FuzzVerifyRoundTrip checks that what Sign writes verifies for any body
// and secret, and that a different body does not.
func FuzzVerifyRoundTrip(f *testing.F) {
	f.Add("whsec_x", []byte(`{}`), int64(1764438102))
	f.Add("", []byte{}, int64(0))
	f.Fuzz(func(t *testing.T, secret string, body []byte, unix int64) {
		if unix < 0 || unix > 1<<40 {
			return
		}
		at := time.Unix(unix, 0)
		h := webhooks.Sign(at, body, secret)
		if err := webhooks.Verify(secret, h, body, time.Second, at); err != nil {
			t.Fatalf("Verify(Sign) = %v", err)
		}
		if err := webhooks.Verify(secret, h, append(body, 'x'), time.Second, at); err == nil {
			t.Fatal("a changed body verified")
		}
	})
}
