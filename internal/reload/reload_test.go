package reload

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/testlog"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/goleak"
)

func TestRelevant(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"main.go", true},
		{"internal/billing/invoice.go", true},
		{"/abs/migrations/0001_init.sql", true},
		{"web/templates/index.html", true},
		{"web/templates/layout.tmpl", true},
		{"web/templates/page.gohtml", true},
		{"internal/billing/invoice_test.go", false}, // tests are not in the binary
		{"README.md", false},
		{"web/static/app.js", false},
		{".#main.go", false},    // Emacs lock file
		{".main.go.swp", false}, // Vim swap file
		{"main.go~", false},     // backup file
		{"4913", false},         // Vim's write probe
		{"main.go.orig", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := Relevant(tt.path); got != tt.want {
			t.Errorf("Relevant(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestWatchTreeSkipsAndFollowsNewDirs(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	for _, d := range []string{".git/objects", "node_modules/x", "testdata", ".idea", "out", "internal/billing"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := &runner{log: slog.New(slog.DiscardHandler), dir: dir, outDir: filepath.Join(dir, "out"), watcher: w}
	if _, err := r.watchTree(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{dir, filepath.Join(dir, "internal"), filepath.Join(dir, "internal/billing")}
	if got := sorted(w.WatchList()); !slices.Equal(got, want) {
		t.Fatalf("watching %q, want %q", got, want)
	}

	// A directory created later, with a template already in it, is
	// watched and counts as a change.
	newDir := filepath.Join(dir, "web")
	if err := os.MkdirAll(filepath.Join(newDir, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(newDir, "templates", "index.html"), "<p>hi</p>")
	timeout := time.After(waitTimeout)
	for {
		select {
		case ev := <-w.Events:
			if ev.Name != newDir || !ev.Has(fsnotify.Create) {
				continue
			}
			rebuild, err := r.changed(ev)
			if err != nil || !rebuild {
				t.Fatalf("changed(%v) = %v, %v; want true, nil", ev, rebuild, err)
			}
			want = sorted(append(want, newDir, filepath.Join(newDir, "templates")))
			if got := sorted(w.WatchList()); !slices.Equal(got, want) {
				t.Fatalf("watching %q, want %q", got, want)
			}
			return
		case err := <-w.Errors:
			t.Fatal(err)
		case <-timeout:
			t.Fatal("no Create event for the new directory")
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// serverSource is a stand-in server: it announces its version and pid, then
// runs until SIGTERM, as the real server does.
const serverSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Printf("version VERSION pid %d\n", os.Getpid())
	<-sig
}
`

var versionLine = regexp.MustCompile(`version (v\d+) pid (\d+)`)

// waitTimeout bounds every wait so that a broken reload loop fails the test
// instead of hanging it.
const waitTimeout = 60 * time.Second

func TestRunRebuildsAndRestarts(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("relies on SIGTERM and signal 0")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not in PATH")
	}
	defer goleak.VerifyNone(t)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/r\n\ngo 1.26\n")
	writeServer := func(version string) {
		writeFile(t, filepath.Join(dir, "main.go"), strings.ReplaceAll(serverSource, "VERSION", version))
	}
	writeServer("v1")

	var out, logs testlog.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Dir:       dir,
			Package:   ".",
			Args:      []string{"serve", "--dev"},
			Debounce:  50 * time.Millisecond,
			Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
			Stdout:    &out,
			Stderr:    &out,
			GoCommand: goCmd,
		})
	}()
	fail := func(format string, args ...any) {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
		}
		t.Fatalf(format+"\nchild output:\n%s\nlogs:\n%s", append(args, out.String(), logs.String())...)
	}
	// pidOf waits until the child announces version and returns its pid.
	pidOf := func(version string) int {
		t.Helper()
		var pid int
		ok := waitFor(func() bool {
			for _, m := range versionLine.FindAllStringSubmatch(out.String(), -1) {
				if m[1] == version {
					pid, _ = strconv.Atoi(m[2])
					return true
				}
			}
			return false
		})
		if !ok {
			fail("server %s never started", version)
		}
		return pid
	}

	pid1 := pidOf("v1")
	writeServer("v2")
	pid2 := pidOf("v2")
	if alive(pid1) {
		fail("v1 (pid %d) still running after v2 started", pid1)
	}

	// A broken build must leave v2 running.
	writeFile(t, filepath.Join(dir, "main.go"), "package main\n\nfunc main() { undefinedFunc() }\n")
	if !waitFor(func() bool { return strings.Contains(logs.String(), "build failed") }) {
		fail("broken build was not reported")
	}
	if !strings.Contains(logs.String(), "undefinedFunc") {
		fail("build failure log lacks the compiler output")
	}
	if !alive(pid2) || strings.Contains(logs.String(), "server exited") {
		fail("v2 (pid %d) did not survive a failed build", pid2)
	}
	if n := len(versionLine.FindAllString(out.String(), -1)); n != 2 {
		fail("got %d server starts, want 2", n)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("Run did not return after cancel\nlogs:\n%s", logs.String())
	}
	if alive(pid2) {
		t.Fatalf("server (pid %d) still running after Run returned", pid2)
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

// alive reports whether a process with the given pid exists. Run reaps its
// children, so a stopped server does not linger as a zombie.
func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	return p.Signal(syscall.Signal(0)) == nil
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestArgNamesKeepValuesOutOfTheLog: the log names the child's command and
// flags, never a flag's value (a database URL holds its password).
func TestArgNamesKeepValuesOutOfTheLog(t *testing.T) {
	got := argNames([]string{"serve", "--database-url=postgres://billing:s3cretPW@db:5432/billing", "--dev", "-addr", ":8000"})
	want := []string{"serve", "--database-url", "--dev", "-addr"}
	if !slices.Equal(got, want) {
		t.Fatalf("argNames = %q; want %q", got, want)
	}
	if strings.Contains(strings.Join(got, " "), "s3cret") {
		t.Fatal("the password reached the log")
	}
}
