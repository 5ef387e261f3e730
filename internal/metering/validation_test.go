package metering_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// fieldLocations returns the locations a refusal names, sorted.
func fieldLocations(be *billing.Error) []string {
	var out []string
	for _, f := range be.Fields {
		out = append(out, f.Location)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestRecordRefusesBadBatchesWhole sends batches that each hold one good
// event and bad ones: every bad event and field is named, and nothing of
// the batch is stored, the good event included.
func TestRecordRefusesBadBatchesWhole(t *testing.T) {
	const user = "valid-user"
	good := func(id string) billing.UsageEvent { return gpt4Event(id, user, baseTime.Add(-time.Minute), 1000, 500) }
	with := func(id string, change func(e *billing.UsageEvent)) billing.UsageEvent {
		e := good(id)
		change(&e)
		return e
	}
	// Each bad event, and the field that must be named for it.
	bad := []struct {
		name  string
		event billing.UsageEvent
		field string
	}{
		{"negative tokens", with("bad-neg", func(e *billing.UsageEvent) { e.Quantities.Input = -1 }), "tokens_input"},
		{"absurd tokens", with("bad-huge", func(e *billing.UsageEvent) { e.Quantities.Output = billing.MaxTokensPerEvent + 1 }), "tokens_output"},
		{"cached over input", with("bad-cached", func(e *billing.UsageEvent) { e.Quantities.CachedInput = 1001 }), "tokens_input"},
		{"reasoning over output", with("bad-reasoning", func(e *billing.UsageEvent) { e.Quantities.Reasoning = 501 }), "tokens_reasoning"},
		{"unknown user", with("bad-user", func(e *billing.UsageEvent) { e.UserID = "nobody" }), "user_id"},
		{"unknown provider", with("bad-provider", func(e *billing.UsageEvent) { e.Provider = "acme-ai" }), "provider"},
		{"36 days old", with("bad-old", func(e *billing.UsageEvent) { e.Timestamp = baseTime.Add(-36 * 24 * time.Hour) }), "timestamp"},
		{"6 minutes ahead", with("bad-future", func(e *billing.UsageEvent) { e.Timestamp = baseTime.Add(6 * time.Minute) }), "timestamp"},
		{"metadata not JSON", with("bad-meta", func(e *billing.UsageEvent) { e.Metadata = `{"a":` }), "metadata"},
		{"metadata null", with("bad-meta-null", func(e *billing.UsageEvent) { e.Metadata = "null" }), "metadata"},
		{"metadata an array", with("bad-meta-array", func(e *billing.UsageEvent) { e.Metadata = ` [{"a":1}]` }), "metadata"},
		// PostgreSQL text holds no NUL and no invalid UTF-8: refused, not a
		// failed insert.
		{"NUL in the endpoint", with("bad-endpoint", func(e *billing.UsageEvent) { e.Endpoint = "/v1/chat/\x00" }), "endpoint"},
		{"invalid UTF-8 in the error", with("bad-error", func(e *billing.UsageEvent) { e.ErrorMessage = "upstream \xff" }), "error_message"},
		{"a method that is not a token", with("bad-method", func(e *billing.UsageEvent) { e.Method = "POST POST" }), "method"},
		{"invalid UTF-8 in the metadata", with("bad-meta-utf8", func(e *billing.UsageEvent) { e.Metadata = "{\"a\":\"\xff\"}" }), "metadata"},
		{"id of the good event with other contents", with("good", func(e *billing.UsageEvent) { e.Quantities.Output = 501 }), "event_id"},
	}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		f := newFixture(t, b, baseTime)
		f.keyUser(user)
		// Some usage already stored, to see it does not change.
		f.record(good("earlier-1"), good("earlier-2"))
		period := billing.CalendarMonths().At(baseTime)
		before := f.usage(user, period)
		logsBefore := countLogs(f)

		refuse := func(t *testing.T, events []billing.UsageEvent, want []string) {
			t.Helper()
			res, err := f.m.Record(f.ctx, events)
			if err == nil {
				t.Fatalf("Record accepted a bad batch: %+v", res)
			}
			be := billingErr(t, err, billing.CodeInvalid)
			if got := fieldLocations(be); !slices.Equal(got, want) {
				t.Fatalf("refusal names %q; want %q (message %q)", got, want, be.Message)
			}
			if after := f.usage(user, period); after.Total != before.Total {
				t.Fatalf("usage changed by a refused batch: %+v; was %+v", after.Total, before.Total)
			}
			if n := countLogs(f); n != logsBefore {
				t.Fatalf("%d ledger rows after a refused batch; was %d", n, logsBefore)
			}
			f.consistent()
		}

		for _, c := range bad {
			t.Run(c.name, func(t *testing.T) {
				f.t = t
				refuse(t, []billing.UsageEvent{good("good"), c.event}, []string{"body.events[1]." + c.field})
			})
		}
		t.Run("all at once", func(t *testing.T) {
			f.t = t
			events := []billing.UsageEvent{good("good")}
			var want []string
			for i, c := range bad {
				events = append(events, c.event)
				want = append(want, fmt.Sprintf("body.events[%d].%s", i+1, c.field))
			}
			slices.Sort(want)
			refuse(t, events, want)
		})
		t.Run("every bad field of one event", func(t *testing.T) {
			f.t = t
			e := with("bad-many", func(e *billing.UsageEvent) {
				e.Timestamp = baseTime.Add(time.Hour)
				e.Quantities.CachedInput = 2000
				e.Quantities.Reasoning = 600
				e.Provider = "acme-ai"
			})
			refuse(t, []billing.UsageEvent{good("good"), e}, []string{
				"body.events[1].provider", "body.events[1].timestamp", "body.events[1].tokens_input", "body.events[1].tokens_reasoning"})
		})
		t.Run("1001 events", func(t *testing.T) {
			f.t = t
			events := make([]billing.UsageEvent, billing.MaxBatchEvents+1)
			for i := range events {
				events[i] = good(fmt.Sprintf("many-%d", i))
			}
			refuse(t, events, []string{"body.events"})
		})
		t.Run("empty batch", func(t *testing.T) {
			f.t = t
			refuse(t, nil, []string{"body.events"})
		})
		t.Run("1000 events are accepted", func(t *testing.T) {
			f.t = t
			// Ten events, each sent 100 times in one batch: the batch is at
			// the limit, and each event is stored once.
			events := make([]billing.UsageEvent, billing.MaxBatchEvents)
			for i := range events {
				events[i] = good(fmt.Sprintf("max-%d", i%10))
			}
			for i, r := range f.record(events...) {
				if want := map[bool]string{true: billing.EventRecorded, false: billing.EventDuplicate}[i < 10]; r.Status != want {
					t.Fatalf("result %d: %q; want %q", i, r.Status, want)
				}
			}
			if n := countLogs(f); n != logsBefore+10 {
				t.Fatalf("%d ledger rows; want %d", n, logsBefore+10)
			}
			logsBefore += 10
			before = f.usage(user, period)
			f.consistent()
		})

		// The good event of the refused batches was never stored: it
		// records now, as new.
		f.t = t
		res := f.record(good("good"))
		if res[0].Status != billing.EventRecorded {
			t.Fatalf("the good event of refused batches: %q; want %q", res[0].Status, billing.EventRecorded)
		}
	})
}

// countLogs returns the number of rows in the ledger.
func countLogs(f *fixture) int64 {
	f.t.Helper()
	_, n, err := f.db.ListLogs(f.ctx, billing.LogFilter{Limit: 1})
	if err != nil {
		f.t.Fatalf("count logs: %v", err)
	}
	return n
}
