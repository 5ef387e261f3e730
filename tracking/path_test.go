package tracking

import (
	"net/http/httptest"
	"testing"
)

// TestProviderFromPath: providers are named by whole path segments, in any
// case, never by a substring (ALwrity's "exa" pattern matched /api/example).
func TestProviderFromPath(t *testing.T) {
	for _, tt := range []struct {
		path, want string
	}{
		{"/api/gemini/generate", "gemini"},
		{"/api/google/generate", "gemini"},
		{"/v1/exa/search", "metaphor"},
		{"/v1/metaphor/search", "metaphor"},
		{"/api/openai", "openai"},
		{"/api/gpt/chat", "openai"},
		{"/api/claude/messages", "anthropic"},
		{"/images/stable-diffusion/v1", "stability"},
		{"/api/example", ""},              // "exa" is a substring, not a segment
		{"/api/examples/exa", "metaphor"}, // the whole segment later on counts
		{"/api/openai-proxy", ""},
		{"/api/my-gemini", ""},
		{"/api/geminis", ""},
		{"/API/GEMINI/generate", "gemini"},
		{"/api/Tavily/Search", "tavily"},
		{"/api/FireCrawl", "firecrawl"},
		{"", ""},
		{"/", ""},
		{"//", ""},
		{"/api/health", ""},
		{"gemini", "gemini"},
		{"/api/serper/", "serper"},
	} {
		if got := ProviderFromPath(tt.path); got != tt.want {
			t.Errorf("ProviderFromPath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestDefaultIdentify: a request is metered only when it names both a user
// (WithUser) and a provider.
func TestDefaultIdentify(t *testing.T) {
	for _, tt := range []struct {
		name, user, path   string
		wantUser, wantProv string
		ok                 bool
	}{
		{"user and provider", "u1", "/api/openai/chat", "u1", "openai", true},
		{"no user", "", "/api/openai/chat", "", "", false},
		{"no provider", "u1", "/api/example", "", "", false},
		{"neither", "", "/healthz", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.path, nil)
			if tt.user != "" {
				r = r.WithContext(WithUser(r.Context(), tt.user))
			}
			u, p, ok := DefaultIdentify(r)
			if ok != tt.ok || ok && (u != tt.wantUser || p != tt.wantProv) {
				t.Errorf("DefaultIdentify = %q, %q, %v; want %q, %q, %v", u, p, ok, tt.wantUser, tt.wantProv, tt.ok)
			}
		})
	}
}
