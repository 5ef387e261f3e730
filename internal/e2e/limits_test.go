package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestLimitsHoldAcrossProcesses is invariant 4 driven over HTTP: N
// concurrent reservations against K remaining units admit exactly K, with
// three server processes sharing one PostgreSQL schema and with one
// process on SQLite, for a call limit and for a monthly cost limit.
func TestLimitsHoldAcrossProcesses(t *testing.T) {
	t.Run("postgres/3-processes", func(t *testing.T) {
		limitsScenario(t, storetest.PostgresURL(t), 3)
	})
	t.Run("sqlite/1-process", func(t *testing.T) {
		limitsScenario(t, storetest.SQLiteURL(t), 1)
	})
}

// concurrent is how many reservations race each round.
const concurrent = 200

func limitsScenario(t *testing.T, dbURL string, processes int) {
	clearOfMonthEnd(t, monthEndMargin)
	db := storetest.OpenURL(t, dbURL)
	subscribe(t, db, "calls-user", billing.Plan{TotalCallsLimit: billing.Ptr(int64(10))})
	costLimit, estimate := money.MustParse("1"), money.MustParse("0.07")
	subscribe(t, db, "cost-user", billing.Plan{MonthlyCostLimit: &costLimit})
	servers := startServers(t, processes, dbURL)
	c := newClient(t)
	ctx := context.Background()

	// A call limit of 10: exactly 10 of 200 are admitted.
	calls := `{"user_id": "calls-user", "provider": "openai", "model": "gpt-4", "tokens_requested": 100}`
	held := reserveStorm(t, c, servers, calls, 10, "total_calls")
	period := held[0].period
	checkCounters(t, db, "calls-user", period, 0, 10)

	// Settle 4 (real usage is recorded) and release 6, spread over the
	// servers: 4 calls used, none held, so exactly 6 more fit.
	for i, h := range held {
		s := servers[i%len(servers)]
		if i < 4 {
			status, body, err := call(ctx, c, http.MethodPost, s.base+"/api/subscription/reservations/"+h.id+"/settle",
				[]byte(`{"tokens_input": 60, "tokens_output": 40}`))
			if err != nil || status != http.StatusOK {
				t.Fatalf("settle %s on %s: %d %s %v", h.id, s.name, status, body, err)
			}
			continue
		}
		status, body, err := call(ctx, c, http.MethodDelete, s.base+"/api/subscription/reservations/"+h.id, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("release %s on %s: %d %s %v", h.id, s.name, status, body, err)
		}
	}
	checkCounters(t, db, "calls-user", period, 4, 0)
	reserveStorm(t, c, servers, calls, 6, "total_calls")
	checkCounters(t, db, "calls-user", period, 4, 6)

	// A monthly cost limit of 1 USD, 0.07 USD a reservation: exactly
	// floor(1 / 0.07) = 14 are admitted.
	want := int(int64(costLimit) / int64(estimate))
	reserveStorm(t, c, servers, fmt.Sprintf(`{"user_id": "cost-user", "provider": "gemini", "estimated_cost": %s}`, estimate), want, "monthly_cost")
	eventually(t, func() error {
		c, err := db.Counters(ctx, "cost-user", periodNamed(t, period), "gemini")
		if err != nil {
			t.Fatal(err)
		}
		if wantCost := money.Amount(int64(estimate) * int64(want)); c.HeldTotal.Cost != wantCost {
			return fmt.Errorf("cost-user holds %s, want %s", c.HeldTotal.Cost, wantCost)
		}
		return nil
	})
	consistent(t, db)
}

// held is one admitted reservation.
type held struct{ id, period string }

// reserveStorm sends `concurrent` reservations at once, spread
// round-robin over the servers, and asserts that exactly admit are
// admitted (201) and every other one is refused with ALwrity's 429 body
// naming limitType.
func reserveStorm(t *testing.T, c *http.Client, servers []*server, body string, admit int, limitType string) []held {
	t.Helper()
	type answer struct {
		status int
		body   []byte
		err    error
		server string
	}
	answers := make([]answer, concurrent)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range answers {
		s := servers[i%len(servers)]
		wg.Go(func() {
			<-start
			status, b, err := call(context.Background(), c, http.MethodPost, s.base+"/api/subscription/reserve", []byte(body))
			answers[i] = answer{status, b, err, s.name}
		})
	}
	close(start)
	wg.Wait()

	var admitted []held
	refused := 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("reservation %d on %s: %v", i, a.server, a.err)
		case a.status == http.StatusCreated:
			var ok struct {
				Success bool
				Data    struct {
					ReservationID string `json:"reservation_id"`
					BillingPeriod string `json:"billing_period"`
					Status        string `json:"status"`
				}
			}
			if err := json.Unmarshal(a.body, &ok); err != nil || !ok.Success || ok.Data.Status != "held" || ok.Data.ReservationID == "" {
				t.Errorf("reservation %d on %s: unreadable 201 %s", i, a.server, a.body)
				continue
			}
			admitted = append(admitted, held{ok.Data.ReservationID, ok.Data.BillingPeriod})
		case a.status == http.StatusTooManyRequests:
			refused++
			var p map[string]json.RawMessage
			var info map[string]json.RawMessage
			if err := json.Unmarshal(a.body, &p); err != nil || json.Unmarshal(p["usage_info"], &info) != nil {
				t.Errorf("reservation %d on %s: unreadable 429 %s", i, a.server, a.body)
				continue
			}
			if string(p["error"]) != `"Usage limit exceeded"` || string(info["type"]) != `"`+limitType+`"` ||
				!isString(p["message"]) || !isString(p["provider"]) || info["current_calls"] == nil || info["limit"] == nil ||
				info["usage_percentage"] == nil {
				t.Errorf("reservation %d on %s: 429 lacks ALwrity's fields or names another limit: %s", i, a.server, a.body)
			}
		default:
			t.Errorf("reservation %d on %s: %d %s", i, a.server, a.status, a.body)
		}
	}
	if len(admitted) != admit || refused != concurrent-admit {
		t.Fatalf("%d concurrent reservations over %d process(es): %d admitted and %d refused, want exactly %d and %d",
			concurrent, len(servers), len(admitted), refused, admit, concurrent-admit)
	}
	return admitted
}

// checkCounters asserts a user's settled and held calls in a period.
// periodNamed is the period of the key an answer named, for users
// subscribed by subscribe (anchored at a calendar month's start).
func periodNamed(t *testing.T, key string) billing.Period {
	t.Helper()
	p, err := billing.CalendarMonths().ByKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkCounters(t *testing.T, db *store.DB, user, period string, used, reserved int64) {
	t.Helper()
	eventually(t, func() error {
		c, err := db.Counters(context.Background(), user, periodNamed(t, period), "openai")
		if err != nil {
			t.Fatal(err)
		}
		if c.Total.Calls != used || c.HeldTotal.Calls != reserved {
			return fmt.Errorf("%s in %s: %d calls used and %d held, want %d and %d", user, period, c.Total.Calls, c.HeldTotal.Calls, used, reserved)
		}
		return nil
	})
}

// eventually retries check until it passes or 20 s have gone by: on SQLite
// the server writes holds to the database a moment after admitting them.
func eventually(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isString reports whether raw is a JSON string.
func isString(raw json.RawMessage) bool {
	var s string
	return json.Unmarshal(raw, &s) == nil && len(raw) > 0 && raw[0] == '"'
}
