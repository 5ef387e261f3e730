package webhooks_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/webhooks"
)

var (
	signedAt = time.Date(2026, 11, 29, 17, 41, 42, 0, time.UTC)
	body     = []byte(`{"id":"evt_1","type":"alert.created","created_at":"2026-11-29T17:41:42Z","data":{"user_id":"u1"}}`)
)

const secret = "whsec_test"

// TestSignMatchesRecipe checks Sign against the documented recipe written
// out independently: hex(HMAC-SHA256(secret, "<t>.<body>")).
func TestSignMatchesRecipe(t *testing.T) {
	h := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(h, "%d.%s", signedAt.Unix(), body)
	want := fmt.Sprintf("t=%d,v1=%s", signedAt.Unix(), hex.EncodeToString(h.Sum(nil)))
	if got := webhooks.Sign(signedAt, body, secret); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	header := webhooks.Sign(signedAt, body, secret)
	rotated := webhooks.Sign(signedAt, body, "whsec_new", secret)
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] = 'X'
	cases := []struct {
		name    string
		secret  string
		header  string
		body    []byte
		now     time.Time
		wantErr error
	}{
		{"genuine", secret, header, body, signedAt, nil},
		{"within tolerance after", secret, header, body, signedAt.Add(5 * time.Minute), nil},
		{"within tolerance before", secret, header, body, signedAt.Add(-5 * time.Minute), nil},
		{"rotated: old secret", secret, rotated, body, signedAt, nil},
		{"rotated: new secret", "whsec_new", rotated, body, signedAt, nil},
		{"spaces and unknown keys", secret, " v0=zz , " + strings.ReplaceAll(header, ",", " , ") + ",v2=abc", body, signedAt, nil},
		{"wrong secret", "whsec_other", header, body, signedAt, webhooks.ErrNoMatch},
		{"tampered body", secret, header, tampered, signedAt, webhooks.ErrNoMatch},
		{"replayed late", secret, header, body, signedAt.Add(5*time.Minute + time.Second), webhooks.ErrTimestamp},
		{"from the future", secret, header, body, signedAt.Add(-6 * time.Minute), webhooks.ErrTimestamp},
		{"timestamp changed", secret, strings.Replace(header, fmt.Sprint(signedAt.Unix()), fmt.Sprint(signedAt.Unix()+1), 1), body,
			signedAt, webhooks.ErrNoMatch},
		{"empty header", secret, "", body, signedAt, webhooks.ErrMalformedHeader},
		{"no t", secret, header[strings.Index(header, ",")+1:], body, signedAt, webhooks.ErrMalformedHeader},
		{"no v1", secret, "t=1", body, signedAt, webhooks.ErrMalformedHeader},
		{"two t", secret, "t=1," + header, body, signedAt, webhooks.ErrMalformedHeader},
		{"negative t", secret, "t=-1,v1=" + strings.Repeat("0", 64), body, signedAt, webhooks.ErrMalformedHeader},
		{"short v1", secret, "t=1,v1=abcd", body, signedAt, webhooks.ErrMalformedHeader},
		{"not hex", secret, "t=1,v1=" + strings.Repeat("g", 64), body, signedAt, webhooks.ErrMalformedHeader},
		{"no equals", secret, "t=1,v1", body, signedAt, webhooks.ErrMalformedHeader},
		{"huge", secret, header + strings.Repeat(",x=y", 2000), body, signedAt, webhooks.ErrMalformedHeader},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := webhooks.Verify(c.secret, c.header, c.body, 5*time.Minute, c.now)
			if c.wantErr == nil && err != nil || c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, c.wantErr)
			}
		})
	}
}

func TestReadEvent(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(signedAt, body, secret))
	ev, err := webhooks.ReadEvent(req, secret, 0, signedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "evt_1" || ev.Type != webhooks.EventAlertCreated || !ev.CreatedAt.Equal(signedAt) || string(ev.Data) != `{"user_id":"u1"}` {
		t.Fatalf("event = %+v", ev)
	}
	req = httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(signedAt, body, "whsec_other"))
	if _, err := webhooks.ReadEvent(req, secret, 0, signedAt); !errors.Is(err, webhooks.ErrNoMatch) {
		t.Fatalf("ReadEvent with a foreign signature = %v", err)
	}
}
