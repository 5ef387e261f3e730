package gateway

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

// Prefix is where the gateway's routes hang.
const Prefix = "/gateway"

// kind is one provider endpoint the gateway understands.
type kind int

const (
	openaiChat kind = iota
	openaiResponses
	openaiEmbeddings
	anthropicMessages
	geminiGenerate
	mistralChat
)

// route is one gateway route: the client's base URL (clientBase) is the
// upstream's base URL, so the rest of the path is forwarded as it is.
type route struct {
	provider   string
	kind       kind
	clientBase string
	pattern    string
}

var routes = []route{
	{"openai", openaiChat, Prefix + "/openai/v1", "POST " + Prefix + "/openai/v1/chat/completions"},
	{"openai", openaiResponses, Prefix + "/openai/v1", "POST " + Prefix + "/openai/v1/responses"},
	{"openai", openaiEmbeddings, Prefix + "/openai/v1", "POST " + Prefix + "/openai/v1/embeddings"},
	{"anthropic", anthropicMessages, Prefix + "/anthropic", "POST " + Prefix + "/anthropic/v1/messages"},
	{"gemini", geminiGenerate, Prefix + "/gemini", "POST " + Prefix + "/gemini/{version}/models/{call}"},
	{"mistral", mistralChat, Prefix + "/mistral/v1", "POST " + Prefix + "/mistral/v1/chat/completions"},
}

// call is what the gateway learned from a request before forwarding it.
type call struct {
	model string
	// maxTokens is the output the request allows (0 for endpoints without
	// output, such as embeddings); hasMax says whether the request named it.
	maxTokens int64
	hasMax    bool
	stream    bool
	// hideUsage: the gateway asked for stream usage the client did not, so
	// the chunk carrying it is not relayed.
	hideUsage bool
	body      []byte // what to forward
	endpoint  string // the provider path, for the ledger
}

// inspect reads a request's model, output limit and stream flag, and
// prepares the body to forward. Errors: invalid (not a JSON object, or an
// unknown Gemini method).
func (rt *route) inspect(r *http.Request, body []byte) (call, error) {
	c := call{body: body, endpoint: strings.TrimPrefix(r.URL.Path, rt.clientBase)}
	notJSON := func() (call, error) {
		return call{}, billing.Errorf(billing.CodeInvalid, "the request body must be a JSON object")
	}
	limit := func(ps ...*int64) {
		for _, p := range ps {
			if p != nil {
				c.maxTokens, c.hasMax = max(*p, 0), true
				return
			}
		}
	}
	switch rt.kind {
	case openaiChat, openaiResponses, openaiEmbeddings, mistralChat:
		var req openaiRequest
		if json.Unmarshal(body, &req) != nil {
			return notJSON()
		}
		c.model, c.stream = req.Model, req.Stream
		switch rt.kind {
		case openaiEmbeddings:
			c.stream, c.hasMax = false, true
		case openaiResponses:
			limit(req.MaxOutputTokens)
		default:
			limit(req.MaxCompletionTokens, req.MaxTokens)
		}
		if rt.kind == openaiChat && c.stream && (req.StreamOptions == nil || !req.StreamOptions.IncludeUsage) {
			// OpenAI reports stream usage only when asked; ask, and hide
			// the extra chunk from a client that did not.
			b, err := withIncludeUsage(body)
			if err != nil {
				return notJSON()
			}
			c.body, c.hideUsage = b, true
		}
	case anthropicMessages:
		var req anthropicRequest
		if json.Unmarshal(body, &req) != nil {
			return notJSON()
		}
		c.model, c.stream = req.Model, req.Stream
		limit(req.MaxTokens)
	case geminiGenerate:
		model, method, ok := strings.Cut(r.PathValue("call"), ":")
		switch v := r.PathValue("version"); {
		case !ok || model == "" || (method != "generateContent" && method != "streamGenerateContent"):
			return call{}, billing.Errorf(billing.CodeNotFound, "the gateway serves models/{model}:generateContent and :streamGenerateContent")
		case v != "v1" && v != "v1beta" && v != "v1alpha":
			return call{}, billing.Errorf(billing.CodeNotFound, "unknown Gemini API version %q", v)
		}
		var req geminiRequest
		if json.Unmarshal(body, &req) != nil {
			return notJSON()
		}
		c.model, c.stream = model, method == "streamGenerateContent"
		limit(req.maxTokens())
	}
	return c, nil
}

// setKey puts the server's provider key where the provider reads it.
func (rt *route) setKey(h http.Header, key string) {
	switch rt.provider {
	case "anthropic":
		h.Set("X-Api-Key", key)
	case "gemini":
		h.Set("X-Goog-Api-Key", key)
	default:
		h.Set("Authorization", "Bearer "+key)
	}
}

// stream reads the usage of a streamed response event by event.
type streamReader struct {
	rt        *route
	hideUsage bool
	anthropic anthropicStream
}

// event reads one event into u and says whether the client sees it.
func (s *streamReader) event(ev sseEvent, u *usage) bool {
	if len(ev.data) == 0 {
		return true
	}
	switch s.rt.kind {
	case openaiChat, mistralChat:
		return readOpenAIChatEvent(ev.data, s.hideUsage, u)
	case openaiResponses:
		readResponsesEvent(ev.data, u)
	case anthropicMessages:
		s.anthropic.event(ev.data, u)
	case geminiGenerate:
		readGeminiChunk(ev.data, u)
	}
	return true
}

// readBody reads the usage of a whole response body.
func (rt *route) readBody(b []byte, u *usage) {
	switch rt.kind {
	case openaiChat, openaiEmbeddings, mistralChat:
		readOpenAIBody(b, u)
	case openaiResponses:
		readResponsesBody(b, u)
	case anthropicMessages:
		readAnthropicBody(b, u)
	case geminiGenerate:
		readGeminiBody(b, u)
	}
}
