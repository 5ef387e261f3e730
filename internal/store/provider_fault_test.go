package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestProviderFaultsCountedAlike: for every status from 100 to 599, the
// health figures (ProviderHealth, and ProviderErrors that the
// system_health alert reads) count a call as the provider's failure
// exactly when billing.ProviderFault says so: their SQL and the Go rule
// agree on both databases.
func TestProviderFaultsCountedAlike(t *testing.T) {
	at := date(2026, time.May, 20, 7, 58, 0, 0)
	var logs []billing.UsageLog
	want := map[string]int64{}
	for status := 100; status < 600; status++ {
		provider := []string{"openai", "gemini"}[status%2]
		l := storetest.Log("faults", fmt.Sprintf("status-%d", status), at)
		l.Provider, l.StatusCode = provider, status
		logs = append(logs, l)
		if billing.ProviderFault(status) {
			want[provider]++
		}
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		storetest.Record(t, db, logs...)
		health, err := db.ProviderHealth(ctx, at.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		for _, provider := range []string{"openai", "gemini"} {
			if h := health[provider]; h.Requests != 250 || h.Errors != want[provider] {
				t.Errorf("%s health: %d calls, %d faults; want 250 and %d", provider, h.Requests, h.Errors, want[provider])
			}
			calls, failed, err := db.ProviderErrors(ctx, provider, at.Add(-time.Minute))
			if err != nil || calls != 250 || failed != want[provider] {
				t.Errorf("%s errors: %d calls, %d faults (%v); want 250 and %d", provider, calls, failed, err, want[provider])
			}
		}
	})
}
