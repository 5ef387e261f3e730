package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

const subscriptionsUsage = `Usage: alwrity-billing subscriptions subscribe USER --plan PLAN-ID [--cycle monthly|yearly] [--immediate] [--time-zone TZ]
           start or change a user's subscription (an upgrade at once, prorated; a downgrade at the cycle's end
           unless --immediate)
       alwrity-billing subscriptions cancel USER [--immediate]
           cancel at the end of the cycle, or at once with the unused part credited
       alwrity-billing subscriptions show USER
           the user's current subscription and plan
       alwrity-billing subscriptions history USER [--limit N]
           the user's subscription changes and renewals, newest first
`

func subscriptions(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runAdminGroup(ctx, "subscriptions", subscriptionsUsage, args, stdout, stderr, getenv, func(sub string, _ app.Config) *adminCmd {
		var user string
		switch sub {
		case "subscribe":
			fs := newFlags("subscriptions subscribe", "subscriptions subscribe USER --plan PLAN-ID [--cycle monthly|yearly] [--immediate] [--time-zone TZ]\n\n"+
				"Starts a subscription, or changes the current one: a dearer plan in the same cycle takes effect at once\n"+
				"with the price difference for the rest of the cycle on the next invoice; a cheaper plan or another\n"+
				"cycle waits for the end of the cycle unless --immediate (then the unused difference is credited).", stderr)
			plan := fs.Int64("plan", 0, "the plan's id (see plans list)")
			cycle := fs.String("cycle", billing.CycleMonthly, "the billing cycle: monthly or yearly")
			immediate := fs.Bool("immediate", false, "switch to a cheaper plan now, crediting the unused difference")
			tz := fs.String("time-zone", "", "IANA time zone of a new subscription's periods (default UTC)")
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "USER"); err != nil {
						return err
					}
					user = args[0]
					switch {
					case *plan < 1:
						return usageError(fs, stderr, "subscriptions subscribe needs --plan PLAN-ID (see plans list)")
					case !billing.ValidCycle(*cycle):
						return usageError(fs, stderr, "--cycle must be monthly or yearly, got %q", *cycle)
					}
					if *tz != "" {
						if _, err := time.LoadLocation(*tz); err != nil {
							return usageError(fs, stderr, "--time-zone %q is not a known time zone", *tz)
						}
					}
					return checkUser(fs, stderr, user)
				},
				run: func(db *store.DB, now time.Time) error {
					r, err := db.Subscribe(ctx, user, *plan, *cycle, store.SubscribeOptions{Immediate: *immediate, TimeZone: *tz}, now)
					if err != nil {
						return err
					}
					return writeChange(ctx, db, stdout, r, string(r.Outcome))
				}}
		case "cancel":
			fs := newFlags("subscriptions cancel", "subscriptions cancel USER [--immediate]", stderr)
			immediate := fs.Bool("immediate", false, "cancel now and credit the unused part of the cycle")
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "USER"); err != nil {
						return err
					}
					user = args[0]
					return checkUser(fs, stderr, user)
				},
				run: func(db *store.DB, now time.Time) error {
					r, err := db.Cancel(ctx, user, *immediate, now)
					if err != nil {
						return err
					}
					change := "cancel scheduled"
					if *immediate {
						change, r.EffectiveAt = "cancelled", *r.Subscription.CancelledAt
					}
					return writeChange(ctx, db, stdout, r, change)
				}}
		case "show":
			fs := newFlags("subscriptions show", "subscriptions show USER", stderr)
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "USER"); err != nil {
						return err
					}
					user = args[0]
					return checkUser(fs, stderr, user)
				},
				run: func(db *store.DB, _ time.Time) error {
					s, err := db.CurrentSubscription(ctx, user)
					if err != nil {
						return err
					}
					if s == nil {
						p, err := db.DefaultPlan(ctx)
						if err != nil {
							return err
						}
						fmt.Fprintf(stdout, "user %s has no subscription: on plan %s (%d)\n", user, p.Name, p.ID)
						return nil
					}
					p, err := db.GetPlan(ctx, s.PlanID)
					if err != nil {
						return err
					}
					return writeChange(ctx, db, stdout, store.ChangeResult{Subscription: *s, Plan: p}, "")
				}}
		case "history":
			fs := newFlags("subscriptions history", "subscriptions history USER [--limit N]", stderr)
			limit := fs.Int("limit", 100, "at most this many entries")
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "USER"); err != nil {
						return err
					}
					user = args[0]
					if *limit < 1 || *limit > 10000 {
						return usageError(fs, stderr, "--limit must be between 1 and 10000")
					}
					return checkUser(fs, stderr, user)
				},
				run: func(db *store.DB, _ time.Time) error {
					hist, err := db.SubscriptionHistory(ctx, user, *limit)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "EFFECTIVE AT\tEVENT\tFROM\tTO\tCYCLE\tPERIOD\tCALLS\tTOKENS\tCOST")
					for _, h := range hist {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s – %s\t%d\t%d\t%s\n", h.EffectiveAt.UTC().Format(time.RFC3339), h.Event,
							orDash(h.FromPlanName), orDash(h.ToPlanName), h.BillingCycle, h.Period.Start.UTC().Format(time.RFC3339),
							h.Period.End.UTC().Format(time.RFC3339), h.UsageCalls, h.UsageTokens, h.UsageCost)
					}
					return tw.Flush()
				}}
		}
		return nil
	})
}

// writeChange prints a subscription after a change ("" for none).
func writeChange(ctx context.Context, db *store.DB, w io.Writer, r store.ChangeResult, change string) error {
	s := r.Subscription
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if change != "" {
		fmt.Fprintf(tw, "change:\t%s\n", change)
		if !r.EffectiveAt.IsZero() {
			fmt.Fprintf(tw, "effective at:\t%s\n", r.EffectiveAt.UTC().Format(time.RFC3339))
		}
	}
	fmt.Fprintf(tw, "user:\t%s\n", s.UserID)
	fmt.Fprintf(tw, "subscription:\t%d\n", s.ID)
	fmt.Fprintf(tw, "plan:\t%s (%d)\n", r.Plan.Name, r.Plan.ID)
	fmt.Fprintf(tw, "cycle:\t%s, %s – %s\n", s.BillingCycle, s.CurrentPeriodStart.UTC().Format(time.RFC3339), s.CurrentPeriodEnd.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "status:\t%s\n", s.Status)
	fmt.Fprintf(tw, "auto renew:\t%t\n", s.AutoRenew)
	if s.PendingPlanID != nil {
		name := fmt.Sprint(*s.PendingPlanID)
		if p, err := db.GetPlan(ctx, *s.PendingPlanID); err == nil {
			name = fmt.Sprintf("%s (%d)", p.Name, p.ID)
		}
		fmt.Fprintf(tw, "at the cycle's end:\tmoves to %s, %s\n", name, orDash(s.PendingCycle))
	}
	if s.CancelAtPeriodEnd {
		fmt.Fprintf(tw, "at the cycle's end:\tcancelled\n")
	}
	if s.CancelledAt != nil {
		fmt.Fprintf(tw, "cancelled at:\t%s\n", orNone(s.CancelledAt))
	}
	return tw.Flush()
}
