package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// shapedLog is the n-th log of TestLedgerShapesRoundTrip: every fourth sets
// one of the columns that only a full INSERT binds (SQLite binds a plain
// log's columns alone), cycling through all twelve; the rest are plain.
func shapedLog(n int, at time.Time) billing.UsageLog {
	l := storetest.Log("shapes", fmt.Sprintf("shape-%03d", n), at.Add(time.Duration(n)*time.Second))
	l.TokensInput, l.TokensOutput, l.TokensCachedInput = int64(100+n), int64(n), int64(n%7)
	l.CostInput, l.CostOutput, l.CostTotal = money.Amount(10*n), money.Amount(n), money.Amount(11*n)
	l.ResponseTime, l.StatusCode = float64(n%8)/8, 200
	if n%4 != 0 {
		return l
	}
	switch (n / 4) % 12 {
	case 0:
		l.TokensCacheWrite5m = int64(n)
	case 1:
		l.TokensCacheWrite1h = int64(n)
	case 2:
		l.TokensReasoning = int64(n)
	case 3:
		l.RequestCount = 1
	case 4:
		l.SearchCount = 2
	case 5:
		l.ImageCount = 3
	case 6:
		l.PageCount = 4
	case 7:
		l.ErrorMessage, l.StatusCode = "upstream said no", 502
	case 8:
		l.RetryCount = 2
	case 9:
		l.Unpriced = true
	case 10:
		l.Partial = true
	case 11:
		l.Metadata = `{"k":"v"}`
	}
	return l
}

// TestLedgerShapesRoundTrip writes plain and full logs mixed in one
// transaction and then again with resends of both kinds among new ones:
// every log reads back with every field it was given (a column a shape
// leaves out must hold its default only for logs that have nothing in it),
// each resend is answered as a duplicate and stored once, and the
// summaries equal the ledger.
func TestLedgerShapesRoundTrip(t *testing.T) {
	at := date(2026, time.May, 3, 10, 0, 0, 0)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		db := storetest.Open(t, b)
		ingest := func(logs []billing.UsageLog) []billing.EventResult {
			t.Helper()
			items := make([]store.IngestItem, len(logs))
			for i, l := range logs {
				items[i] = store.IngestItem{Log: l, PeriodEnd: billing.CalendarMonths().At(l.PeriodStart).End}
			}
			res, err := db.Ingest(ctx, items, store.AlertContext{}, usageNow)
			if err != nil {
				t.Fatal(err)
			}
			return res
		}
		var want []billing.UsageLog
		for n := range 250 {
			want = append(want, shapedLog(n, at))
		}
		for _, r := range ingest(want) {
			if r.Status != billing.EventRecorded {
				t.Fatalf("first batch: %+v", r)
			}
		}
		// Resends of both shapes (ids 0..59: 15 full, 45 plain) among new
		// logs of both shapes, so some INSERTs of each shape write fewer
		// rows than they were given.
		var second []billing.UsageLog
		for n := range 60 {
			second = append(second, shapedLog(n, at), shapedLog(250+n, at))
		}
		for i, r := range ingest(second) {
			wantStatus := billing.EventDuplicate
			if i%2 == 1 {
				wantStatus = billing.EventRecorded
			}
			if r.Status != wantStatus {
				t.Fatalf("second batch, item %d (%s): status %q, want %q", i, r.EventID, r.Status, wantStatus)
			}
		}
		for n := 250; n < 310; n++ {
			want = append(want, shapedLog(n, at))
		}
		logs, total, err := db.ListLogs(ctx, billing.LogFilter{UserID: "shapes", Limit: 1000})
		if err != nil || total != int64(len(want)) || len(logs) != len(want) {
			t.Fatalf("%d logs of %d counted (%v); want %d", len(logs), total, err, len(want))
		}
		byID := map[string]billing.UsageLog{}
		for _, l := range logs {
			l.ID = 0
			byID[l.EventID] = l
		}
		for _, w := range want {
			w.Timestamp = w.Timestamp.UTC()
			if got := byID[w.EventID]; !reflect.DeepEqual(got, w) {
				t.Errorf("%s:\n got %+v\nwant %+v", w.EventID, got, w)
			}
		}
		if m, err := db.Reconcile(ctx); err != nil || len(m) > 0 {
			t.Fatalf("reconcile: %v, %v", m, err)
		}
	})
}
