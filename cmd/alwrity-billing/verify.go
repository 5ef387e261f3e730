package main

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/alwrity/alwrity-billing/internal/verify"
)

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, envErr := loadConfig(getenv)
	fs := newFlags("verify", "verify [--database-url URL] [--url http://host:port]", stderr)
	cfg.DatabaseFlag(fs)
	base := fs.String("url", "", "also check the running server at this base URL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if *base != "" {
		if u, err := url.Parse(*base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageError(fs, stderr, "--url must be a server's http:// or https:// base URL, such as http://localhost:8000, got %q", *base)
		}
	}
	if err := configError(envErr, fs, cfg.ValidateDatabase(), "DATABASE_URL"); err != nil {
		return err
	}
	results := verify.Database(ctx, cfg.DatabaseURL)
	if *base != "" {
		results = append(results, verify.Server(ctx, *base, nil)...)
	}
	for _, r := range results {
		fmt.Fprintln(stdout, r)
	}
	if verify.Failed(results) {
		fmt.Fprintln(stdout, "verification FAILED")
		return errChecksFailed
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}
