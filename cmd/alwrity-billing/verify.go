package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alwrity/alwrity-billing/internal/verify"
)

func verifyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, envErr := loadConfig(getenv)
	fs := newFlags("verify", "verify [--database-url URL] [--url http://host:port]", stderr)
	cfg.DatabaseFlag(fs)
	url := fs.String("url", "", "also check the running server at this base URL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs, stderr); err != nil {
		return err
	}
	if err := configError(envErr, cfg.ValidateDatabase()); err != nil {
		return err
	}
	results := verify.Database(ctx, cfg.DatabaseURL)
	if *url != "" {
		results = append(results, verify.Server(ctx, *url, nil)...)
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
