package reload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
)

// relevantExt lists the extensions of files that end up in the server binary
// or are read by it: Go sources, SQL migrations and queries, and templates.
var relevantExt = map[string]bool{
	".go":     true,
	".sql":    true,
	".html":   true,
	".tmpl":   true,
	".gohtml": true,
}

// Relevant reports whether a change to path should trigger a rebuild.
//
// Test files are ignored because they never end up in the binary, so
// rebuilding for them would only restart the server for nothing while a
// developer iterates on tests. Hidden files are ignored because they are
// mostly editor swap and lock files (for example Emacs' ".#main.go") that
// appear and vanish on every save.
func Relevant(path string) bool {
	name := filepath.Base(path)
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "_test.go") {
		return false
	}
	return relevantExt[filepath.Ext(name)]
}

// skipDir reports whether the directory at path is left unwatched.
//
// Version control metadata, JavaScript dependencies, test fixtures and hidden
// directories never affect the binary; watching them would use up inotify
// watches and cause a rebuild on every git or npm operation. The build output
// directory is skipped so that writing the binary can never trigger a build.
func (r *runner) skipDir(path string) bool {
	if path == r.outDir {
		return true
	}
	switch name := filepath.Base(path); name {
	case ".git", "node_modules", "testdata":
		return true
	default:
		return strings.HasPrefix(name, ".")
	}
}

// watchTree adds root and every directory below it to the watcher, because
// fsnotify (like inotify) only reports changes in the directories it was
// given, not in their subdirectories.
//
// It reports whether the tree holds a relevant file: a directory that was
// created with files already in it (by a git checkout or an mv) may have
// received them before its watch existed, so those files count as a change.
//
// Directories that cannot be read, such as a database volume owned by a
// container user, are logged and skipped rather than failing the whole
// development loop.
func (r *runner) watchTree(root string) (sawRelevant bool, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // removed while we were walking; nothing to watch
		case errors.Is(err, fs.ErrPermission):
			r.log.Warn("not watching unreadable directory", "dir", path, "err", err)
			return filepath.SkipDir
		case err != nil:
			return err
		case !d.IsDir():
			sawRelevant = sawRelevant || Relevant(path)
			return nil
		case path != r.dir && r.skipDir(path):
			return filepath.SkipDir
		}
		if err := r.watcher.Add(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reload: watch %s: %w", path, err)
		}
		return nil
	})
	return sawRelevant, err
}

// changed handles one file system event and reports whether it calls for a
// rebuild. New directories are watched on the spot because nothing else
// would tell us about files written into them later.
func (r *runner) changed(ev fsnotify.Event) (bool, error) {
	if ev.Op == fsnotify.Chmod {
		return false, nil // touch, chmod and the like do not change content
	}
	if ev.Has(fsnotify.Create) && isDir(ev.Name) {
		if r.skipDir(ev.Name) {
			return false, nil
		}
		return r.watchTree(ev.Name)
	}
	return Relevant(ev.Name), nil
}

// isDir reports whether path is a directory. Symbolic links are not followed,
// matching filepath.WalkDir, so a link cannot make us watch a tree twice or
// escape the module.
func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}
