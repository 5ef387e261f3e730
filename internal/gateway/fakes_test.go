package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// The fakes answer with the providers' real wire formats, cache and
// reasoning fields included. Each answers the same usage streamed or not,
// so streamed and non-streamed calls must record the same.

const openaiUsageJSON = `{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,` +
	`"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},` +
	`"completion_tokens_details":{"reasoning_tokens":128,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`

const responsesUsageJSON = `{"input_tokens":1200,"input_tokens_details":{"cached_tokens":1024},` +
	`"output_tokens":300,"output_tokens_details":{"reasoning_tokens":128},"total_tokens":1500}`

const anthropicStartUsageJSON = `{"input_tokens":100,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":1,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500},"service_tier":"standard"}`

const anthropicUsageJSON = `{"input_tokens":100,"cache_creation_input_tokens":2000,"cache_read_input_tokens":3000,"output_tokens":500,` +
	`"cache_creation":{"ephemeral_5m_input_tokens":1500,"ephemeral_1h_input_tokens":500},` +
	`"server_tool_use":{"web_search_requests":1},"service_tier":"standard"}`

const geminiUsageJSON = `{"promptTokenCount":5000,"candidatesTokenCount":200,"totalTokenCount":5500,` +
	`"cachedContentTokenCount":4000,"thoughtsTokenCount":300,"promptTokensDetails":[{"modality":"TEXT","tokenCount":5000}]}`

const mistralUsageJSON = `{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200}`

func serveProvider(w http.ResponseWriter, r *http.Request, provider string, body []byte) {
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	_ = json.Unmarshal(body, &req)
	switch {
	case provider == "openai" && strings.HasSuffix(r.URL.Path, "/v1/chat/completions"):
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		openaiChat(w, req.Stream, includeUsage, "gpt-4o-2024-08-06", openaiUsageJSON)
	case provider == "mistral" && strings.HasSuffix(r.URL.Path, "/v1/chat/completions"):
		mistralChat(w, req.Stream)
	case provider == "openai" && strings.HasSuffix(r.URL.Path, "/v1/responses"):
		openaiResponses(w, req.Stream)
	case provider == "openai" && strings.HasSuffix(r.URL.Path, "/v1/embeddings"):
		writeJSON(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AAAAAAAAgD8AAABA"}],`+
			`"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`)
	case provider == "anthropic" && r.URL.Path == "/v1/messages":
		anthropicMessages(w, req.Stream)
	case provider == "gemini" && strings.Contains(r.URL.Path, "/models/"):
		geminiGenerate(w, strings.HasSuffix(r.URL.Path, ":streamGenerateContent"), r.URL.Query().Get("alt") == "sse")
	default:
		http.Error(w, `{"error":{"message":"no such route"}}`, http.StatusNotFound)
	}
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

func openaiChat(w http.ResponseWriter, stream, includeUsage bool, model, usage string) {
	if !stream {
		writeJSON(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"`+model+`",`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],`+
			`"usage":`+usage+`,"service_tier":"default","system_fingerprint":"fp_1"}`)
		return
	}
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"` + model + `",` +
			`"system_fingerprint":"fp_1","choices":[{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `}],"usage":null}` + "\n\n"
	}
	events := []string{
		chunk(`{"role":"assistant","content":"","refusal":null}`, "null"),
		chunk(`{"content":"Hello"}`, "null"),
		chunk(`{"content":" there"}`, "null"),
		chunk(`{}`, `"stop"`),
	}
	if includeUsage {
		events = append(events, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"`+model+`",`+
			`"system_fingerprint":"fp_1","choices":[],"usage":`+usage+`}`+"\n\n")
	}
	events = append(events, "data: [DONE]\n\n")
	sse(w, events...)
}

func mistralChat(w http.ResponseWriter, stream bool) {
	if !stream {
		writeJSON(w, `{"id":"cmpl-1","object":"chat.completion","created":1700000000,"model":"mistral-7b",`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Bonjour","tool_calls":null},"finish_reason":"stop"}],`+
			`"usage":`+mistralUsageJSON+`}`)
		return
	}
	// Mistral sends usage with the last chunk, unasked.
	sse(w,
		`data: {"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"mistral-7b","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n",
		`data: {"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"mistral-7b","choices":[{"index":0,"delta":{"content":"Bonjour"},"finish_reason":null}]}`+"\n\n",
		`data: {"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"mistral-7b","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":`+mistralUsageJSON+`}`+"\n\n",
		"data: [DONE]\n\n")
}

func responseObject(status, usage string) string {
	return `{"id":"resp_1","object":"response","created_at":1700000000,"status":"` + status + `","model":"gpt-4o-2024-08-06",` +
		`"output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hello","annotations":[]}]}],` +
		`"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"usage":` + usage + `}`
}

func openaiResponses(w http.ResponseWriter, stream bool) {
	if !stream {
		writeJSON(w, responseObject("completed", responsesUsageJSON))
		return
	}
	sse(w,
		"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":"+responseObject("in_progress", "null")+"}\n\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":"+responseObject("completed", responsesUsageJSON)+"}\n\n")
}

func anthropicMessages(w http.ResponseWriter, stream bool) {
	if !stream {
		writeJSON(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-3.5-sonnet",`+
			`"content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":`+anthropicUsageJSON+`}`)
		return
	}
	sse(w,
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-3.5-sonnet\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"+anthropicStartUsageJSON+"}}\n\n",
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
		"event: ping\ndata: {\"type\": \"ping\"}\n\n",
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":"+anthropicUsageJSON+"}\n\n",
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
}

func geminiChunk(text, usage string) string {
	return `{"candidates":[{"content":{"parts":[{"text":"` + text + `"}],"role":"model"},"index":0}],` +
		`"usageMetadata":` + usage + `,"modelVersion":"gemini-2.5-flash","responseId":"r1"}`
}

const geminiFirstUsageJSON = `{"promptTokenCount":5000,"candidatesTokenCount":50,"totalTokenCount":5350,` +
	`"cachedContentTokenCount":4000,"thoughtsTokenCount":300}`

func geminiGenerate(w http.ResponseWriter, stream, alt bool) {
	switch {
	case !stream:
		writeJSON(w, geminiChunk("Hello", geminiUsageJSON))
	case alt:
		sse(w, "data: "+geminiChunk("Hel", geminiFirstUsageJSON)+"\r\n\r\n", "data: "+geminiChunk("lo", geminiUsageJSON)+"\r\n\r\n")
	default:
		// Without alt=sse, Gemini streams one JSON array.
		w.Header().Set("Content-Type", "application/json")
		rc := http.NewResponseController(w)
		io.WriteString(w, "[")
		io.WriteString(w, geminiChunk("Hel", geminiFirstUsageJSON))
		rc.Flush()
		io.WriteString(w, ",\r\n"+geminiChunk("lo", geminiUsageJSON)+"]")
	}
}
