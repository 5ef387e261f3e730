package docsui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
)

const (
	testSpecURL = "/api/openapi.json"
	testTitle   = "Alwrity Billing API <docs>"
)

func get(t *testing.T, h http.Handler, target string) (*http.Response, string) {
	t.Helper()
	return do(t, h, httptest.NewRequest(http.MethodGet, target, nil))
}

func do(t *testing.T, h http.Handler, req *http.Request) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body of %s: %v", req.URL, err)
	}
	return res, string(body)
}

func assertHTML(t *testing.T, res *http.Response, target string) {
	t.Helper()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", target, res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET %s: Content-Type %q, want text/html", target, ct)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", target, got)
	}
}

var attrRE = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)

// refs returns all src/href attribute values of page, HTML-unescaped.
func refs(page string) []string {
	var out []string
	for _, m := range attrRE.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.ReplaceAll(m[1], "&amp;", "&"))
	}
	return out
}

func TestSwaggerPage(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	res, body := get(t, h, "/api/docs")
	assertHTML(t, res, "/api/docs")
	for _, want := range []string{"swagger-ui", testSpecURL, "SwaggerUIBundle", "StandaloneLayout", "<title>Alwrity Billing API &lt;docs&gt;</title>"} {
		if !strings.Contains(body, want) {
			t.Errorf("swagger page does not contain %q", want)
		}
	}
	if strings.Contains(body, "petstore") {
		t.Error("swagger page references the petstore demo")
	}
}

func TestSwaggerPageIsOffline(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	_, body := get(t, h, "/api/docs")
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+`).FindString(body); m != "" {
		t.Errorf("swagger page references an absolute URL %q; it must work offline", m)
	}
}

func TestSwaggerAssets(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	base, _ := url.Parse("http://example.test/api/docs")
	_, body := get(t, h, base.Path)

	wantCT := map[string]string{".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
	seen := map[string]bool{}
	for _, ref := range refs(body) {
		u, err := base.Parse(ref)
		if err != nil {
			t.Errorf("bad reference %q: %v", ref, err)
			continue
		}
		if !strings.HasPrefix(u.Path, AssetsPath) {
			continue
		}
		name := path.Base(u.Path)
		seen[name] = true
		target := u.RequestURI()
		res, data := get(t, h, target)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", target, res.StatusCode)
			continue
		}
		if len(data) == 0 {
			t.Errorf("GET %s: empty body", target)
		}
		want, ok := wantCT[path.Ext(name)]
		if !ok {
			t.Errorf("unexpected asset type referenced: %s", target)
		} else if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: Content-Type %q, want %s", target, ct, want)
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("GET %s: Cache-Control %q, want long max-age", target, cc)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", target, got)
		}

		// Conditional requests revalidate via the ETag.
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", target)
			continue
		}
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("If-None-Match", etag)
		if res, _ := do(t, h, req); res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: status %d, want 304", target, res.StatusCode)
		}
	}
	for _, name := range []string{"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"} {
		if !seen[name] {
			t.Errorf("swagger page does not reference asset %s", name)
		}
	}
}

func TestTrailingSlashRedirects(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	res, _ := get(t, h, "/api/docs/")
	if res.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("GET /api/docs/: status %d, want 301", res.StatusCode)
	}
	if loc := res.Header.Get("Location"); loc != "/api/docs" {
		t.Errorf("GET /api/docs/: Location %q, want /api/docs", loc)
	}
}

func TestRedocPage(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	res, body := get(t, h, "/api/redoc")
	assertHTML(t, res, "/api/redoc")
	for _, want := range []string{
		testSpecURL,
		`src="` + RedocScriptURL + `"`,
		`integrity="` + RedocIntegrity + `"`,
		`crossorigin="anonymous"`,
		`href="/api/docs"`,
		"<noscript>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("redoc page does not contain %q", want)
		}
	}
	if !regexp.MustCompile(`^sha384-[A-Za-z0-9+/]{64}$`).MatchString(RedocIntegrity) {
		t.Errorf("RedocIntegrity %q is not a sha384 SRI hash", RedocIntegrity)
	}
	if !strings.Contains(RedocScriptURL, "redoc@"+RedocVersion+"/") {
		t.Errorf("RedocScriptURL %q is not pinned to %s", RedocScriptURL, RedocVersion)
	}
}

func TestNotFound(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	for _, target := range []string{
		"/api/docs/assets/nope.js",
		"/api/docs/assets/index.html",             // petstore page, not served
		"/api/docs/assets/swagger-initializer.js", // petstore init, not served
		"/api/docs/assets/",
		"/api/docs/assets/../../openapi.json",
		"/api/docs/other",
		"/api/redoc/x",
	} {
		res, _ := get(t, h, target)
		if res.StatusCode != http.StatusNotFound && !(res.StatusCode >= 300 && res.StatusCode < 400) {
			t.Errorf("GET %s: status %d, want 404", target, res.StatusCode)
		}
	}
	res, _ := get(t, h, "/api/docs/assets/nope.js")
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown asset: status %d, want 404", res.StatusCode)
	}
}

func TestMethods(t *testing.T) {
	h := Handler(testSpecURL, testTitle)
	res, body := do(t, h, httptest.NewRequest(http.MethodHead, "/api/docs/assets/swagger-ui.css", nil))
	if res.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD asset: status %d, body len %d; want 200, empty", res.StatusCode, len(body))
	}
	res, _ = do(t, h, httptest.NewRequest(http.MethodPost, "/api/docs", nil))
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/docs: status %d, want 405", res.StatusCode)
	}
}

func TestSpecURLEscaping(t *testing.T) {
	h := Handler(`/spec.json?a=1&b="</script><script>alert(1)</script>`, testTitle)
	for _, target := range []string{"/api/docs", "/api/redoc"} {
		_, body := get(t, h, target)
		if strings.Contains(body, "alert(1)</script>") {
			t.Errorf("%s: spec URL not escaped:\n%s", target, body)
		}
	}
}

func TestConcurrentHandlers(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			h := Handler(testSpecURL, testTitle)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/docs/assets/swagger-ui-bundle.js", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("status %d", rec.Code)
			}
		}()
	}
	for range 4 {
		<-done
	}
}
