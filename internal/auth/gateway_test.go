package auth_test

import (
	"net/http/httptest"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
)

func TestGatewayKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		target  string
		headers map[string]string
		want    string
	}{
		{"bearer (OpenAI, Mistral, newer Anthropic SDKs)", "/x", map[string]string{"Authorization": "Bearer k1"}, "k1"},
		{"lower-case scheme", "/x", map[string]string{"Authorization": "bearer  k1 "}, "k1"},
		{"x-api-key (Anthropic)", "/x", map[string]string{"X-Api-Key": "k2"}, "k2"},
		{"x-goog-api-key (Gemini)", "/x", map[string]string{"X-Goog-Api-Key": "k3"}, "k3"},
		{"?key= (Gemini)", "/x?alt=sse&key=k4", nil, "k4"},
		{"x-api-key wins over a bearer", "/x", map[string]string{"X-Api-Key": "k2", "Authorization": "Bearer k1"}, "k2"},
		{"not a bearer", "/x", map[string]string{"Authorization": "Basic abc"}, ""},
		{"none", "/x?monkey=1", nil, ""},
	} {
		r := httptest.NewRequest("POST", tc.target, nil)
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := auth.GatewayKey(r); got != tc.want {
			t.Errorf("%s: GatewayKey = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestGatewayPrincipalWithoutKey(t *testing.T) {
	a := &auth.Authenticator{}
	r := httptest.NewRequest("POST", "/gateway/openai/v1/chat/completions", nil)
	r.RemoteAddr = "203.0.113.9:5000"
	if _, err := a.GatewayPrincipal(r); billing.ErrorCode(err) != billing.CodeUnauthorized {
		t.Errorf("no key: error %v, want unauthorized", err)
	}
	dev := &auth.Authenticator{DevLoopbackAdmin: true}
	r.RemoteAddr = "127.0.0.1:5000"
	if p, err := dev.GatewayPrincipal(r); err != nil || !p.IsAdmin() {
		t.Errorf("dev loopback without key: %+v, %v; want admin", p, err)
	}
	r.Header.Set("X-Api-Key", "admin-key-0123456789")
	admin := &auth.Authenticator{AdminKey: "admin-key-0123456789"}
	if p, err := admin.GatewayPrincipal(r); err != nil || !p.IsAdmin() {
		t.Errorf("admin key in x-api-key: %+v, %v; want admin", p, err)
	}
}
