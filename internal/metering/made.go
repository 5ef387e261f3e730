package metering

import (
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// madeHere remembers the reservations this process made on PostgreSQL until
// it settles, releases or sweeps them, so that settling one needs no read
// of its row: the settle's group commit finds out itself whether it is
// still held (and otherwise applies the late-settle rules). It holds only
// reservations in flight; expired ones leave at the next sweep.
type madeHere struct {
	mu sync.Mutex
	m  map[string]billing.Reservation
}

func (h *madeHere) add(r billing.Reservation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]billing.Reservation{}
	}
	h.m[r.ID] = r
}

// take returns and forgets reservation id.
func (h *madeHere) take(id string) (billing.Reservation, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.m[id]
	delete(h.m, id)
	return r, ok
}

// prune forgets the reservations expired at now.
func (h *madeHere) prune(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, r := range h.m {
		if !r.ExpiresAt.After(now) {
			delete(h.m, id)
		}
	}
}
