package tracking

import (
	"testing"
)

// TestPatternPath: a ServeMux pattern names the endpoint without its
// method, keeping a host.
func TestPatternPath(t *testing.T) {
	for pattern, want := range map[string]string{
		"":                              "",
		"/api/{provider}/chat":          "/api/{provider}/chat",
		"POST /api/{provider}/chat":     "/api/{provider}/chat",
		"GET  example.com/x/{id}":       "example.com/x/{id}",
		"DELETE\t/files/{path...}":      "/files/{path...}",
		"api.example.com/v1/{model}/do": "api.example.com/v1/{model}/do",
	} {
		if got := patternPath(pattern); got != want {
			t.Errorf("patternPath(%q) = %q, want %q", pattern, got, want)
		}
	}
}

// TestCleanPath: a path is cleaned as ServeMux cleans it before matching.
func TestCleanPath(t *testing.T) {
	for p, want := range map[string]string{
		"":                   "/",
		"*":                  "*",
		"/":                  "/",
		"api/openai":         "/api/openai",
		"/api//openai/":      "/api/openai/",
		"/api/./openai/../x": "/api/x",
		"/../../etc/passwd":  "/etc/passwd",
	} {
		if got := cleanPath(p); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", p, got, want)
		}
	}
}

// TestCleanMethod: a method the server refuses becomes OTHER.
func TestCleanMethod(t *testing.T) {
	for m, want := range map[string]string{
		"":                     "GET",
		"POST":                 "POST",
		"PROPFIND":             "PROPFIND",
		"M-SEARCH":             "M-SEARCH",
		"SIXTEENBYTESLONG":     "SIXTEENBYTESLONG",
		"SEVENTEENBYTESLONG":   "OTHER",
		"POSTPOSTPOSTPOSTPOST": "OTHER",
		"GET /":                "OTHER",
		"GÉT":                  "OTHER",
		"GET\x00":              "OTHER",
	} {
		if got := cleanMethod(m); got != want {
			t.Errorf("cleanMethod(%q) = %q, want %q", m, got, want)
		}
	}
}
