// Package e2e runs the real alwrity-billing binary as separate processes
// against real databases: several servers sharing one PostgreSQL, and a
// server killed with SIGKILL in the middle of its work and started again.
// Nothing here is in-process, so what the tests prove holds for the binary
// as deployed.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// adminKey is every test server's ALWRITY_ADMIN_KEY.
const adminKey = "e2e-admin-key-0123456789abcdef"

// waitLimit bounds every wait for a process or a condition. It matters only
// when something is broken.
const waitLimit = 60 * time.Second

// binary is the server built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "alwrity-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the module root (go env GOMOD: %q, %v)\n", gomod, err)
		return 1
	}
	binary = filepath.Join(dir, "alwrity-billing")
	args := []string{"build", "-o", binary}
	if raceEnabled() {
		// The servers are built like the tests: a data race in a server
		// under concurrent load then shows in its log, which the tests
		// check.
		args = append(args, "-race")
	}
	args = append(args, "./cmd/alwrity-billing")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	return m.Run()
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test
// reading.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is one running alwrity-billing process.
type server struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:port
	stderr *syncBuffer
	exited chan struct{}
}

var servingLine = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)

// startServer starts `alwrity-billing serve` on dbURL on a free port and
// waits until it is ready. The process is killed when the test ends.
func startServer(t *testing.T, name, dbURL string) *server {
	t.Helper()
	s := launch(t, name, dbURL)
	s.waitReady()
	return s
}

// startServers starts n servers on dbURL at the same time, as replicas
// of one deployment start.
func startServers(t *testing.T, n int, dbURL string) []*server {
	t.Helper()
	servers := make([]*server, n)
	for i := range servers {
		servers[i] = launch(t, fmt.Sprintf("server-%d", i+1), dbURL)
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

// launch starts a server on dbURL with env added to its environment.
func launch(t *testing.T, name, dbURL string, env ...string) *server {
	t.Helper()
	s := &server{t: t, name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(binary, "serve", "--host", "127.0.0.1", "--port", "0")
	// A directory of its own, so that no .env of the developer's is read,
	// and an environment of its own, so that nothing of the caller's
	// (DATABASE_URL, provider keys) leaks in.
	s.cmd.Dir = t.TempDir()
	s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.cmd.Dir, "TMPDIR=" + os.TempDir(),
		"DATABASE_URL=" + dbURL, "ALWRITY_ADMIN_KEY=" + adminKey, "GORACE=halt_on_error=0"}
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		logs := s.stderr.String()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race:\n%s", name, logs)
		} else if t.Failed() {
			t.Logf("%s log (last 4 KiB):\n%s", name, tail(logs, 4096))
		}
	})
	return s
}

// waitReady waits until the server has logged its address and answers
// /readyz.
func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for s.base == "" {
		if m := servingLine.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = "http://" + m[1]
			break
		}
		s.pause(deadline, "to log its address")
	}
	for {
		res, err := http.Get(s.base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		s.pause(deadline, "to answer /readyz")
	}
}

// pause waits a little, failing the test when the process has exited or
// the deadline has passed.
func (s *server) pause(deadline time.Time, what string) {
	s.t.Helper()
	select {
	case <-s.exited:
		s.t.Fatalf("%s exited while waiting for it %s:\n%s", s.name, what, tail(s.stderr.String(), 4096))
	case <-time.After(20 * time.Millisecond):
	}
	if time.Now().After(deadline) {
		s.t.Fatalf("%s did not manage %s within %v:\n%s", s.name, what, waitLimit, tail(s.stderr.String(), 4096))
	}
}

// kill sends SIGKILL and waits (bounded) until the process is gone.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(waitLimit):
		s.t.Errorf("%s did not exit within %v of SIGKILL", s.name, waitLimit)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// maxConnsPerServer caps the connections a test client opens to one
// server. Each server process pools up to 32 PostgreSQL connections, and
// as many requests in flight fill that pool: three servers at 200
// requests would take 96 of PostgreSQL's default 100 connections and
// starve every other test sharing the database ("too many clients"). All
// requests are still issued at once; at most this many per server are on
// the wire, which leaves 48 transactions racing for the same counters.
const maxConnsPerServer = 16

// newClient returns an HTTP client whose idle connections are closed when
// the test ends. Its timeout only bounds a broken server.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxConnsPerHost: maxConnsPerServer, MaxIdleConnsPerHost: maxConnsPerServer}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: waitLimit}
}

// call sends one request with the admin key and returns the status and
// body; err is set when no answer arrived.
func call(ctx context.Context, c *http.Client, method, url string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+adminKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, err
	}
	return res.StatusCode, b, nil
}

// clearOfMonthEnd waits, when the current UTC month ends within margin,
// until the next one has begun. The servers are separate processes on the
// real clock, which a test cannot set: calls that straddle the change of
// month fall in two billing periods, and the limits start again in the
// second.
func clearOfMonthEnd(t *testing.T, margin time.Duration) {
	t.Helper()
	now := time.Now().UTC()
	if left := billing.CalendarMonths().At(now).End.Sub(now); left < margin {
		t.Logf("waiting %v for the UTC month to change", left.Round(time.Second))
		time.Sleep(left + time.Second)
	}
}

// monthEndMargin is how close to the end of a UTC month a test that must
// run within one month does not start: far more than such a test takes.
const monthEndMargin = 2 * time.Minute

// subscribe stores plan (under a name of its own) and subscribes user to
// it, with periods anchored at the start of the current UTC month.
func subscribe(t *testing.T, db *store.DB, user string, plan billing.Plan) {
	t.Helper()
	ctx, now := context.Background(), time.Now().UTC()
	plan.Name = "e2e " + user
	plan.Tier, plan.IsActive = "basic", true
	id, err := db.CreatePlan(ctx, plan, now)
	if err != nil {
		t.Fatalf("create plan: %v", err)
	}
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.CreateSubscription(ctx, billing.Subscription{UserID: user, PlanID: id, BillingCycle: "monthly",
		Status: billing.StatusActive, Anchor: start, CurrentPeriodStart: start, CurrentPeriodEnd: start.AddDate(0, 1, 0)}, now); err != nil {
		t.Fatalf("subscribe %s: %v", user, err)
	}
}

// consistent asserts that every summary equals its ledger rows and that
// the reservations agree with the ledger.
func consistent(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	mismatches, err := db.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mismatches {
		t.Errorf("reconcile: %s", m)
	}
	n, err := db.HeldReservationsMismatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d reserved counters differ from their held reservations", n)
	}
}
