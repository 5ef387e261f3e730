package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRecoverPanics: a handler's panic becomes a logged 500 whose body says
// only "internal error".
func TestRecoverPanics(t *testing.T) {
	var logs bytes.Buffer
	h := recoverPanics(slog.New(slog.NewJSONHandler(&logs, nil)), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret internal state: pq: relation users does not exist")
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/subscription/plans", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p["detail"] != "internal error" || p["status"] != float64(500) {
		t.Errorf("problem = %v (%v)", p, err)
	}
	if strings.Contains(w.Body.String(), "secret") {
		t.Errorf("the panic leaked: %s", w.Body)
	}
	if !strings.Contains(logs.String(), "secret internal state") {
		t.Errorf("the panic was not logged")
	}
}

// TestAPIProblems: only unmatched /api/ requests are rewritten.
func TestAPIProblems(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/x", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("x")) })
	mux.HandleFunc("GET /page", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("page")) })
	h := apiProblems(mux, mux)
	for _, c := range []struct {
		method, path string
		status       int
		problem      bool
	}{
		{"GET", "/api/x", 200, false},
		{"GET", "/api/y", 404, true},
		{"POST", "/api/x", 405, true},
		{"GET", "/nope", 404, false},
		{"GET", "/page", 200, false},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
		isProblem := w.Header().Get("Content-Type") == "application/problem+json"
		if w.Code != c.status || isProblem != c.problem {
			t.Errorf("%s %s: %d %q %s", c.method, c.path, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
}
