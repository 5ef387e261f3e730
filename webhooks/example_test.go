package webhooks_test

import (
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/alwrity/alwrity-billing/webhooks"
)

// A receiver verifies each delivery, stores the event once per id, and
// answers 2xx only when it has it.
func ExampleReadEvent() {
	secret := "whsec_…" // shown once when the endpoint was created
	var mu sync.Mutex
	seen := map[string]bool{} // a real receiver keeps this in its database
	http.HandleFunc("POST /alwrity-webhooks", func(w http.ResponseWriter, r *http.Request) {
		ev, err := webhooks.ReadEvent(r, secret, webhooks.DefaultTolerance, time.Now())
		if err != nil {
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !seen[ev.ID] { // a retry of an event already handled is acknowledged again
			seen[ev.ID] = true
			log.Printf("%s %s: %s", ev.Type, ev.ID, ev.Data)
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
