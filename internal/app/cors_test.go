package app_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestCORS: with ALWRITY_CORS_ORIGINS set, a page of a listed origin may
// call the API and the gateway from a browser: its preflight is answered
// without a key (a preflight never carries one), any request header may be
// sent, Retry-After can be read, and no credentials are allowed. Another
// origin gets no CORS headers at all, and neither does anyone when no
// origin is configured (the default).
func TestCORS(t *testing.T) {
	const page, other, key = "https://app.alwrity.test", "https://evil.test", "test-admin-key-0123456789"
	url := storetest.SQLiteURL(t)
	type answer struct {
		status int
		header http.Header
	}
	do := func(s *server, method, path, origin string, header map[string]string) answer {
		t.Helper()
		req, err := http.NewRequest(method, s.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", origin)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		res.Body.Close()
		return answer{res.StatusCode, res.Header}
	}
	preflight := map[string]string{"Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type, x-api-key"}

	s := start(t, url, func(c *app.Config) { c.AdminKey, c.CORSOrigins = key, []string{page} })
	for _, path := range []string{"/api/subscription/usage", "/gateway/openai/v1/chat/completions"} {
		a := do(s, http.MethodOptions, path, page, preflight)
		h := a.header
		if a.status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != page ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "x-api-key") ||
			h.Get("Access-Control-Allow-Credentials") != "" || h.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("preflight of %s from %s: %d %v", path, page, a.status, h)
		}
		if a := do(s, http.MethodOptions, path, other, preflight); a.header.Get("Access-Control-Allow-Origin") != "" ||
			a.header.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("preflight of %s from %s allowed: %d %v", path, other, a.status, a.header)
		}
	}
	a := do(s, http.MethodGet, "/api/subscription/plans", page, map[string]string{"Authorization": "Bearer " + key})
	if a.status != http.StatusOK || a.header.Get("Access-Control-Allow-Origin") != page ||
		!slices.Contains(strings.Split(a.header.Get("Access-Control-Expose-Headers"), ", "), "Retry-After") ||
		!slices.Contains(a.header.Values("Vary"), "Origin") || a.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("GET from %s: %d %v", page, a.status, a.header)
	}
	// The key is still checked: CORS only lets the browser read the answer.
	if a := do(s, http.MethodGet, "/api/subscription/usage/someone", page, nil); a.status != http.StatusUnauthorized ||
		a.header.Get("Access-Control-Allow-Origin") != page {
		t.Errorf("GET without a key from %s: %d %v; want 401, readable", page, a.status, a.header)
	}
	if a := do(s, http.MethodGet, "/api/subscription/plans", other, map[string]string{"Authorization": "Bearer " + key}); a.status != http.StatusOK ||
		a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET from %s: %d %v; want no CORS headers", other, a.status, a.header)
	}
	s.stop()

	s = start(t, url, func(c *app.Config) { c.AdminKey = key })
	defer s.stop()
	if a := do(s, http.MethodOptions, "/api/subscription/usage", page, preflight); a.header.Get("Access-Control-Allow-Origin") != "" ||
		a.header.Get("Access-Control-Allow-Methods") != "" {
		t.Errorf("preflight with no origin configured: %d %v", a.status, a.header)
	}
	if a := do(s, http.MethodGet, "/api/subscription/plans", page, map[string]string{"Authorization": "Bearer " + key}); a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET with no origin configured: %d %v", a.status, a.header)
	}
}
