package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestReconcileFindsTokenDrift: the stored token totals, a provider's
// tokens (which PostgreSQL admission reads for a provider's token limit)
// and a period's total_tokens, must each equal the ledger's input plus
// output tokens; a drift in either column alone is reported as one
// mismatch naming it.
func TestReconcileFindsTokenDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		raw := rawSQL(t, url)
		ctx := context.Background()
		at := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
		a := storetest.Log("u1", "tok-a", at)
		a.TokensInput, a.TokensOutput = 100, 20
		b2 := storetest.Log("u1", "tok-b", at)
		b2.TokensInput, b2.TokensOutput = 7, 3
		g := storetest.Log("u1", "tok-g", at)
		g.Provider, g.ModelUsed, g.TokensInput, g.TokensOutput = "gemini", "gemini-2.5-pro", 50, 5
		storetest.Record(t, db, a, b2, g)
		if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
			t.Fatalf("healthy ledger: %v, %v", m, err)
		}

		for _, c := range []struct {
			name, drift, undo string
			want              store.Mismatch
		}{
			{"provider tokens",
				`UPDATE usage_summary_providers SET tokens = tokens + 5 WHERE provider = 'openai'`,
				`UPDATE usage_summary_providers SET tokens = tokens - 5 WHERE provider = 'openai'`,
				store.Mismatch{UserID: "u1", BillingPeriod: a.BillingPeriod, Provider: "openai", Field: "tokens", Ledger: 130, Summary: 135}},
			{"total tokens",
				`UPDATE usage_summaries SET total_tokens = total_tokens - 1`,
				`UPDATE usage_summaries SET total_tokens = total_tokens + 1`,
				store.Mismatch{UserID: "u1", BillingPeriod: a.BillingPeriod, Field: "tokens", Ledger: 185, Summary: 184}},
		} {
			if n := mustExec(t, raw, c.drift); n != 1 {
				t.Fatalf("%s: drifted %d rows; want 1", c.name, n)
			}
			m, err := db.Reconcile(ctx)
			if err != nil || len(m) != 1 {
				t.Fatalf("%s drifted: Reconcile = %v, %v; want one mismatch", c.name, m, err)
			}
			got := m[0]
			if !got.PeriodStart.Equal(a.PeriodStart) {
				t.Errorf("%s drifted: mismatch in the period from %s; want %s", c.name, got.PeriodStart, a.PeriodStart)
			}
			got.PeriodStart = time.Time{}
			if got != c.want {
				t.Errorf("%s drifted: mismatch %+v; want %+v", c.name, got, c.want)
			}
			mustExec(t, raw, c.undo)
			if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
				t.Fatalf("%s restored: %v, %v", c.name, m, err)
			}
		}
	})
}
