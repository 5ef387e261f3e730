package auth

import (
	"net/http"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// GatewayKeyHeaders are the request headers in which the providers'
// official SDKs send their key. The LLM gateway reads the user's alwrity key
// from any of them (and from Gemini's ?key= query parameter) and removes
// every one of them before it forwards a request upstream.
var GatewayKeyHeaders = []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key"}

// GatewayKeyParam is the query parameter in which Gemini clients may send
// their key.
const GatewayKeyParam = "key"

// GatewayKey returns the key a provider SDK sent with r: Anthropic's
// x-api-key, Gemini's x-goog-api-key, a Bearer Authorization (OpenAI,
// Mistral, and Anthropic's newer SDKs), or Gemini's ?key= parameter, in that
// order. It returns "" when r carries none.
func GatewayKey(r *http.Request) string {
	if k := strings.TrimSpace(r.Header.Get("X-Api-Key")); k != "" {
		return k
	}
	if k := strings.TrimSpace(r.Header.Get("X-Goog-Api-Key")); k != "" {
		return k
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, k, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if k = strings.TrimSpace(k); k != "" {
				return k
			}
		}
	}
	if r.URL != nil && strings.Contains(r.URL.RawQuery, GatewayKeyParam+"=") {
		return strings.TrimSpace(r.URL.Query().Get(GatewayKeyParam))
	}
	return ""
}

// GatewayPrincipal returns who a gateway request acts for, reading the key
// wherever the provider's SDK put it (see GatewayKey). The API routes keep
// reading only Authorization. Errors: unauthorized.
func (a *Authenticator) GatewayPrincipal(r *http.Request) (billing.Principal, error) {
	key := GatewayKey(r)
	if key == "" {
		if a.DevLoopbackAdmin && isLoopback(r.RemoteAddr) {
			return billing.Principal{Role: billing.RoleAdmin}, nil
		}
		return billing.Principal{}, &billing.Error{
			Code: billing.CodeUnauthorized,
			Message: "the gateway needs an alwrity API key where the provider's SDK sends its key " +
				"('Authorization: Bearer <key>', 'x-api-key', 'x-goog-api-key' or '?key=')",
			Fields: []billing.FieldError{{Location: "header.Authorization", Message: "missing"}},
		}
	}
	return a.Resolve(r.Context(), key)
}
