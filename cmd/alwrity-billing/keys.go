package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// openStore opens and migrates the database for a one-shot command.
func openStore(ctx context.Context, url string) (*store.DB, error) {
	return store.Open(ctx, url, nil)
}

// openMigrated opens the database of a one-shot admin command and brings
// its tables up to date, quietly; the caller closes it.
func openMigrated(ctx context.Context, url string) (*store.DB, error) {
	db, err := openStore(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := app.Migrate(ctx, db, newLogger(io.Discard, false, false)); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// openSeeded is openMigrated plus the default providers, plans and prices
// the server seeds at start, so that admin commands work before the first
// start. It returns the time it seeded at.
func openSeeded(ctx context.Context, url string) (*store.DB, time.Time, error) {
	db, err := openMigrated(ctx, url)
	if err != nil {
		return nil, time.Time{}, err
	}
	now := time.Now()
	if _, err := db.Seed(ctx, billing.DefaultProviders(), billing.DefaultPlans(), billing.DefaultPrices(), now); err != nil {
		db.Close()
		return nil, now, fmt.Errorf("seed defaults: %w", err)
	}
	return db, now, nil
}

const keysUsage = `Usage: alwrity-billing keys create --user ID [--name N]   create a user key; prints only the key
       alwrity-billing keys create --admin [--name N]     create an admin key
       alwrity-billing keys list [--user ID]              list keys (prefixes only, never secrets)
       alwrity-billing keys revoke PREFIX                 revoke a key by its prefix (or the whole key)
`

func keys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if done, err := groupUsage(args, keysUsage, stdout, stderr); done {
		return err
	}
	cfg, envErr := loadConfig(getenv)
	sub, args := args[0], args[1:]
	var fs *flag.FlagSet
	var user, name *string
	var admin *bool
	switch sub {
	case "create":
		fs = newFlags("keys create", "keys create --user ID | --admin [--name N] [--database-url URL]", stderr)
		user = fs.String("user", "", "the user id the key acts for")
		admin = fs.Bool("admin", false, "create an admin key instead of a user key")
		name = fs.String("name", "", "a label to recognise the key by")
	case "list":
		fs = newFlags("keys list", "keys list [--user ID] [--database-url URL]", stderr)
		user = fs.String("user", "", "list only this user's keys")
	case "revoke":
		fs = newFlags("keys revoke", "keys revoke PREFIX [--database-url URL]", stderr)
	default:
		fmt.Fprintf(stderr, "unknown keys command %q\n\n%s", sub, keysUsage)
		return errUsage
	}
	cfg.DatabaseFlag(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	// Usage errors are caught before the database is opened, so a typo
	// never creates or migrates one.
	var prefix string
	var spec auth.KeySpec
	switch sub {
	case "create":
		spec = auth.KeySpec{Role: billing.RoleUser, UserID: *user, Name: *name}
		if *admin {
			spec.Role = billing.RoleAdmin
		}
		switch {
		case *admin && *user != "":
			fmt.Fprintln(stderr, "give either --user or --admin, not both")
			return errUsage
		case !*admin && strings.TrimSpace(*user) == "":
			fmt.Fprintln(stderr, "keys create needs --user ID (or --admin)")
			return errUsage
		}
		// The API checks keys it issues the same way (auth.Issue).
		if problems := spec.Problems(""); len(problems) > 0 {
			flags := map[string]string{"user_id": "--user", "name": "--name"}
			for _, p := range problems {
				fmt.Fprintf(stderr, "%s %s\n", flags[p.Location], p.Message)
			}
			return errUsage
		}
		if err := exactArgs(fs, stderr, positional); err != nil {
			return err
		}
	case "list":
		if err := exactArgs(fs, stderr, positional); err != nil {
			return err
		}
	case "revoke":
		if len(positional) != 1 {
			fmt.Fprintln(stderr, "keys revoke needs exactly one key prefix (see keys list)")
			return errUsage
		}
		prefix = positional[0]
		if len(prefix) > auth.PrefixLen {
			prefix = prefix[:auth.PrefixLen] // a whole key was given
		}
	}
	if err := configError(envErr, fs, cfg.ValidateDatabase(), "DATABASE_URL"); err != nil {
		return err
	}
	db, err := openMigrated(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now()
	switch sub {
	case "create":
		key, k, err := auth.Issue(ctx, db, spec, now)
		if err != nil {
			return err
		}
		// Only the key goes to stdout, so scripts can capture it.
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "created %s key %s… — store it now, it is not shown again\n", k.Role, k.Prefix)
	case "list":
		list, err := db.ListKeys(ctx, *user)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PREFIX\tROLE\tUSER\tNAME\tCREATED\tLAST USED\tSTATUS")
		for _, k := range list {
			last, status := "never", "active"
			if k.LastUsedAt != nil {
				last = k.LastUsedAt.Format(time.RFC3339)
			}
			if k.RevokedAt != nil {
				status = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.Role, k.UserID, k.Name, k.CreatedAt.Format(time.RFC3339), last, status)
		}
		return tw.Flush()
	case "revoke":
		if err := db.RevokeKey(ctx, prefix, now); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", prefix)
	}
	return nil
}
