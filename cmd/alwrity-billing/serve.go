package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/reload"
)

// loadConfig returns the defaults overridden by .env and the environment.
func loadConfig(getenv func(string) string) (app.Config, error) {
	cfg := app.DefaultConfig()
	if err := app.LoadDotEnv(); err != nil {
		return cfg, err
	}
	if err := cfg.FromEnv(getenv); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	fs := newFlags("serve", "serve [--dev] [--reload] [flags]", stderr)
	cfg.ServerFlags(fs)
	fs.BoolVar(&cfg.Dev, "dev", false, "development mode: readable debug logs; key-less requests from loopback act as admin")
	reloading := fs.Bool("reload", false, "rebuild and restart when a .go, .sql or template file changes (needs the source tree)")
	if err := parse(fs, args); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Debug, cfg.Dev)
	if *reloading {
		child := slices.DeleteFunc(append([]string{"serve"}, args...), func(a string) bool {
			return a == "--reload" || a == "-reload" || a == "--reload=true" || a == "-reload=true"
		})
		logger.Info("reload mode: watching the source tree", "dir", ".")
		return reload.Run(ctx, reload.Config{Dir: ".", Package: "./cmd/alwrity-billing", Args: child, Logger: logger, Stdout: stdout, Stderr: stderr})
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

func migrate(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	fs := newFlags("migrate", "migrate [--database-url URL]", stderr)
	cfg.DatabaseFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Debug, false)
	db, err := openStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return app.Migrate(ctx, db, logger)
}

func version(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "alwrity-billing %s\n", app.Version)
	return nil
}
