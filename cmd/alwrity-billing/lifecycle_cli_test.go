package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func TestCLILifecycleHelp(t *testing.T) {
	isolate(t)
	env := map[string]string{"DATABASE_URL": "mysql://x"} // a broken environment must not stop --help
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "alwrity-billing plans list|create|edit|activate|deactivate"},
		{[]string{"help"}, "alwrity-billing billing close|invoices|export|mark"},
		{[]string{"plans", "--help"}, "alwrity-billing plans edit PLAN-ID"},
		{[]string{"plans", "create", "--help"}, "-overage-per-1k-tokens USD"},
		{[]string{"plans", "edit", "-h"}, "-move-now"},
		{[]string{"plans", "deactivate", "--help"}, "Usage: alwrity-billing plans deactivate PLAN-ID"},
		{[]string{"subscriptions", "--help"}, "alwrity-billing subscriptions history USER"},
		{[]string{"subscriptions", "subscribe", "--help"}, "-time-zone"},
		{[]string{"subscriptions", "cancel", "--help"}, "-immediate"},
		{[]string{"billing", "-h"}, "alwrity-billing billing mark INVOICE-ID paid|void"},
		{[]string{"billing", "close", "--help"}, "-at TIME"},
		{[]string{"billing", "export", "--help"}, "RFC 3339 UTC"},
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

func TestCLILifecycleUsageErrors(t *testing.T) {
	dbURL, dbPath := isolate(t)
	env := map[string]string{"DATABASE_URL": dbURL}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"plans"}, "Usage: alwrity-billing plans"},
		{[]string{"plans", "frobnicate"}, `unknown plans command "frobnicate"`},
		{[]string{"plans", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"plans", "create"}, "plans create needs --name, --tier, --monthly, --yearly"},
		{[]string{"plans", "create", "--name", "X", "--tier", "gold", "--monthly", "1", "--yearly", "1"}, `--tier must be free, basic, pro or enterprise, got "gold"`},
		{[]string{"plans", "create", "--name", "X", "--tier", "pro", "--monthly", "-1", "--yearly", "1"}, "--monthly must not be negative"},
		{[]string{"plans", "create", "--name", "X", "--tier", "pro", "--monthly", "ten", "--yearly", "1"}, `invalid value "ten" for flag -monthly`},
		{[]string{"plans", "create", "--name", "X", "--tier", "pro", "--monthly", "1", "--yearly", "1", "--calls", "lots"}, `"unlimited"`},
		{[]string{"plans", "create", "--name", "X", "--tier", "pro", "--monthly", "1", "--yearly", "1", "--provider-calls", "openai"}, "PROVIDER=LIMIT"},
		{[]string{"plans", "create", "--name", "X", "--tier", "pro", "--monthly", "1", "--yearly", "1", "--overage-per-call", "0.1"}, "--soft-limits"},
		{[]string{"plans", "edit"}, "plans edit needs PLAN-ID"},
		{[]string{"plans", "edit", "abc", "--monthly", "1"}, `PLAN-ID must be a positive number, got "abc"`},
		{[]string{"plans", "edit", "3"}, "at least one setting"},
		{[]string{"plans", "deactivate", "0"}, "PLAN-ID must be a positive number"},
		{[]string{"plans", "activate", "1", "2"}, "plans activate needs PLAN-ID"},
		{[]string{"subscriptions"}, "Usage: alwrity-billing subscriptions"},
		{[]string{"subscriptions", "renew", "u"}, `unknown subscriptions command "renew"`},
		{[]string{"subscriptions", "subscribe", "--plan", "2"}, "subscriptions subscribe needs USER"},
		{[]string{"subscriptions", "subscribe", "u1"}, "needs --plan PLAN-ID"},
		{[]string{"subscriptions", "subscribe", "u1", "--plan", "2", "--cycle", "weekly"}, `--cycle must be monthly or yearly, got "weekly"`},
		{[]string{"subscriptions", "subscribe", "u1", "--plan", "2", "--time-zone", "Mars/Olympus"}, "not a known time zone"},
		{[]string{"subscriptions", "subscribe", "", "--plan", "2"}, "USER must not be empty"},
		{[]string{"subscriptions", "cancel", strings.Repeat("u", 129)}, "at most 128"},
		{[]string{"subscriptions", "show"}, "subscriptions show needs USER"},
		{[]string{"subscriptions", "history", "u1", "--limit", "0"}, "--limit must be between 1 and 10000"},
		{[]string{"billing"}, "Usage: alwrity-billing billing"},
		{[]string{"billing", "refund"}, `unknown billing command "refund"`},
		{[]string{"billing", "close", "--at", "tomorrow"}, "RFC 3339"},
		{[]string{"billing", "close", "now"}, `unexpected argument "now"`},
		{[]string{"billing", "invoices", "--period", "2026-13"}, "--period must be a month in the form YYYY-MM"},
		{[]string{"billing", "export"}, "billing export needs --period YYYY-MM"},
		{[]string{"billing", "export", "--period", "11-2026"}, "--period must be a month"},
		{[]string{"billing", "mark", "7"}, "billing mark needs INVOICE-ID paid|void"},
		{[]string{"billing", "mark", "7", "refunded"}, `paid or void, not "refunded"`},
		{[]string{"billing", "mark", "x", "paid"}, "INVOICE-ID must be a positive number"},
	} {
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
	if _, err := os.Stat(dbPath); err == nil {
		t.Error("a usage error created the database")
	}
}

// planRow finds the table row of a plan by name in plans output and
// returns its fields split on runs of two or more spaces.
func planRow(out, name string) []string {
	for _, l := range strings.Split(out, "\n") {
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
		if len(f) > 2 && f[1] == name {
			return f
		}
	}
	return nil
}

func TestCLILifecycle(t *testing.T) {
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
		fails := func(want string, args ...string) {
			t.Helper()
			r := runCLI(t, ctx, env, args...)
			if r.code != 1 || !strings.Contains(r.stderr, want) {
				t.Errorf("%v: exit %d, stderr %q; want exit 1 naming %q", args, r.code, r.stderr, want)
			}
		}

		// The seeded plans.
		list := must("plans", "list")
		if n := strings.Count(list.stdout, "\n"); n != 5 {
			t.Errorf("plans list of a new database:\n%s", list.stdout)
		}
		if row := planRow(list.stdout, "Starter"); len(row) != 11 || row[2] != "basic" || row[3] != "1" || row[4] != "29" ||
			row[5] != "290" || row[6] != "10000" || row[10] != "active" {
			t.Errorf("Starter row %q", row)
		}
		// Create, with limits and overage.
		c := must("plans", "create", "--name", "Team", "--tier", "pro", "--monthly", "49.99", "--yearly", "499.9",
			"--feature", "SSO", "--feature", "Audit log", "--calls", "5000", "--cost-limit", "25.5",
			"--provider-calls", "tavily=0", "--provider-tokens", "openai=200000", "--soft-limits", "--overage-per-call", "0.002")
		team := planRow(c.stdout, "Team")
		if len(team) != 11 || team[4] != "49.99" || team[6] != "5000" || team[7] != "25.5" ||
			team[8] != "openai=200000 tokens, tavily=0 calls" || team[9] != "soft limits, 0.002/call" {
			t.Fatalf("created Team row %q\n%s", team, c.stdout)
		}
		teamID := team[0]
		fails("already exists", "plans", "create", "--name", "Team", "--tier", "pro", "--monthly", "1", "--yearly", "1")
		fails(`unknown provider "azure"`, "plans", "create", "--name", "Azure", "--tier", "pro", "--monthly", "1", "--yearly", "1", "--provider-calls", "azure=5")
		fails("not metered in tokens", "plans", "create", "--name", "Srch", "--tier", "pro", "--monthly", "1", "--yearly", "1", "--provider-tokens", "tavily=5")
		if l := must("plans", "list", "--all"); strings.Contains(l.stdout, "Azure") || strings.Contains(l.stdout, "Srch") {
			t.Errorf("a refused create stored a plan:\n%s", l.stdout)
		}

		// Subscribe a user, show, then edit the plan moving subscribers now.
		sub := must("subscriptions", "subscribe", "dora", "--plan", teamID)
		if !strings.Contains(sub.stdout, "change:") || !strings.Contains(sub.stdout, "created") || !strings.Contains(sub.stdout, "Team ("+teamID+")") {
			t.Errorf("subscribe output:\n%s", sub.stdout)
		}
		must("subscriptions", "subscribe", "erin", "--plan", planRow(list.stdout, "Starter")[0], "--cycle", "yearly", "--time-zone", "Europe/Berlin")
		fails("not found", "subscriptions", "subscribe", "frank", "--plan", "99999")
		ed := must("plans", "edit", teamID, "--monthly", "59", "--calls", "unlimited", "--no-overage", "--move-now")
		v2 := planRow(ed.stdout, "Team")
		if len(v2) != 11 || v2[3] != "2" || v2[4] != "59" || v2[6] != "unlimited" || v2[9] != "-" || v2[10] != "active" {
			t.Errorf("edit new version %q\n%s", v2, ed.stdout)
		}
		if old := planRow(ed.stdout, "Team (version 1)"); len(old) != 11 || old[10] != "replaced by "+v2[0] {
			t.Errorf("edit old version %q", old)
		}
		if !strings.Contains(ed.stderr, "1 subscriptions moved now") {
			t.Errorf("edit stderr %q", ed.stderr)
		}
		fails("edit the newest version", "plans", "edit", teamID, "--monthly", "1")
		if show := must("subscriptions", "show", "dora"); !strings.Contains(show.stdout, "Team ("+v2[0]+")") {
			t.Errorf("dora after the move:\n%s", show.stdout)
		}
		if show := must("subscriptions", "show", "nobody"); !strings.Contains(show.stdout, "no subscription: on plan Free") {
			t.Errorf("show without a subscription: %s", show.stdout)
		}
		d := must("plans", "deactivate", v2[0])
		if row := planRow(d.stdout, "Team"); len(row) != 11 || row[10] != "inactive" {
			t.Errorf("deactivate output %q", d.stdout)
		}
		if l := must("plans", "list"); planRow(l.stdout, "Team") != nil {
			t.Errorf("an inactive plan is listed as offered")
		}
		fails("not offered", "subscriptions", "subscribe", "gina", "--plan", v2[0])
		must("plans", "activate", v2[0])
		fails("only active free plan", "plans", "deactivate", planRow(list.stdout, "Free")[0])

		// Close a period from a month on: dora's and erin's first invoices.
		now := time.Now().UTC()
		period := now.Format("2006-01")
		cl := must("billing", "close", "--at", now.AddDate(0, 1, 3).Format(time.RFC3339))
		if !strings.HasPrefix(cl.stdout, "closed 2 usage periods up to ") {
			t.Errorf("close output %q", cl.stdout)
		}
		if again := must("billing", "close", "--at", now.AddDate(0, 1, 3).Format(time.RFC3339)); !strings.HasPrefix(again.stdout, "closed 0 ") {
			t.Errorf("closing again: %q", again.stdout)
		}
		inv := must("billing", "invoices", "--user", "dora")
		lines := strings.Split(strings.TrimSpace(inv.stdout), "\n")
		if len(lines) != 2 || !strings.Contains(lines[1], "issued") || !strings.Contains(lines[1], period) {
			t.Fatalf("dora's invoices:\n%s", inv.stdout)
		}
		invID := strings.Fields(lines[1])[0]

		// Export parses back, one row per invoice of the period. Erin's
		// periods are months in Berlin: in the last hour or two of a UTC
		// month hers is already named by the next one.
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		erinPeriod := now.In(berlin).Format("2006-01")
		users := map[string][]string{}
		var rows [][]string
		for _, p := range slices.Compact([]string{period, erinPeriod}) {
			ex := must("billing", "export", "--period", p)
			got, err := csv.NewReader(strings.NewReader(ex.stdout)).ReadAll()
			if err != nil {
				t.Fatalf("export does not parse: %v\n%s", err, ex.stdout)
			}
			want := 2
			if erinPeriod != period {
				want = 1
			}
			if len(got) != want+1 || got[0][0] != "id" || got[0][12] != "total_amount" ||
				!strings.Contains(ex.stderr, fmt.Sprintf("exported %d invoices", want)) {
				t.Fatalf("export rows of %s %q\n%s", p, got, ex.stderr)
			}
			for _, r := range got[1:] {
				users[r[2]] = r
			}
			rows = append(rows, got[1:]...)
		}
		// Dora paid 49.99 for Team v1 and was moved to v2 at once (no
		// charge for the move); erin paid Starter's yearly 290.
		if users["dora"][12] != "49.99" || users["erin"][12] != "290" || users["dora"][0] != invID {
			t.Errorf("export totals %q", rows)
		}
		if only := must("billing", "export", "--period", erinPeriod, "--user", "erin"); strings.Count(only.stdout, "\r\n") != 2 {
			t.Errorf("export for erin:\n%s", only.stdout)
		}

		// Mark paid; a paid invoice cannot be voided.
		m := must("billing", "mark", invID, "paid")
		if !strings.Contains(m.stdout, " paid ") {
			t.Errorf("mark output:\n%s", m.stdout)
		}
		fails("paid already", "billing", "mark", invID, "void")
		fails("not found", "billing", "mark", "999999", "paid")

		// Cancel and history.
		cn := must("subscriptions", "cancel", "erin")
		if !strings.Contains(cn.stdout, "cancel scheduled") || !strings.Contains(cn.stdout, "at the cycle's end:  cancelled") {
			t.Errorf("cancel output:\n%s", cn.stdout)
		}
		if ci := must("subscriptions", "cancel", "dora", "--immediate"); !strings.Contains(ci.stdout, "cancelled at:") {
			t.Errorf("immediate cancel output:\n%s", ci.stdout)
		}
		fails("no subscription to cancel", "subscriptions", "cancel", "dora")
		h := must("subscriptions", "history", "dora")
		hl := strings.Split(strings.TrimSpace(h.stdout), "\n")
		// The close ran a month ahead of the clock, so the renewal's time
		// comes after the cancellation's. The move to the plan's new
		// version is a change of its own (Team to Team, same price).
		if len(hl) != 5 || !strings.Contains(h.stdout, "  cancel  ") || !strings.Contains(h.stdout, "  renewal  ") ||
			!strings.Contains(h.stdout, "  upgrade  ") || !strings.Contains(hl[4], "  new  ") {
			t.Errorf("dora's history:\n%s", h.stdout)
		}
	})
}
