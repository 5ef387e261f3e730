package httpapi_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

var healthSpec = Obj{
	"status": Enum{"healthy", "warning", "critical"}, "window_seconds": "int", "recent_requests": "int",
	"recent_errors": "int", "error_rate": "float", "database": "string", "timestamp": "time",
	"providers": MapOf{Obj{"requests": "int", "errors": "int", "error_rate": "float", "p50_ms": "float", "p95_ms": "float"}},
}

func TestHealth(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)

		// Public, and healthy with no traffic.
		d := e.data(e.get("/api/subscription/health", ""))
		check(t, "health", d, healthSpec)
		if d["status"] != "healthy" || num(t, d["recent_requests"]) != "0" || float(t, d["error_rate"]) != 0 ||
			d["database"] != "ok" || d["timestamp"] != "2026-11-15T12:00:00Z" || len(obj(t, d["providers"])) != 0 ||
			num(t, d["window_seconds"]) != "900" {
			t.Errorf("idle health = %v", d)
		}

		ago := func(m int) time.Time { return defaultNow.Add(-time.Duration(m) * time.Minute) }
		e.record(
			call{user: "u1", provider: "openai", at: ago(1), rt: 0.1},
			call{user: "u2", provider: "openai", at: ago(2), rt: 0.3, status: 500},
			call{user: "u1", provider: "openai", at: ago(3), rt: 0.2},
			call{user: "u1", provider: "gemini", at: ago(4), rt: 1.0},
			// Outside the 15-minute window: never counted.
			call{user: "u1", provider: "gemini", at: ago(16), rt: 9, status: 503},
			call{user: "u1", provider: "mistral", at: ago(60), rt: 9, status: 503},
		)
		d = e.data(e.get("/api/subscription/health", ""))
		check(t, "health", d, healthSpec)
		if num(t, d["recent_requests"]) != "4" || num(t, d["recent_errors"]) != "1" || float(t, d["error_rate"]) != 25 ||
			d["status"] != "critical" {
			t.Errorf("health = %v", d)
		}
		ps := obj(t, d["providers"])
		if len(ps) != 2 {
			t.Errorf("providers = %v, want openai and gemini", ps)
		}
		o, g := obj(t, ps["openai"]), obj(t, ps["gemini"])
		if num(t, o["requests"]) != "3" || num(t, o["errors"]) != "1" || float(t, o["error_rate"]) != 33.33 ||
			float(t, o["p50_ms"]) != 200 || float(t, o["p95_ms"]) != 300 {
			t.Errorf("openai health = %v", o)
		}
		if num(t, g["requests"]) != "1" || num(t, g["errors"]) != "0" || float(t, g["p50_ms"]) != 1000 || float(t, g["p95_ms"]) != 1000 {
			t.Errorf("gemini health = %v", g)
		}

		// 1 failure in 16 calls is 6.25 %: a warning.
		e.record(many(12, call{user: "u3", provider: "anthropic", at: ago(5), rt: 0.05})...)
		d = e.data(e.get("/api/subscription/health", ""))
		if d["status"] != "warning" || float(t, d["error_rate"]) != 6.25 {
			t.Errorf("health = %v", d)
		}
		// Later, everything has left the window.
		e.setNow(defaultNow.Add(time.Hour))
		d = e.data(e.get("/api/subscription/health", ""))
		if d["status"] != "healthy" || num(t, d["recent_requests"]) != "0" {
			t.Errorf("health an hour later = %v", d)
		}
	})
}

// TestHealthMatchesCalls compares GET /health over random traffic with the
// figures computed here from the calls: counts per provider, error rates,
// and nearest-rank percentiles of the calls inside the window.
func TestHealthMatchesCalls(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		rng := rand.New(rand.NewPCG(1, 2))
		providers := []string{"openai", "gemini", "anthropic", "mistral", "tavily"}
		statuses := []int{200, 200, 200, 200, 201, 400, 429, 500, 503}
		var calls []call
		for i := range 600 {
			// Half inside the 15-minute window, some exactly on its start.
			at := defaultNow.Add(-time.Duration(rng.Int64N(int64(30 * time.Minute)))).Truncate(time.Microsecond)
			if i%50 == 0 {
				at = defaultNow.Add(-15 * time.Minute)
			}
			calls = append(calls, call{user: fmt.Sprintf("u%d", rng.IntN(5)), provider: providers[rng.IntN(len(providers))],
				at: at, status: statuses[rng.IntN(len(statuses))], rt: float64(1+rng.IntN(30)*rng.IntN(30)) / 64})
		}
		e.record(calls...)

		type fig struct {
			requests, errors int64
			ms               []float64
		}
		want := map[string]*fig{}
		var requests, errors int64
		for _, c := range calls {
			if c.at.Before(defaultNow.Add(-15 * time.Minute)) {
				continue
			}
			f := want[c.provider]
			if f == nil {
				f = &fig{}
				want[c.provider] = f
			}
			f.requests++
			requests++
			if billing.ProviderFault(c.status) {
				f.errors++
				errors++
			}
			f.ms = append(f.ms, c.rt*1000)
		}
		rate := func(errors, requests int64) float64 {
			return math.Round(float64(errors)*100/float64(requests)*100) / 100
		}
		d := e.data(e.get("/api/subscription/health", ""))
		check(t, "health", d, healthSpec)
		if num(t, d["recent_requests"]) != fmt.Sprint(requests) || num(t, d["recent_errors"]) != fmt.Sprint(errors) ||
			float(t, d["error_rate"]) != rate(errors, requests) {
			t.Errorf("health = %v, want %d requests and %d errors", d, requests, errors)
		}
		ps := obj(t, d["providers"])
		if len(ps) != len(want) {
			t.Errorf("providers %v, want %d", ps, len(want))
		}
		for name, f := range want {
			slices.Sort(f.ms)
			rank := func(q float64) float64 {
				return math.Round(f.ms[int(math.Ceil(q*float64(len(f.ms))))-1]*10) / 10
			}
			p := obj(t, ps[name])
			if num(t, p["requests"]) != fmt.Sprint(f.requests) || num(t, p["errors"]) != fmt.Sprint(f.errors) ||
				float(t, p["error_rate"]) != rate(f.errors, f.requests) || float(t, p["p50_ms"]) != rank(0.5) ||
				float(t, p["p95_ms"]) != rank(0.95) {
				t.Errorf("%s = %v, want %d requests, %d errors, p50 %v, p95 %v", name, p, f.requests, f.errors, rank(0.5), rank(0.95))
			}
		}
	})
}

// TestHealthReuseWithinASecond pins the documented staleness of health: a
// result is reused within the second of the server's clock it was computed
// in while no call is recorded, and never after that second.
func TestHealthReuseWithinASecond(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, defaultNow)
		// On the window's first microsecond: in it at defaultNow only.
		e.record(call{user: "u1", provider: "openai", at: defaultNow.Add(-15 * time.Minute), rt: 0.2})
		requests := func() string { return num(t, e.data(e.get("/api/subscription/health", ""))["recent_requests"]) }
		if n := requests(); n != "1" {
			t.Fatalf("recent_requests = %s, want 1", n)
		}
		e.setNow(defaultNow.Add(500 * time.Millisecond))
		if n := requests(); n != "1" {
			t.Errorf("within the same second and ledger: recent_requests = %s, want the reused 1", n)
		}
		e.setNow(defaultNow.Add(time.Second))
		if n := requests(); n != "0" {
			t.Errorf("a second later: recent_requests = %s, want 0", n)
		}
		// A new call shows at once, within the same second.
		e.record(call{user: "u1", provider: "openai", at: defaultNow, rt: 0.2})
		if n := requests(); n != "1" {
			t.Errorf("after a new call: recent_requests = %s, want 1", n)
		}
	})
}
