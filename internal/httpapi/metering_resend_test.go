package httpapi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestRecordUsageEventIDOfAnotherUser: bob sends an event id that one of
// alice's events holds, with his own key or through the admin key. The
// batch is refused with a 400 that names the event's event_id and
// nothing of alice's event (its cost, period or user); nothing of it is
// stored, and alice's resend still answers her first result.
func TestRecordUsageEventIDOfAnotherUser(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		bob := e.userKey("bob")
		ev := mtEvent("shared-id", "alice")
		ev["tokens_input"], ev["tokens_output"] = 1234, 567 // 0.07104 USD
		ev["timestamp"] = defaultNow.AddDate(0, -1, 0).Format(time.RFC3339)
		mtRecorded(e, mtRecord(e, alice, mtJSON(t, ev)), 1)
		logs := mtLogCount(e)

		for _, key := range []string{bob, testAdminKey} {
			r := mtRecord(e, key, mtJSON(t, mtBatch(mtEvent("bob-own", "bob"), mtEvent("shared-id", "bob"))))
			mtRefused(e, r, "body.events[1].event_id")
			for _, leak := range []string{"0.07104", "2026-10", "alice"} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("the refusal discloses %q of alice's event: %s", leak, r)
				}
			}
		}
		if n := mtLogCount(e); n != logs {
			t.Errorf("%d usage logs; want %d", n, logs)
		}
		if ids := mtLoggedIDs(e, "bob"); len(ids) != 0 {
			t.Errorf("bob's ledger = %v; want nothing", ids)
		}
		d := mtRecorded(e, mtRecord(e, alice, mtJSON(t, ev)), 1)
		if res := mtResult(t, d, 0); res["status"] != "duplicate" || num(t, res["cost"]) != "0.07104" || res["billing_period"] != "2026-10" {
			t.Errorf("alice's resend = %v; want her first result", res)
		}
		mtConsistent(e)
	})
}

// TestRecordUsageResendOfAnOldEvent: an event recorded with a timestamp
// 34 days old is resent 2 days later with a new event: the resend answers
// its first result although it is now more than 35 days old, and the new
// event is recorded. A batch whose other bad event is not a resend is
// refused whole.
func TestRecordUsageResendOfAnOldEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		old := mtEvent("old-1", "alice")
		old["timestamp"] = defaultNow.Add(-34 * 24 * time.Hour).Format(time.RFC3339)
		d := mtRecorded(e, mtRecord(e, alice, mtJSON(t, old)), 1)
		if res := mtResult(t, d, 0); res["status"] != "recorded" || res["billing_period"] != "2026-10" {
			t.Fatalf("first recording = %v", res)
		}
		e.setNow(defaultNow.Add(2 * 24 * time.Hour))
		logs := mtLogCount(e)

		bad := mtEvent("bad-1", "alice")
		bad["tokens_input"] = -1
		mtRefused(e, mtRecord(e, alice, mtJSON(t, mtBatch(old, bad))), "body.events[0].timestamp", "body.events[1].tokens_input")
		if n := mtLogCount(e); n != logs {
			t.Fatalf("%d usage logs after a refused batch; want %d", n, logs)
		}

		d = mtRecorded(e, mtRecord(e, alice, mtJSON(t, mtBatch(old, mtEvent("new-1", "alice")))), 2)
		if res := mtResult(t, d, 0); res["status"] != "duplicate" || num(t, res["cost"]) != "0.06" || res["billing_period"] != "2026-10" {
			t.Errorf("resend = %v; want the first result", res)
		}
		if res := mtResult(t, d, 1); res["status"] != "recorded" || res["billing_period"] != "2026-11" {
			t.Errorf("new event = %v; want recorded in 2026-11", res)
		}
		if integer(t, d["recorded"]) != 1 || integer(t, d["duplicates"]) != 1 {
			t.Errorf("counts = %v", d)
		}
		if n := mtLogCount(e); n != logs+1 {
			t.Errorf("%d usage logs; want %d", n, logs+1)
		}
		mtConsistent(e)
	})
}
