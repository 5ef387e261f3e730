package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/testlog"

	"github.com/alwrity/alwrity-billing/internal/reload"
)

// stubReload replaces the reload loop for the rest of the test, so that no
// test ever builds or starts a real server through it.
func stubReload(t *testing.T, fn func(context.Context, reload.Config) error) {
	t.Helper()
	orig := runReload
	runReload = fn
	t.Cleanup(func() { runReload = orig })
}

// server is a `run serve …` in the background.
type server struct {
	t              *testing.T
	cancel         context.CancelFunc
	done           chan int
	stdout, stderr *testlog.Buffer
	base           string
}

// pollDeadline bounds every wait for a server; it only matters when
// something is broken, so it is generous.
const pollDeadline = 2 * time.Minute

var listenAddr = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"|msg=serving addr=(\S+)`)

// startServe runs serve with args and waits until it answers /healthz.
func startServe(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &server{t: t, cancel: cancel, done: make(chan int, 1), stdout: &testlog.Buffer{}, stderr: &testlog.Buffer{}}
	go func() {
		s.done <- run(ctx, append([]string{"serve"}, args...), s.stdout, s.stderr, func(name string) string { return env[name] })
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})

	deadline := time.Now().Add(pollDeadline)
	for s.base == "" {
		if m := listenAddr.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = "http://" + m[1] + m[2]
			break
		}
		s.waitOrFail(deadline, "the server to log its address")
	}
	for {
		resp, err := http.Get(s.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		s.waitOrFail(deadline, "/healthz to answer 200")
	}
}

// waitOrFail pauses briefly, failing the test when the server has exited
// or the deadline has passed.
func (s *server) waitOrFail(deadline time.Time, what string) {
	s.t.Helper()
	select {
	case code := <-s.done:
		s.done <- code
		s.t.Fatalf("serve exited with %d while waiting for %s\nstdout: %s\nstderr: %s", code, what, s.stdout, s.stderr)
	case <-time.After(20 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		s.t.Fatalf("gave up waiting for %s\nstderr: %s", what, s.stderr)
	}
}

// stop cancels the server's context and returns its exit code.
func (s *server) stop() int {
	s.t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for the cleanup
		return code
	case <-time.After(pollDeadline):
		s.t.Fatalf("serve did not stop after its context was cancelled\nstderr: %s", s.stderr)
		return -1
	}
}

// get fetches path with an optional bearer key and returns the status.
func (s *server) get(path, key string) int {
	s.t.Helper()
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodGet, s.base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var printedKey = regexp.MustCompile(`(?m)^\s+(alw_[a-z2-7]{40})$`)

func TestCLIServe(t *testing.T) {
	dbURL, _ := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}

	// First start without ALWRITY_ADMIN_KEY: an admin key is generated
	// and printed once, to stdout.
	s := startServe(t, env, "--host", "127.0.0.1", "--port", "0")
	m := printedKey.FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("no generated admin key on stdout:\n%s", s.stdout)
	}
	adminKey := m[1]
	if strings.Contains(s.stderr.String(), adminKey) {
		t.Error("the generated admin key was logged")
	}
	for _, want := range []string{"Billing and subscription tables created successfully", "usage tracking middleware active", `"api":"` + s.base + `/api/subscription"`, `"docs":"` + s.base + `/api/docs"`} {
		if !strings.Contains(s.stderr.String(), want) {
			t.Errorf("start-up log does not contain %s:\n%s", want, s.stderr)
		}
	}
	if got := s.get("/api/subscription/usage/demo", ""); got != http.StatusUnauthorized {
		t.Errorf("user route without a key: %d, want 401", got)
	}
	if got := s.get("/api/subscription/usage/demo", adminKey); got != http.StatusOK {
		t.Errorf("user route with the generated admin key: %d, want 200", got)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited with %d after its context was cancelled\nstderr: %s", code, s.stderr)
	}
	if !strings.Contains(s.stderr.String(), "shutting down") {
		t.Errorf("no graceful shutdown logged:\n%s", s.stderr)
	}

	// The second start finds the tables and the key: nothing is generated.
	s = startServe(t, env, "--host", "127.0.0.1", "--port", "0")
	if strings.Contains(s.stdout.String(), "alw_") {
		t.Errorf("a second admin key was generated:\n%s", s.stdout)
	}
	if !strings.Contains(s.stderr.String(), "up to date") {
		t.Errorf("second start did not say the tables are up to date:\n%s", s.stderr)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited with %d\nstderr: %s", code, s.stderr)
	}
}

func TestCLIServeEnvPort(t *testing.T) {
	dbURL, _ := isolate(t)
	// The flags override HOST, PORT and DEBUG from the environment.
	s := startServe(t, map[string]string{"DATABASE_URL": dbURL, "HOST": "0.0.0.0", "PORT": "1", "DEBUG": "true",
		"ALWRITY_ADMIN_KEY": "admin-key-0123456789abcdef"}, "--host", "127.0.0.1", "--port", "0", "--debug=false")
	if strings.Contains(s.stdout.String(), "alw_") {
		t.Errorf("an admin key was generated although ALWRITY_ADMIN_KEY is set:\n%s", s.stdout)
	}
	if got := s.get("/api/subscription/usage/demo", "admin-key-0123456789abcdef"); got != http.StatusOK {
		t.Errorf("user route with ALWRITY_ADMIN_KEY: %d, want 200", got)
	}
	if strings.Contains(s.stderr.String(), `"level":"DEBUG"`) {
		t.Errorf("--debug=false did not override DEBUG=true")
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited with %d\nstderr: %s", code, s.stderr)
	}
}

func TestCLIServeDev(t *testing.T) {
	dbURL, _ := isolate(t)
	s := startServe(t, map[string]string{"DATABASE_URL": dbURL}, "--dev", "--host", "127.0.0.1", "--port", "0")
	if !strings.Contains(s.stderr.String(), "DEVELOPMENT MODE") {
		t.Errorf("--dev gave no warning at start:\n%s", s.stderr)
	}
	if strings.Contains(s.stdout.String(), "alw_") {
		t.Errorf("--dev generated an admin key:\n%s", s.stdout)
	}
	if got := s.get("/api/subscription/usage/demo", ""); got != http.StatusOK {
		t.Errorf("key-less loopback request in --dev: %d, want 200", got)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("serve exited with %d\nstderr: %s", code, s.stderr)
	}
}

func TestCLIServeReloadFlag(t *testing.T) {
	tests := []struct {
		args  []string
		child []string
	}{
		{[]string{"--reload"}, []string{"serve"}},
		{[]string{"--reload", "--dev", "--port", "9001"}, []string{"serve", "--dev=true", "--port=9001"}},
		{[]string{"-reload=true", "--host=127.0.0.1"}, []string{"serve", "--host=127.0.0.1"}},
		{[]string{"--dev", "--reload=1", "--database-url", "sqlite:///other.db"}, []string{"serve", "--database-url=sqlite:///other.db", "--dev=true"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			dbURL, dbPath := isolate(t)
			// What --reload looks for: the root of the source tree.
			if err := os.MkdirAll(filepath.Join("cmd", "alwrity-billing"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"go.mod", filepath.Join("cmd", "alwrity-billing", "main.go")} {
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var got *reload.Config
			stubReload(t, func(_ context.Context, cfg reload.Config) error {
				got = &cfg
				return nil
			})
			r := runCLI(t, t.Context(), map[string]string{"DATABASE_URL": dbURL}, append([]string{"serve"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
			}
			if got == nil {
				t.Fatal("--reload did not start the reload loop")
			}
			if !reflect.DeepEqual(got.Args, tt.child) {
				t.Errorf("child args = %q, want %q", got.Args, tt.child)
			}
			if got.Package != "./cmd/alwrity-billing" || got.Dir != "." || got.Stdout == nil || got.Stderr == nil || got.Logger == nil {
				t.Errorf("reload config = %+v", *got)
			}
			// The parent only watches and rebuilds; the child opens the database.
			if _, err := os.Stat(dbPath); err == nil {
				t.Error("serve --reload opened the database itself")
			}
		})
	}

	// Without --reload (or with --reload=false) the loop is not started.
	isolate(t)
	stubReload(t, func(context.Context, reload.Config) error {
		t.Error("the reload loop started without --reload")
		return nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // serve returns as soon as it would start listening
	runCLI(t, ctx, map[string]string{"DATABASE_URL": "sqlite:///" + t.TempDir() + "/x.db"}, "serve", "--reload=false", "--host", "127.0.0.1", "--port", "0")
}
