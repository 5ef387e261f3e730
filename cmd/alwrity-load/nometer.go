package main

import (
	"context"
	"flag"
	"net/http"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/gateway"
	"github.com/alwrity/alwrity-billing/internal/money"
)

// serveNoMeter runs the gateway's own code (auth lookup, body inspection,
// forwarding, relay, usage parsing) with a meter and an authenticator that
// do nothing, to separate the gateway's cost from the metering core's.
func serveNoMeter(args []string) error {
	fs := flag.NewFlagSet("gateway-nometer", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	target := fs.String("target", "", "upstream OpenAI base URL (…/v1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	gw := gateway.New(gateway.Config{Upstreams: map[string]gateway.Upstream{"openai": {BaseURL: *target, Key: "sk-bench-upstream"}}},
		noMeter{}, anyone{})
	defer gw.Close()
	mux := http.NewServeMux()
	gw.Register(mux)
	l, err := listen(*addr)
	if err != nil {
		return err
	}
	return server(mux).Serve(l)
}

type noMeter struct{}

func (noMeter) Reserve(context.Context, billing.ReserveRequest) (billing.Reservation, error) {
	return billing.Reservation{ID: "rsv_bench"}, nil
}

func (noMeter) Quote(context.Context, billing.UsageEvent) (money.Amount, error) {
	return 0, nil
}

func (noMeter) Settle(context.Context, string, billing.UsageEvent) (billing.EventResult, error) {
	return billing.EventResult{}, nil
}

func (noMeter) Release(context.Context, string) (billing.Reservation, error) {
	return billing.Reservation{}, nil
}

func (noMeter) Record(context.Context, []billing.UsageEvent) ([]billing.EventResult, error) {
	return nil, nil
}

type anyone struct{}

func (anyone) GatewayPrincipal(*http.Request) (billing.Principal, error) {
	return billing.Principal{Role: billing.RoleUser, UserID: "bench"}, nil
}
