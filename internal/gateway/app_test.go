package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/store"
)

// runningApp is the binary's App serving on a free port, its OpenAI
// upstream a fake.
type runningApp struct {
	*app.App
	ctx  context.Context
	stop func() // stops serving gracefully and closes the App, once
}

func startApp(t *testing.T, dbURL string, upstream *fake) *runningApp {
	t.Helper()
	cfg := app.DefaultConfig()
	if err := cfg.FromEnv(func(name string) string {
		return map[string]string{
			"DATABASE_URL":            dbURL,
			"HOST":                    "127.0.0.1",
			"PORT":                    "0",
			"ALWRITY_ADMIN_KEY":       adminKey,
			"OPENAI_API_KEY":          serverKeys["openai"],
			"ALWRITY_OPENAI_BASE_URL": upstream.srv.URL + "/v1",
		}[name]
	}); err != nil {
		t.Fatal(err)
	}
	a := app.New(cfg, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Open(ctx); err != nil {
		cancel()
		t.Fatalf("open: %v", err)
	}
	if err := a.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	r := &runningApp{App: a, ctx: context.Background()}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("run: %v", err)
			}
			if err := a.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// userKey creates a key for user and returns it.
func (r *runningApp) userKey(t *testing.T, user string) string {
	t.Helper()
	key, prefix, hash := auth.NewKey()
	if _, err := r.DB.CreateKey(r.ctx, billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestGatewayInTheApp drives the gateway as the binary serves it: routes,
// metrics and auth middleware, configuration from the environment.
func TestGatewayInTheApp(t *testing.T) {
	upstream := newFake(t, "openai")
	a := startApp(t, "sqlite:///"+filepath.Join(t.TempDir(), "app.db"), upstream)
	ctx := a.ctx
	key := a.userKey(t, "bob")
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	client := openai.NewClient(option.WithBaseURL(a.BaseURL()+gateway.Prefix+"/openai/v1"), option.WithAPIKey(key),
		option.WithHTTPClient(&http.Client{Transport: tr}), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")}}
	if _, err := client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatalf("chat through the app: %v", err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream through the app: %v", err)
	}
	stream.Close()
	if err := a.Gateway.Wait(ctx); err != nil {
		t.Fatalf("wait for the gateway's records: %v", err)
	}
	logs, _, err := a.DB.ListLogs(ctx, billing.LogFilter{UserID: "bob", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 {
		t.Fatalf("ledger has %d rows, want 2", len(logs))
	}
	for _, l := range logs {
		if l.TokensInput != 1200 || l.CostTotal.String() != "0.00472" {
			t.Errorf("row = %s", describe(l))
		}
	}
}

// TestGracefulStopRecordsEveryAnsweredCall stops the app while clients
// keep calling: every call answered before the stop, streamed or not, is
// in the ledger once the app has closed, each exactly once.
func TestGracefulStopRecordsEveryAnsweredCall(t *testing.T) {
	upstream := newFake(t, "openai")
	dbURL := "sqlite:///" + filepath.Join(t.TempDir(), "app.db")
	a := startApp(t, dbURL, upstream)
	key := a.userKey(t, "carol")
	url := a.BaseURL() + gateway.Prefix + "/openai/v1/chat/completions"
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	// call makes one call and reports whether it was answered in full.
	call := func(stream bool) (answered bool, err error) {
		body := chatBody
		if stream {
			body = chatStreamBody
		}
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return false, err
		}
		if resp.StatusCode != http.StatusOK {
			return false, errors.New(resp.Status)
		}
		return !stream || bytes.HasSuffix(got, []byte("data: [DONE]\n\n")), nil
	}

	const workers, before = 16, 200
	var answered, calls atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				ok, err := call((w+i)%2 == 1)
				if err != nil {
					return // the app has stopped
				}
				calls.Add(1)
				if ok {
					answered.Add(1)
				}
				if answered.Load() >= before {
					once.Do(func() { close(enough) })
				}
			}
		})
	}
	<-enough
	a.stop() // while the workers keep calling
	wg.Wait()

	db, err := store.Open(context.Background(), dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, rows, err := db.ListLogs(context.Background(), billing.LogFilter{UserID: "carol", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rows != answered.Load() || calls.Load() != answered.Load() {
		t.Errorf("%d calls answered in full (%d answered at all); the ledger holds %d", answered.Load(), calls.Load(), rows)
	}
	if mm, err := db.Reconcile(context.Background()); err != nil || len(mm) > 0 {
		t.Errorf("ledger and summaries differ: %v %v", mm, err)
	}
}
