// Package docsui serves interactive API documentation pages for the
// OpenAPI spec: a fully self-hosted Swagger UI (assets embedded via
// github.com/swaggo/files/v2, so it works offline) and a ReDoc page that
// loads ReDoc's standalone bundle from a pinned, integrity-checked CDN URL.
package docsui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"sync"
	"time"

	swaggerFiles "github.com/swaggo/files/v2"
)

// Routes served by Handler. The handler only answers these paths, so mount it
// for all of them, e.g.
//
//	h := docsui.Handler("/api/openapi.json", "Alwrity Billing API")
//	mux.Handle(docsui.DocsPath, h)
//	mux.Handle(docsui.DocsPath+"/", h)
//	mux.Handle(docsui.RedocPath, h)
const (
	DocsPath   = "/api/docs"
	AssetsPath = DocsPath + "/assets/"
	RedocPath  = "/api/redoc"
)

// ReDoc is not available as a Go module, so the ReDoc page loads the
// standalone bundle from jsDelivr, pinned to an exact version and protected by
// a subresource-integrity hash. jsDelivr serves the files of the npm tarball
// byte for byte, so the hash is computed from the published npm package.
//
// To bump: pick the newest 2.x from `npm view redoc versions`, then
//
//	cd "$(mktemp -d)" && npm pack redoc@<VERSION> && tar xzf redoc-<VERSION>.tgz
//	openssl dgst -sha384 -binary package/bundles/redoc.standalone.js | openssl base64 -A
//
// and update both constants below (do not commit the JS file).
const (
	RedocVersion   = "2.5.4"
	RedocIntegrity = "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5"
	RedocScriptURL = "https://cdn.jsdelivr.net/npm/redoc@" + RedocVersion + "/bundles/redoc.standalone.js"
)

// assetContentTypes is the allowlist of swagger-ui dist files we serve, with
// explicit content types (independent of the host's mime tables). The dist's
// index.html and swagger-initializer.js are deliberately not served: they
// point at the petstore demo.
var assetContentTypes = map[string]string{
	"swagger-ui.css":                      "text/css; charset=utf-8",
	"swagger-ui.css.map":                  "application/json",
	"swagger-ui-bundle.js":                "text/javascript; charset=utf-8",
	"swagger-ui-bundle.js.map":            "application/json",
	"swagger-ui-standalone-preset.js":     "text/javascript; charset=utf-8",
	"swagger-ui-standalone-preset.js.map": "application/json",
	"favicon-16x16.png":                   "image/png",
	"favicon-32x32.png":                   "image/png",
}

// assetCacheControl: asset URLs in our pages carry a content-hash query
// (?v=...), and responses carry a content-hash ETag, so a long max-age is safe
// across swaggo/files upgrades.
const assetCacheControl = "public, max-age=31536000, immutable"

type asset struct {
	name        string
	contentType string
	etag        string // quoted
	version     string // short content hash used as ?v= cache buster
}

// loadAssets hashes the allowlisted files once per process. The files stay
// where the binary embeds them: they are hashed and served as streams, not
// copied onto the heap (several megabytes with the source maps).
var loadAssets = sync.OnceValues(func() (map[string]*asset, error) {
	out := make(map[string]*asset, len(assetContentTypes))
	for name, ct := range assetContentTypes {
		sum, err := hashAsset(name)
		if err != nil {
			return nil, fmt.Errorf("docsui: reading embedded swagger-ui asset %q: %w", name, err)
		}
		h := hex.EncodeToString(sum)
		out[name] = &asset{name: name, contentType: ct, etag: `"` + h[:32] + `"`, version: h[:12]}
	}
	return out, nil
})

func hashAsset(name string) ([]byte, error) {
	f, err := swaggerFiles.FS.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

var swaggerTmpl = template.Must(template.New("swagger").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" type="text/css" href="{{.Asset "swagger-ui.css"}}">
<link rel="icon" type="image/png" href="{{.Asset "favicon-32x32.png"}}" sizes="32x32">
<link rel="icon" type="image/png" href="{{.Asset "favicon-16x16.png"}}" sizes="16x16">
<style>
html { box-sizing: border-box; overflow-y: scroll; }
*, *:before, *:after { box-sizing: inherit; }
body { margin: 0; background: #fafafa; }
</style>
</head>
<body>
<noscript>This page needs JavaScript. The raw OpenAPI document is at <a href="{{.SpecURL}}">{{.SpecURL}}</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{{.Asset "swagger-ui-bundle.js"}}" charset="utf-8"></script>
<script src="{{.Asset "swagger-ui-standalone-preset.js"}}" charset="utf-8"></script>
<script>
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: {{.SpecURLJS}},
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout"
  });
};
</script>
</body>
</html>
`))

var redocTmpl = template.Must(template.New("redoc").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" type="image/png" href="{{.Asset "favicon-32x32.png"}}" sizes="32x32">
<style>
body { margin: 0; padding: 0; }
.docsui-note { margin: 0; padding: 4px 12px; font: 12px/1.5 sans-serif; color: #555; background: #f4f4f4; border-bottom: 1px solid #ddd; }
</style>
</head>
<body>
<p class="docsui-note">ReDoc is loaded from a CDN. If this page stays blank (offline, CDN blocked), use the offline interactive Swagger UI at <a href="{{.DocsPath}}">{{.DocsPath}}</a>.</p>
<noscript><p>ReDoc needs JavaScript. The offline Swagger UI is at <a href="{{.DocsPath}}">{{.DocsPath}}</a>; the raw OpenAPI document is at <a href="{{.SpecURL}}">{{.SpecURL}}</a>.</p></noscript>
<redoc spec-url="{{.SpecURL}}"></redoc>
<script src="{{.RedocScriptURL}}" integrity="{{.RedocIntegrity}}" crossorigin="anonymous" referrerpolicy="no-referrer"></script>
</body>
</html>
`))

type pageData struct {
	Title          string
	SpecURL        string
	SpecURLJS      template.JS
	DocsPath       string
	RedocScriptURL string
	RedocIntegrity string
	assets         map[string]*asset
}

// Asset returns the versioned URL of an allowlisted asset.
func (d pageData) Asset(name string) (string, error) {
	a, ok := d.assets[name]
	if !ok {
		return "", fmt.Errorf("docsui: unknown asset %q", name)
	}
	return AssetsPath + name + "?v=" + a.version, nil
}

// Handler returns an http.Handler serving:
//
//	GET /api/docs            Swagger UI page (self-hosted, works offline)
//	GET /api/docs/           redirect to /api/docs
//	GET /api/docs/assets/... embedded swagger-ui assets (long-cached)
//	GET /api/redoc           ReDoc page (bundle from a pinned, SRI-checked CDN URL)
//
// specURL is the URL of the OpenAPI document (e.g. "/api/openapi.json") and
// title the page title. Any other path answers 404; HEAD is supported and
// other methods answer 405. Pages are rendered at the first request for
// one, not before: reading and hashing the embedded assets would otherwise
// make several megabytes of the binary resident in every server, also those
// whose docs nobody opens.
func Handler(specURL, title string) http.Handler {
	// encoding/json escapes <, >, & and U+2028/9, so the literal is safe
	// inside an inline <script>.
	specJS, err := json.Marshal(specURL)
	if err != nil {
		panic(fmt.Errorf("docsui: encoding spec URL: %w", err))
	}
	type rendered struct {
		swagger, redoc []byte
		assets         map[string]*asset
	}
	pages := sync.OnceValues(func() (rendered, error) {
		assets, err := loadAssets()
		if err != nil {
			return rendered{}, err
		}
		data := pageData{
			Title:          title,
			SpecURL:        specURL,
			SpecURLJS:      template.JS(specJS),
			DocsPath:       DocsPath,
			RedocScriptURL: RedocScriptURL,
			RedocIntegrity: RedocIntegrity,
			assets:         assets,
		}
		return rendered{swagger: render(swaggerTmpl, data), redoc: render(redocTmpl, data), assets: assets}, nil
	})
	page := func(pick func(rendered) []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, err := pages()
			if err != nil {
				http.Error(w, "the API documentation is unavailable", http.StatusInternalServerError)
				return
			}
			servePage(pick(p))(w, r)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DocsPath, page(func(p rendered) []byte { return p.swagger }))
	mux.HandleFunc("GET "+DocsPath+"/{$}", func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		http.Redirect(w, r, DocsPath, http.StatusMovedPermanently)
	})
	mux.HandleFunc("GET "+AssetsPath+"{name}", func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		p, err := pages()
		if err != nil {
			http.Error(w, "the API documentation is unavailable", http.StatusInternalServerError)
			return
		}
		a, ok := p.assets[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", assetCacheControl)
		h.Set("ETag", a.etag)
		f, err := swaggerFiles.FS.Open(a.name)
		if err != nil {
			http.Error(w, "asset unavailable", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		rs, ok := f.(io.ReadSeeker)
		if !ok {
			http.Error(w, "asset unavailable", http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, rs)
	})
	mux.HandleFunc("GET "+RedocPath, page(func(p rendered) []byte { return p.redoc }))
	return mux
}

func render(t *template.Template, data pageData) []byte {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		panic(fmt.Errorf("docsui: rendering %s page: %w", t.Name(), err))
	}
	return buf.Bytes()
}

func servePage(page []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setCommonHeaders(w)
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(page))
	}
}

func setCommonHeaders(w http.ResponseWriter) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
}
