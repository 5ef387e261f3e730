package tracking

import (
	"encoding/json"
	"net/http"
)

// writeLimit answers a refusal the way alwrity-billing does: 429
// problem+json with the fields ALwrity's clients read. Like the server, it
// names the provider of the refused call when the limit is not a
// provider's own (total calls, monthly cost): ALwrity's clients read
// "provider" from every 429 as the provider they were about to call.
func writeLimit(w http.ResponseWriter, e *LimitError, callProvider string) {
	var provider any
	switch {
	case e.Provider != "":
		provider = e.Provider
	case callProvider != "":
		provider = callProvider
	}
	body := map[string]any{
		"title": http.StatusText(http.StatusTooManyRequests), "status": http.StatusTooManyRequests, "detail": e.Message,
		"error": "Usage limit exceeded", "message": e.Message, "provider": provider,
		"usage_info": map[string]any{"current_calls": limitNumber(e.Used), "limit": limitNumber(e.Max), "type": e.Limit},
	}
	writeJSON(w, http.StatusTooManyRequests, body)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	w.Write(b)
}

// limitNumber writes an exact decimal limit as a JSON number.
func limitNumber(s string) json.Number {
	if s == "" {
		return "0"
	}
	return json.Number(s)
}
