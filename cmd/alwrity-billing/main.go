// Command alwrity-billing meters, prices, limits and bills the AI-provider
// calls of a product's users. Run without arguments it serves (the same as
// `serve`) on an embedded SQLite database.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // subscription time zones work on hosts without zoneinfo
)

const usage = `alwrity-billing: metering, pricing, limits and billing of AI-provider calls

Usage:
  alwrity-billing [serve] [--dev] [--reload] [flags]   run the server (default)
  alwrity-billing migrate [flags]                      create or upgrade the tables and add missing
                                                       default plans and prices, then stop
  alwrity-billing verify [--url http://host:port]      check the installation (exit 1 on failure)
  alwrity-billing keys create --user ID [--name N]     create a user key; prints only the key
  alwrity-billing keys create --admin [--name N]       create an admin key
  alwrity-billing keys list [--user ID]                list keys (prefixes only, never secrets)
  alwrity-billing keys revoke PREFIX                   revoke a key by its prefix
  alwrity-billing pricing list|add|import|export       list, add, import or export prices (see pricing --help)
  alwrity-billing plans list|create|edit|activate|deactivate
                                                       list, create or edit plans (see plans --help)
  alwrity-billing subscriptions subscribe|cancel|show|history USER
                                                       change or show a user's subscription
  alwrity-billing billing close|invoices|export|mark   close ended periods, list, export (CSV) or settle invoices
  alwrity-billing billing purge-reservations           delete finished reservations past their retention (35 days)
  alwrity-billing version                              print the version

Configuration comes from the environment (and .env), flags override it:
  DATABASE_URL       sqlite:///./alwrity.db (default) or postgres://… (or a file named by DATABASE_URL_FILE)
  HOST, PORT         0.0.0.0, 8000
  DEBUG              true for debug logs
  ALWRITY_ADMIN_KEY  the admin key (generated and printed once when unset)
  OPENAI_API_KEY, GEMINI_API_KEY, ANTHROPIC_API_KEY, MISTRAL_API_KEY
  ALWRITY_MEMORY_LIMIT  soft memory limit of serve (default 32MiB; 0 for none); GOMEMLIMIT wins
  ALWRITY_RESERVATION_RETENTION  how long finished reservations are kept (default and least 840h = 35 days)
Run 'alwrity-billing COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		// Checked before the flag rule below: a bare --help asks about
		// the binary, not about serve.
		cmd, args = "help", args[1:]
	case len(args) > 0 && args[0] != "" && args[0][0] != '-':
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stdout, stderr, getenv)
	case "migrate":
		err = migrate(ctx, args, stderr, getenv)
	case "verify":
		err = verifyCmd(ctx, args, stdout, stderr, getenv)
	case "keys":
		err = keys(ctx, args, stdout, stderr, getenv)
	case "pricing":
		err = pricing(ctx, args, stdout, stderr, getenv)
	case "plans":
		err = plans(ctx, args, stdout, stderr, getenv)
	case "subscriptions":
		err = subscriptions(ctx, args, stdout, stderr, getenv)
	case "billing":
		err = billingCmd(ctx, args, stdout, stderr, getenv)
	case "version":
		err = version(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errChecksFailed):
		return 1
	}
	fmt.Fprintf(stderr, "alwrity-billing %s: %v\n", cmd, err)
	return 1
}

var (
	errUsage        = errors.New("usage error")
	errChecksFailed = errors.New("checks failed")
)

// newFlags returns a flag set whose --help prints the command's synopsis.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: alwrity-billing %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping flag errors to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// noArgs rejects positional arguments for a command that takes none.
func noArgs(fs *flag.FlagSet, stderr io.Writer) error {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// newLogger returns the service logger: JSON for machines by default,
// readable text in --dev.
func newLogger(w io.Writer, debug, dev bool) *slog.Logger {
	level := slog.LevelInfo
	if debug || dev {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if dev {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
