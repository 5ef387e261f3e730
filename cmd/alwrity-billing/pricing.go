package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
	"github.com/alwrity/alwrity-billing/internal/store"
)

const pricingUsage = `Usage: alwrity-billing pricing list [--provider P] [--model M] [--history]
           list the prices in effect now, or every version
       alwrity-billing pricing add --provider P --model M --input X --output Y [--cached-input X] … [--effective-from T]
           add a price version (amounts in USD per token, exact decimals)
       alwrity-billing pricing import FILE [--format alwrity|litellm] [--effective-from T] [--dry-run]
           import a pricing file ("-" reads standard input); LiteLLM's model_prices_and_context_window.json too
       alwrity-billing pricing export [--history]
           write the prices (and model aliases) as a pricing file to standard output
`

// pricingStdin is what "pricing import -" reads; tests replace it.
var pricingStdin io.Reader = os.Stdin

func pricing(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if done, err := groupUsage(args, pricingUsage, stdout, stderr); done {
		return err
	}
	cfg, envErr := loadConfig(getenv)
	sub, args := args[0], args[1:]
	var (
		cmd func(db *store.DB, now time.Time) error
		fs  *flag.FlagSet
		add *addCmd
		imp *importCmd
	)
	switch sub {
	case "list":
		fs = newFlags("pricing list", "pricing list [--provider P] [--model M] [--history] [--database-url URL]", stderr)
		provider := fs.String("provider", "", "only this provider's prices")
		model := fs.String("model", "", "only this model's prices")
		hist := fs.Bool("history", false, "every version, newest first within a model, instead of those in effect now")
		cmd = func(db *store.DB, now time.Time) error {
			return pricingList(ctx, db, stdout, *provider, *model, *hist, now)
		}
	case "add":
		fs = newFlags("pricing add", "pricing add --provider P --model M --input X --output Y [flags]\n\n"+
			"Adds a version of a model's price. Amounts are exact decimal USD per token (or per request, search,\n"+
			"image or page), such as 0.0000025 or 2.5e-6. Versions are never rewritten: to change a price, add a\n"+
			"version with a later --effective-from.", stderr)
		add = addFlags(fs)
		cmd = func(db *store.DB, now time.Time) error { return add.run(ctx, db, stdout, now) }
	case "import":
		fs = newFlags("pricing import", "pricing import FILE [--format alwrity|litellm] [--effective-from T] [--dry-run]\n\n"+
			"Adds each price of FILE (\"-\" for standard input) that differs from the version in effect at its time;\n"+
			"entries without their own effective_from take effect at --effective-from (default now). One bad entry\n"+
			"refuses the whole file.", stderr)
		imp = importFlags(fs)
		cmd = func(db *store.DB, now time.Time) error { return imp.run(ctx, db, stdout, now) }
	case "export":
		fs = newFlags("pricing export", "pricing export [--history] [--database-url URL]\n\n"+
			"Writes the prices in effect now and those scheduled after now (or every version) and the model\n"+
			"aliases to standard output, in the\n"+
			"format pricing import reads.", stderr)
		hist := fs.Bool("history", false, "every version instead of those in effect now and those scheduled")
		cmd = func(db *store.DB, now time.Time) error { return pricingExport(ctx, db, stdout, *hist, now) }
	default:
		fmt.Fprintf(stderr, "unknown pricing command %q\n\n%s", sub, pricingUsage)
		return errUsage
	}
	cfg.DatabaseFlag(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	// Usage errors, and a file that cannot be read, are caught before the
	// database is opened, so a typo never creates or migrates one.
	switch {
	case imp != nil:
		if len(positional) != 1 {
			fmt.Fprintln(stderr, "pricing import needs exactly one FILE (\"-\" for standard input)")
			fs.Usage()
			return errUsage
		}
		if err := imp.check(stderr); err != nil {
			return err
		}
		if err := imp.read(positional[0]); err != nil {
			return err
		}
	case len(positional) > 0:
		fmt.Fprintf(stderr, "unexpected argument %q\n", positional[0])
		fs.Usage()
		return errUsage
	case add != nil:
		if err := add.check(stderr); err != nil {
			return err
		}
	}
	if err := configError(envErr, fs, cfg.ValidateDatabase(), "DATABASE_URL"); err != nil {
		return err
	}
	// The server seeds the default providers, plans and prices at start;
	// so does this, so that a price can be added before the first start.
	db, now, err := openSeeded(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	return cmd(db, now)
}

// parseInterspersed parses flags that may come before and after the
// positional arguments ("import FILE --dry-run"), which the flag package
// alone stops at, and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		rest := fs.Args()
		if rest[0] == "--" {
			return append(positional, rest[1:]...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// amountFlag is an exact money amount given on the command line.
type amountFlag struct{ v *money.Amount }

func (f *amountFlag) String() string {
	if f == nil || f.v == nil {
		return ""
	}
	return f.v.String()
}

func (f *amountFlag) Set(s string) error {
	a, err := money.Parse(s)
	if err != nil {
		return errors.New("not an exact decimal amount in USD")
	}
	f.v = &a
	return nil
}

// timeFlag is an RFC 3339 time given on the command line.
type timeFlag struct{ t *time.Time }

func (f *timeFlag) String() string {
	if f == nil || f.t == nil {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Set(s string) error {
	t, err := pricefile.ParseTime(s)
	if err != nil {
		return errors.New("not an RFC 3339 time such as 2026-01-01T00:00:00Z")
	}
	f.t = &t
	return nil
}

// addCmd holds the flags of pricing add.
type addCmd struct {
	provider, model, description *string
	effectiveFrom                timeFlag
	in, out, cached, w5, w1, rsn amountFlag
	req, search, image, page     amountFlag
	lcThreshold                  *int64
	lcIn, lcOut, lcCached        amountFlag
	lcW5, lcW1, lcRsn            amountFlag
}

func addFlags(fs *flag.FlagSet) *addCmd {
	c := &addCmd{}
	c.provider = fs.String("provider", "", "the provider, such as openai (required)")
	c.model = fs.String("model", "", "the model name calls are priced by (required)")
	c.description = fs.String("description", "", "a description (default: that of the version it follows)")
	fs.Var(&c.effectiveFrom, "effective-from", "when the version takes effect, an RFC 3339 `TIME` (default now)")
	fs.Var(&c.in, "input", "`USD` per uncached input token (required)")
	fs.Var(&c.out, "output", "`USD` per output token (required)")
	fs.Var(&c.cached, "cached-input", "`USD` per cached input token read (default: the input price)")
	fs.Var(&c.w5, "cache-write-5m", "`USD` per token written to a 5-minute cache (default: the input price)")
	fs.Var(&c.w1, "cache-write-1h", "`USD` per token written to a 1-hour cache (default: the input price)")
	fs.Var(&c.rsn, "reasoning", "`USD` per reasoning token (default: the output price)")
	fs.Var(&c.req, "per-request", "`USD` per request")
	fs.Var(&c.search, "per-search", "`USD` per search")
	fs.Var(&c.image, "per-image", "`USD` per image")
	fs.Var(&c.page, "per-page", "`USD` per page")
	c.lcThreshold = fs.Int64("long-context-threshold", 0, "prompt tokens above which the whole request uses the long-context prices")
	fs.Var(&c.lcIn, "long-context-input", "long-context `USD` per uncached input token")
	fs.Var(&c.lcOut, "long-context-output", "long-context `USD` per output token")
	fs.Var(&c.lcCached, "long-context-cached-input", "long-context `USD` per cached input token read")
	fs.Var(&c.lcW5, "long-context-cache-write-5m", "long-context `USD` per token written to a 5-minute cache")
	fs.Var(&c.lcW1, "long-context-cache-write-1h", "long-context `USD` per token written to a 1-hour cache")
	fs.Var(&c.lcRsn, "long-context-reasoning", "long-context `USD` per reasoning token")
	return c
}

// check reports missing or inconsistent flags as a usage error.
func (c *addCmd) check(stderr io.Writer) error {
	var missing []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"--provider", *c.provider != ""}, {"--model", *c.model != ""}, {"--input", c.in.v != nil}, {"--output", c.out.v != nil}} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "pricing add needs %s\n", strings.Join(missing, ", "))
		return errUsage
	}
	lcSet := c.lcIn.v != nil || c.lcOut.v != nil || c.lcCached.v != nil || c.lcW5.v != nil || c.lcW1.v != nil || c.lcRsn.v != nil
	if (*c.lcThreshold != 0 || lcSet) && (*c.lcThreshold <= 0 || c.lcIn.v == nil || c.lcOut.v == nil) {
		fmt.Fprintln(stderr, "a long-context rule needs --long-context-threshold (a positive number of tokens), --long-context-input and --long-context-output")
		return errUsage
	}
	return nil
}

func (c *addCmd) price() billing.Price {
	or0 := func(f amountFlag) money.Amount {
		if f.v == nil {
			return 0
		}
		return *f.v
	}
	p := billing.Price{Provider: *c.provider, ModelName: *c.model, Description: *c.description, IsActive: true,
		Tier: billing.PriceTier{Input: *c.in.v, Output: *c.out.v, CachedInput: c.cached.v, CacheWrite5m: c.w5.v,
			CacheWrite1h: c.w1.v, Reasoning: c.rsn.v},
		PerRequest: or0(c.req), PerSearch: or0(c.search), PerImage: or0(c.image), PerPage: or0(c.page)}
	if c.effectiveFrom.t != nil {
		p.EffectiveFrom = *c.effectiveFrom.t
	}
	if *c.lcThreshold > 0 {
		p.LongContextThreshold = c.lcThreshold
		p.LongContext = &billing.PriceTier{Input: *c.lcIn.v, Output: *c.lcOut.v, CachedInput: c.lcCached.v,
			CacheWrite5m: c.lcW5.v, CacheWrite1h: c.lcW1.v, Reasoning: c.lcRsn.v}
	}
	return p
}

func (c *addCmd) run(ctx context.Context, db *store.DB, stdout io.Writer, now time.Time) error {
	p, err := db.AddPrice(ctx, c.price(), now)
	if err != nil {
		return err
	}
	return writePriceTable(stdout, []billing.Price{p})
}

// importCmd holds the flags and the parsed file of pricing import.
type importCmd struct {
	format        *string
	effectiveFrom timeFlag
	dryRun        *bool

	file    pricefile.File
	skipped []pricefile.Skipped
}

func importFlags(fs *flag.FlagSet) *importCmd {
	c := &importCmd{}
	c.format = fs.String("format", pricefile.FormatAlwrity, "the file's format: "+strings.Join(pricefile.Formats, " or "))
	fs.Var(&c.effectiveFrom, "effective-from", "when entries without their own effective_from take effect, an RFC 3339 `TIME` (default now)")
	c.dryRun = fs.Bool("dry-run", false, "report what the import would do without storing anything")
	return c
}

func (c *importCmd) check(stderr io.Writer) error {
	if !slices.Contains(pricefile.Formats, *c.format) {
		fmt.Fprintf(stderr, "unknown --format %q; known formats: %s\n", *c.format, strings.Join(pricefile.Formats, ", "))
		return errUsage
	}
	return nil
}

// read parses the file named on the command line.
func (c *importCmd) read(name string) error {
	r := pricingStdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	var err error
	c.file, c.skipped, err = pricefile.Parse(r, *c.format)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (c *importCmd) run(ctx context.Context, db *store.DB, stdout io.Writer, now time.Time) error {
	var eff time.Time
	if c.effectiveFrom.t != nil {
		eff = *c.effectiveFrom.t
	}
	res, err := db.ImportCatalog(ctx, c.file.PriceList(), c.file.Aliases, eff, *c.dryRun, now)
	if err != nil {
		return err
	}
	for _, ch := range res.Changes {
		p := ch.Price
		from := p.EffectiveFrom.Format(time.RFC3339Nano)
		if ch.Previous == nil {
			fmt.Fprintf(stdout, "+ %s/%s from %s (newly priced): input %s, output %s\n", p.Provider, p.ModelName, from, p.Tier.Input, p.Tier.Output)
			continue
		}
		var diffs []string
		for _, d := range pricefile.Diff(*ch.Previous, p) {
			diffs = append(diffs, fmt.Sprintf("%s %s → %s", d.Field, fieldValue(d.Old), fieldValue(d.New)))
		}
		fmt.Fprintf(stdout, "~ %s/%s from %s: %s\n", p.Provider, p.ModelName, from, strings.Join(diffs, "; "))
	}
	writeSkipped(stdout, c.skipped)
	fmt.Fprintf(stdout, "added %d, unchanged %d, skipped %d", res.Added, res.Unchanged, len(c.skipped))
	if res.AliasesSet+res.AliasesUnchanged > 0 {
		fmt.Fprintf(stdout, "; aliases set %d, unchanged %d", res.AliasesSet, res.AliasesUnchanged)
	}
	if *c.dryRun {
		fmt.Fprint(stdout, " (dry run: nothing was stored)")
	}
	fmt.Fprintln(stdout)
	return nil
}

// writeSkipped lists the skipped entries, one line per reason: LiteLLM's
// file has thousands of models of providers this service does not meter.
func writeSkipped(w io.Writer, skipped []pricefile.Skipped) {
	var reasons []string
	byReason := map[string][]string{}
	for _, s := range skipped {
		if byReason[s.Reason] == nil {
			reasons = append(reasons, s.Reason)
		}
		byReason[s.Reason] = append(byReason[s.Reason], s.Model)
	}
	for _, r := range reasons {
		models := byReason[r]
		if len(models) == 1 {
			fmt.Fprintf(w, "- skipped %s: %s\n", models[0], r)
			continue
		}
		examples := strings.Join(models[:min(len(models), 3)], ", ")
		if len(models) > 3 {
			examples += ", …"
		}
		fmt.Fprintf(w, "- skipped %d (%s): %s\n", len(models), examples, r)
	}
}

// fieldValue prints a pricefile.FieldChange value.
func fieldValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return fmt.Sprintf("%q", v)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case pricefile.LongContext:
		return fmt.Sprintf("above %d tokens: input %s, output %s", v.ThresholdTokens, v.Input, v.Output)
	}
	return fmt.Sprint(v)
}

func pricingList(ctx context.Context, db *store.DB, stdout io.Writer, provider, model string, hist bool, now time.Time) error {
	var prices []billing.Price
	var err error
	if hist {
		prices, err = db.PriceHistory(ctx, provider, model)
	} else {
		prices, err = db.ListPrices(ctx, provider, now)
		prices = slices.DeleteFunc(prices, func(p billing.Price) bool { return model != "" && p.ModelName != model })
	}
	if err != nil {
		return err
	}
	return writePriceTable(stdout, prices)
}

// writePriceTable prints prices in USD per token (or per unit), exactly;
// "-" marks a bucket that costs its fallback (the input or output price).
func writePriceTable(w io.Writer, prices []billing.Price) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tMODEL\tEFFECTIVE FROM\tINPUT\tOUTPUT\tCACHED INPUT\tCACHE WRITE 5M\tCACHE WRITE 1H\tREASONING\tFEES\tLONG CONTEXT")
	opt := func(a *money.Amount) string {
		if a == nil {
			return "-"
		}
		return a.String()
	}
	for _, p := range prices {
		var fees []string
		for _, f := range []struct {
			name string
			v    money.Amount
		}{{"request", p.PerRequest}, {"search", p.PerSearch}, {"image", p.PerImage}, {"page", p.PerPage}} {
			if f.v != 0 {
				fees = append(fees, fmt.Sprintf("%s/%s", f.v, f.name))
			}
		}
		lc := "-"
		if p.LongContext != nil && p.LongContextThreshold != nil {
			lc = fmt.Sprintf(">%d: %s/%s", *p.LongContextThreshold, p.LongContext.Input, p.LongContext.Output)
		}
		from := p.EffectiveFrom.Format(time.RFC3339Nano)
		if !p.IsActive {
			from += " (inactive)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Provider, p.ModelName, from, p.Tier.Input, p.Tier.Output,
			opt(p.Tier.CachedInput), opt(p.Tier.CacheWrite5m), opt(p.Tier.CacheWrite1h), opt(p.Tier.Reasoning),
			orDash(strings.Join(fees, " ")), lc)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pricingExport(ctx context.Context, db *store.DB, stdout io.Writer, hist bool, now time.Time) error {
	all, err := db.PriceHistory(ctx, "", "")
	if err != nil {
		return err
	}
	var current []billing.Price
	if !hist {
		if current, err = db.ListPrices(ctx, "", now); err != nil {
			return err
		}
	}
	prices := pricefile.ExportPrices(all, current, hist, now)
	aliases, err := db.ListAliases(ctx, "")
	if err != nil {
		return err
	}
	return pricefile.Write(stdout, pricefile.FromPrices(prices, aliases))
}
