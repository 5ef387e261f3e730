package metering

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestPlanChangedElsewhereReachesTheMeter: a plan changed by another
// process (here: plain SQL, which this process's store does not see) is
// used once the cached plan is accountTTL old — at once when it is older
// than accountTTL+accountGrace, and after one background read when it is
// between the two, the stale plan answering meanwhile.
func TestPlanChangedElsewhereReachesTheMeter(t *testing.T) {
	storetest.Each(t, func(t *testing.T, b storetest.Backend) {
		ctx := context.Background()
		url := b.URL(t)
		db := storetest.OpenURL(t, url)
		_, prefix, hash := auth.NewKey()
		const user = "cache-user"
		if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: user, Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
			t.Fatal(err)
		}
		m := New(db, time.Now, nil)
		calls := func() int64 {
			t.Helper()
			a, err := m.account(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			return *a.plan.TotalCallsLimit
		}
		before := calls() // the Free plan, cached
		raw := RawSQL(t, url)
		if _, err := raw.ExecContext(ctx, `UPDATE subscription_plans SET total_calls_limit = total_calls_limit + 7 WHERE tier = 'free'`); err != nil {
			t.Fatal(err)
		}
		age := func(d time.Duration) {
			m.cache.mu.Lock()
			ca := m.cache.accounts[user]
			ca.at = time.Now().Add(-d)
			m.cache.accounts[user] = ca
			m.cache.mu.Unlock()
		}
		if got := calls(); got != before {
			t.Fatalf("a fresh cached plan was read again: %d calls; want the cached %d", got, before)
		}

		// In the grace period: the cached plan answers, a read refreshes it.
		age(accountTTL + time.Millisecond)
		if got := calls(); got != before {
			t.Fatalf("in the grace period: %d calls; want the cached %d while it is read again", got, before)
		}
		deadline := time.Now().Add(30 * time.Second)
		for calls() != before+7 {
			if time.Now().After(deadline) {
				t.Fatal("the background read never brought the changed plan")
			}
			time.Sleep(time.Millisecond)
		}

		// Past the grace period: read at once.
		if _, err := raw.ExecContext(ctx, `UPDATE subscription_plans SET total_calls_limit = total_calls_limit + 5 WHERE tier = 'free'`); err != nil {
			t.Fatal(err)
		}
		age(accountTTL + accountGrace)
		if got := calls(); got != before+12 {
			t.Fatalf("past the grace period: %d calls; want the changed plan's %d", got, before+12)
		}
	})
}

// RawSQL opens a plain connection to the database behind a storetest URL,
// to corrupt what the store would never write.
func RawSQL(t *testing.T, url string) *sql.DB {
	t.Helper()
	var raw *sql.DB
	var err error
	if path, ok := strings.CutPrefix(url, "sqlite:///"); ok {
		raw, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	} else {
		raw, err = sql.Open("pgx", url)
	}
	if err != nil {
		t.Fatalf("raw open: %v", err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}
