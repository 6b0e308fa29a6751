package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// completion is one demo answer, encoded in OpenAI's exact wire shapes.
type completion struct {
	id      string
	created int64
	model   string
	words   []string
	finish  string
	usage   usage
	// tool is set when the answer is a tool call.
	tool *toolCall
}

type usage struct {
	Prompt     int
	Completion int
}

// MarshalJSON writes CompletionUsage with OpenAI's field order.
func (u usage) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, `{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,`+
		`"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},`+
		`"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`,
		u.Prompt, u.Completion, u.Prompt+u.Completion), nil
}

type message struct {
	Role        string   `json:"role"`
	Content     string   `json:"content"`
	Refusal     *string  `json:"refusal"`
	Annotations []string `json:"annotations"`
}

type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        any      `json:"delta,omitempty"`
	Logprobs     *string  `json:"logprobs"`
	FinishReason *string  `json:"finish_reason"`
}

type body struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []choice `json:"choices"`
	Usage             *usage   `json:"usage"`
	ServiceTier       string   `json:"service_tier,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint"`
}

const fingerprint = "fp_portcullis_demo"

func (c *completion) response() []byte {
	b, _ := json.Marshal(body{
		ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
		Choices: []choice{{
			Message:      &message{Role: "assistant", Content: strings.Join(c.words, ""), Annotations: []string{}},
			FinishReason: &c.finish,
		}},
		Usage:             &c.usage,
		ServiceTier:       "default",
		SystemFingerprint: fingerprint,
	})
	return b
}

// chunk encodes one chat.completion.chunk whose single choice has delta.
func (c *completion) chunk(delta any, finish *string) []byte {
	b, _ := json.Marshal(body{
		ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices:           []choice{{Delta: delta, FinishReason: finish}},
		ServiceTier:       "default",
		SystemFingerprint: fingerprint,
	})
	return b
}

func (c *completion) usageChunk() []byte {
	b, _ := json.Marshal(body{
		ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices:           []choice{},
		Usage:             &c.usage,
		ServiceTier:       "default",
		SystemFingerprint: fingerprint,
	})
	return b
}

// stream writes the answer as OpenAI does: a role chunk, one chunk per
// word, a finish chunk, the usage chunk when asked for, then [DONE].
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, c *completion, mode string, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(data []byte) bool {
		if _, err := w.Write([]byte("data: ")); err != nil {
			return false
		}
		w.Write(data)
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send(c.chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil)) {
		return
	}
	ctx := r.Context()
	for i, word := range c.words {
		if i > 0 && !sleep(ctx.Done(), h.WordDelay) {
			return
		}
		if !send(c.chunk(map[string]string{"content": word}, nil)) {
			return
		}
		switch {
		case mode == "hang":
			<-ctx.Done()
			return
		case mode == "midstream" && i == 2:
			send([]byte(`{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`))
			return
		}
	}
	if !send(c.chunk(map[string]any{}, &c.finish)) {
		return
	}
	if includeUsage && !send(c.usageChunk()) {
		return
	}
	send([]byte("[DONE]"))
}

func sleep(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// failWith answers with the error body a real OpenAI upstream sends for status.
func failWith(w http.ResponseWriter, status int, model string) {
	switch status {
	case http.StatusBadRequest:
		writeError(w, status, "invalid_request_error", "context_length_exceeded",
			"This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.")
	case http.StatusUnauthorized:
		writeError(w, status, "invalid_request_error", "invalid_api_key", "Incorrect API key provided. You can find your API key in your account settings.")
	case http.StatusForbidden:
		writeError(w, status, "permission_denied", "unsupported_country_region_territory", "Country, region, or territory not supported")
	case http.StatusNotFound:
		writeError(w, status, "invalid_request_error", "model_not_found", "The model `"+model+"` does not exist or you do not have access to it.")
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
		w.Header().Set("x-ratelimit-limit-requests", "500")
		w.Header().Set("x-ratelimit-remaining-requests", "0")
		w.Header().Set("x-ratelimit-reset-requests", "1s")
		writeError(w, status, "requests", "rate_limit_exceeded", "Rate limit reached for "+model+" on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s.")
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		writeError(w, status, "server_error", "", "The server is overloaded or not ready yet.")
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "", "The server had an error while processing your request. Sorry about that!")
	}
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	var c any
	if code != "" {
		c = code
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
