package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

func TestRecordAndRead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		db := storetest.Open(t, b)
		ctx := context.Background()
		ts := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
		l := storetest.Log("u1", "e1", ts)
		l.TokensInput, l.TokensOutput = 1000, 500
		l.CostInput, l.CostOutput, l.CostTotal = money.MustParse("0.03"), money.MustParse("0.03"), money.MustParse("0.06")
		storetest.Record(t, db, l)
		got, err := db.UsageForPeriods(ctx, "u1", []billing.Period{billing.CalendarMonths().At(ts), {Key: billing.AllTime}})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range got {
			if u.Total.Calls != 1 || u.Total.Cost != money.MustParse("0.06") || u.ByProvider["openai"].Tokens() != 1500 {
				t.Fatalf("%s: %+v", u.Period.Key, u)
			}
		}
		logs, total, err := db.ListLogs(ctx, billing.LogFilter{UserID: "u1", Limit: 10})
		if err != nil || total != 1 || len(logs) != 1 || !logs[0].Timestamp.Equal(ts) {
			t.Fatalf("logs %v %d %+v", err, total, logs)
		}
	})
}

func TestReconcileFindsDrift(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		ctx := context.Background()
		ts := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
		for i := range 3 {
			l := storetest.Log("u1", "e"+string(rune('a'+i)), ts)
			l.TokensInput, l.CostTotal = 10, money.MustParse("0.01")
			storetest.Record(t, db, l)
		}
		if m, err := db.Reconcile(ctx); err != nil || len(m) != 0 {
			t.Fatalf("healthy ledger: %v %v", m, err)
		}
		// Drift a summary behind the store's back: reconcile must see it.
		mustExec(t, rawSQL(t, url), `UPDATE usage_summaries SET total_cost = total_cost + 1`)
		m, err := db.Reconcile(ctx)
		if err != nil || len(m) != 1 || m[0].Field != "cost" || m[0].Ledger != int64(money.MustParse("0.03")) {
			t.Fatalf("drift: %v %v", m, err)
		}
	})
}
