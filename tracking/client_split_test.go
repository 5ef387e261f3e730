package tracking_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alwrity/alwrity-billing/tracking"
)

// poisonServer stands for a server that fails with 500 on any batch that
// carries one of its poison events (an event that breaks it), and stores
// every other batch.
type poisonServer struct {
	*httptest.Server
	poison map[string]bool

	mu     sync.Mutex
	posts  int
	sent   map[string]int // event id → POST /usage requests that carried it
	stored map[string]int // event id → times stored
}

func newPoisonServer(poison ...string) *poisonServer {
	p := &poisonServer{poison: map[string]bool{}, sent: map[string]int{}, stored: map[string]int{}}
	for _, id := range poison {
		p.poison[id] = true
	}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Events []struct {
				EventID string `json:"event_id"`
			} `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.posts++
		poisoned := false
		for _, e := range batch.Events {
			p.sent[e.EventID]++
			poisoned = poisoned || p.poison[e.EventID]
		}
		if poisoned {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		for _, e := range batch.Events {
			p.stored[e.EventID]++
		}
		w.Write([]byte(`{"success":true,"data":{}}`))
	}))
	return p
}

// settleAll queues a settlement of each id on c, in one batch.
func settleAll(t *testing.T, c *tracking.Client, ids []string) {
	t.Helper()
	for _, id := range ids {
		if err := c.Settle(t.Context(), id, outcome(id)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientPoisonEventSpared: a batch the server fails with 5xx because
// of one event is split after a few tries, so the other events of the
// batch are stored and only the poison one is given up, reported to
// OnError. Every request carries the events' own ids.
func TestClientPoisonEventSpared(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := newPoisonServer("e3")
	defer srv.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()
	var errs errorLog
	// One batch of all eight, sent at Close.
	c := tracking.NewClient(tracking.ClientConfig{BaseURL: srv.URL, APIKey: adminKey, HTTP: httpc, BatchSize: 8,
		FlushEvery: time.Hour, RetryFor: 2 * time.Second, OnError: errs.add})
	ids := []string{"e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7"}
	settleAll(t, c, ids)
	closeClient(t, c)

	srv.mu.Lock()
	defer srv.mu.Unlock()
	for _, id := range ids {
		want := 1
		if id == "e3" {
			want = 0
		}
		if srv.stored[id] != want {
			t.Errorf("event %s stored %d times, want %d", id, srv.stored[id], want)
		}
	}
	if len(srv.sent) != len(ids) {
		t.Errorf("the server saw events %v, want only %v", srv.sent, ids)
	}
	if srv.sent["e3"] < 4 {
		t.Errorf("the poison event was sent %d times, want it retried on its own", srv.sent["e3"])
	}
	if e := errs.all(); len(e) != 1 || !strings.Contains(e[0].Error(), "batch of 1 (events e3)") {
		t.Errorf("reported %v, want e3 alone given up", e)
	}
}

// TestClientServerErrorsBoundedByRetryFor: while the server fails every
// batch, splitting does not give the halves a RetryFor of their own: the
// whole batch is given up after about RetryFor, each event reported once.
func TestClientServerErrorsBoundedByRetryFor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var ids []string
	for i := range 8 {
		ids = append(ids, fmt.Sprintf("e%d", i))
	}
	srv := newPoisonServer(ids...)
	defer srv.Close()
	httpc := newHTTPClient(t)
	defer httpc.CloseIdleConnections()
	var errs errorLog
	const retryFor = time.Second
	c := tracking.NewClient(tracking.ClientConfig{BaseURL: srv.URL, APIKey: adminKey, HTTP: httpc, BatchSize: 8,
		FlushEvery: time.Hour, RetryFor: retryFor, OnError: errs.add})
	settleAll(t, c, ids)
	start := time.Now()
	closeClient(t, c)
	// Halves each retried for RetryFor would take about four times as long.
	if took := time.Since(start); took > 2*retryFor {
		t.Errorf("the batch was given up after %v, want about RetryFor (%v)", took, retryFor)
	}
	reported := map[string]int{}
	for _, err := range errs.all() {
		_, list, _ := strings.Cut(err.Error(), "(events ")
		list, _, _ = strings.Cut(list, ")")
		for id := range strings.SplitSeq(list, ", ") {
			reported[id]++
		}
	}
	for _, id := range ids {
		if reported[id] != 1 {
			t.Errorf("event %s reported given up %d times, want once (reports %v)", id, reported[id], errs.all())
		}
	}
}
