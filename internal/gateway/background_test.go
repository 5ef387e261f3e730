package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/money"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// blockingMeter is the real meter whose settles wait until the test
// releases them, as behind a database slow to commit.
type blockingMeter struct {
	gateway.Meter
	entered chan string // the event id of each settle, as it starts waiting
	release chan struct{}
	once    sync.Once
}

func newBlockingMeter(m gateway.Meter) *blockingMeter {
	return &blockingMeter{Meter: m, entered: make(chan string, 1024), release: make(chan struct{})}
}

func (b *blockingMeter) Settle(ctx context.Context, id string, e billing.UsageEvent) (billing.EventResult, error) {
	b.entered <- e.EventID
	select {
	case <-b.release:
	case <-ctx.Done():
		return billing.EventResult{}, ctx.Err()
	}
	return b.Meter.Settle(ctx, id, e)
}

// unblock lets every settle, waiting or to come, go through.
func (b *blockingMeter) unblock() { b.once.Do(func() { close(b.release) }) }

// meteredBy replaces the harness's gateway with one over the same
// upstreams and database that meters through m.
func (h *harness) meteredBy(m gateway.Meter, tweak func(*gateway.Config)) {
	h.t.Helper()
	cfg := gateway.Config{Upstreams: map[string]gateway.Upstream{}}
	for p, f := range h.fakes {
		base := f.srv.URL
		if p == "openai" || p == "mistral" {
			base += "/v1"
		}
		cfg.Upstreams[p] = gateway.Upstream{BaseURL: base, Key: serverKeys[p]}
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h.gw = gateway.New(cfg, m, &auth.Authenticator{Keys: h.db, AdminKey: adminKey})
	h.t.Cleanup(h.gw.Close)
	mux := http.NewServeMux()
	h.gw.Register(mux)
	srv := httptest.NewServer(auth.Middleware(mux))
	h.t.Cleanup(srv.Close)
	h.url = srv.URL
}

// TestResponseCompletesBeforeItsSettle: a client gets its whole answer,
// cost included, while the settle of its call still waits for the
// database; the call is in the ledger once the settle goes through.
func TestResponseCompletesBeforeItsSettle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		bm := newBlockingMeter(h.meter)
		h.meteredBy(bm, nil)
		t.Cleanup(bm.unblock) // before the servers close, should the test stop early

		resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Hello there") || resp.Header.Get(gateway.CostHeader) != openaiWant.cost {
			t.Fatalf("answer: %d cost %q %s", resp.StatusCode, resp.Header.Get(gateway.CostHeader), body)
		}
		resp = h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
		body = readAll(t, resp) // to the end of the stream, trailers included
		if !strings.HasSuffix(body, "data: [DONE]\n\n") || resp.Trailer.Get(gateway.CostHeader) != openaiWant.cost {
			t.Fatalf("stream: cost trailer %q, body %q", resp.Trailer.Get(gateway.CostHeader), body)
		}

		// Both answers are complete, and both settles are still waiting.
		<-bm.entered
		<-bm.entered
		if rows := h.ledger(); len(rows) != 0 {
			t.Fatalf("%d rows recorded while every settle was blocked", len(rows))
		}
		done, cancel := context.WithCancel(h.ctx)
		cancel()
		if err := h.gw.Wait(done); err == nil {
			t.Error("Wait reported every call recorded while two settles were blocked")
		}

		bm.unblock()
		for _, l := range h.waitLedger(2) {
			h.checkRow(l, openaiWant)
		}
		h.consistent()
	})
}

// oneSlotTaken returns a harness whose gateway has one background slot for
// records, taken by a first call whose settle blocks until bm.unblock.
func oneSlotTaken(t *testing.T) (*harness, *blockingMeter) {
	t.Helper()
	h := newHarness(t, storetest.Backends()[0], nil)
	bm := newBlockingMeter(h.meter)
	h.meteredBy(bm, func(c *gateway.Config) { c.MaxBackgroundSettles = 1 })
	t.Cleanup(bm.unblock)
	resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("first call: %d %s", resp.StatusCode, body)
	}
	<-bm.entered // the first settle holds the only background slot
	return h, bm
}

// TestBackgroundSettlesAreBounded: with every background slot taken, the
// next call is settled before its response completes (back-pressure).
func TestBackgroundSettlesAreBounded(t *testing.T) {
	h, bm := oneSlotTaken(t)

	type answer struct {
		status int
		cost   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(chatBody))
		req.Header.Set("Authorization", "Bearer "+h.key)
		resp, err := h.http.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answered <- answer{status: resp.StatusCode, cost: resp.Header.Get(gateway.CostHeader), err: err}
	}()
	<-bm.entered // the second call's settle has started, inline
	select {
	case a := <-answered:
		t.Fatalf("the second call was answered (%d) while its settle waited and no background slot was free", a.status)
	default:
	}
	bm.unblock()
	if a := <-answered; a.err != nil || a.status != http.StatusOK || a.cost != openaiWant.cost {
		t.Fatalf("second call: %d cost %q %v", a.status, a.cost, a.err)
	}
	for _, l := range h.waitLedger(2) {
		h.checkRow(l, openaiWant)
	}
}

// TestBackPressuredStreamIsRelayedBeforeItsSettle: a stream whose record
// must be written before its response ends (no background slot free)
// still reaches its client whole, [DONE] included, while that record
// waits; only the response's end (its trailers) waits for it.
func TestBackPressuredStreamIsRelayedBeforeItsSettle(t *testing.T) {
	h, bm := oneSlotTaken(t)

	resp := h.post("/gateway/openai/v1/chat/completions", chatStreamBody, nil)
	defer resp.Body.Close()
	<-bm.entered // the stream's settle has started, inline
	var got strings.Builder
	buf := make([]byte, 4096)
	for !strings.HasSuffix(got.String(), "data: [DONE]\n\n") {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("the stream ended (%v) before [DONE]: %q", err, got.String())
		}
	}
	bm.unblock()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if c := resp.Trailer.Get(gateway.CostHeader); c != openaiWant.cost {
		t.Errorf("cost trailer %q, want %s", c, openaiWant.cost)
	}
	for _, l := range h.waitLedger(2) {
		h.checkRow(l, openaiWant)
	}
}

// TestCloseWaitsForBackgroundSettles: Close returns only once every call
// answered is in the ledger, each exactly once.
func TestCloseWaitsForBackgroundSettles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		bm := newBlockingMeter(h.meter)
		h.meteredBy(bm, nil)
		t.Cleanup(bm.unblock) // before the servers close, should the test stop early

		const calls = 8
		for i := range calls {
			body := chatBody
			if i%2 == 1 {
				body = chatStreamBody
			}
			resp := h.post("/gateway/openai/v1/chat/completions", body, nil)
			if got := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("call %d: %d %s", i, resp.StatusCode, got)
			}
		}
		for range calls {
			<-bm.entered
		}
		closed := make(chan struct{})
		go func() {
			h.gw.Close()
			close(closed)
		}()
		select {
		case <-closed:
			t.Fatal("Close returned while every settle was blocked")
		default:
		}
		bm.unblock()
		<-closed
		rows := h.ledger() // no Wait: Close waited
		seen := map[string]bool{}
		for _, l := range rows {
			if seen[l.EventID] {
				t.Errorf("event %s recorded twice", l.EventID)
			}
			seen[l.EventID] = true
			h.checkRow(l, openaiWant)
		}
		if len(rows) != calls {
			t.Fatalf("after Close the ledger holds %d of %d answered calls", len(rows), calls)
		}
		h.consistent()
	})
}

// TestCostHeaderIsTheLedgerCost: the cost a client is told (a header, or a
// stream's trailer) is the cost its call is recorded with, for every
// provider and bucket.
func TestCostHeaderIsTheLedgerCost(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, nil)
		gemini := `{"contents":[{"parts":[{"text":"Hello"}]}],"generationConfig":{"maxOutputTokens":1000}}`
		calls := []struct {
			path, body string
			want       want
		}{
			{"/gateway/openai/v1/chat/completions", chatBody, openaiWant},
			{"/gateway/openai/v1/chat/completions", chatStreamBody, openaiWant},
			{"/gateway/openai/v1/responses", `{"model":"gpt-4o","input":"Hello","max_output_tokens":300}`, openaiWant},
			{"/gateway/openai/v1/responses", `{"model":"gpt-4o","input":"Hello","max_output_tokens":300,"stream":true}`, openaiWant},
			{"/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":1024,"messages":[]}`, anthropicWant},
			{"/gateway/anthropic/v1/messages", `{"model":"claude-3.5-sonnet","max_tokens":1024,"stream":true,"messages":[]}`, anthropicWant},
			{"/gateway/gemini/v1beta/models/gemini-2.5-flash:generateContent", gemini, geminiWant},
			{"/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", gemini, geminiWant},
			{"/gateway/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", gemini, geminiWant},
			{"/gateway/mistral/v1/chat/completions", `{"model":"mistral-7b","max_tokens":200,"messages":[]}`, mistralWant},
			{"/gateway/mistral/v1/chat/completions", `{"model":"mistral-7b","max_tokens":200,"stream":true,"messages":[]}`, mistralWant},
		}
		told := make([]string, len(calls))
		for i, c := range calls {
			resp := h.post(c.path, c.body, nil)
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
			}
			if told[i] = resp.Header.Get(gateway.CostHeader); told[i] == "" {
				told[i] = resp.Trailer.Get(gateway.CostHeader)
			}
		}
		rows := h.waitLedger(len(calls))
		for i, c := range calls {
			h.checkRow(rows[i], c.want)
			if recorded := rows[i].CostTotal.String(); told[i] != recorded {
				t.Errorf("%s %s: the client was told %q, the ledger holds %s", c.path, c.body, told[i], recorded)
			}
		}
	})
}

// stuckQuoteMeter is the real meter whose quotes wait for their deadline,
// as behind a database that stopped answering the catalog's version.
type stuckQuoteMeter struct{ gateway.Meter }

func (stuckQuoteMeter) Quote(ctx context.Context, e billing.UsageEvent) (money.Amount, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestStreamEndsWithoutWaitingForItsQuote: a stream's last events leave
// with its trailers, after the cost trailer's quote, so that quote is
// bounded on its own (50 ms), not by the admission timeout (an hour
// here): a quote that cannot be answered drops the cost trailer, the
// stream still ends, and the call is still recorded with its cost.
func TestStreamEndsWithoutWaitingForItsQuote(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], nil)
	h.meteredBy(stuckQuoteMeter{h.meter}, func(c *gateway.Config) { c.AdmissionTimeout = time.Hour })
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute) // far below the hour, far above 50 ms
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(chatStreamBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("stream: %q", body)
	}
	if c := resp.Trailer.Get(gateway.CostHeader); c != "" {
		t.Errorf("cost trailer %q from a quote that could not answer", c)
	}
	for _, l := range h.waitLedger(1) {
		h.checkRow(l, openaiWant)
	}
}
