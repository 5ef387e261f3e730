package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// adminCmd is one command of an admin command group (plans,
// subscriptions, billing): its flags, a check of its arguments that runs
// before the database is opened, and what it does.
type adminCmd struct {
	fs *flag.FlagSet
	// check validates the positional arguments and flag values; it prints
	// what is wrong and returns errUsage.
	check func(args []string) error
	run   func(db *store.DB, now time.Time) error
	// uses names the settings the command reads besides DATABASE_URL, so
	// that their problems in the environment are reported.
	uses []string
}

// groupUsage answers a command group run without a command (a usage error,
// the usage on stderr) or with --help (the usage on stdout, as the binary's
// own --help). It returns done=false when args name a command.
func groupUsage(args []string, usage string, stdout, stderr io.Writer) (done bool, err error) {
	switch {
	case len(args) == 0:
		fmt.Fprint(stderr, usage)
		return true, errUsage
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help":
		fmt.Fprint(stdout, usage)
		return true, nil
	}
	return false, nil
}

// runAdminGroup runs the command args[0] of a group: usage errors are
// caught before the database is opened, so a typo never creates or
// migrates one; then the database is opened, migrated and seeded with the
// defaults, as the server does at start.
func runAdminGroup(ctx context.Context, group, usage string, args []string, stdout, stderr io.Writer, getenv func(string) string,
	build func(sub string, cfg app.Config) *adminCmd) error {
	if done, err := groupUsage(args, usage, stdout, stderr); done {
		return err
	}
	cfg, envErr := loadConfig(getenv)
	sub, args := args[0], args[1:]
	c := build(sub, cfg)
	if c == nil {
		fmt.Fprintf(stderr, "unknown %s command %q\n\n%s", group, sub, usage)
		return errUsage
	}
	cfg.DatabaseFlag(c.fs)
	positional, err := parseInterspersed(c.fs, args)
	if err != nil {
		return err
	}
	if err := c.check(positional); err != nil {
		return err
	}
	if err := configError(envErr, c.fs, cfg.ValidateDatabase(), append([]string{"DATABASE_URL"}, c.uses...)...); err != nil {
		return err
	}
	db, now, err := openSeeded(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return c.run(db, now)
}

// usageError prints msg and the command's usage, and returns errUsage.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, format+"\n", args...)
	fs.Usage()
	return errUsage
}

// exactArgs checks that there are n positional arguments, named by names.
func exactArgs(fs *flag.FlagSet, stderr io.Writer, args []string, names ...string) error {
	if len(args) != len(names) {
		what := strings.Join(names, " ")
		if len(names) == 0 {
			return usageError(fs, stderr, "unexpected argument %q", args[0])
		}
		return usageError(fs, stderr, "%s needs %s", fs.Name(), what)
	}
	for i, a := range args {
		if strings.TrimSpace(a) == "" {
			return usageError(fs, stderr, "%s must not be empty", names[i])
		}
	}
	return nil
}

// parseID reads a positive id.
func parseID(fs *flag.FlagSet, stderr io.Writer, what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, usageError(fs, stderr, "%s must be a positive number, got %q", what, s)
	}
	return id, nil
}

// checkUser checks a user id given on the command line, as the API does.
func checkUser(fs *flag.FlagSet, stderr io.Writer, user string) error {
	if len(user) > 128 {
		return usageError(fs, stderr, "a user id must be at most 128 characters")
	}
	return nil
}

// orNone prints a time, or "-" when unset.
func orNone(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
