package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// BenchmarkGateway measures whole calls through the gateway against the
// in-process fakes, on each database, streamed and not. The load, the
// gateway and the fake share the process: compare backends and modes, and
// see cmd/alwrity-load for the out-of-process numbers.
func BenchmarkGateway(b *testing.B) {
	for _, be := range storetest.Backends() {
		for _, mode := range []string{"plain", "stream"} {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				h := newHarness(b, be, nil)
				h.planUser(billing.Plan{Name: "unlimited"})
				body := chatBody
				if mode == "stream" {
					body = chatStreamBody
				}
				// 32 callers per CPU: 64 on this 2-core machine kind, as
				// alwrity-load's 64 connections.
				b.SetParallelism(32)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest(http.MethodPost, h.url+"/gateway/openai/v1/chat/completions", strings.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+h.key)
						resp, err := h.http.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
			})
		}
	}
}
