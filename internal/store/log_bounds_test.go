package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// These tests pin down how a user's logs of one period name are paged: the
// store reads them between the earliest start of the user's periods of
// that name and the latest last_event_at of those periods' summaries
// (migration 00013). A period's ledger rows are not confined to the days
// before the next-named period starts: a subscription anchored on the 20th
// has the period "2026-01" from January 20 to February 20, and when it is
// cancelled at once on February 5 the calls of February 1–5 are still
// "2026-01"'s, while the calendar month "2026-02" the user is in from then
// on starts on February 1.

// fatalfer is what the helpers below need of a *testing.T or a *rapid.T.
type fatalfer interface {
	Fatalf(format string, args ...any)
}

// lbPeriod is one period of a user: its name and span.
type lbPeriod struct {
	key        string
	start, end time.Time
}

// item returns an event of user in p at at, rated as storetest.Log rates
// it, ready for Ingest with p's end.
func (p lbPeriod) item(user, id string, at time.Time) store.IngestItem {
	l := storetest.Log(user, id, at)
	l.BillingPeriod, l.PeriodStart = p.key, p.start
	return store.IngestItem{Log: l, PeriodEnd: p.end}
}

// lbIngest ingests items as one batch; the events not given earlier
// (fresh) must be recorded.
func lbIngest(t fatalfer, db *store.DB, fresh map[string]bool, items ...store.IngestItem) {
	res, err := db.Ingest(context.Background(), items, store.AlertContext{}, date(2026, time.April, 2, 0, 0, 0, 0))
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	for i, r := range res {
		if id := items[i].Log.EventID; fresh[id] && r.Status != billing.EventRecorded {
			t.Fatalf("ingest %s: status %q; want %q", id, r.Status, billing.EventRecorded)
		}
	}
}

// lbIDs returns the ledger ids of users' logs by event id, read without a
// period filter (and so without the bounds under test).
func lbIDs(t fatalfer, db *store.DB, users ...string) map[string]int64 {
	ids := map[string]int64{}
	for _, u := range users {
		logs, _, err := db.ListLogs(context.Background(), billing.LogFilter{UserID: u, Limit: 100_000})
		if err != nil {
			t.Fatalf("list %s's logs: %v", u, err)
		}
		for _, l := range logs {
			ids[l.EventID] = l.ID
		}
	}
	return ids
}

// wantLogs is what f selects from logs, computed here: the event ids
// newest first, ties broken by id, newest id first.
func wantLogs(logs []billing.UsageLog, ids map[string]int64, f billing.LogFilter) []string {
	var sel []billing.UsageLog
	for _, l := range logs {
		if (f.UserID == "" || l.UserID == f.UserID) && (f.Provider == "" || l.Provider == f.Provider) &&
			(f.BillingPeriod == "" || l.BillingPeriod == f.BillingPeriod) && (f.StatusCode == 0 || l.StatusCode == f.StatusCode) {
			sel = append(sel, l)
		}
	}
	slices.SortFunc(sel, func(a, b billing.UsageLog) int {
		if c := b.Timestamp.Compare(a.Timestamp); c != 0 {
			return c
		}
		return int(ids[b.EventID] - ids[a.EventID])
	})
	want := []string{}
	for _, l := range sel {
		want = append(want, l.EventID)
	}
	return want
}

// checkLogPages pages through f's logs in pages of size, by keyset and by
// offset, to the end, and fails unless both give want and every page the
// total len(want).
func checkLogPages(t fatalfer, db *store.DB, f billing.LogFilter, size int, want []string) {
	ctx := context.Background()
	byCursor, byOffset := []string{}, []string{}
	pf := f
	pf.Limit, pf.Offset, pf.Before = size, 0, nil
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			t.Fatalf("%+v: keyset paging does not end", f)
		}
		page, total, err := db.ListLogs(ctx, pf)
		if err != nil {
			t.Fatalf("ListLogs(%+v): %v", pf, err)
		}
		if page == nil {
			t.Fatalf("ListLogs(%+v): nil page, want empty", pf)
		}
		if total != int64(len(want)) {
			t.Fatalf("ListLogs(%+v): total %d; want %d", pf, total, len(want))
		}
		for _, l := range page {
			byCursor = append(byCursor, l.EventID)
		}
		if len(page) < size {
			break
		}
		last := page[len(page)-1]
		pf.Before = &billing.LogPosition{Timestamp: last.Timestamp, ID: last.ID}
	}
	for off := 0; off < len(want)+size; off += size {
		of := f
		of.Limit, of.Offset, of.Before = size, off, nil
		page, total, err := db.ListLogs(ctx, of)
		if err != nil {
			t.Fatalf("ListLogs(%+v): %v", of, err)
		}
		if total != int64(len(want)) {
			t.Fatalf("ListLogs(%+v): total %d; want %d", of, total, len(want))
		}
		for _, l := range page {
			byOffset = append(byOffset, l.EventID)
		}
	}
	if !slices.Equal(byCursor, want) || !slices.Equal(byOffset, want) {
		t.Fatalf("%+v in pages of %d:\n keyset %v\n offset %v\n   want %v", f, size, byCursor, byOffset, want)
	}
}

// lbReconciled fails unless the summaries reconcile with the ledger.
func lbReconciled(t fatalfer, db *store.DB, when string) {
	m, err := db.Reconcile(context.Background())
	if err != nil || len(m) != 0 {
		t.Fatalf("%s: Reconcile = %v, %v; want no mismatch", when, m, err)
	}
}

// TestListLogsPeriodRowsAfterTheNextPeriodStarts: ana's subscription
// anchored on January 20 is cancelled at once on February 5 at 11:00, so
// her period "2026-01" of the subscription holds calls of February 1–5,
// after the start of the calendar month "2026-02" she is in from then on.
// Before the subscription she was in the calendar month "2026-01" (a
// period of the same name, from January 1), and March holds more calls
// than any older period. Calls arrive late (older than the newest of
// their period, ingested after it), and the newest call of "2026-01" is
// ingested after calls of the later periods. After each batch, and with
// every period filter (with and without a provider or status), both
// users' pages are exactly the rows of the fixture that the filter
// selects, newest first; the summaries reconcile, last_event_at included.
func TestListLogsPeriodRowsAfterTheNextPeriodStarts(t *testing.T) {
	dec := lbPeriod{"2025-12", date(2025, time.December, 1, 0, 0, 0, 0), date(2026, time.January, 1, 0, 0, 0, 0)}
	janCal := lbPeriod{"2026-01", date(2026, time.January, 1, 0, 0, 0, 0), date(2026, time.February, 1, 0, 0, 0, 0)}
	janSub := lbPeriod{"2026-01", date(2026, time.January, 20, 9, 0, 0, 0), date(2026, time.February, 20, 9, 0, 0, 0)}
	febCal := lbPeriod{"2026-02", date(2026, time.February, 1, 0, 0, 0, 0), date(2026, time.March, 1, 0, 0, 0, 0)}
	mar := lbPeriod{"2026-03", date(2026, time.March, 1, 0, 0, 0, 0), date(2026, time.April, 1, 0, 0, 0, 0)}
	// ben's own subscription, anchored on January 28, whose "2026-01"
	// runs past ana's newest call of that name.
	benSub := lbPeriod{"2026-01", date(2026, time.January, 28, 0, 0, 0, 0), date(2026, time.February, 28, 0, 0, 0, 0)}
	cancelled := date(2026, time.February, 5, 11, 0, 0, 0)

	ev := func(p lbPeriod, user, id string, at time.Time, provider string, status int) store.IngestItem {
		it := p.item(user, id, at)
		it.Log.Provider, it.Log.StatusCode = provider, status
		return it
	}
	batches := [][]store.IngestItem{
		{
			ev(dec, "ana", "d1", date(2025, time.December, 10, 12, 0, 0, 0), "openai", 200),
			ev(dec, "ana", "d2", date(2026, time.January, 1, 0, 0, 0, 0).Add(-time.Microsecond), "gemini", 200),
			ev(janCal, "ana", "c2", date(2026, time.January, 5, 8, 0, 0, 0), "openai", 200),
			ev(janSub, "ana", "s1", janSub.start, "openai", 200), // at the period's start
			ev(janSub, "ana", "s3", febCal.start, "openai", 200), // at the next name's start
			ev(janSub, "ana", "s4", date(2026, time.February, 2, 10, 0, 0, 0), "gemini", 200),
			ev(janCal, "ben", "b1", date(2026, time.January, 15, 0, 0, 0, 0), "openai", 200),
			ev(febCal, "ben", "b3", febCal.start, "openai", 200), // the instant of ana's s3
		},
		{
			// The newer call first: a batch's latest call is its maximum,
			// not its last.
			ev(janSub, "ana", "s6", cancelled.Add(-time.Second), "openai", 200),
			ev(janSub, "ana", "s5", date(2026, time.February, 3, 0, 0, 0, 0), "openai", 500),
			ev(janCal, "ben", "b2", date(2026, time.January, 31, 23, 0, 0, 0), "gemini", 200),
			ev(benSub, "ben", "b5", date(2026, time.February, 12, 0, 0, 0, 0), "openai", 200),
		},
		{
			// Calendar January's calls reported after the subscription's,
			// and a late call of the subscription's period.
			ev(janCal, "ana", "c1", janCal.start, "openai", 200),
			ev(janCal, "ana", "c3", janSub.start.Add(-time.Microsecond), "gemini", 500),
			ev(janSub, "ana", "s2", date(2026, time.January, 25, 0, 0, 0, 0), "openai", 200),
			ev(febCal, "ana", "f1", cancelled, "openai", 200), // the instant s7 is made at
			ev(febCal, "ana", "f2", date(2026, time.February, 6, 0, 0, 0, 0), "gemini", 500),
		},
		{
			// The subscription period's newest call, after calls of
			// "2026-02" in time and in arrival, then an older one of it.
			ev(janSub, "ana", "s7", cancelled, "gemini", 200),
			ev(janSub, "ana", "s8", date(2026, time.February, 4, 0, 0, 0, 0), "openai", 200),
			ev(mar, "ana", "m1", date(2026, time.March, 2, 0, 0, 0, 0), "openai", 200),
			ev(mar, "ana", "m2", date(2026, time.March, 3, 0, 0, 0, 0), "openai", 200),
			ev(mar, "ana", "m3", date(2026, time.March, 4, 0, 0, 0, 0), "gemini", 500),
			ev(mar, "ana", "m4", date(2026, time.March, 9, 0, 0, 0, 0), "openai", 200),
			ev(mar, "ana", "m5", date(2026, time.March, 15, 0, 0, 0, 0), "gemini", 200),
			ev(mar, "ana", "m6", date(2026, time.March, 20, 0, 0, 0, 0), "openai", 200),
			ev(febCal, "ana", "f3", date(2026, time.February, 20, 0, 0, 0, 0), "gemini", 200),
			ev(febCal, "ana", "f4", date(2026, time.February, 28, 0, 0, 0, 0), "openai", 200),
			ev(febCal, "ben", "b4", date(2026, time.February, 3, 0, 0, 0, 0), "gemini", 200),
		},
		{
			// Late calls again, after the newest of their periods: they
			// must not lower last_event_at.
			ev(janSub, "ana", "s9", date(2026, time.January, 21, 0, 0, 0, 0), "openai", 200),
			ev(dec, "ana", "d3", date(2025, time.December, 15, 0, 0, 0, 0), "openai", 500),
			ev(janCal, "ana", "c4", date(2026, time.January, 10, 0, 0, 0, 0).In(time.FixedZone("X", -5*3600)), "openai", 200),
		},
	}
	users := []string{"ana", "ben"}
	names := []string{"2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04"}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		db := storetest.Open(t, b)
		var ingested []billing.UsageLog
		check := func(t *testing.T, sizes []int) {
			ids := lbIDs(t, db, users...)
			if len(ids) != len(ingested) {
				t.Fatalf("%d logs listed by user; want %d", len(ids), len(ingested))
			}
			for _, u := range users {
				for _, name := range names {
					for _, f := range []billing.LogFilter{
						{UserID: u, BillingPeriod: name},
						{UserID: u, BillingPeriod: name, Provider: "openai"},
						{UserID: u, BillingPeriod: name, Provider: "gemini"},
						{UserID: u, BillingPeriod: name, Provider: "anthropic"},
						{UserID: u, BillingPeriod: name, StatusCode: 500},
						{UserID: u, BillingPeriod: name, StatusCode: 200, Provider: "openai"},
					} {
						want := wantLogs(ingested, ids, f)
						for _, size := range sizes {
							checkLogPages(t, db, f, size, want)
						}
					}
				}
			}
		}
		for i, batch := range batches {
			fresh := map[string]bool{}
			for _, it := range batch {
				fresh[it.Log.EventID] = true
				ingested = append(ingested, it.Log)
			}
			lbIngest(t, db, fresh, batch...)
			t.Run(fmt.Sprintf("after batch %d", i+1), func(t *testing.T) { check(t, []int{3}) })
			lbReconciled(t, db, fmt.Sprintf("after batch %d", i+1))
		}
		t.Run("every page size", func(t *testing.T) { check(t, []int{1, 2, 4, 50}) })

		// The same pages written out by hand, so that the computed
		// expectation above cannot share a mistake with the store.
		for _, c := range []struct {
			f    billing.LogFilter
			want []string
		}{
			{billing.LogFilter{UserID: "ana", BillingPeriod: "2026-01"},
				[]string{"s7", "s6", "s8", "s5", "s4", "s3", "s2", "s9", "s1", "c3", "c4", "c2", "c1"}},
			{billing.LogFilter{UserID: "ana", BillingPeriod: "2026-01", Provider: "gemini"}, []string{"s7", "s4", "c3"}},
			{billing.LogFilter{UserID: "ana", BillingPeriod: "2026-02"}, []string{"f4", "f3", "f2", "f1"}},
			{billing.LogFilter{UserID: "ana", BillingPeriod: "2025-12"}, []string{"d2", "d3", "d1"}},
			{billing.LogFilter{UserID: "ben", BillingPeriod: "2026-01"}, []string{"b5", "b2", "b1"}},
			{billing.LogFilter{UserID: "ben", BillingPeriod: "2026-02"}, []string{"b4", "b3"}},
		} {
			checkLogPages(t, db, c.f, 2, c.want)
		}
	})
}

// TestReconcileFindsAStaleLastEventAt: a period's last_event_at must be
// the latest timestamp of its ledger rows, for its logs are paged up to
// it. One moved earlier (the period's newest calls then drop out of its
// pages), later, or cleared is reported as one mismatch naming the user,
// the period and its start; a cleared one leaves the pages unbounded
// above, and whole.
func TestReconcileFindsAStaleLastEventAt(t *testing.T) {
	janCal := lbPeriod{"2026-01", date(2026, time.January, 1, 0, 0, 0, 0), date(2026, time.February, 1, 0, 0, 0, 0)}
	janSub := lbPeriod{"2026-01", date(2026, time.January, 20, 9, 0, 0, 0), date(2026, time.February, 20, 9, 0, 0, 0)}
	febCal := lbPeriod{"2026-02", date(2026, time.February, 1, 0, 0, 0, 0), date(2026, time.March, 1, 0, 0, 0, 0)}
	newest := date(2026, time.February, 3, 12, 30, 0, 0)
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		raw := rawSQL(t, url)
		items := []store.IngestItem{
			janCal.item("ana", "c1", date(2026, time.January, 3, 0, 0, 0, 0)),
			janCal.item("ana", "c2", date(2026, time.January, 10, 0, 0, 0, 0)),
			janSub.item("ana", "s1", date(2026, time.January, 22, 0, 0, 0, 0)),
			janSub.item("ana", "s2", newest),
			janSub.item("ana", "s3", date(2026, time.February, 1, 6, 0, 0, 0)),
			febCal.item("ana", "f1", date(2026, time.February, 10, 0, 0, 0, 0)),
			janSub.item("ben", "b1", newest),
		}
		items[4].Log.Provider, items[4].Log.ModelUsed = "gemini", "gemini-2.5-pro"
		lbIngest(t, db, map[string]bool{}, items...)
		lbReconciled(t, db, "as ingested")
		page := func(want ...string) {
			t.Helper()
			logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: "ana", BillingPeriod: "2026-01", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, l := range logs {
				got = append(got, l.EventID)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ana's 2026-01 logs %v; want %v", got, want)
			}
		}
		page("s2", "s3", "s1", "c2", "c1")

		const layout = "2006-01-02T15:04:05.000000Z" // the store's stored form
		set := func(v any) {
			t.Helper()
			if n := mustExec(t, raw, `UPDATE usage_summaries SET last_event_at = $1
				WHERE user_id = 'ana' AND billing_period = '2026-01' AND period_start = $2`, v, janSub.start.Format(layout)); n != 1 {
				t.Fatalf("updated %d summaries; want 1", n)
			}
		}
		for _, c := range []struct {
			name    string
			value   any
			summary int64
			page    []string
		}{
			{"earlier", date(2026, time.January, 25, 0, 0, 0, 0).Format(layout), date(2026, time.January, 25, 0, 0, 0, 0).UnixMicro(),
				[]string{"s1", "c2", "c1"}},
			{"a microsecond earlier", newest.Add(-time.Microsecond).Format(layout), newest.Add(-time.Microsecond).UnixMicro(),
				[]string{"s3", "s1", "c2", "c1"}},
			{"later", febCal.end.Format(layout), febCal.end.UnixMicro(), []string{"s2", "s3", "s1", "c2", "c1"}},
			{"cleared", nil, 0, []string{"s2", "s3", "s1", "c2", "c1"}},
		} {
			set(c.value)
			m, err := db.Reconcile(ctx)
			if err != nil || len(m) != 1 {
				t.Fatalf("%s: Reconcile = %v, %v; want one mismatch", c.name, m, err)
			}
			got := m[0]
			if !got.PeriodStart.Equal(janSub.start) {
				t.Errorf("%s: mismatch in the period from %s; want %s", c.name, got.PeriodStart, janSub.start)
			}
			got.PeriodStart = time.Time{}
			want := store.Mismatch{UserID: "ana", BillingPeriod: "2026-01", Field: "last_event_at (Unix µs)",
				Ledger: newest.UnixMicro(), Summary: c.summary}
			if got != want {
				t.Errorf("%s: mismatch %+v; want %+v", c.name, got, want)
			}
			page(c.page...)
			set(newest.Format(layout))
			lbReconciled(t, db, c.name+", restored")
			page("s2", "s3", "s1", "c2", "c1")
		}
	})
}

// TestPropListLogsByPeriodMatchesTheLedger: random calls of one to three
// users, in calendar months and in subscription periods of the same names
// that overlap them (a subscription anchored on a random day of January,
// whose "2026-01" runs into February), ingested in random batches in
// random order (so many arrive late, older than the newest call of their
// period), some resent later with a newer timestamp (which changes
// nothing). Then every user's pages of every period name, with every
// provider filter, keyset and offset, are exactly the calls the filter
// selects, newest first, and the summaries reconcile with the ledger
// (last_event_at included). One database per backend; each check has its
// own users and event ids.
func TestPropListLogsByPeriodMatchesTheLedger(t *testing.T) {
	providers := []string{"openai", "gemini", "anthropic"}
	names := []string{"2025-12", "2026-01", "2026-02", "2026-03", "2026-04"}
	month := func(m time.Month) time.Time { return date(2026, m, 1, 0, 0, 0, 0) }
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		storetest.RapidChecks(t, 40) // each check pages every filter of its users
		db := storetest.Open(t, b)
		run := 0
		rapid.Check(t, func(rt *rapid.T) {
			run++ // every run, shrinking included, has its own users and ids
			anchor := date(2026, time.January, rapid.IntRange(2, 28).Draw(rt, "anchor_day"),
				rapid.SampledFrom([]int{0, 9}).Draw(rt, "anchor_hour"), 0, 0, 0)
			periods := []lbPeriod{
				{"2025-12", date(2025, time.December, 1, 0, 0, 0, 0), month(time.January)},
				{"2026-01", month(time.January), month(time.February)},
				{"2026-01", anchor, anchor.AddDate(0, 1, 0)},
				{"2026-02", month(time.February), month(time.March)},
				{"2026-02", anchor.AddDate(0, 1, 0), anchor.AddDate(0, 2, 0)},
				{"2026-03", month(time.March), month(time.April)},
			}
			users := make([]string, rapid.IntRange(1, 3).Draw(rt, "users"))
			for i := range users {
				users[i] = fmt.Sprintf("lb%d-u%d", run, i)
			}
			n := rapid.IntRange(1, 40).Draw(rt, "calls")
			items := make([]store.IngestItem, n)
			var stamps []time.Time
			for i := range items {
				p := periods[rapid.IntRange(0, len(periods)-1).Draw(rt, "period")]
				span := p.end.Sub(p.start)
				var at time.Time
				switch rapid.IntRange(0, 4).Draw(rt, "when") {
				case 0:
					at = p.start
				case 1:
					at = p.start.Add(time.Duration(rapid.Int64Range(0, int64(span/(24*time.Hour))-1).Draw(rt, "day")) * 24 * time.Hour)
				case 2:
					// The instant of an earlier call, when it lies in p.
					if len(stamps) > 0 {
						at = stamps[rapid.IntRange(0, len(stamps)-1).Draw(rt, "same_as")]
					}
					if at.Before(p.start) || !at.Before(p.end) {
						at = p.end.Add(-time.Microsecond)
					}
				default:
					at = p.start.Add(time.Duration(rapid.Int64Range(0, span.Microseconds()-1).Draw(rt, "micros")) * time.Microsecond)
				}
				stamps = append(stamps, at)
				it := p.item(rapid.SampledFrom(users).Draw(rt, "user"), fmt.Sprintf("lb%d-e%02d", run, i), at)
				it.Log.Provider = rapid.SampledFrom(providers).Draw(rt, "provider")
				it.Log.StatusCode = rapid.SampledFrom([]int{200, 200, 200, 429, 500}).Draw(rt, "status")
				it.Log.TokensInput, it.Log.TokensOutput = rapid.Int64Range(0, 1000).Draw(rt, "in"), rapid.Int64Range(0, 100).Draw(rt, "out")
				it.Log.CostTotal = money.Amount(rapid.Int64Range(0, 1_000_000).Draw(rt, "cost"))
				items[i] = it
			}
			order := rapid.Permutation(items).Draw(rt, "order")
			var sent []store.IngestItem
			for rest := order; len(rest) > 0; {
				k := rapid.IntRange(1, min(len(rest), 8)).Draw(rt, "batch_size")
				batch := slices.Clone(rest[:k])
				rest = rest[k:]
				fresh := map[string]bool{}
				for _, it := range batch {
					fresh[it.Log.EventID] = true
				}
				if len(sent) > 0 && rapid.Bool().Draw(rt, "resend") {
					// A resend of an event ingested before, a day newer:
					// its first copy stands, last_event_at included.
					again := sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "resent")]
					again.Log.Timestamp = again.Log.Timestamp.Add(24 * time.Hour)
					at := rapid.IntRange(0, len(batch)).Draw(rt, "resent_at")
					batch = slices.Insert(batch, at, again)
				}
				lbIngest(rt, db, fresh, batch...)
				for _, it := range batch {
					if fresh[it.Log.EventID] {
						sent = append(sent, it)
					}
				}
			}
			logs := make([]billing.UsageLog, len(items))
			for i, it := range items {
				logs[i] = it.Log
			}
			ids := lbIDs(rt, db, users...)
			if len(ids) != len(logs) {
				rt.Fatalf("%d logs listed by user; want %d", len(ids), len(logs))
			}
			size := rapid.IntRange(1, 4).Draw(rt, "page_size")
			for _, u := range users {
				for _, name := range names {
					for _, provider := range append([]string{""}, providers...) {
						f := billing.LogFilter{UserID: u, BillingPeriod: name, Provider: provider}
						checkLogPages(rt, db, f, size, wantLogs(logs, ids, f))
					}
				}
			}
			lbReconciled(rt, db, "after the batches")
		})
	})
}
