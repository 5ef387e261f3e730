package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

// TestRecoverPanicsAfterTheResponseStarted: a handler that panics after
// writing part of a 200 cuts the connection; the client never reads a
// whole-looking 200 with a problem appended to half a body. A handler
// that only set headers still gets the clean 500.
func TestRecoverPanicsAfterTheResponseStarted(t *testing.T) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httptest.NewServer(recoverPanics(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/started" {
			w.Write([]byte(`{"data":[1,2,`))
			http.NewResponseController(w).Flush()
		}
		panic("boom")
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/started")
	if err == nil {
		body, readErr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if readErr == nil {
			t.Fatalf("a panic after the response started read as a whole response: %d %s", resp.StatusCode, body)
		}
	}
	resp, err = srv.Client().Get(srv.URL + "/headers-only")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("panic before any write = %d %s; want a 500 problem", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestStartGuardKeepsTheWriterAbilities: behind recoverPanics a handler
// can still flush, hijack and set deadlines (type assertions and
// http.ResponseController both).
func TestStartGuardKeepsTheWriterAbilities(t *testing.T) {
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := httptest.NewServer(recoverPanics(logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, flusher := w.(http.Flusher)
		_, hijacker := w.(http.Hijacker)
		err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute))
		fmt.Fprintf(w, "%v %v %v", flusher, hijacker, err)
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "true true <nil>" {
		t.Errorf("flusher, hijacker, deadline = %s; want true true <nil>", body)
	}
}
