package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// A key the database never issued, well formed so that only a lookup can
// tell it is unknown.
var unknownKey = func() string { k, _, _ := auth.NewKey(); return k }()

// checkUnavailable fails unless resp is the gateway's refusal while the
// database is away: 503 with Retry-After, naming no key.
func checkUnavailable(t *testing.T, what string, resp *http.Response, keys ...string) {
	t.Helper()
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d Retry-After %q %s; want 503 with Retry-After", what, resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for _, k := range keys {
		if strings.Contains(body, k) {
			t.Errorf("%s: the answer carries the key: %s", what, body)
		}
	}
}

// TestKeyLookupWhileTheDatabaseIsDown: once a key's cache entry expired and
// the database is gone, a call is refused with 503 and Retry-After (not a
// 500), unless fail-open is on and this gateway verified the key before; a
// key it never verified is refused either way.
func TestKeyLookupWhileTheDatabaseIsDown(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		for _, failOpen := range []bool{false, true} {
			name := map[bool]string{false: "fail-closed", true: "fail-open"}[failOpen]
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, b, func(c *gateway.Config) {
					c.FailOpen, c.KeyCacheTTL, c.RetryEvery = failOpen, 20*time.Millisecond, time.Hour
				})
				if resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("first call: %d %s", resp.StatusCode, readAll(t, resp))
				} else {
					readAll(t, resp)
				}
				h.waitLedger(1)
				time.Sleep(50 * time.Millisecond) // the key's entry expires
				// Closing the store is the database going away: every
				// statement fails from now on, on both backends.
				h.db.Close()

				resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
				if failOpen {
					if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
						t.Errorf("a key verified before, fail-open: %d %s; want 200", resp.StatusCode, body)
					}
				} else {
					checkUnavailable(t, "a key verified before, fail-closed", resp, h.key)
				}
				checkUnavailable(t, "a key never verified", h.post("/gateway/openai/v1/chat/completions", chatBody,
					map[string]string{"Authorization": "Bearer " + unknownKey}), unknownKey)
				want := map[bool]int64{false: 1, true: 2}[failOpen]
				if n := h.fakes["openai"].calls.Load(); n != want {
					t.Errorf("the provider saw %d calls; want %d", n, want)
				}
				h.settled()
				if logs := h.logs.String(); strings.Contains(logs, h.key) || strings.Contains(logs, unknownKey) {
					t.Errorf("a key reached the log:\n%s", logs)
				}
			})
		}
	})
}

// TestFailOpenKeyOutageIsRecordedWhenTheDatabaseReturns runs PostgreSQL
// behind a proxy that can cut it off and restore it: a call made on a key
// verified before the outage goes through and is recorded once the
// database is back, and after that the key is checked again (a revocation
// takes effect within the cache's TTL).
func TestFailOpenKeyOutageIsRecordedWhenTheDatabaseReturns(t *testing.T) {
	px := proxiedPostgres(t)
	const ttl = 20 * time.Millisecond
	h := newHarness(t, px.backend, func(c *gateway.Config) {
		c.FailOpen, c.KeyCacheTTL, c.RetryEvery, c.AdmissionTimeout = true, ttl, time.Hour, time.Second
	})
	t.Cleanup(func() { px.set(proxyPass) }) // before the harness closes
	if resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first call: %d %s", resp.StatusCode, readAll(t, resp))
	} else {
		readAll(t, resp)
	}
	h.waitLedger(1)
	time.Sleep(2 * ttl)

	px.set(proxyRefuse)
	resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("fail-open call during the outage: %d %s", resp.StatusCode, body)
	}
	checkUnavailable(t, "a key never verified", h.post("/gateway/openai/v1/chat/completions", chatBody,
		map[string]string{"Authorization": "Bearer " + unknownKey}), unknownKey)
	if n := h.fakes["openai"].calls.Load(); n != 2 {
		t.Errorf("the provider saw %d calls; want 2", n)
	}
	h.checkPending(1) // the call's record waits for the database

	px.set(proxyPass)
	gateway.RetryPending(h.gw)
	h.checkPending(0)
	h.checkRow(h.waitLedger(2)[1], openaiWant)

	// Back online, the key is checked again within the TTL.
	prefix, err := auth.ParseKey(h.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.RevokeKey(h.ctx, prefix, time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ttl)
	resp = h.post("/gateway/openai/v1/chat/completions", chatBody, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a key revoked once the database returned: %d %s; want 401", resp.StatusCode, body)
	}
	h.consistent()
}

// TestKeyLookupIsBounded: a database that accepts connections and never
// answers costs a call at most the admission timeout, then a 503.
func TestKeyLookupIsBounded(t *testing.T) {
	px := proxiedPostgres(t)
	const timeout = 300 * time.Millisecond
	h := newHarness(t, px.backend, func(c *gateway.Config) {
		c.KeyCacheTTL, c.AdmissionTimeout, c.RetryEvery = 20*time.Millisecond, timeout, time.Hour
	})
	t.Cleanup(func() { px.set(proxyPass) })
	if resp := h.post("/gateway/openai/v1/chat/completions", chatBody, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first call: %d %s", resp.StatusCode, readAll(t, resp))
	} else {
		readAll(t, resp)
	}
	h.waitLedger(1)
	time.Sleep(50 * time.Millisecond)

	px.set(proxyHang)
	start := time.Now()
	checkUnavailable(t, "database hanging", h.post("/gateway/openai/v1/chat/completions", chatBody, nil), h.key)
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("the refusal took %v; the lookup is bounded by %v", d, timeout)
	}
	if n := h.fakes["openai"].calls.Load(); n != 1 {
		t.Errorf("the provider saw %d calls; want 1", n)
	}
}

// TestReadTimeoutDoesNotRunWhileTheClientReads: the read timeout bounds
// waiting for the provider, not the relay writing to a client that reads
// slowly. A provider that sent its whole stream at once, to a client that
// pauses longer than the read timeout, is not cut: its usage is recorded.
func TestReadTimeoutDoesNotRunWhileTheClientReads(t *testing.T) {
	h := newHarness(t, storetest.Backends()[0], func(c *gateway.Config) { c.ReadTimeout = 200 * time.Millisecond })
	chunk := `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"` +
		strings.Repeat("x", 4000) + `"},"finish_reason":null}],"usage":null}` + "\n\n"
	h.fakes["openai"].setHandler(func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "text/event-stream")
		// Far more than the sockets between the gateway and the client
		// hold, so that the relay blocks writing while the client pauses.
		bw := bufio.NewWriterSize(w, 64<<10)
		for range 8 << 10 { // 32 MiB
			if _, err := io.WriteString(bw, chunk); err != nil {
				return
			}
		}
		io.WriteString(bw, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o-2024-08-06","choices":[],"usage":`+openaiUsageJSON+`}`+"\n\n")
		io.WriteString(bw, "data: [DONE]\n\n")
		bw.Flush()
	})
	req, _ := http.NewRequest(http.MethodPost, h.url+"/gateway/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":300,"messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := h.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	time.Sleep(600 * time.Millisecond) // three read timeouts
	n, _ := io.Copy(io.Discard, resp.Body)
	if n < 1<<20 {
		t.Logf("the client read %d bytes", n) // a client write deadline may have let it go
	}
	h.checkRow(h.waitLedger(1)[0], openaiWant)
}

// proxyMode is what a pgProxy does with connections.
type proxyMode int

const (
	proxyPass   proxyMode = iota // relays to PostgreSQL
	proxyRefuse                  // closes every connection at once: the server is down
	proxyHang                    // accepts and never answers: the host is unreachable
)

// pgProxy stands between the store and PostgreSQL so that a test can take
// the database away and bring it back.
type pgProxy struct {
	backend storetest.Backend
	ln      net.Listener
	target  string

	mu     sync.Mutex
	mode   proxyMode
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// proxiedPostgres returns a proxy whose backend opens a new PostgreSQL
// schema through it (skipped or failed as storetest decides without
// TEST_DATABASE_URL).
func proxiedPostgres(t *testing.T) *pgProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgProxy{ln: ln, conns: map[net.Conn]struct{}{}}
	t.Cleanup(p.close)
	p.backend = storetest.Backend{Name: "postgres-proxied", URL: func(t testing.TB) string {
		u, err := url.Parse(storetest.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		target := u.Host
		if u.Port() == "" {
			target = net.JoinHostPort(u.Hostname(), "5432")
		}
		p.mu.Lock()
		p.target = target
		p.mu.Unlock()
		u.Host = ln.Addr().String()
		return u.String()
	}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *pgProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		if mode == proxyRefuse || closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c] = struct{}{}
		if mode == proxyHang {
			p.mu.Unlock()
			continue // held, silent, until the mode changes
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c)
	}
}

func (p *pgProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(s, c)
		s.Close()
	}()
	_, _ = io.Copy(c, s)
	c.Close()
	s.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}

// set changes the mode and drops every open connection, as an outage (or
// the end of one) does.
func (p *pgProxy) set(m proxyMode) {
	p.mu.Lock()
	p.mode = m
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *pgProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.set(proxyRefuse)
	p.wg.Wait()
}
