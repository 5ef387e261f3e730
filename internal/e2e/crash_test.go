package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestCrashLosesNothingAcknowledged is invariant 3 under SIGKILL: clients
// stream batches of events, the server is killed with requests in flight
// and started again on the same database, the batches that never got an
// answer are sent again (safe, because event ids make recording
// idempotent), and then every acknowledged event is in the ledger exactly
// once and the summaries still equal the ledger.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { crashScenario(t, storetest.SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { crashScenario(t, storetest.PostgresURL(t)) })
}

const (
	crashWorkers   = 4
	crashBatchSize = 50
	// crashAfter is how many batches are acknowledged before the kill.
	crashAfter = 12
)

// crashBatch is one POST /usage body and the ids of its events.
type crashBatch struct {
	user string
	body []byte
	ids  []string
}

// newCrashBatch builds batch k of worker w: 50 events with ids unique to
// the run, of the worker's own user, across three providers.
func newCrashBatch(w, k int) crashBatch {
	providers := []struct{ name, model string }{{"openai", "gpt-4"}, {"gemini", "gemini-pro"}, {"anthropic", "claude-3-haiku"}}
	now := time.Now().UTC()
	events := make([]map[string]any, crashBatchSize)
	b := crashBatch{user: crashUser(w), ids: make([]string, crashBatchSize)}
	for j := range events {
		id := fmt.Sprintf("crash-w%d-b%d-e%d", w, k, j)
		p := providers[(k+j)%len(providers)]
		events[j] = map[string]any{"event_id": id, "user_id": crashUser(w), "provider": p.name, "model": p.model,
			"tokens_input": 100 + j, "tokens_output": 10 + k%7, "status_code": 200, "response_time": 0.25,
			"timestamp": now.Format(time.RFC3339Nano)}
		b.ids[j] = id
	}
	// A map of strings and numbers always marshals.
	b.body, _ = json.Marshal(map[string]any{"events": events})
	return b
}

func crashUser(w int) string { return fmt.Sprintf("crash-user-%d", w) }

// recordAnswer is the part of POST /usage's answer the test reads.
type recordAnswer struct {
	Success bool `json:"success"`
	Data    struct {
		Results []struct {
			EventID       string          `json:"event_id"`
			Status        string          `json:"status"`
			Cost          json.RawMessage `json:"cost"`
			BillingPeriod string          `json:"billing_period"`
		} `json:"results"`
	} `json:"data"`
}

// ack is what an acknowledgement said about one event.
type ack struct {
	cost, period string
}

// crashLedger collects what the clients were told.
type crashLedger struct {
	mu         sync.Mutex
	acked      map[string]ack // event id → its first answer
	unanswered []crashBatch   // batches that got no 2xx
	sent       []crashBatch   // every batch sent, in no particular order
}

// answered checks a 2xx answer to b and remembers its events as
// acknowledged. A duplicate must repeat the first answer.
func (l *crashLedger) answered(t *testing.T, b crashBatch, body []byte) {
	var a recordAnswer
	if err := json.Unmarshal(body, &a); err != nil || !a.Success || len(a.Data.Results) != len(b.ids) {
		t.Errorf("unreadable answer to a batch of %d: %.300s", len(b.ids), body)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range a.Data.Results {
		if r.EventID != b.ids[i] || (r.Status != billing.EventRecorded && r.Status != billing.EventDuplicate) {
			t.Errorf("result %d = %+v, want event %s recorded or duplicate", i, r, b.ids[i])
			continue
		}
		got := ack{string(r.Cost), r.BillingPeriod}
		if first, ok := l.acked[r.EventID]; ok && first != got {
			t.Errorf("event %s answered %+v, first %+v", r.EventID, got, first)
		}
		if _, ok := l.acked[r.EventID]; !ok {
			l.acked[r.EventID] = got
		}
	}
}

func crashScenario(t *testing.T, dbURL string) {
	db := storetest.OpenURL(t, dbURL)
	for w := range crashWorkers {
		subscribe(t, db, crashUser(w), billing.Plan{})
	}
	first := startServer(t, "server", dbURL)
	c := newClient(t)
	ctx := context.Background()
	ledger := &crashLedger{acked: map[string]ack{}}

	var inflight, ackedBatches atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				b := newCrashBatch(w, k)
				ledger.mu.Lock()
				ledger.sent = append(ledger.sent, b)
				ledger.mu.Unlock()
				inflight.Add(1)
				status, body, err := call(ctx, c, http.MethodPost, first.base+"/api/subscription/usage", b.body)
				inflight.Add(-1)
				if err == nil && status == http.StatusOK {
					ledger.answered(t, b, body)
					ackedBatches.Add(1)
					continue
				}
				if err == nil && status < 500 {
					t.Errorf("batch %d of worker %d refused: %d %.300s", k, w, status, body)
				}
				ledger.mu.Lock()
				ledger.unanswered = append(ledger.unanswered, b)
				ledger.mu.Unlock()
			}
		})
	}

	// stopClients stops the clients and waits (bounded) until they have,
	// so that none outlives the test.
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	stopClients := func() {
		close(stop)
		select {
		case <-workersDone:
		case <-time.After(waitLimit):
			t.Fatalf("clients did not stop within %v", waitLimit)
		}
	}

	// Kill -9 once enough batches are acknowledged, at a moment when at
	// least one request is in flight.
	deadline := time.Now().Add(waitLimit)
	for ackedBatches.Load() < crashAfter || inflight.Load() == 0 {
		if time.Now().After(deadline) || t.Failed() {
			stopClients()
			t.Fatalf("%d batches acknowledged within %v, want %d", ackedBatches.Load(), waitLimit, crashAfter)
		}
		time.Sleep(time.Millisecond)
	}
	inFlightAtKill := inflight.Load()
	first.kill()
	stopClients()
	if t.Failed() {
		t.FailNow()
	}
	ackedBeforeKill := len(ledger.acked)
	t.Logf("killed with %d request(s) in flight: %d batches sent, %d acknowledged (%d events), %d unanswered",
		inFlightAtKill, len(ledger.sent), ackedBatches.Load(), ackedBeforeKill, len(ledger.unanswered))

	// Restart on the same database and resend what never got an answer.
	second := startServer(t, "restarted server", dbURL)
	lost := 0 // events committed whose answer the kill swallowed
	for _, b := range ledger.unanswered {
		status, body, err := call(ctx, c, http.MethodPost, second.base+"/api/subscription/usage", b.body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("resending a batch after the restart: %d %.300s %v", status, body, err)
		}
		var a recordAnswer
		_ = json.Unmarshal(body, &a)
		for _, r := range a.Data.Results {
			if r.Status == billing.EventDuplicate {
				lost++
			}
		}
		ledger.answered(t, b, body)
	}
	// Resending acknowledged batches changes nothing and repeats the first
	// answers (answered checks that).
	for _, b := range ledger.sent[:min(3, len(ledger.sent))] {
		status, body, err := call(ctx, c, http.MethodPost, second.base+"/api/subscription/usage", b.body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("resending an acknowledged batch: %d %.300s %v", status, body, err)
		}
		var a recordAnswer
		_ = json.Unmarshal(body, &a)
		for _, r := range a.Data.Results {
			if r.Status != billing.EventDuplicate {
				t.Errorf("resent event %s answered %q, want duplicate", r.EventID, r.Status)
			}
		}
	}
	t.Logf("after the restart %d batches resent, %d of their events had been committed before the kill", len(ledger.unanswered), lost)

	checkLedger(t, db, c, second, ledger)
	consistent(t, db)
}

// checkLedger asserts that every event ever sent (all of them are
// acknowledged by now) is in the ledger exactly once, and that the usage
// API counts exactly them.
func checkLedger(t *testing.T, db *store.DB, c *http.Client, s *server, ledger *crashLedger) {
	t.Helper()
	ctx := context.Background()
	sentIDs := map[string]bool{}
	for _, b := range ledger.sent {
		for _, id := range b.ids {
			sentIDs[id] = true
		}
	}
	if len(ledger.acked) != len(sentIDs) {
		t.Errorf("%d events acknowledged of %d sent", len(ledger.acked), len(sentIDs))
	}
	logs, total, err := db.ListLogs(ctx, billing.LogFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	inLedger := map[string]int{}
	for _, l := range logs {
		inLedger[l.EventID]++
	}
	for id := range ledger.acked {
		if n := inLedger[id]; n != 1 {
			t.Errorf("acknowledged event %s is in the ledger %d times", id, n)
		}
	}
	if total != int64(len(sentIDs)) || len(inLedger) != len(sentIDs) {
		t.Errorf("the ledger holds %d rows (%d distinct ids) for %d distinct events sent", total, len(inLedger), len(sentIDs))
	}

	// The API agrees: its log count and each user's total_calls.
	want := map[string]map[string]int64{} // user → period → events
	for _, b := range ledger.sent {
		if want[b.user] == nil {
			want[b.user] = map[string]int64{}
		}
		for _, id := range b.ids {
			want[b.user][ledger.acked[id].period]++
		}
	}
	status, body, err := call(ctx, c, http.MethodGet, s.base+"/api/subscription/usage-logs?limit=1", nil)
	var logsPage struct {
		TotalCount int64 `json:"total_count"`
	}
	if err != nil || status != http.StatusOK || json.Unmarshal(body, &logsPage) != nil || logsPage.TotalCount != int64(len(sentIDs)) {
		t.Errorf("GET /usage-logs: %d %.300s %v, want total_count %d", status, body, err, len(sentIDs))
	}
	for user, periods := range want {
		for period, n := range periods {
			status, body, err := call(ctx, c, http.MethodGet, s.base+"/api/subscription/usage/"+user+"?billing_period="+period, nil)
			var usage struct {
				Data struct {
					TotalCalls int64 `json:"total_calls"`
				} `json:"data"`
			}
			if err != nil || status != http.StatusOK || json.Unmarshal(body, &usage) != nil {
				t.Fatalf("GET /usage/%s: %d %.300s %v", user, status, body, err)
			}
			if usage.Data.TotalCalls != n {
				t.Errorf("%s in %s: total_calls %d, want %d distinct events", user, period, usage.Data.TotalCalls, n)
			}
		}
	}
}
