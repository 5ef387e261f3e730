package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/pricefile"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// litellmSample is the path of the LiteLLM sample from the package dir;
// tests that move to a temp dir take its absolute form first.
func litellmSample(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../internal/pricefile/testdata/litellm_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIPricingHelp(t *testing.T) {
	isolate(t)
	env := map[string]string{"DATABASE_URL": "mysql://x"} // a broken environment must not stop --help
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "alwrity-billing pricing list|add|import|export"},
		{[]string{"pricing", "--help"}, "alwrity-billing pricing import FILE [--format alwrity|litellm]"},
		{[]string{"pricing", "-h"}, "alwrity-billing pricing export [--history]"},
		{[]string{"pricing", "list", "--help"}, "Usage: alwrity-billing pricing list [--provider P]"},
		{[]string{"pricing", "add", "--help"}, "-cache-write-1h USD"},
		{[]string{"pricing", "add", "-h"}, "-long-context-threshold"},
		{[]string{"pricing", "import", "--help"}, "-dry-run"},
		{[]string{"pricing", "import", "--help"}, "-effective-from TIME"},
		{[]string{"pricing", "export", "--help"}, "Usage: alwrity-billing pricing export [--history]"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), env, tt.args...)
			if r.code != 0 {
				t.Errorf("exit %d, want 0\nstderr: %s", r.code, r.stderr)
			}
			if out := r.stdout + r.stderr; !strings.Contains(out, tt.want) {
				t.Errorf("output does not contain %q:\n%s", tt.want, out)
			}
		})
	}
	if _, err := os.Stat("alwrity.db"); err == nil {
		t.Error("a --help run created the default database")
	}
}

func TestCLIPricingUsageErrors(t *testing.T) {
	sample := litellmSample(t)
	dbURL, dbPath := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"pricing"}, "Usage: alwrity-billing pricing"},
		{[]string{"pricing", "frobnicate"}, `unknown pricing command "frobnicate"`},
		{[]string{"pricing", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"pricing", "list", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"pricing", "export", "x"}, `unexpected argument "x"`},
		{[]string{"pricing", "add"}, "pricing add needs --provider, --model, --input, --output"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1"}, "needs --output"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "cheap", "--output", "1"}, `invalid value "cheap" for flag -input`},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1e-13", "--output", "1"}, "-input"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1", "--output", "1", "--effective-from", "monday"}, "RFC 3339"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1", "--output", "1", "--long-context-input", "2"}, "--long-context-threshold"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1", "--output", "1", "--long-context-threshold", "-5",
			"--long-context-input", "2", "--long-context-output", "2"}, "positive"},
		{[]string{"pricing", "add", "--provider", "openai", "--model", "m", "--input", "1", "--output", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"pricing", "import"}, "exactly one FILE"},
		{[]string{"pricing", "import", sample, sample}, "exactly one FILE"},
		{[]string{"pricing", "import", sample, "--format", "yaml"}, `unknown --format "yaml"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, t.Context(), env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("a usage error wrote to stdout: %q", r.stdout)
			}
		})
	}
	// A file that cannot be read or parsed fails before the database is
	// touched, too.
	if err := os.WriteFile("bad.json", []byte(`{"prices": [{"provider": "openai", "model": "m", "input": -1, "output": 1}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for args, want := range map[string]string{
		"pricing import missing.json":                 "missing.json",
		"pricing import bad.json":                     "prices[0].input",
		"pricing import --format litellm bad.json":    "bad.json",
		"pricing import bad.json --effective-from 1x": "RFC 3339",
	} {
		r := runCLI(t, t.Context(), env, strings.Fields(args)...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %q", args, r.code, r.stderr, want)
		}
	}
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("a usage error created the database")
	}
}

// row finds the table row of a model in list output.
func row(out, provider, model string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == provider && f[1] == model {
			return l
		}
	}
	return ""
}

func TestCLIPricing(t *testing.T) {
	sample := litellmSample(t)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		isolate(t)
		env := map[string]string{"DATABASE_URL": b.URL(t)}
		ctx := t.Context()
		must := func(args ...string) result {
			t.Helper()
			r := runCLI(t, ctx, env, args...)
			if r.code != 0 {
				t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
			}
			return r
		}
		const at = "2026-06-15T00:00:00Z"

		// On a new database the defaults are there to list.
		list := must("pricing", "list")
		if n := strings.Count(list.stdout, "\n"); n != len(billing.DefaultPrices())+1 {
			t.Errorf("list of a new database has %d lines:\n%s", n, list.stdout)
		}
		if !regexp.MustCompile(`(?m)^openai\s+gpt-4\s+2024-01-01T00:00:00Z\s+0\.00003\s+0\.00006\s`).MatchString(list.stdout) {
			t.Errorf("list lacks the seed's gpt-4 price:\n%s", list.stdout)
		}

		// A dry run prints the changes and stores nothing.
		dry := must("pricing", "import", sample, "--format", "litellm", "--effective-from", at, "--dry-run")
		for _, want := range []string{
			"+ anthropic/claude-sonnet-4-20250514 from " + at + " (newly priced): input 0.000003, output 0.000015",
			"~ gemini/gemini-2.5-pro from " + at + ": cached_input - → 0.0000003125; long_context.cached_input - → 0.000000625",
			"- skipped azure/gpt-4o: litellm_provider \"azure\"",
			"added 5, unchanged 1, skipped 5 (dry run: nothing was stored)",
		} {
			if !strings.Contains(dry.stdout, want) {
				t.Errorf("dry run output lacks %q:\n%s", want, dry.stdout)
			}
		}
		if h := must("pricing", "list", "--history", "--provider", "anthropic"); strings.Contains(h.stdout, "claude-sonnet-4") {
			t.Errorf("the dry run stored a price:\n%s", h.stdout)
		}

		// Flags may come before the file too.
		imp := must("pricing", "import", "--format=litellm", "--effective-from="+at, sample)
		if !strings.HasSuffix(imp.stdout, "added 5, unchanged 1, skipped 5\n") {
			t.Errorf("import output:\n%s", imp.stdout)
		}
		hist := must("pricing", "list", "--history", "--provider", "anthropic")
		if r := row(hist.stdout, "anthropic", "claude-sonnet-4-20250514"); !regexp.MustCompile(
			`^anthropic\s+claude-sonnet-4-20250514\s+` + at + `\s+0\.000003\s+0\.000015\s+0\.0000003\s+0\.00000375\s+0\.000006\s+-\s+0\.01/search\s+>200000: 0\.000006/0\.0000225$`).MatchString(r) {
			t.Errorf("claude-sonnet-4 row %q", r)
		}
		again := must("pricing", "import", sample, "--format", "litellm", "--effective-from", at)
		if !strings.HasSuffix(again.stdout, "added 0, unchanged 6, skipped 5\n") {
			t.Errorf("re-import output:\n%s", again.stdout)
		}

		// A version added by hand goes before the older ones.
		add := must("pricing", "add", "--provider", "openai", "--model", "gpt-4", "--input", "1e-5", "--output", "0.00003",
			"--per-search", "0.03", "--effective-from", "2026-07-01T00:00:00Z")
		if r := row(add.stdout, "openai", "gpt-4"); !regexp.MustCompile(`^openai\s+gpt-4\s+2026-07-01T00:00:00Z\s+0\.00001\s+0\.00003\s+-\s+-\s+-\s+-\s+0\.03/search\s+-$`).MatchString(r) {
			t.Errorf("add printed %q", add.stdout)
		}
		gpt4 := must("pricing", "list", "--history", "--provider", "openai", "--model", "gpt-4")
		lines := strings.Split(strings.TrimSpace(gpt4.stdout), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], "2026-07-01") || !strings.Contains(lines[2], "2024-01-01") {
			t.Errorf("gpt-4 history:\n%s", gpt4.stdout)
		}
		r := runCLI(t, ctx, env, "pricing", "add", "--provider", "openai", "--model", "gpt-4", "--input", "1", "--output", "1",
			"--effective-from", "2026-07-01T00:00:00Z")
		if r.code != 1 || !strings.Contains(r.stderr, "conflict") {
			t.Errorf("a second version at the same time: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runCLI(t, ctx, env, "pricing", "add", "--provider", "azure", "--model", "gpt-4", "--input", "1", "--output", "1")
		if r.code != 1 || !strings.Contains(r.stderr, `unknown provider "azure"`) {
			t.Errorf("an unknown provider: exit %d, stderr %q", r.code, r.stderr)
		}

		// Export writes a pricing file that imports into another database
		// as the same history.
		export := must("pricing", "export", "--history")
		f, _, err := pricefile.Parse(strings.NewReader(export.stdout), pricefile.FormatAlwrity)
		if err != nil {
			t.Fatalf("export does not parse: %v", err)
		}
		if want := len(billing.DefaultPrices()) + 6; len(f.Prices) != want {
			t.Errorf("history export has %d prices, want %d", len(f.Prices), want)
		}
		current := must("pricing", "export")
		if cf, _, err := pricefile.Parse(strings.NewReader(current.stdout), pricefile.FormatAlwrity); err != nil ||
			len(cf.Prices) >= len(f.Prices) {
			t.Errorf("current export: %v, %d prices", err, len(cf.Prices))
		}
		other := map[string]string{"DATABASE_URL": b.URL(t)}
		pricingStdin = strings.NewReader(export.stdout)
		t.Cleanup(func() { pricingStdin = os.Stdin })
		r = runCLI(t, ctx, other, "pricing", "import", "-")
		if r.code != 0 || !strings.HasSuffix(r.stdout, "added 6, unchanged "+strconv.Itoa(len(billing.DefaultPrices()))+", skipped 0\n") {
			t.Fatalf("import of the export: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if h1, h2 := must("pricing", "list", "--history").stdout, runCLI(t, ctx, other, "pricing", "list", "--history").stdout; h1 != h2 {
			t.Errorf("histories differ:\n%s\n%s", h1, h2)
		}

		// A bad file stores nothing.
		bad := `{"prices": [{"provider": "openai", "model": "gpt-ok", "input": 1, "output": 1},
			{"provider": "azure", "model": "gpt-4o", "input": 1, "output": 1}]}`
		if err := os.WriteFile("bad.json", []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		r = runCLI(t, ctx, env, "pricing", "import", "bad.json")
		if r.code != 1 || !strings.Contains(r.stderr, "prices[1].provider") {
			t.Errorf("bad import: exit %d, stderr %q", r.code, r.stderr)
		}
		if h := must("pricing", "list", "--history", "--provider", "openai"); strings.Contains(h.stdout, "gpt-ok") {
			t.Errorf("a refused import stored a price:\n%s", h.stdout)
		}
	})
}

func TestWriteSkipped(t *testing.T) {
	var b strings.Builder
	writeSkipped(&b, []pricefile.Skipped{
		{Model: "azure/a", Reason: "azure"}, {Model: "x", Reason: "zero"}, {Model: "azure/b", Reason: "azure"},
		{Model: "azure/c", Reason: "azure"}, {Model: "azure/d", Reason: "azure"}, {Model: "bedrock/a", Reason: "bedrock"},
		{Model: "bedrock/b", Reason: "bedrock"},
	})
	want := "- skipped 4 (azure/a, azure/b, azure/c, …): azure\n- skipped x: zero\n- skipped 2 (bedrock/a, bedrock/b): bedrock\n"
	if b.String() != want {
		t.Errorf("writeSkipped wrote\n%s\nwant\n%s", b.String(), want)
	}
}
