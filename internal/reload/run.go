// Package reload implements the development mode behind
// `alwrity-billing serve --reload`: it rebuilds the server whenever a Go
// source, SQL file or template changes and swaps the running process for the
// new build, so that developers never have to restart the server by hand.
package reload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// binName is the name of the development binary, chosen so that it is easy
// to tell apart from a production server in ps or top.
const binName = "alwrity-billing-dev"

// stopTimeout is how long a server gets to shut down after SIGTERM. It matches
// a typical graceful HTTP shutdown, after which the server is killed so that
// a stuck server can never block the development loop.
const stopTimeout = 10 * time.Second

// Config says what to build, what to watch and how to run the child.
type Config struct {
	// Dir is the module root. It is watched recursively, and both the build
	// and the child run in it so that relative paths behave as with `go run`.
	// Default ".".
	Dir string
	// Package is the package to build, for example "./cmd/alwrity-billing".
	Package string
	// Args are the child's arguments, for example ["serve", "--dev"]. The
	// caller removes --reload so that the child does not reload itself.
	Args []string
	// Env is the child's environment; nil means os.Environ(). The build
	// always uses os.Environ() so that GOFLAGS and friends apply to it.
	Env []string
	// Debounce is how long the tree must be quiet before a rebuild starts.
	// Editors write several times per save, and one build per save is
	// enough. Default 300ms.
	Debounce time.Duration
	// Logger receives build results and child lifecycle events. Default
	// slog.Default().
	Logger *slog.Logger
	// Stdout and Stderr receive the child's output. Default os.Stdout and
	// os.Stderr.
	Stdout, Stderr io.Writer
	// GoCommand is the go tool to build with. Default "go".
	GoCommand string
}

// runner holds the state of one Run. It is used by a single goroutine only,
// so it needs no locking.
type runner struct {
	cfg     Config
	log     *slog.Logger
	dir     string // absolute Dir, so that event paths and skip rules agree
	outDir  string // temporary directory holding the binary
	watcher *fsnotify.Watcher
	child   *child // nil while no server is running
}

// child is one running server process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // the result of Wait; read it only after done is closed
}

// Run builds cfg.Package, starts it and rebuilds and restarts it whenever a
// relevant file (see Relevant) under cfg.Dir changes.
//
// The old server is stopped only after a build succeeds, so a typo never
// takes down a working server: the compiler output is logged and the old
// server keeps running. That holds for the first build too: if it fails, Run
// keeps watching and starts the server after the first successful build. A
// server that exits by itself is logged and restarted only after the next
// successful build, because restarting a server that crashes on start would
// only loop.
//
// Run returns when ctx is cancelled, after stopping the server gracefully;
// since that is the normal way to leave development mode, it then returns
// nil. It returns an error if the configuration is invalid or watching fails.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if cfg.Package == "" {
		return errors.New("reload: Config.Package is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	outDir, err := os.MkdirTemp("", "alwrity-reload-")
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer os.RemoveAll(outDir)
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	defer watcher.Close()

	r := &runner{cfg: cfg, log: cfg.Logger, dir: dir, outDir: outDir, watcher: watcher}
	// Watch before the first build so that edits made while it runs are
	// not lost.
	if _, err := r.watchTree(dir); err != nil {
		return err
	}
	defer r.stopChild()
	r.rebuild(ctx)
	return r.loop(ctx)
}

// withDefaults fills in the documented defaults.
func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = "."
	}
	if c.Debounce <= 0 {
		c.Debounce = 300 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.GoCommand == "" {
		c.GoCommand = "go"
	}
	return c
}

// loop waits for changes and rebuilds once they have settled. Everything
// happens on this goroutine, so builds and restarts never overlap; events
// that arrive during a build wait in the watcher and lead to another build.
func (r *runner) loop(ctx context.Context) error {
	settle := time.NewTimer(r.cfg.Debounce)
	settle.Stop()
	defer settle.Stop()
	for {
		var exited <-chan struct{}
		if r.child != nil {
			exited = r.child.done
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-r.watcher.Events:
			if !ok {
				return errors.New("reload: file watcher closed")
			}
			rebuild, err := r.changed(ev)
			if err != nil {
				return err
			}
			if rebuild {
				settle.Reset(r.cfg.Debounce)
			}
		case err, ok := <-r.watcher.Errors:
			if !ok {
				return errors.New("reload: file watcher closed")
			}
			if !errors.Is(err, fsnotify.ErrEventOverflow) {
				return fmt.Errorf("reload: watching %s: %w", r.dir, err)
			}
			// Events were dropped, so we cannot know what changed;
			// rebuilding is the safe answer.
			r.log.Warn("file events were lost; rebuilding to be safe", "err", err)
			settle.Reset(r.cfg.Debounce)
		case <-settle.C:
			r.rebuild(ctx)
		case <-exited:
			r.log.Warn("server exited; it will restart after the next successful build",
				"pid", r.child.cmd.Process.Pid, "err", r.child.err)
			r.child = nil
		}
	}
}

// rebuild builds the package and, only if that succeeds, replaces the running
// server with the new binary.
//
// The build writes to a staging file that is renamed into place once the old
// server has stopped, because the old server is still running from the final
// path during the build, and some systems refuse to overwrite a running
// executable.
func (r *runner) rebuild(ctx context.Context) {
	bin := filepath.Join(r.outDir, binName)
	staged := bin + ".new"
	start := time.Now()
	cmd := exec.CommandContext(ctx, r.cfg.GoCommand, "build", "-o", staged, r.cfg.Package)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return // cancelled mid-build: that is shutdown, not a failed build
	}
	if err != nil {
		r.log.Error("build failed; the running server (if any) keeps running",
			"package", r.cfg.Package, "err", err, "output", string(out))
		return
	}
	r.log.Info("build succeeded", "package", r.cfg.Package,
		"took", time.Since(start).Round(time.Millisecond))

	r.stopChild()
	if err := os.Rename(staged, bin); err != nil {
		r.log.Error("cannot install the new binary", "err", err)
		return
	}
	r.startChild(bin)
}

// startChild starts the server from bin. A failure to start is logged rather
// than returned, like a failed build, so that the next change can fix it.
func (r *runner) startChild(bin string) {
	cmd := exec.Command(bin, r.cfg.Args...)
	cmd.Dir = r.dir
	cmd.Env = r.cfg.Env
	cmd.Stdout, cmd.Stderr = r.cfg.Stdout, r.cfg.Stderr
	// If the server leaves a grandchild holding its output open, do not
	// let that block Wait, and so stopChild, forever.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		r.log.Error("cannot start the server", "bin", bin, "err", err)
		return
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	r.child = c
	r.log.Info("server started", "pid", cmd.Process.Pid, "args", argNames(r.cfg.Args))
}

// argNames is what the log says of the child's arguments: the command and
// the names of its flags, never their values (--database-url holds the
// database's password).
func argNames(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "-"):
			name, _, _ := strings.Cut(a, "=")
			out = append(out, name)
		case i == 0:
			out = append(out, a)
		}
	}
	return out
}

// stopChild stops the running server, if any, and waits until it is gone, so
// that the next server can bind the same port. It asks politely with SIGTERM
// so the server can finish requests and close its database pool, and kills it
// if it has not exited after stopTimeout.
func (r *runner) stopChild() {
	c := r.child
	if c == nil {
		return
	}
	r.child = nil
	pid := c.cmd.Process.Pid
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		// Already gone, or a system without SIGTERM (Windows).
		_ = c.cmd.Process.Kill()
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		r.log.Warn("server ignored SIGTERM; killing it", "pid", pid, "after", stopTimeout)
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	r.log.Info("server stopped", "pid", pid)
}
