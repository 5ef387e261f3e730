package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
)

const plansUsage = `Usage: alwrity-billing plans list [--all]
           list the plans offered (--all: every plan, retired versions too)
       alwrity-billing plans create --name N --tier free|basic|pro|enterprise --monthly USD --yearly USD [limits] …
           create a plan (see plans create --help for the limit and overage flags)
       alwrity-billing plans edit PLAN-ID [--price …] [--move-now]
           make a new version of a plan with the flags given changed; subscribers move to it at renewal
           (or at once with --move-now)
       alwrity-billing plans activate PLAN-ID | deactivate PLAN-ID
           offer a plan to new subscribers again, or stop offering it
`

func plans(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	return runAdminGroup(ctx, "plans", plansUsage, args, stdout, stderr, getenv, func(sub string, _ app.Config) *adminCmd {
		switch sub {
		case "list":
			fs := newFlags("plans list", "plans list [--all] [--database-url URL]", stderr)
			all := fs.Bool("all", false, "every plan, inactive and retired versions too")
			return &adminCmd{fs: fs,
				check: func(args []string) error { return exactArgs(fs, stderr, args) },
				run: func(db *store.DB, _ time.Time) error {
					list, err := db.ListPlans(ctx, !*all)
					if err != nil {
						return err
					}
					return writePlanTable(stdout, list)
				}}
		case "create":
			fs := newFlags("plans create", "plans create --name N --tier T --monthly USD --yearly USD [flags]\n\n"+
				"Creates a plan. Limits apply per usage period (a month); a limit not given is unlimited, 0 means\n"+
				"not allowed. Amounts are exact decimal USD.", stderr)
			pf := planFlags(fs, true)
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args); err != nil {
						return err
					}
					return pf.check(fs, stderr, true)
				},
				run: func(db *store.DB, now time.Time) error {
					p := billing.Plan{IsActive: true, ProviderLimits: map[string]billing.ProviderLimit{}}
					if err := pf.apply(ctx, db, &p); err != nil {
						return err
					}
					id, err := db.CreatePlan(ctx, p, now)
					if err != nil {
						return err
					}
					created, err := db.GetPlan(ctx, id)
					if err != nil {
						return err
					}
					return writePlanTable(stdout, []billing.Plan{created})
				}}
		case "edit":
			fs := newFlags("plans edit", "plans edit PLAN-ID [flags] [--move-now]\n\n"+
				"Makes a new version of the plan holding its current settings with the flags given changed. The old\n"+
				"version is renamed \"NAME (version N)\" and no longer offered; subscribers move to the new version at\n"+
				"their next renewal, or at once with --move-now. Only the newest version can be edited.", stderr)
			pf := planFlags(fs, false)
			moveNow := fs.Bool("move-now", false, "move the plan's subscribers to the new version now")
			var id int64
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "PLAN-ID"); err != nil {
						return err
					}
					var err error
					if id, err = parseID(fs, stderr, "PLAN-ID", args[0]); err != nil {
						return err
					}
					if pf.set(fs) == 0 {
						return usageError(fs, stderr, "plans edit needs at least one setting to change")
					}
					return pf.check(fs, stderr, false)
				},
				run: func(db *store.DB, now time.Time) error {
					p, err := db.GetPlan(ctx, id)
					if err != nil {
						return err
					}
					if err := pf.apply(ctx, db, &p); err != nil {
						return err
					}
					p.IsActive = true
					res, err := db.EditPlan(ctx, id, p, *moveNow, now)
					if err != nil {
						return err
					}
					if err := writePlanTable(stdout, []billing.Plan{res.Plan, res.Previous}); err != nil {
						return err
					}
					fmt.Fprintf(stderr, "plan %d is now version %d (plan %d); %d subscriptions moved now\n",
						id, res.Plan.Version, res.Plan.ID, res.Moved)
					return nil
				}}
		case "activate", "deactivate":
			fs := newFlags("plans "+sub, "plans "+sub+" PLAN-ID [--database-url URL]", stderr)
			var id int64
			return &adminCmd{fs: fs,
				check: func(args []string) error {
					if err := exactArgs(fs, stderr, args, "PLAN-ID"); err != nil {
						return err
					}
					var err error
					id, err = parseID(fs, stderr, "PLAN-ID", args[0])
					return err
				},
				run: func(db *store.DB, now time.Time) error {
					p, err := db.SetPlanActive(ctx, id, sub == "activate", now)
					if err != nil {
						return err
					}
					return writePlanTable(stdout, []billing.Plan{p})
				}}
		}
		return nil
	})
}

// limitFlag is a limit given on the command line: a count, or
// "unlimited".
type limitFlag struct {
	v   *int64
	set bool
}

func (f *limitFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	if f.v == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*f.v, 10)
}

func (f *limitFlag) Set(s string) error {
	v, err := parseLimit(s)
	if err != nil {
		return err
	}
	f.v, f.set = v, true
	return nil
}

func parseLimit(s string) (*int64, error) {
	if s == "unlimited" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, errors.New(`not a count (0 or more) or "unlimited"`)
	}
	return &n, nil
}

// providerLimitsFlag collects PROVIDER=LIMIT pairs.
type providerLimitsFlag map[string]*int64

func (f providerLimitsFlag) String() string { return "" }

func (f providerLimitsFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New(`not PROVIDER=LIMIT, such as openai=1000 or openai=unlimited`)
	}
	v, err := parseLimit(value)
	if err != nil {
		return err
	}
	f[name] = v
	return nil
}

// listFlag collects a repeated string flag.
type listFlag struct {
	v   []string
	set bool
}

func (f *listFlag) String() string { return strings.Join(f.v, ", ") }

func (f *listFlag) Set(s string) error {
	f.v, f.set = append(f.v, s), true
	return nil
}

// planSettings holds the plan flags of create and edit.
type planSettings struct {
	name, tier, description       *string
	monthly, yearly               amountFlag
	features                      listFlag
	calls                         limitFlag
	costLimit                     amountFlag
	noCostLimit                   *bool
	providerCalls, providerTokens providerLimitsFlag
	softLimits                    *bool
	overagePerCall, overagePer1K  amountFlag
	noOverage                     *bool
	inactive                      *bool
}

func planFlags(fs *flag.FlagSet, creating bool) *planSettings {
	c := &planSettings{providerCalls: providerLimitsFlag{}, providerTokens: providerLimitsFlag{}}
	c.name = fs.String("name", "", "the plan's name people read")
	c.tier = fs.String("tier", "", "ALwrity's tier: free, basic, pro or enterprise")
	c.description = fs.String("description", "", "a description")
	fs.Var(&c.monthly, "monthly", "`USD` per monthly cycle")
	fs.Var(&c.yearly, "yearly", "`USD` per yearly cycle")
	fs.Var(&c.features, "feature", "a `feature` to list (repeat for several; replaces the list when editing)")
	fs.Var(&c.calls, "calls", "calls per period: a `count` or unlimited")
	fs.Var(&c.costLimit, "cost-limit", "`USD` of provider cost per period (a hard limit)")
	c.noCostLimit = fs.Bool("no-cost-limit", false, "remove the cost limit")
	fs.Var(c.providerCalls, "provider-calls", "`PROVIDER=LIMIT` calls per period for one provider, such as openai=1000 (repeat)")
	fs.Var(c.providerTokens, "provider-tokens", "`PROVIDER=LIMIT` tokens per period for one provider (repeat)")
	c.softLimits = fs.Bool("soft-limits", false, "admit calls above the call and token limits and bill them as overage")
	fs.Var(&c.overagePerCall, "overage-per-call", "`USD` per call above --calls (soft limits)")
	fs.Var(&c.overagePer1K, "overage-per-1k-tokens", "`USD` per 1,000 tokens above a provider's token limit (soft limits)")
	c.noOverage = fs.Bool("no-overage", false, "remove the overage prices")
	if creating {
		c.inactive = fs.Bool("inactive", false, "create the plan without offering it yet")
	}
	return c
}

// set counts the plan settings given.
func (c *planSettings) set(fs *flag.FlagSet) int {
	n := 0
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "move-now" && f.Name != "database-url" {
			n++
		}
	})
	return n
}

func (c *planSettings) check(fs *flag.FlagSet, stderr io.Writer, creating bool) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if creating {
		var missing []string
		for _, f := range []string{"name", "tier", "monthly", "yearly"} {
			if !given[f] {
				missing = append(missing, "--"+f)
			}
		}
		if len(missing) > 0 {
			return usageError(fs, stderr, "plans create needs %s", strings.Join(missing, ", "))
		}
	}
	if given["name"] && strings.TrimSpace(*c.name) == "" {
		return usageError(fs, stderr, "--name must not be empty")
	}
	if given["tier"] && !slices.Contains([]string{"free", "basic", "pro", "enterprise"}, *c.tier) {
		return usageError(fs, stderr, "--tier must be free, basic, pro or enterprise, got %q", *c.tier)
	}
	for name, a := range map[string]amountFlag{"monthly": c.monthly, "yearly": c.yearly, "cost-limit": c.costLimit,
		"overage-per-call": c.overagePerCall, "overage-per-1k-tokens": c.overagePer1K} {
		if a.v != nil && *a.v < 0 {
			return usageError(fs, stderr, "--%s must not be negative", name)
		}
	}
	if given["cost-limit"] && *c.noCostLimit {
		return usageError(fs, stderr, "give either --cost-limit or --no-cost-limit")
	}
	if (given["overage-per-call"] || given["overage-per-1k-tokens"]) && *c.noOverage {
		return usageError(fs, stderr, "give either overage prices or --no-overage")
	}
	if creating && !*c.softLimits && (given["overage-per-call"] || given["overage-per-1k-tokens"]) {
		return usageError(fs, stderr, "overage prices apply only to a plan with --soft-limits")
	}
	return nil
}

// apply sets the flags given on p. Errors: invalid (an unknown provider,
// or token limits for a provider not metered in tokens, or overage prices
// without soft limits).
func (c *planSettings) apply(ctx context.Context, db *store.DB, p *billing.Plan) error {
	providers, err := db.ListProviders(ctx)
	if err != nil {
		return err
	}
	if *c.name != "" {
		p.Name = *c.name
	}
	if *c.tier != "" {
		p.Tier = *c.tier
	}
	if *c.description != "" {
		p.Description = *c.description
	}
	if c.monthly.v != nil {
		p.PriceMonthly = *c.monthly.v
	}
	if c.yearly.v != nil {
		p.PriceYearly = *c.yearly.v
	}
	if c.features.set {
		p.Features = c.features.v
	}
	if c.calls.set {
		p.TotalCallsLimit = c.calls.v
	}
	switch {
	case c.costLimit.v != nil:
		p.MonthlyCostLimit = c.costLimit.v
	case *c.noCostLimit:
		p.MonthlyCostLimit = nil
	}
	if p.ProviderLimits == nil {
		p.ProviderLimits = map[string]billing.ProviderLimit{}
	}
	for _, pair := range []struct {
		m      providerLimitsFlag
		tokens bool
	}{{c.providerCalls, false}, {c.providerTokens, true}} {
		for name, v := range pair.m {
			i := slices.IndexFunc(providers, func(p billing.Provider) bool { return p.Name == name })
			if i < 0 {
				return billing.Errorf(billing.CodeInvalid, "unknown provider %q", name)
			}
			l := p.ProviderLimits[name]
			if pair.tokens {
				if !providers[i].MetersTokens {
					return billing.Errorf(billing.CodeInvalid, "%s is not metered in tokens", name)
				}
				l.Tokens = v
			} else {
				l.Calls = v
			}
			p.ProviderLimits[name] = l
		}
	}
	if *c.softLimits {
		p.SoftLimits = true
	}
	if c.overagePerCall.v != nil {
		p.OveragePerCall = c.overagePerCall.v
	}
	if c.overagePer1K.v != nil {
		p.OveragePer1KTokens = c.overagePer1K.v
	}
	if *c.noOverage {
		p.SoftLimits, p.OveragePerCall, p.OveragePer1KTokens = false, nil, nil
	}
	if !p.SoftLimits && (p.OveragePerCall != nil || p.OveragePer1KTokens != nil) {
		return billing.Errorf(billing.CodeInvalid, "overage prices apply only to a plan with --soft-limits")
	}
	if c.inactive != nil && *c.inactive {
		p.IsActive = false
	}
	return nil
}

func writePlanTable(w io.Writer, list []billing.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTIER\tVERSION\tMONTHLY\tYEARLY\tCALLS\tCOST LIMIT\tPROVIDER LIMITS\tOVERAGE\tSTATUS")
	for _, p := range list {
		calls, cost := "unlimited", "-"
		if p.TotalCallsLimit != nil {
			calls = strconv.FormatInt(*p.TotalCallsLimit, 10)
		}
		if p.MonthlyCostLimit != nil {
			cost = p.MonthlyCostLimit.String()
		}
		var limits []string
		names := make([]string, 0, len(p.ProviderLimits))
		for n := range p.ProviderLimits {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			l := p.ProviderLimits[n]
			if l.Calls != nil {
				limits = append(limits, fmt.Sprintf("%s=%d calls", n, *l.Calls))
			}
			if l.Tokens != nil {
				limits = append(limits, fmt.Sprintf("%s=%d tokens", n, *l.Tokens))
			}
		}
		overage := "-"
		if p.SoftLimits {
			overage = "soft limits"
			if p.OveragePerCall != nil {
				overage += ", " + p.OveragePerCall.String() + "/call"
			}
			if p.OveragePer1KTokens != nil {
				overage += ", " + p.OveragePer1KTokens.String() + "/1k tokens"
			}
		}
		status := "active"
		switch {
		case p.ReplacedBy != nil:
			status = fmt.Sprintf("replaced by %d", *p.ReplacedBy)
		case !p.IsActive:
			status = "inactive"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Name, p.Tier, max(p.Version, 1),
			p.PriceMonthly, p.PriceYearly, calls, cost, orDash(strings.Join(limits, ", ")), overage, status)
	}
	return tw.Flush()
}
