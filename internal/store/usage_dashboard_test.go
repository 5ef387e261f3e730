package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestUsageForPeriodsAnyRequest checks UsageForPeriods' one statement
// against sums of the recorded logs for every kind of request: all time
// alone, periods alone, both, repeated keys and periods without usage.
func TestUsageForPeriodsAnyRequest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		logs := randomLogs(rand.New(rand.NewPCG(7, 11)), 300)
		record(t, db, logs...)

		type key struct{ user, period string }
		want := map[key]*billing.PeriodUsage{}
		for _, l := range logs {
			for _, k := range []key{{l.UserID, l.BillingPeriod}, {l.UserID, billing.AllTime}} {
				if want[k] == nil {
					want[k] = &billing.PeriodUsage{ByProvider: map[string]billing.Counters{}}
				}
				add(&want[k].Total, l)
				c := want[k].ByProvider[l.Provider]
				add(&c, l)
				want[k].ByProvider[l.Provider] = c
			}
		}
		period := func(key string) billing.Period {
			p, err := billing.CalendarMonths().ByKey(key)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		all := billing.Period{Key: billing.AllTime}
		dec, jan, mar, apr := period("2025-12"), period("2026-01"), period("2026-03"), period("2026-04")
		requests := [][]billing.Period{
			{all},
			{jan},
			{mar}, // no usage
			{dec, jan, mar, apr},
			{all, apr, jan, all, jan},
			{mar, all},
		}
		for _, user := range []string{"u1", "user with spaces", "nobody"} {
			for _, ps := range requests {
				got, err := db.UsageForPeriods(ctx, user, ps)
				if err != nil {
					t.Fatalf("%s %v: %v", user, ps, err)
				}
				if len(got) != len(ps) {
					t.Fatalf("%s: %d results for %d periods", user, len(got), len(ps))
				}
				for i, u := range got {
					w := want[key{user, ps[i].Key}]
					if w == nil {
						w = &billing.PeriodUsage{ByProvider: map[string]billing.Counters{}}
					}
					name := fmt.Sprintf("%s %s (#%d of %d)", user, ps[i].Key, i, len(ps))
					if u.UserID != user || !reflect.DeepEqual(u.Period, ps[i]) {
						t.Errorf("%s: echoed %q %+v", name, u.UserID, u.Period)
					}
					if u.Total != w.Total || !reflect.DeepEqual(u.ByProvider, w.ByProvider) {
						t.Errorf("%s:\n got %+v %+v\nwant %+v %+v", name, u.Total, u.ByProvider, w.Total, w.ByProvider)
					}
					if u.LastUpdated.IsZero() != (w.Total.Calls == 0) {
						t.Errorf("%s: last updated %v with %d calls", name, u.LastUpdated, w.Total.Calls)
					}
				}
				// Every result owns its provider map, repeated keys too.
				for i := range got {
					got[i].ByProvider["marker"] = billing.Counters{Calls: int64(i + 1)}
				}
				for i := range got {
					if c := got[i].ByProvider["marker"]; c.Calls != int64(i+1) {
						t.Fatalf("%s: result %d shares its provider map", user, i)
					}
				}
			}
		}
		if got, err := db.UsageForPeriods(ctx, "u1", nil); err != nil || len(got) != 0 {
			t.Errorf("no periods: %v, %v", got, err)
		}
	})
}

// TestUsageForPeriodsAllTimeOverflow: an all-time sum that does not fit is
// an error, not a total that wrapped around.
func TestUsageForPeriodsAllTimeOverflow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		// Each period's cost fits; their sum is 2^63.
		for i, at := range []time.Time{date(2026, time.January, 5, 0, 0, 0, 0), date(2026, time.February, 5, 0, 0, 0, 0)} {
			l := storetest.Log("u1", fmt.Sprintf("big-%d", i), at)
			l.CostTotal = money.Amount(1 << 62)
			record(t, db, l)
		}
		jan, err := billing.CalendarMonths().ByKey("2026-01")
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.UsageForPeriods(ctx, "u1", []billing.Period{jan})
		if err != nil || got[0].Total.Cost != 1<<62 {
			t.Fatalf("one period: %+v, %v", got, err)
		}
		if got, err := db.UsageForPeriods(ctx, "u1", []billing.Period{jan, {Key: billing.AllTime}}); err == nil {
			t.Fatalf("all time summed to %+v, want an error", got[1].Total)
		}
	})
}
