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

// TestNewPathIdentify: a service names providers with a table of its own,
// matched by whole segment like the default one, and copied, so that
// changing the table afterwards changes nothing.
func TestNewPathIdentify(t *testing.T) {
	table := DefaultProviderSegments()
	table["openrouter"] = []string{"OpenRouter", "or"}
	identify := NewPathIdentify(table)
	table["openrouter"] = []string{"changed"}
	delete(table, "metaphor")

	for _, tt := range []struct {
		path, want string
	}{
		{"/api/openrouter/chat", "openrouter"},
		{"/api/OR/chat", "openrouter"},
		{"/api/exa/search", "metaphor"},
		{"/api/example/x", ""}, // "exa" is a substring, not a segment
		{"/api/changed/x", ""},
		{"/api/openai/chat", "openai"},
	} {
		r := httptest.NewRequest("POST", tt.path, nil)
		u, p, ok := identify(r.WithContext(WithUser(r.Context(), "u1")))
		if p != tt.want || ok != (tt.want != "") || ok && u != "u1" {
			t.Errorf("%s: %q, %q, %v; want u1, %q", tt.path, u, p, ok, tt.want)
		}
	}
	if _, _, ok := identify(httptest.NewRequest("POST", "/api/openrouter/chat", nil)); ok {
		t.Errorf("a request without a user is metered")
	}
}

// TestDefaultProviderSegmentsCopied: changing the table
// DefaultProviderSegments returns does not change DefaultIdentify.
func TestDefaultProviderSegmentsCopied(t *testing.T) {
	table := DefaultProviderSegments()
	table["openai"][0] = "changed"
	table["openrouter"] = []string{"openrouter"}
	if ProviderFromPath("/api/openai/chat") != "openai" || ProviderFromPath("/api/openrouter/chat") != "" {
		t.Errorf("the default table changed")
	}
	if DefaultProviderSegments()["openai"][0] != "openai" {
		t.Errorf("DefaultProviderSegments shares its slices")
	}
}

// TestNewPathIdentifyRefusesAmbiguousTables: a segment that names two
// providers, or is no segment at all, is a mistake in the table, told at
// construction rather than matched one way or the other.
func TestNewPathIdentifyRefusesAmbiguousTables(t *testing.T) {
	for name, table := range map[string]map[string][]string{
		"two providers": {"openai": {"gpt"}, "openrouter": {"GPT"}},
		"empty":         {"openai": {""}},
		"slash":         {"openai": {"v1/openai"}},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewPathIdentify(%v) did not panic", table)
				}
			}()
			NewPathIdentify(table)
		})
	}
}
