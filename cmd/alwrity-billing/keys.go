package main

import (
	"context"
	"fmt"
	"io"
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

func keys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, "Usage: alwrity-billing keys create --user ID | --admin [--name N]\n"+
			"       alwrity-billing keys list [--user ID]\n       alwrity-billing keys revoke PREFIX\n")
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	sub, args := args[0], args[1:]
	fs := newFlags("keys "+sub, "keys "+sub+" [flags]", stderr)
	cfg.DatabaseFlag(fs)
	user := fs.String("user", "", "the user id the key acts for")
	var admin *bool
	var name *string
	switch sub {
	case "create":
		admin = fs.Bool("admin", false, "create an admin key instead of a user key")
		name = fs.String("name", "", "a label to recognise the key by")
	case "list", "revoke":
	default:
		fmt.Fprintf(stderr, "unknown keys command %q (create, list, revoke)\n", sub)
		return errUsage
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	db, err := openStore(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := app.Migrate(ctx, db, newLogger(io.Discard, false, false)); err != nil {
		return err
	}
	now := time.Now()
	switch sub {
	case "create":
		k := billing.APIKey{UserID: *user, Role: billing.RoleUser, Name: *name, CreatedAt: now}
		switch {
		case *admin && *user != "":
			fmt.Fprintln(stderr, "give either --user or --admin, not both")
			return errUsage
		case *admin:
			k.Role = billing.RoleAdmin
		case *user == "":
			fmt.Fprintln(stderr, "keys create needs --user ID (or --admin)")
			return errUsage
		case len(*user) > 128:
			fmt.Fprintln(stderr, "--user must be at most 128 characters")
			return errUsage
		}
		key, prefix, hash := auth.NewKey()
		k.Prefix = prefix
		if _, err := db.CreateKey(ctx, k, hash); err != nil {
			return err
		}
		// Only the key goes to stdout, so scripts can capture it.
		fmt.Fprintln(stdout, key)
		fmt.Fprintf(stderr, "created %s key %s… — store it now, it is not shown again\n", k.Role, prefix)
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
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "keys revoke needs exactly one key prefix (see keys list)")
			return errUsage
		}
		prefix := fs.Arg(0)
		if len(prefix) > auth.PrefixLen {
			prefix = prefix[:auth.PrefixLen] // a whole key was given
		}
		if err := db.RevokeKey(ctx, prefix, now); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked %s\n", prefix)
	}
	return nil
}
