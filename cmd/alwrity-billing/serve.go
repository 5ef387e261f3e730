package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/reload"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// loadConfig returns the defaults overridden by .env and the environment,
// and the problems found reading them. Those are not a failure yet: the
// caller parses its flags first (so --help works whatever the environment
// holds, and a flag can override a bad value) and then reports those that
// matter together with its own checks (configError).
func loadConfig(getenv func(string) string) (app.Config, error) {
	cfg := app.DefaultConfig()
	dotenv, dotErr := app.ReadDotEnv()
	envErr := cfg.FromEnv(app.WithDotEnv(getenv, dotenv))
	return cfg, errors.Join(dotErr, envErr)
}

// configError joins the problems found reading the environment that matter
// to a command (those of the settings in uses, or of every setting when
// uses is empty, that no flag parsed by fs overrides) with those the
// command's validation finds, under one heading.
func configError(envErr error, fs *flag.FlagSet, validErr error, uses ...string) error {
	if err := errors.Join(app.EnvProblems(envErr, fs, uses...), validErr); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

// runReload starts the rebuild-and-restart loop of serve --reload; tests
// replace it so that they never start a real build.
var runReload = reload.Run

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, envErr := loadConfig(getenv)
	fs := newFlags("serve", "serve [--dev] [--reload] [flags]", stderr)
	cfg.ServerFlags(fs)
	fs.BoolVar(&cfg.Dev, "dev", false, "development mode: readable debug logs; key-less requests from loopback act as admin")
	reloading := fs.Bool("reload", false, "rebuild and restart when a .go, .sql or template file changes (needs the source tree)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if err := configError(envErr, fs, cfg.Validate()); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Debug, cfg.Dev)
	if *reloading {
		// Outside the source tree every build would fail and the loop
		// would wait for a fix that cannot come.
		for _, p := range []string{"go.mod", filepath.Join("cmd", "alwrity-billing", "main.go")} {
			if _, err := os.Stat(p); err != nil {
				return fmt.Errorf("serve --reload rebuilds the server from its source: run it at the root of the alwrity-billing source tree (%w)", err)
			}
		}
		// The child gets every flag given except --reload, rebuilt from
		// the parsed set so that any spelling (-reload, --reload=true …)
		// is dropped and the child never reloads itself.
		child := []string{"serve"}
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "reload" {
				child = append(child, "--"+f.Name+"="+f.Value.String())
			}
		})
		logger.Info("reload mode: watching the source tree", "dir", ".")
		return runReload(ctx, reload.Config{Dir: ".", Package: "./cmd/alwrity-billing", Args: child, Logger: logger, Stdout: stdout, Stderr: stderr})
	}
	if limit, ok := cfg.SoftMemoryLimit(getenv); ok {
		prev := debug.SetMemoryLimit(limit)
		defer debug.SetMemoryLimit(prev) // tests run serve inside their own process
		logger.Info("soft memory limit set (ALWRITY_MEMORY_LIMIT; GOMEMLIMIT overrides it)", "bytes", limit)
	}
	if cfg.Dev {
		logger.Warn("!!! DEVELOPMENT MODE: requests from loopback WITHOUT a key act as ADMIN. Never use --dev in production. !!!")
	}
	a := app.New(cfg, logger, stdout)
	defer a.Close()
	if err := a.Open(ctx); err != nil {
		return err
	}
	return a.Run(ctx)
}

// migrate does what the seed's create_billing_tables.py did: it creates or
// upgrades the tables and adds the default plans and prices that were never
// seeded (an admin's edits and removals are kept).
func migrate(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, envErr := loadConfig(getenv)
	fs := newFlags("migrate", "migrate [--database-url URL]\n\nCreates or upgrades the tables and adds the default plans and prices never seeded before.", stderr)
	cfg.DatabaseFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if err := configError(envErr, fs, cfg.ValidateDatabase(), "DATABASE_URL"); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Debug, false)
	db, err := openStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := app.Migrate(ctx, db, logger); err != nil {
		return err
	}
	seeded, err := db.Seed(ctx, billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), time.Now())
	if err != nil {
		return fmt.Errorf("seed defaults: %w", err)
	}
	if seeded != (store.SeedResult{}) {
		logger.Info("default plans and prices seeded", "providers", seeded.Providers, "plans", seeded.Plans, "prices", seeded.Prices)
	}
	return nil
}

func version(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "alwrity-billing %s\n", app.Version)
	return nil
}
