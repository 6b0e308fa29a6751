// Package demo is the built-in demo model: an OpenAI-compatible upstream
// that runs inside the gateway, so the quickstart and the tests work with no
// provider key and no network. Its answers are deterministic, its streams
// come word by word, it reports token usage the way OpenAI does, and it can
// be asked to fail the way real providers fail:
//
//   - model "demo-error-<status>" or a prompt containing "[demo:error=<status>]"
//     answers with that provider error (400 context_length_exceeded, 401,
//     403, 404, 429 with Retry-After, 500, 502, 503);
//   - "demo-error-midstream" / "[demo:error=midstream]" streams a few words,
//     then an error event, and stops without [DONE];
//   - "demo-hang" / "[demo:hang]" sends its first word, then waits until the
//     caller goes away;
//   - a request offering function tools gets a call of the named (or first)
//     tool, its required arguments filled from the prompt, unless the
//     choice is "none" or the last turn brings a tool's result back;
//   - POST /v1/embeddings answers with unit vectors drawn from each input's
//     hash (Embed), the same every time for the same text.
package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Handler serves the demo model's OpenAI-compatible API.
type Handler struct {
	// WordDelay is the pause between streamed words.
	WordDelay time.Duration
	// Now stamps responses. Zero value: time.Now.
	Now func() time.Time
}

// ServeHTTP serves POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		h.chat(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/embeddings"):
		h.embeddings(w, r)
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":"demo","object":"model","created":%d,"owned_by":"portcullis"}]}`, h.now().Unix())
	default:
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url", "Unknown request URL: "+r.Method+" "+r.URL.Path)
	}
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Stream        bool `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	MaxTokens           int             `json:"max_tokens"`
	Tools               []demoTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

func (h *Handler) chat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "We could not parse the JSON body of your request.")
		return
	}
	prompt, promptTokens := readPrompt(&req)
	mode := modeOf(req.Model, prompt)
	if status, ok := errorStatus(mode); ok {
		failWith(w, status, req.Model)
		return
	}
	words := answer(prompt)
	limit := req.MaxCompletionTokens
	if limit == 0 {
		limit = req.MaxTokens
	}
	finish := "stop"
	if limit > 0 && len(words) > limit {
		words, finish = words[:limit], "length"
	}
	c := &completion{
		id:      fmt.Sprintf("chatcmpl-demo%x", uint32(promptTokens*7919+len(prompt))),
		created: h.now().Unix(),
		model:   req.Model,
		words:   words,
		finish:  finish,
		usage:   usage{Prompt: promptTokens, Completion: len(words)},
	}
	if t := toolToCall(&req); t != nil && mode == "" {
		args := t.arguments(prompt)
		c.tool = &toolCall{id: toolCallID(t.Function.Name, promptTokens), name: t.Function.Name, arguments: args}
		c.finish, c.usage.Completion = "tool_calls", countTokens(args)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			w.Write(c.toolResponse())
			return
		}
		h.streamToolCall(w, c, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
		return
	}
	if !req.Stream {
		if mode == "midstream" {
			failWith(w, http.StatusInternalServerError, req.Model)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(c.response())
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	h.stream(w, r, c, mode, includeUsage)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// readPrompt returns the last user message's text and a token count of
// every message, the way a tokenizer would roughly count them.
func readPrompt(req *chatRequest) (string, int) {
	var last string
	tokens := 3
	for _, m := range req.Messages {
		text := contentText(m.Content)
		tokens += 4 + countTokens(text)
		if m.Role == "user" {
			last = text
		}
	}
	return last, tokens
}

func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return ""
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// countTokens counts words and punctuation marks: close enough to a real
// tokenizer for a demo, and deterministic.
func countTokens(s string) int {
	n, inWord := 0, false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if !inWord {
				n++
			}
			inWord = true
		case unicode.IsSpace(r):
			inWord = false
		default:
			n++
			inWord = false
		}
	}
	return n
}

// modeOf reads the failure the caller asked for, from the model name or
// a magic marker in the prompt; "" is a normal answer.
func modeOf(model, prompt string) string {
	if rest, ok := strings.CutPrefix(model, "demo-error-"); ok {
		return rest
	}
	if model == "demo-hang" {
		return "hang"
	}
	if i := strings.Index(prompt, "[demo:error="); i >= 0 {
		rest := prompt[i+len("[demo:error="):]
		if j := strings.IndexByte(rest, ']'); j >= 0 {
			return rest[:j]
		}
	}
	if strings.Contains(prompt, "[demo:hang]") {
		return "hang"
	}
	return ""
}

func errorStatus(mode string) (int, bool) {
	status, err := strconv.Atoi(mode)
	return status, err == nil
}

// answer is the demo's deterministic reply, split into the words it streams.
func answer(prompt string) []string {
	prompt = strings.Join(strings.Fields(prompt), " ")
	if len(prompt) > 200 {
		prompt = prompt[:200] + "…"
	}
	text := "Hello from the Portcullis demo model. You said: \"" + prompt + "\". Add a provider key to the configuration to reach a real model."
	fields := strings.Fields(text)
	words := make([]string, len(fields))
	for i, f := range fields {
		if i > 0 {
			f = " " + f
		}
		words[i] = f
	}
	return words
}
