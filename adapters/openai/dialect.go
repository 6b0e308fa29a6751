package openai

import (
	"crypto/sha256"

	"portcullis/adapters"
)

// Dialect is one OpenAI-compatible provider's variant of the Chat
// Completions wire format: the same shapes, with the departures the wire
// reference documents (../shared/wire, table B of MAPPING.md). The zero
// value is OpenAI itself.
type Dialect string

// The dialects the gateway knows.
const (
	// DialectOpenAI is OpenAI, and any upstream that speaks its format exactly.
	DialectOpenAI Dialect = "openai"
	// DialectAzure is Azure OpenAI's dated deployments API: the deployment
	// in the URL, an api-version query parameter, an api-key header, and
	// streams that open with a content-filter chunk without choices.
	DialectAzure Dialect = "azure"
	// DialectVLLM is vLLM's OpenAI-compatible server.
	DialectVLLM Dialect = "vllm"
	// DialectGroq is GroqCloud: usage in x_groq.usage on a stream's last
	// chunk, n only 1.
	DialectGroq Dialect = "groq"
	// DialectMistral is Mistral's La Plateforme: 9-character tool-call
	// ids, no stream_options (usage comes on the finish chunk), seed
	// named random_seed, max_tokens only.
	DialectMistral Dialect = "mistral"
	// DialectPerplexity is Perplexity's Sonar API: no tools, no [DONE],
	// usage on every chunk, citations and search results beside the answer.
	DialectPerplexity Dialect = "perplexity"
	// DialectOllama is Ollama's /v1 API: max_completion_tokens and
	// tool_choice ignored, usage only when asked for.
	DialectOllama Dialect = "ollama"
)

// Exact reports whether the dialect's requests and streams are OpenAI's
// closely enough for an OpenAI client's bytes to pass through unchanged
// (the gateway only rewrites the model). Every other dialect is
// translated through the unified types, so that its answers reach
// clients in OpenAI's exact shape: one usage chunk when asked for, a
// [DONE] at the end, no quirks.
func (d Dialect) Exact() bool {
	switch d {
	case "", DialectOpenAI, DialectAzure, DialectVLLM:
		return true
	}
	return false
}

// ServesEmbeddings reports whether the provider has an OpenAI-shaped
// POST /embeddings.
func (d Dialect) ServesEmbeddings() bool { return d != DialectPerplexity }

// maxTokensField is the request field that caps the output: the newer
// max_completion_tokens, or max_tokens where the provider reads only that.
func (d Dialect) maxTokensField() string {
	switch d {
	case DialectMistral, DialectPerplexity, DialectOllama:
		return "max_tokens"
	}
	return "max_completion_tokens"
}

// asksForUsage reports whether a stream asks for its usage through
// stream_options; Mistral and Perplexity refuse the field and report usage
// anyway.
func (d Dialect) asksForUsage() bool { return d != DialectMistral && d != DialectPerplexity }

// adapt fits an encoded request to the dialect: it leaves out the fields
// the provider does not take (recorded in req.Dropped; none changes the
// answer's meaning) and refuses, with a RequestError, a request whose
// meaning the provider cannot keep.
func (d Dialect) adapt(req *adapters.Request, w *wireRequest) error {
	drop := func(field string, set bool) bool {
		if set {
			req.Dropped = append(req.Dropped, field)
		}
		return set
	}
	single := func(param string) error {
		return &RequestError{Param: param, Message: "'" + param + "' greater than 1 is not supported by this model's provider (" + string(d) + ")"}
	}
	if d.maxTokensField() == "max_tokens" {
		w.MaxTokens, w.MaxCompletionTokens = w.MaxCompletionTokens, 0
	}
	if !d.asksForUsage() {
		w.StreamOptions = nil
	}
	switch d {
	case DialectMistral:
		w.RandomSeed, w.Seed = w.Seed, nil
		dropLogprobs(w, drop)
		if drop("logit_bias", w.LogitBias != nil) {
			w.LogitBias = nil
		}
		if drop("user", w.User != "") {
			w.User = ""
		}
	case DialectPerplexity:
		switch {
		case len(w.Tools) > 0:
			return &RequestError{Param: "tools", Message: "'tools' are not supported by this model's provider (perplexity): its Sonar API has no function calling"}
		case w.N > 1:
			return single("n")
		}
		dropLogprobs(w, drop)
		if drop("seed", w.Seed != nil) {
			w.Seed = nil
		}
		if drop("logit_bias", w.LogitBias != nil) {
			w.LogitBias = nil
		}
		if drop("user", w.User != "") {
			w.User = ""
		}
	case DialectGroq:
		if w.N > 1 {
			return single("n")
		}
	case DialectOllama:
		if w.N > 1 {
			return single("n")
		}
		// Ollama ignores tool_choice: "none" is kept by not offering the
		// tools, and a forced call cannot be promised at all.
		switch req.ToolChoice.Mode {
		case adapters.ToolChoiceNone:
			w.Tools, w.ToolChoice, w.ParallelToolCalls = nil, nil, nil
		case adapters.ToolChoiceRequired, adapters.ToolChoiceTool:
			if len(w.Tools) > 0 {
				return &RequestError{Param: "tool_choice", Message: "a 'tool_choice' that forces a tool call is not supported by this model's provider (ollama), which ignores tool_choice; use \"auto\" or \"none\""}
			}
		}
		if drop("logit_bias", w.LogitBias != nil) {
			w.LogitBias = nil
		}
	}
	return nil
}

func dropLogprobs(w *wireRequest, drop func(string, bool) bool) {
	if drop("logprobs", w.Logprobs) {
		w.Logprobs, w.TopLogprobs = false, 0
	}
}

// toolCallID is the tool-call id the dialect accepts for id: unchanged,
// except that Mistral takes only 9 letters and digits, so any other id (an
// OpenAI "call_..." or Anthropic "toolu_..." one from the history) becomes
// 9 characters derived from it. The mapping is a pure function of the id,
// so a call and its result keep matching, turn after turn, without the
// gateway keeping state; Mistral never echoes the history's ids back, so
// no reverse mapping is needed in answers.
func (d Dialect) toolCallID(id string) string {
	if d != DialectMistral || mistralID(id) {
		return id
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte(id))
	out := make([]byte, 9)
	for i := range out {
		out[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(out)
}

// mistralID reports whether id is already a valid Mistral tool-call id.
func mistralID(id string) bool {
	if len(id) != 9 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// finishReason maps a dialect's finish reason to OpenAI's: Mistral's
// model_length (its context ran out) is length, and its error is stop, as
// the wire mapping advises.
func finishReason(s string) string {
	switch s {
	case "model_length":
		return "length"
	case "error":
		return "stop"
	}
	return s
}
