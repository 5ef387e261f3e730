package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestRecordUsageContract drives POST /usage as a client does: the answer's
// exact shape, money as exact JSON numbers, idempotent resends, batches in
// order, ids minted when absent and the user taken from a user key.
func TestRecordUsageContract(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		e.userKey("bob")

		// One event: the seed's arithmetic, gpt-4 1,000 in + 500 out = 0.06 USD,
		// written as the exact JSON number.
		first := mtRecord(e, alice, mtJSON(t, mtEvent("evt-1", "alice")))
		if !strings.Contains(string(first.body), `"cost":0.06`) {
			t.Fatalf("raw body lacks \"cost\":0.06: %s", first)
		}
		d := mtRecorded(e, first, 1)
		res := mtResult(t, d, 0)
		if res["event_id"] != "evt-1" || res["status"] != "recorded" || num(t, res["cost"]) != "0.06" ||
			res["billing_period"] != "2026-11" || res["unpriced"] != false {
			t.Fatalf("result = %v", res)
		}
		if integer(t, d["recorded"]) != 1 || integer(t, d["duplicates"]) != 0 {
			t.Fatalf("counts = %v", d)
		}

		// A resend changes nothing and answers the first result as a duplicate.
		for range 2 {
			again := mtRecorded(e, mtRecord(e, alice, mtJSON(t, mtEvent("evt-1", "alice"))), 1)
			res := mtResult(t, again, 0)
			if res["event_id"] != "evt-1" || res["status"] != "duplicate" || num(t, res["cost"]) != "0.06" ||
				res["billing_period"] != "2026-11" {
				t.Fatalf("resent result = %v", res)
			}
			if integer(t, again["recorded"]) != 0 || integer(t, again["duplicates"]) != 1 {
				t.Fatalf("resent counts = %v", again)
			}
		}
		if ids := mtLoggedIDs(e, "alice"); len(ids) != 1 || ids["evt-1"] != 1 {
			t.Fatalf("ledger after resends: %v", ids)
		}

		// A batch answers one result per event, in order; a repeat inside
		// the batch and an event already recorded are duplicates; an event
		// without an id gets one minted; an event without a user is the
		// key's user's.
		gem := mtEvent("evt-2", "alice")
		gem["provider"], gem["model"], gem["tokens_input"], gem["tokens_output"] = "gemini", "gemini-pro", 0, 0
		noID := mtEvent("", "")
		batch := mtBatch(mtEvent("evt-1", "alice"), gem, mtEvent("evt-3", ""), mtEvent("evt-3", ""), noID)
		d = mtRecorded(e, mtRecord(e, alice, mtJSON(t, batch)), 5)
		want := []struct{ id, status, cost string }{
			{"evt-1", "duplicate", "0.06"}, {"evt-2", "recorded", "0"}, {"evt-3", "recorded", "0.06"},
			{"evt-3", "duplicate", "0.06"}, {"", "recorded", "0.06"},
		}
		for i, w := range want {
			res := mtResult(t, d, i)
			if w.id != "" && res["event_id"] != w.id || res["status"] != w.status || num(t, res["cost"]) != w.cost {
				t.Errorf("results[%d] = %v, want %+v", i, res, w)
			}
		}
		minted, _ := mtResult(t, d, 4)["event_id"].(string)
		if !strings.HasPrefix(minted, "evt_") {
			t.Errorf("minted event id %q", minted)
		}
		if integer(t, d["recorded"]) != 3 || integer(t, d["duplicates"]) != 2 {
			t.Errorf("batch counts = %v", d)
		}
		ids := mtLoggedIDs(e, "alice")
		if len(ids) != 4 || ids["evt-1"] != 1 || ids["evt-2"] != 1 || ids["evt-3"] != 1 || ids[minted] != 1 {
			t.Errorf("alice's ledger = %v", ids)
		}

		// The usage API counts each event once.
		usage := e.data(e.get("/api/subscription/usage/alice", alice))
		if integer(t, usage["total_calls"]) != 4 || num(t, usage["total_cost"]) != "0.18" {
			t.Errorf("usage = calls %v cost %v, want 4 and 0.18", usage["total_calls"], usage["total_cost"])
		}

		// An admin key records for any known user.
		d = mtRecorded(e, mtRecord(e, testAdminKey, mtJSON(t, mtEvent("evt-bob", "bob"))), 1)
		if mtResult(t, d, 0)["status"] != "recorded" {
			t.Errorf("admin recording for bob: %v", d)
		}
		if ids := mtLoggedIDs(e, "bob"); len(ids) != 1 || ids["evt-bob"] != 1 {
			t.Errorf("bob's ledger = %v", ids)
		}
		mtConsistent(e)
	})
}

// TestRecordUsageRefusals: every bad request is a 4xx problem+json that
// names what is wrong, and nothing of a refused batch is stored.
func TestRecordUsageRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		alice := e.userKey("alice")
		e.userKey("bob")

		// A bad batch: a good event, then two bad ones. The batch is refused
		// whole, each bad event and field named, and the good event is not
		// stored (recording it later says "recorded", not "duplicate").
		neg := mtEvent("bad-1", "alice")
		neg["tokens_input"] = -5
		unknownProvider := mtEvent("bad-2", "alice")
		unknownProvider["provider"] = "no-such-ai"
		old := mtEvent("bad-3", "alice")
		old["timestamp"] = defaultNow.AddDate(0, 0, -40).Format("2006-01-02T15:04:05Z")
		r := mtRecord(e, alice, mtJSON(t, mtBatch(mtEvent("good-0", "alice"), neg, unknownProvider, old)))
		mtRefused(e, r, "body.events[1].tokens_input", "body.events[2].provider", "body.events[3].timestamp")
		if n := mtLogCount(e); n != 0 {
			t.Fatalf("a refused batch stored %d logs", n)
		}

		// One event's content contradicting another with the same id.
		twin := mtEvent("twin", "alice")
		twin["tokens_output"] = 7
		mtRefused(e, mtRecord(e, alice, mtJSON(t, mtBatch(mtEvent("twin", "alice"), twin))), "body.events[1].event_id")

		// An unknown user, named by the admin.
		mtRefused(e, mtRecord(e, testAdminKey, mtJSON(t, mtEvent("ghost-1", "ghost"))), "body.events[0].user_id")
		// An admin must name the user.
		mtRefused(e, mtRecord(e, testAdminKey, mtJSON(t, mtEvent("anon-1", ""))), "body.events[0].user_id")

		// Bodies that are not events at all.
		for _, tc := range []struct{ name, body, names string }{
			{"malformed JSON", `{"event_id": "x", "provider": `, "body"},
			{"truncated batch", `{"events": [{"event_id": "x"}`, "body"},
			{"array", `[{"event_id": "x"}]`, "body"},
			{"string", `"event"`, "body"},
			{"number", `42`, "body"},
			{"null", `null`, "body"},
			{"empty", ``, "body"},
			{"trailing data", `{"event_id": "x"} {"event_id": "y"}`, "body"},
			{"events null", `{"events": null}`, "body.events"},
			{"events object", `{"events": {"event_id": "x"}}`, "body.events"},
			{"no events", `{"events": []}`, "body.events"},
			{"event not an object", `{"events": [7]}`, "body.events[0]"},
			{"unknown field", `{"event_id": "u1", "user_id": "alice", "provider": "openai", "tokens_inptu": 5}`, "body.tokens_inptu"},
			{"unknown field in a batch", `{"events": [{"event_id": "u1", "provider": "openai"}, {"event_id": "u2", "provider": "openai", "bogus": {"a": [1]}}]}`, "body.events[1].bogus"},
			{"unknown field beside events", `{"events": [{"event_id": "u1", "provider": "openai"}], "provider": "openai"}`, "body.provider"},
			{"wrong type", `{"event_id": "u1", "provider": 5}`, "body.provider"},
			{"wrong type in a batch", `{"events": [{"event_id": "u1", "provider": "openai"}, {"event_id": "u2", "provider": "openai", "tokens_input": "many"}]}`, "body.events[1].tokens_input"},
			{"huge number", `{"event_id": "u1", "provider": "openai", "tokens_output": 1e400}`, "body.tokens_output"},
			{"int64 overflow", `{"event_id": "u1", "provider": "openai", "tokens_output": 99999999999999999999}`, "body.tokens_output"},
			{"fractional tokens", `{"event_id": "u1", "provider": "openai", "tokens_output": 1.5}`, "body.tokens_output"},
			{"bad timestamp", `{"event_id": "u1", "provider": "openai", "timestamp": "yesterday"}`, "body.timestamp"},
			{"timestamp not a string", `{"events": [{"event_id": "u1", "provider": "openai", "timestamp": 1700000000}]}`, "body.events[0].timestamp"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := mtRecord(e, alice, tc.body)
				p := e.problem(r, http.StatusBadRequest)
				// huma answers an empty body itself, with a detail only.
				if locs := mtErrorLocations(t, p); tc.body != "" && !contains(locs, tc.names) {
					t.Errorf("errors name %v, want %s: %s", locs, tc.names, r)
				}
				if !strings.Contains(p["detail"].(string), tc.names) {
					t.Errorf("detail %q does not name %s", p["detail"], tc.names)
				}
			})
		}

		// 1,001 events are refused; 1,000 are accepted.
		events := make([]map[string]any, 1001)
		for i := range events {
			events[i] = mtEvent(fmt.Sprintf("many-%d", i), "alice")
		}
		mtRefused(e, mtRecord(e, alice, mtJSON(t, mtBatch(events...))), "body.events")
		if n := mtLogCount(e); n != 0 {
			t.Fatalf("refused requests stored %d logs", n)
		}
		d := mtRecorded(e, mtRecord(e, alice, mtJSON(t, mtBatch(events[:1000]...))), 1000)
		if integer(t, d["recorded"]) != 1000 {
			t.Fatalf("a batch of 1,000 recorded %v", d["recorded"])
		}

		// The good event of the refused batch was never stored.
		d = mtRecorded(e, mtRecord(e, alice, mtJSON(t, mtEvent("good-0", "alice"))), 1)
		if mtResult(t, d, 0)["status"] != "recorded" {
			t.Fatalf("the good event of a refused batch had been stored: %v", d)
		}

		// A user key records only its own user's events: one foreign event
		// refuses the batch (403) and stores nothing.
		before := mtLogCount(e)
		e.problem(mtRecord(e, alice, mtJSON(t, mtEvent("foreign-1", "bob"))), http.StatusForbidden)
		e.problem(mtRecord(e, alice, mtJSON(t, mtBatch(mtEvent("mine-1", "alice"), mtEvent("foreign-2", "bob")))), http.StatusForbidden)

		// No key is 401 with the scheme to use; a bad key is 401 too.
		r = mtRecord(e, "", mtJSON(t, mtEvent("anon-2", "alice")))
		e.problem(r, http.StatusUnauthorized)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("401 without WWW-Authenticate: %v", r.header)
		}
		e.problem(mtRecord(e, "alw_not-a-real-key", mtJSON(t, mtEvent("anon-3", "alice"))), http.StatusUnauthorized)
		if n := mtLogCount(e); n != before {
			t.Fatalf("refused requests stored %d logs", n-before)
		}
		mtConsistent(e)
	})
}
