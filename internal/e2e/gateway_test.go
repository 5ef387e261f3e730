package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for reading lease rows

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/store"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestGatewayExactAcrossProcesses is invariant 4 through the LLM gateway:
// three server processes on one PostgreSQL forward OpenAI chat completions
// to one upstream, and a user with N calls left gets exactly N forwarded
// and billed, however the calls are spread over the processes. Far from
// the limit the processes admit from leases (one reservation of several
// calls held by one process), near it call by call, and what one process's
// lease holds counts against every other process: none ever admits past
// the limit. A refused call never reaches the upstream, and the upstream
// only ever sees the server-held provider key.
//
// Admission across processes is exact in total, not in every burst: while
// another process's lease holds units it has not used, a call can be
// refused early, until that process gives them back (leaseIdle after the
// lease's last use; see metering/lease.go). So the first wave admits at
// most N, and waves sent once the leases are back admit the rest, to the
// last call; then every call is refused.
func TestGatewayExactAcrossProcesses(t *testing.T) {
	clearOfMonthEnd(t, monthEndMargin)
	dbURL := storetest.PostgresURL(t)
	db := storetest.OpenURL(t, dbURL)
	period := billing.CalendarMonths().At(time.Now().UTC())

	// Calls already used count against the limit like the gateway's own:
	// the plan allows priorCalls+gatewayRoom calls, priorCalls are in the
	// ledger, gatewayRoom remain.
	const user = "gateway-user"
	subscribe(t, db, user, billing.Plan{ProviderLimits: map[string]billing.ProviderLimit{
		"openai": {Calls: billing.Ptr(int64(priorCalls + gatewayRoom))}}})
	prior := make([]billing.UsageLog, priorCalls)
	for i := range prior {
		prior[i] = storetest.Log(user, fmt.Sprintf("gateway-prior-%d", i), time.Now().UTC())
	}
	storetest.Record(t, db, prior...)
	userKey := createUserKey(t, db, user)

	up := startFakeOpenAI(t, userKey)
	servers := startGatewayServers(t, 3, dbURL, up.srv.URL+"/v1")
	c := newClient(t)
	gw := gatewayClient{c: c, servers: servers, key: userKey}

	// The first wave: never more than the room, whichever process admits.
	admitted := gw.wave(t, "wave 1")
	if admitted > gatewayRoom {
		t.Fatalf("wave 1: %d calls forwarded over %d processes; the user had %d left", admitted, len(servers), gatewayRoom)
	}
	up.expectCalls(t, admitted)
	waitSettled(t, db, user, period, priorCalls+admitted)
	if leases := leasesTaken(t, dbURL, user); leases == 0 {
		t.Errorf("no lease was taken for %d calls left: the test did not exercise leased admission", gatewayRoom)
	}
	t.Logf("wave 1 forwarded %d of %d calls left", admitted, gatewayRoom)

	// With every lease given back, the rest of the room is admitted.
	for round := 2; admitted < gatewayRoom && round <= maxTopUpWaves; round++ {
		n := gw.wave(t, fmt.Sprintf("wave %d", round))
		if n == 0 {
			t.Fatalf("wave %d forwarded nothing with every lease given back and %d calls left", round, gatewayRoom-admitted)
		}
		admitted += n
		if admitted > gatewayRoom {
			t.Fatalf("after wave %d: %d calls forwarded; the user had %d left", round, admitted, gatewayRoom)
		}
		up.expectCalls(t, admitted)
		waitSettled(t, db, user, period, priorCalls+admitted)
		t.Logf("wave %d forwarded %d more", round, n)
	}
	if admitted != gatewayRoom {
		t.Fatalf("%d calls forwarded in %d waves; want exactly the %d left", admitted, maxTopUpWaves, gatewayRoom)
	}

	// At the limit, every call is refused and none reaches the upstream.
	if n := gw.wave(t, "wave at the limit"); n != 0 {
		t.Errorf("at the limit, %d more calls were forwarded", n)
	}
	up.expectCalls(t, gatewayRoom)
	waitSettled(t, db, user, period, priorCalls+gatewayRoom)
	checkGatewayLedger(t, db, user, period)
	consistent(t, db)
	up.checkKeys(t)
	for _, s := range servers {
		if logs := s.stderr.String(); strings.Contains(logs, gatewayProviderKey) || strings.Contains(logs, userKey) {
			t.Errorf("%s logged a key", s.name)
		}
	}
}

const (
	// priorCalls are in the ledger before the gateway serves any call.
	priorCalls = 25
	// gatewayRoom is the calls the plan leaves. A lease takes at most a
	// sixteenth of what is left and none under 4 calls, so leases are
	// taken only while 64 or more are left: 120 has the processes admit
	// from leases first and call by call near the limit.
	gatewayRoom = 120
	// gatewayCalls calls are sent per wave by gatewaySenders goroutines,
	// round-robin over the processes.
	gatewayCalls   = 300
	gatewaySenders = 60
	// maxTopUpWaves bounds the waves that admit what the first one left.
	maxTopUpWaves = 10
	// gatewayProviderKey is the servers' OpenAI key: the only key the
	// upstream may see.
	gatewayProviderKey = "sk-e2e-server-held-0123456789abcdef"
	// The usage the fake upstream reports for every call.
	upstreamPromptTokens     = 12
	upstreamCompletionTokens = 5
)

// createUserKey stores a new alwrity key of user and returns it.
func createUserKey(t *testing.T, db *store.DB, user string) string {
	t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := db.CreateKey(context.Background(), billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser,
		Name: "e2e gateway", CreatedAt: time.Now()}, hash); err != nil {
		t.Fatalf("create key: %v", err)
	}
	return key
}

// fakeOpenAI is an OpenAI chat completions upstream that counts the
// requests it receives and the ones that carried a key other than the
// server's, or the user's key anywhere.
type fakeOpenAI struct {
	srv              *httptest.Server
	userKey          string
	calls, wrongKeys atomic.Int64
}

func startFakeOpenAI(t *testing.T, userKey string) *fakeOpenAI {
	f := &fakeOpenAI{userKey: userKey}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if !f.keyIsServers(r.Header) {
		f.wrongKeys.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
		return
	}
	var req struct {
		Model string `json:"model"`
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"message":"unexpected request","type":"invalid_request_error","param":null,"code":null}}`)
		return
	}
	// OpenAI answers with the dated snapshot of the model asked for.
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-e2e","object":"chat.completion","created":1700000000,"model":"%s-2024-07-18",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,`+
		`"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},`+
		`"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},`+
		`"service_tier":"default","system_fingerprint":"fp_e2e"}`,
		req.Model, upstreamPromptTokens, upstreamCompletionTokens, upstreamPromptTokens+upstreamCompletionTokens)
}

// keyIsServers reports whether h authorises with the server-held key and
// carries the user's key nowhere.
func (f *fakeOpenAI) keyIsServers(h http.Header) bool {
	for _, vs := range h {
		for _, v := range vs {
			if strings.Contains(v, f.userKey) {
				return false
			}
		}
	}
	return h.Get("Authorization") == "Bearer "+gatewayProviderKey
}

// expectCalls asserts that the upstream received exactly want requests:
// the gateway answers 200 only after the upstream answered, and a refused
// call is never forwarded, so once a wave's answers are in, the upstream's
// count is final.
func (f *fakeOpenAI) expectCalls(t *testing.T, want int) {
	t.Helper()
	if got := f.calls.Load(); got != int64(want) {
		t.Fatalf("the upstream received %d requests; %d calls were forwarded", got, want)
	}
}

func (f *fakeOpenAI) checkKeys(t *testing.T) {
	t.Helper()
	if n := f.wrongKeys.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream without the server-held key or with the user's key", n)
	}
}

// startGatewayServers starts n servers on dbURL, as startServers does,
// whose gateway forwards OpenAI calls to openaiBase with the server-held
// key.
func startGatewayServers(t *testing.T, n int, dbURL, openaiBase string) []*server {
	t.Helper()
	env := []string{"ALWRITY_OPENAI_BASE_URL=" + openaiBase, "OPENAI_API_KEY=" + gatewayProviderKey}
	servers := make([]*server, n)
	for i := range servers {
		servers[i] = launch(t, fmt.Sprintf("gateway-%d", i+1), dbURL, env...)
	}
	for _, s := range servers {
		s.waitReady()
	}
	return servers
}

// gatewayClient sends one user's chat completions through the servers'
// gateways, as the OpenAI SDK does: the alwrity key as the Bearer key.
type gatewayClient struct {
	c       *http.Client
	servers []*server
	key     string
}

const chatRequest = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}`

// gatewayAnswer is one call's answer.
type gatewayAnswer struct {
	status int
	body   []byte
	err    error
	server string
}

// wave sends gatewayCalls calls at once from gatewaySenders goroutines,
// call i to server i mod 3, checks that each is forwarded (200, the
// upstream's completion) or refused (429, ALwrity's body naming the
// OpenAI call limit), and returns how many were forwarded.
func (g gatewayClient) wave(t *testing.T, name string) int {
	t.Helper()
	answers := make([]gatewayAnswer, gatewayCalls)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for sender := range gatewaySenders {
		wg.Go(func() {
			<-start
			for i := sender; i < gatewayCalls; i += gatewaySenders {
				answers[i] = g.chat(g.servers[i%len(g.servers)])
			}
		})
	}
	close(start)
	wg.Wait()

	forwarded, refused := 0, 0
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("%s: call %d on %s: %v", name, i, a.server, a.err)
		case a.status == http.StatusOK:
			forwarded++
			if err := checkCompletion(a.body); err != nil {
				t.Errorf("%s: call %d on %s: %v", name, i, a.server, err)
			}
		case a.status == http.StatusTooManyRequests:
			refused++
			if err := checkCallLimitProblem(a.body); err != nil {
				t.Errorf("%s: call %d on %s: %v", name, i, a.server, err)
			}
		default:
			t.Errorf("%s: call %d on %s: %d %.300s", name, i, a.server, a.status, a.body)
		}
	}
	if forwarded+refused != gatewayCalls {
		t.Fatalf("%s: %d forwarded and %d refused of %d calls; every call must be one or the other", name, forwarded, refused, gatewayCalls)
	}
	return forwarded
}

func (g gatewayClient) chat(s *server) gatewayAnswer {
	a := gatewayAnswer{server: s.name}
	req, err := http.NewRequest(http.MethodPost, s.base+"/gateway/openai/v1/chat/completions", strings.NewReader(chatRequest))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := g.c.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer res.Body.Close()
	a.status = res.StatusCode
	a.body, a.err = io.ReadAll(res.Body)
	return a
}

// checkCompletion checks that body is the upstream's completion, relayed.
func checkCompletion(body []byte) error {
	var c struct {
		Object string `json:"object"`
		Usage  struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &c); err != nil || c.Object != "chat.completion" ||
		c.Usage.PromptTokens != upstreamPromptTokens || c.Usage.CompletionTokens != upstreamCompletionTokens {
		return fmt.Errorf("200 is not the upstream's completion: %.300s", body)
	}
	return nil
}

// checkCallLimitProblem checks that body is the API's 429 body for the
// user's OpenAI call limit.
func checkCallLimitProblem(body []byte) error {
	var p struct {
		Error     string `json:"error"`
		Message   string `json:"message"`
		Provider  string `json:"provider"`
		UsageInfo struct {
			Type         string      `json:"type"`
			CurrentCalls json.Number `json:"current_calls"`
			Limit        json.Number `json:"limit"`
		} `json:"usage_info"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Error != "Usage limit exceeded" || p.Message == "" ||
		p.Provider != "openai" || p.UsageInfo.Type != "openai_calls" ||
		p.UsageInfo.Limit.String() != fmt.Sprint(priorCalls+gatewayRoom) {
		return fmt.Errorf("429 is not ALwrity's body for the OpenAI call limit of %d: %.300s", priorCalls+gatewayRoom, body)
	}
	// No call ever passes the limit, so neither does what a refusal
	// reports as used, though a lease's recorded calls are counted twice
	// for a moment (billing.LimitInfo.InUse).
	if current, err := p.UsageInfo.CurrentCalls.Int64(); err != nil || current > priorCalls+gatewayRoom {
		return fmt.Errorf("429 reports %s calls used of a limit of %d: %.300s", p.UsageInfo.CurrentCalls, priorCalls+gatewayRoom, body)
	}
	return nil
}

// waitSettled waits until the ledger holds calls OpenAI calls of user in
// p, its summary counts as many, and nothing is held for the user: the
// gateway records a call after answering it, and gives a lease's units
// back a moment after their last use.
func waitSettled(t *testing.T, db *store.DB, user string, p billing.Period, calls int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, func() error {
		logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: user, Provider: "openai", BillingPeriod: p.Key, Limit: 10 * calls})
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Counters(ctx, user, p, "openai")
		if err != nil {
			t.Fatal(err)
		}
		held, err := db.HeldReservations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		heldRows := 0
		for _, r := range held {
			if r.UserID == user {
				heldRows++
			}
		}
		if len(logs) != calls || c.Provider.Calls != int64(calls) || c.Total.Calls != int64(calls) ||
			c.HeldProvider != (billing.Counters{}) || c.HeldTotal != (billing.Counters{}) || heldRows != 0 {
			return fmt.Errorf("%s in %s: %d ledger rows, %d calls counted (%d in total), %+v held (%+v in total) in %d reservations; want %d, %d and nothing held",
				user, p.Key, len(logs), c.Provider.Calls, c.Total.Calls, c.HeldProvider, c.HeldTotal, heldRows, calls, calls)
		}
		return nil
	})
}

// checkGatewayLedger asserts that the ledger holds the prior calls and exactly
// gatewayRoom gateway calls, each once, billed from the upstream's usage,
// and that the period's summary sums them.
func checkGatewayLedger(t *testing.T, db *store.DB, user string, p billing.Period) {
	t.Helper()
	ctx := context.Background()
	logs, _, err := db.ListLogs(ctx, billing.LogFilter{UserID: user, Provider: "openai", BillingPeriod: p.Key, Limit: 10 * (priorCalls + gatewayRoom)})
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]bool{}
	viaGateway := 0
	for _, l := range logs {
		if events[l.EventID] {
			t.Errorf("event %s is in the ledger twice", l.EventID)
		}
		events[l.EventID] = true
		if strings.HasPrefix(l.EventID, "gateway-prior-") {
			continue
		}
		viaGateway++
		if l.StatusCode != http.StatusOK || l.TokensInput != upstreamPromptTokens || l.TokensOutput != upstreamCompletionTokens || l.Unpriced {
			t.Errorf("gateway call %s recorded as status %d, %d tokens in and %d out, unpriced %v; want 200, %d, %d, priced",
				l.EventID, l.StatusCode, l.TokensInput, l.TokensOutput, l.Unpriced, upstreamPromptTokens, upstreamCompletionTokens)
		}
	}
	if viaGateway != gatewayRoom || len(logs) != priorCalls+gatewayRoom {
		t.Errorf("the ledger holds %d gateway calls and %d rows in all; want %d and %d", viaGateway, len(logs), gatewayRoom, priorCalls+gatewayRoom)
	}
	usage, err := db.UsageForPeriods(ctx, user, []billing.Period{p})
	if err != nil {
		t.Fatal(err)
	}
	s := usage[0].ByProvider["openai"]
	if s.Calls != priorCalls+gatewayRoom || usage[0].Total.Calls != priorCalls+gatewayRoom ||
		s.TokensInput != gatewayRoom*upstreamPromptTokens || s.TokensOutput != gatewayRoom*upstreamCompletionTokens {
		t.Errorf("the %s summary counts %d OpenAI calls (%d in total), %d tokens in and %d out; want %d, %d, %d and %d",
			p.Key, s.Calls, usage[0].Total.Calls, s.TokensInput, s.TokensOutput, priorCalls+gatewayRoom, priorCalls+gatewayRoom,
			gatewayRoom*upstreamPromptTokens, gatewayRoom*upstreamCompletionTokens)
	}
}

// leasesTaken counts the leases (reservations of several calls, ids
// "lse_…") ever taken for user. No store function lists finished
// reservations, so it reads the table.
func leasesTaken(t *testing.T, dbURL, user string) int {
	t.Helper()
	conn, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM reservations WHERE user_id = $1 AND left(id, 4) = 'lse_'`, user).Scan(&n); err != nil {
		t.Fatalf("count leases: %v", err)
	}
	return n
}
