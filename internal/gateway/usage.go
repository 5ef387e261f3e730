package gateway

import (
	"github.com/alwrity/alwrity-billing/internal/billing"
)

// usage is what a response says its call used, gathered from a whole body
// or event by event from a stream.
type usage struct {
	q        billing.Quantities
	model    string // the model the provider says answered, if it says
	reported bool   // the provider reported usage
	// textChars counts generated text relayed to the client, to estimate
	// the output of a stream cut before its usage arrived.
	textChars int64
	// streamErr is an error the provider reported inside a stream whose
	// status was already 200 (Anthropic's overloaded_error, OpenAI's
	// response.failed).
	streamErr string
}

// normalized returns q made safe to record: no negative counts, no count
// beyond what one event may carry, and buckets within their totals. A
// provider that reports a bucket larger than its total is believed about
// the total.
func normalized(q billing.Quantities) billing.Quantities {
	clamp := func(v *int64, hi int64) {
		if *v < 0 {
			*v = 0
		}
		if *v > hi {
			*v = hi
		}
	}
	for _, v := range []*int64{&q.Input, &q.Output, &q.CachedInput, &q.CacheWrite5m, &q.CacheWrite1h, &q.Reasoning} {
		clamp(v, billing.MaxTokensPerEvent)
	}
	for _, v := range []*int64{&q.Requests, &q.Searches, &q.Images, &q.Pages} {
		clamp(v, billing.MaxUnitsPerEvent)
	}
	clamp(&q.CachedInput, q.Input)
	clamp(&q.CacheWrite5m, q.Input-q.CachedInput)
	clamp(&q.CacheWrite1h, q.Input-q.CachedInput-q.CacheWrite5m)
	clamp(&q.Reasoning, q.Output)
	return q
}

// tokensOf estimates the tokens of n bytes of text, about four bytes a
// token, for calls whose real usage never arrived.
func tokensOf(n int64) int64 { return (n + 3) / 4 }
