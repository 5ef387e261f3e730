package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/alwrity/alwrity-billing/internal/app"
	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
)

// TestGatewayInTheApp drives the gateway as the binary serves it: routes,
// metrics and auth middleware, configuration from the environment.
func TestGatewayInTheApp(t *testing.T) {
	upstream := newFake(t, "openai")
	cfg := app.DefaultConfig()
	if err := cfg.FromEnv(func(name string) string {
		return map[string]string{
			"DATABASE_URL":            "sqlite:///" + filepath.Join(t.TempDir(), "app.db"),
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
		t.Fatalf("open: %v", err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("run: %v", err)
		}
		a.Close()
	})
	key, prefix, hash := auth.NewKey()
	if _, err := a.DB.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: "bob", Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
		t.Fatal(err)
	}
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		logs, _, err := a.DB.ListLogs(ctx, billing.LogFilter{UserID: "bob", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(logs) == 2 {
			for _, l := range logs {
				if l.TokensInput != 1200 || l.CostTotal.String() != "0.00472" {
					t.Errorf("row = %s", describe(l))
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger has %d rows, want 2", len(logs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
