package metering_test

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestCommitMetrics: every recorded event is counted once in the events
// histogram, over as many observations as there were group transactions,
// and a resend writes nothing new but still goes through a commit.
func TestCommitMetrics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		reg := prometheus.NewRegistry()
		if err := f.m.RegisterMetrics(reg); err != nil {
			t.Fatal(err)
		}
		if err := f.m.RegisterMetrics(reg); err == nil {
			t.Fatal("registering twice on one registry: no error")
		}
		const user = "metrics-user"
		f.keyUser(user)
		var events []billing.UsageEvent
		for i := range 5 {
			events = append(events, gpt4Event(fmt.Sprintf("m-%d", i), user, baseTime, 10, 5))
		}
		f.record(events...)
		f.record(events[:2]...)
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]float64{}
		for _, mf := range families {
			for _, m := range mf.GetMetric() {
				if h := m.GetHistogram(); h != nil {
					got[mf.GetName()] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
				}
			}
		}
		if e := got["alwrity_ledger_commit_events"]; e != [2]float64{2, 7} {
			t.Errorf("alwrity_ledger_commit_events count, sum = %v; want 2 transactions of 7 events", e)
		}
		if s := got["alwrity_ledger_commit_seconds"]; s[0] != 2 || s[1] <= 0 {
			t.Errorf("alwrity_ledger_commit_seconds count, sum = %v; want 2 positive durations", s)
		}
	})
}
