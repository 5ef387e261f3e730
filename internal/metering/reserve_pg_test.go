package metering_test

import (
	"sync"
	"testing"

	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/metering"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestConcurrentReservationsOfManyUsers races reservations of five users,
// each on a different kind of limit, interleaved, from several meters on
// one database on PostgreSQL (as several server processes would): the
// groups they form mix users and refusals, and exactly each user's room is
// admitted, every refusal naming that user's limit.
func TestConcurrentReservationsOfManyUsers(t *testing.T) {
	type userCase struct {
		plan  billing.Plan
		req   billing.ReserveRequest
		want  int                // admitted
		limit *billing.LimitInfo // what refuses the rest
	}
	const perUser = 80
	users := map[string]userCase{
		"mu-calls": {plan: billing.Plan{TotalCallsLimit: billing.Ptr[int64](10)},
			req:  billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Cost: 1},
			want: 10, limit: &billing.LimitInfo{Key: "total_calls", Limit: 10}},
		"mu-provider-calls": {plan: billing.Plan{ProviderLimits: map[string]billing.ProviderLimit{"openai": {Calls: billing.Ptr[int64](7)}}},
			req:  billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Cost: 1},
			want: 7, limit: &billing.LimitInfo{Key: "openai_calls", Provider: "openai", Limit: 7}},
		"mu-tokens": {plan: billing.Plan{ProviderLimits: map[string]billing.ProviderLimit{"openai": {Tokens: billing.Ptr[int64](3000)}}},
			req:  billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Tokens: 300},
			want: 10, limit: &billing.LimitInfo{Key: "openai_tokens", Provider: "openai", Limit: 3000}},
		"mu-cost": {plan: billing.Plan{MonthlyCostLimit: billing.Ptr(usd("1"))},
			req:  billing.ReserveRequest{Provider: "openai", Model: "gpt-4", Cost: usd("0.25")},
			want: 4, limit: &billing.LimitInfo{Key: "monthly_cost", Limit: int64(usd("1")), Money: true}},
		"mu-unlimited": {plan: billing.Plan{},
			req:  billing.ReserveRequest{Provider: "gemini", Model: "gemini-2.5-flash", Tokens: 100, Cost: 1},
			want: perUser},
	}
	names := []string{"mu-calls", "mu-provider-calls", "mu-tokens", "mu-cost", "mu-unlimited"}
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		url := b.URL(t)
		f := newFixtureURL(t, url, baseTime)
		for _, name := range names {
			plan := users[name].plan
			plan.Name = "plan-" + name
			f.planUser(name, plan)
		}
		meters := []*metering.Meter{f.m}
		if b.Name == "postgres" {
			for range 2 {
				meters = append(meters, metering.New(storetest.OpenURL(t, url), f.clk.Now, nil))
			}
		}
		var (
			mu       sync.Mutex
			admitted = map[string]int{}
			refused  = map[string][]error{}
			wg       sync.WaitGroup
		)
		start := make(chan struct{})
		for i := range perUser * len(names) {
			name := names[i%len(names)]
			req := users[name].req
			req.UserID = name
			m := meters[i%len(meters)]
			wg.Go(func() {
				<-start
				_, err := m.Reserve(f.ctx, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					refused[name] = append(refused[name], err)
					return
				}
				admitted[name]++
			})
		}
		close(start)
		wg.Wait()
		period := billing.CalendarMonths().At(f.clk.Now())
		for _, name := range names {
			c := users[name]
			if admitted[name] != c.want {
				t.Errorf("%s: %d of %d admitted; want exactly %d", name, admitted[name], perUser, c.want)
			}
			for _, err := range refused[name] {
				l := billingErr(t, err, billing.CodeLimitExceeded).Limit
				if c.limit == nil || l == nil || l.Key != c.limit.Key || l.Limit != c.limit.Limit || l.Provider != c.limit.Provider ||
					l.Money != c.limit.Money || l.Used+l.Reserved+l.Requested <= l.Limit {
					t.Errorf("%s refused by %+v; want %+v with no room left", name, l, c.limit)
					break
				}
			}
			_, held, _, _, err := f.counters(name, period, c.req.Provider)
			if err != nil {
				t.Fatal(err)
			}
			if held.Calls != int64(c.want) {
				t.Errorf("%s: %d calls held; want %d", name, held.Calls, c.want)
			}
		}
		f.consistent()
	})
}
