package metering_test

import (
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestPreflightUnlimitedReportsUsage: an operation no finite limit applies
// to still reports what it would count against, its provider's calls with
// no limit (the API writes limit and remaining null), and each operation
// counts the ones before it; a limited operation keeps its tightest limit.
func TestPreflightUnlimitedReportsUsage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.planUser("unlimited", billing.Plan{Name: "no limits"})
		f.record(gpt4Event("pf-1", "unlimited", baseTime.Add(-2*time.Minute), 10, 5),
			gpt4Event("pf-2", "unlimited", baseTime.Add(-time.Minute), 10, 5))
		pf, err := f.m.Preflight(f.ctx, "unlimited", []metering.PreflightOp{
			{Provider: "openai", Model: "gpt-4", Tokens: 100}, {Provider: "openai", Model: "gpt-4", Tokens: 100}})
		if err != nil {
			t.Fatal(err)
		}
		if !pf.CanProceed || len(pf.Checks) != 2 {
			t.Fatalf("preflight = %+v", pf)
		}
		for i, c := range pf.Checks {
			b := c.Binding
			if b == nil {
				t.Fatalf("operation %d: no usage reported for an unlimited operation", i)
			}
			if want := int64(2 + i); b.Key != "openai_calls" || b.Limit != nil || b.Used != want || b.Remaining() != nil || !c.Allowed {
				t.Errorf("operation %d: binding %+v, allowed %v; want openai_calls used %d, no limit", i, *b, c.Allowed, want)
			}
		}

		// The Free plan limits every call: its binding has a limit.
		f.keyUser("free")
		pf, err = f.m.Preflight(f.ctx, "free", []metering.PreflightOp{{Provider: "openai", Model: "gpt-4"}})
		if err != nil {
			t.Fatal(err)
		}
		if b := pf.Checks[0].Binding; b == nil || b.Limit == nil || b.Remaining() == nil {
			t.Errorf("free plan binding = %+v; want a finite limit", b)
		}
	})
}
