package metering

import (
	"context"
	"testing"
	"time"

	"github.com/alwrity/alwrity-billing/internal/auth"
	"github.com/alwrity/alwrity-billing/internal/billing"
	"github.com/alwrity/alwrity-billing/internal/storetest"
)

// TestFinishedHoldsStayBounded: the finished reservations kept in memory
// for lookups never exceed maxRecent, however many calls go by, so a
// long-running server's memory does not grow with its call count.
func TestFinishedHoldsStayBounded(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, storetest.Backend{Name: "sqlite", URL: storetest.SQLiteURL})
	_, prefix, hash := auth.NewKey()
	if _, err := db.CreateKey(ctx, billing.APIKey{Prefix: prefix, UserID: "bounded", Role: billing.RoleUser, CreatedAt: time.Now()}, hash); err != nil {
		t.Fatal(err)
	}
	m := New(db, time.Now, nil)
	m.SetJournalDelay(time.Hour)
	for i := range maxRecent + maxRecent/2 {
		r, err := m.Reserve(ctx, billing.ReserveRequest{UserID: "bounded", Provider: "openai", Model: "gpt-4", Cost: 1})
		if err != nil {
			t.Fatalf("reservation %d: %v", i, err)
		}
		if _, err := m.Release(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	m.mem.mu.Lock()
	n, holds := len(m.mem.recent), len(m.mem.holds)
	m.mem.mu.Unlock()
	if n > maxRecent || holds != 0 {
		t.Fatalf("%d finished reservations kept (max %d), %d holds; want at most the max and none held", n, maxRecent, holds)
	}
	if _, err := m.Reserve(ctx, billing.ReserveRequest{UserID: "bounded", Provider: "openai", Model: "gpt-4", Cost: 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m.mem.mu.Lock()
	pending := len(m.mem.pending)
	m.mem.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d holds wait for the journal after a flush; want 0", pending)
	}
}
