package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/httpapi"
	"github.com/alwrity/alwrity-billing/internal/store"
)

const billingUsage = `Usage: alwrity-billing billing close [--at TIME]
           close every usage period that ended an hour before now (or TIME): one invoice per subscription and period,
           then renewals, expiries and cancellations (the server does this every minute)
       alwrity-billing billing invoices [--user USER] [--period YYYY-MM] [--limit N]
           list invoices, newest period first
       alwrity-billing billing export --period YYYY-MM [--user USER] > invoices.csv
           write the invoices of a period as CSV (RFC 4180, a header row, exact decimal USD)
       alwrity-billing billing mark INVOICE-ID paid|void
           mark an issued invoice paid or void (both are final)
       alwrity-billing billing purge-reservations [--older-than DURATION]
           delete the finished reservations older than the retention (at least 35 days; the server does this hourly)
`

func billingCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runAdminGroup(ctx, "billing", billingUsage, args, stdout, stderr, getenv, func(sub string, cfg app.Config) *adminCmd {
		switch sub {
		case "close":
			fs := newFlags("billing close", "billing close [--at TIME] [--database-url URL]\n\n"+
				"Closes every usage period that ended an hour before TIME (default now; the hour lets calls in flight\n"+
				"at its end settle into it), oldest first. Closing again, or while a\n"+
				"server closes too, never writes an invoice twice.", stderr)
			var at timeFlag
			fs.Var(&at, "at", "close the periods that ended an hour before this RFC 3339 `TIME` instead of now")
			return &adminCmd{fs: fs,
				check: func(args []string) error { return exactArgs(fs, stderr, args) },
				run: func(db *store.DB, now time.Time) error {
					if at.t != nil {
						now = *at.t
					}
					n, err := db.CloseDue(ctx, now, 1<<30)
					if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "closed %d usage periods up to %s\n", n, now.UTC().Format(time.RFC3339))
					return nil
				}}
		case "invoices", "export":
			synopsis := "billing invoices [--user USER] [--period YYYY-MM] [--limit N]"
			if sub == "export" {
				synopsis = "billing export --period YYYY-MM [--user USER] > invoices.csv\n\n" +
					"Writes the period's invoices as CSV to standard output: a header row, one row per invoice, CRLF line\n" +
					"ends, money as exact decimal USD, times as RFC 3339 UTC."
			}
			fs := newFlags("billing "+sub, synopsis, stderr)
			user := fs.String("user", "", "only this user's invoices")
			period := fs.String("period", "", "only this usage period (`YYYY-MM`)")
			limit := new(int)
			if sub == "invoices" {
				limit = fs.Int("limit", 100, "at most this many invoices")
			}
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args); err != nil {
						return err
					}
					if sub == "export" && *period == "" {
						return usageError(fs, stderr, "billing export needs --period YYYY-MM")
					}
					if *period != "" {
						if _, _, err := billing.ParsePeriodKey(*period); err != nil {
							return usageError(fs, stderr, "--period must be a month in the form YYYY-MM, got %q", *period)
						}
					}
					if sub == "invoices" && (*limit < 1 || *limit > 10000) {
						return usageError(fs, stderr, "--limit must be between 1 and 10000")
					}
					return checkUser(fs, stderr, *user)
				},
				run: func(db *store.DB, _ time.Time) error {
					f := store.InvoiceFilter{UserID: *user, BillingPeriod: *period, Limit: *limit}
					if sub == "export" {
						invs, err := httpapi.AllInvoices(ctx, db, f)
						if err != nil {
							return err
						}
						w := bufio.NewWriter(stdout)
						if err := httpapi.WriteInvoicesCSV(w, invs); err != nil {
							return err
						}
						if err := w.Flush(); err != nil {
							return err
						}
						fmt.Fprintf(stderr, "exported %d invoices\n", len(invs))
						return nil
					}
					invs, total, err := db.Invoices(ctx, f)
					if err != nil {
						return err
					}
					if err := writeInvoiceTable(stdout, invs); err != nil {
						return err
					}
					if total > len(invs) {
						fmt.Fprintf(stderr, "%d of %d invoices shown (--limit)\n", len(invs), total)
					}
					return nil
				}}
		case "purge-reservations":
			fs := newFlags("billing purge-reservations", "billing purge-reservations [--older-than DURATION] [--database-url URL]\n\n"+
				"Deletes the reservations that finished (settled, released or expired) more than DURATION ago, in short\n"+
				"transactions. Held reservations are never deleted. DURATION defaults to ALWRITY_RESERVATION_RETENTION, or\n"+
				"840h (35 days), the least allowed: a settle resent within it must still find its reservation. The server\n"+
				"does this every hour.", stderr)
			retention := store.ReservationRetention
			if cfg.ReservationRetention > 0 {
				retention = cfg.ReservationRetention
			}
			fs.DurationVar(&retention, "older-than", retention, "delete the reservations that finished more than this `DURATION` ago (at least 840h)")
			return &adminCmd{fs: fs, uses: []string{"ALWRITY_RESERVATION_RETENTION"},
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args); err != nil {
						return err
					}
					if retention >= store.ReservationRetention {
						return nil
					}
					// Name where the value came from: the flag, or else the environment.
					from := "ALWRITY_RESERVATION_RETENTION"
					fs.Visit(func(f *flag.Flag) {
						if f.Name == "older-than" {
							from = "--older-than"
						}
					})
					msg := fmt.Sprintf("%s must be at least %s (35 days: resent settles must find their reservation), got %s",
						from, store.ReservationRetention, retention)
					if from == "--older-than" {
						return usageError(fs, stderr, "%s", msg)
					}
					return configError(nil, fs, errors.New(msg))
				},
				run: func(db *store.DB, now time.Time) error {
					n, err := db.PurgeReservations(ctx, now, retention, 1<<30)
					if err != nil {
						return fmt.Errorf("purged %d reservations, then: %w", n, err)
					}
					fmt.Fprintf(stdout, "purged %d reservations that finished before %s\n", n, now.Add(-retention).UTC().Format(time.RFC3339))
					return nil
				}}
		case "mark":
			fs := newFlags("billing mark", "billing mark INVOICE-ID paid|void", stderr)
			var id int64
			var status string
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "INVOICE-ID", "paid|void"); err != nil {
						return err
					}
					var err error
					if id, err = parseID(fs, stderr, "INVOICE-ID", args[0]); err != nil {
						return err
					}
					status = args[1]
					if status != billing.InvoicePaid && status != billing.InvoiceVoid {
						return usageError(fs, stderr, "an invoice can be marked paid or void, not %q", status)
					}
					return nil
				},
				run: func(db *store.DB, now time.Time) error {
					inv, err := db.SetInvoiceStatus(ctx, id, status, now)
					if err != nil {
						return err
					}
					return writeInvoiceTable(stdout, []billing.Invoice{inv})
				}}
		}
		return nil
	})
}

func writeInvoiceTable(w io.Writer, invs []billing.Invoice) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNUMBER\tUSER\tPERIOD\tPLAN\tBASE\tOVERAGE\tCREDITS\tTOTAL\tCALLS\tTOKENS\tSTATUS\tISSUED\tPAID\tVOIDED")
	for _, inv := range invs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", inv.ID, inv.Number, inv.UserID,
			inv.Period.Key, inv.PlanName, inv.Base, inv.Overage, inv.Credits, inv.Total, inv.Calls, inv.Tokens, inv.Status,
			orNone(inv.IssuedAt), orNone(inv.PaidAt), orNone(inv.VoidedAt))
	}
	return tw.Flush()
}
